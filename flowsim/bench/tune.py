"""``flowsim bench tune``: what the Tune layer costs per trial, and trials per hour.

Three measurements on one config:

1. ``flowsim train`` on the config (a subprocess, as a user runs it): process wall time and
   its training loop's wall time (``progress.csv``'s last ``wall_s``);
2. the same run as the only trial of a Ray Tune run (Ray already started): the trial's span
   on the driver's clock (placement group, actor, imports, reports, checkpoints), its
   training loop's wall time, and the time the trial itself spent on the Tune layer
   (``trial.json``'s ``tune_layer_s``: reporting, handing checkpoints to Tune);
3. the config's own ``tune:`` section with ``--trials`` samples: trials per hour.

1 and 2 alternate ``repeats`` times (medians reported), so load from elsewhere on the machine
hits both alike. The overhead per trial is span / ``flowsim train`` wall − 1; the loop
overhead is trial loop / train loop − 1. Starting Ray and Tune's controller happen once per
tuning run and are reported apart.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowsim.config import FlowsimConfig, dump_config
from flowsim.config.tune import TuneConfig
from flowsim.errors import FlowsimError

__all__ = ["bench_tune"]


def _last_wall_s(progress_csv: Path) -> float:
    from flowsim.viz.curves import read_progress

    return float(read_progress(progress_csv)["wall_s"][-1])


def bench_tune(
    config: FlowsimConfig,
    iterations: int | None = None,
    trials: int = 4,
    out: str | Path = Path("runs/bench"),
    repeats: int = 3,
    report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure the Tune layer against ``flowsim train`` and the trials per hour of ``config``.

    ``iterations`` overrides ``train.iterations`` (every run here trains that many);
    ``trials`` is the number of samples of the throughput run, which uses the config's
    ``tune:`` section (a default one if it has none). Measurements 1 and 2 alternate
    ``repeats`` times and the medians are reported.
    """
    import ray

    from flowsim.bench.results import machine_description
    from flowsim.distributed.cluster import init_ray
    from flowsim.tune.progress import TrialTimer
    from flowsim.tune.reporter import read_trial_record
    from flowsim.tune.run import check_tune, run_tune

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train_settings = config.train.model_copy(
        update={"iterations": iterations or config.train.iterations}
    )
    plain = config.model_copy(update={"train": train_settings, "tune": None})
    settings = config.tune or TuneConfig()
    many = plain.model_copy(update={"tune": settings.model_copy(update={"num_samples": trials})})
    check_tune(many)  # before minutes of measurements

    def say(phase: str) -> None:
        if report is not None:
            report(phase)

    yaml_path = out / f"bench-tune-{config.name}.yaml"
    yaml_path.write_text(dump_config(plain))
    single = plain.model_copy(
        update={"tune": TuneConfig(metric=settings.metric, mode=settings.mode)}
    )
    if ray.is_initialized():
        ray.shutdown()
    say("starting Ray")
    started = time.perf_counter()
    init_ray(plain.sampler)
    ray_start_s = time.perf_counter() - started

    # 1 and 2, interleaved `repeats` times so that load from elsewhere hits both alike
    figures: dict[str, list[float]] = {
        key: []
        for key in (
            "train_s",
            "train_loop_s",
            "trial_span_s",
            "trial_loop_s",
            "tune_layer_s",
            "tune_one_trial_s",
        )
    }
    for repeat in range(repeats):
        say(f"flowsim train, {plain.train.iterations} iterations ({repeat + 1}/{repeats})")
        train_out = out / f"bench-tune-train-{repeat}"
        started = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-m", "flowsim.cli", "train", str(yaml_path), "--out", str(train_out)],
            capture_output=True,
            text=True,
        )
        figures["train_s"].append(time.perf_counter() - started)
        if completed.returncode != 0:
            raise FlowsimError(f"flowsim train failed:\n{completed.stderr[-2000:]}")
        run_dir = max(train_out.glob(f"{plain.name}-*"), key=lambda p: p.stat().st_mtime)
        figures["train_loop_s"].append(_last_wall_s(run_dir / "progress.csv"))

        say(f"the same run as one Tune trial ({repeat + 1}/{repeats})")
        timer = TrialTimer()
        started = time.perf_counter()
        one = run_tune(single, out=out, plots=False, callbacks=[timer])
        figures["tune_one_trial_s"].append(time.perf_counter() - started)
        (trial,) = one.trials
        (span,) = timer.spans().values()
        figures["trial_span_s"].append(span)
        figures["trial_loop_s"].append(_last_wall_s(trial.run_dir / "progress.csv"))
        record = read_trial_record(trial.run_dir)
        figures["tune_layer_s"].append(float(record.get("tune_layer_s", 0.0)))
    median = {key: statistics.median(values) for key, values in figures.items()}

    # 3. throughput: the config's own search space and scheduler
    say(f"{trials} trials of the config's tune section")
    timer = TrialTimer()
    started = time.perf_counter()
    throughput = run_tune(many, out=out, plots=False, callbacks=[timer])
    many_s = time.perf_counter() - started
    resources = ray.cluster_resources()
    ray.shutdown()
    return {
        "benchmark": "tune",
        "config": config.name,
        "algo": plain.train.algo,
        "iterations": plain.train.iterations,
        "num_workers": plain.sampler.num_workers,
        "cluster_cpus": resources.get("CPU"),
        "repeats": repeats,
        **median,
        "overhead_per_trial": median["trial_span_s"] / median["train_s"] - 1.0,
        "loop_overhead": median["trial_loop_s"] / median["train_loop_s"] - 1.0,
        # measured inside the trial, so load from elsewhere hardly moves it
        "tune_layer_ms_per_iteration": 1000.0
        * median["tune_layer_s"]
        / max(plain.train.iterations - 1, 1),
        "tune_layer_share": median["tune_layer_s"] / median["trial_loop_s"],
        "ray_start_s": ray_start_s,
        "tune_fixed_s": median["tune_one_trial_s"] - median["trial_span_s"],
        "runs": figures,
        "throughput_trials": len(throughput.trials),
        "throughput_wall_s": many_s,
        "trials_per_hour": 3600.0 * len(throughput.trials) / many_s,
        "throughput_max_concurrent": timer.max_concurrent(),
        "throughput_scheduler": settings.scheduler.type,
        "throughput_statuses": {
            status: sum(t.status == status for t in throughput.trials)
            for status in sorted({t.status for t in throughput.trials})
        },
        "tune_dirs": [str(one.directory), str(throughput.directory)],
        "machine": machine_description(),
    }
