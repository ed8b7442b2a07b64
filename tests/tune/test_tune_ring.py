"""Ring trials with their own runner actors: placement groups sized so that one trial per CPU
runs at once (two on the 2-core test machine)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from flowsim.config import load_config
from flowsim.tune.run import run_tune
from flowsim.tune.trainable import trial_bundles

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_one_ring_trial_per_cpu_with_a_runner_each_run_at_once(
    local_ray, tmp_path: Path, short_run: Callable[..., list[str]]
) -> None:
    import ray

    # as many trials as Ray has CPUs (at most 4): with one CPU per trial they all fit at once
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if cpus < 2:
        pytest.skip(f"Ray has {cpus} CPU; two trials at once need two")
    trials = min(cpus, 4)
    space = {"train.lr": {"grid": [0.0003 * (k + 1) for k in range(trials)]}}
    config = load_config(
        ROOT / "scenarios" / "tune_ring.yaml",
        short_run(
            "tune.num_samples=1",
            "tune.scheduler=fifo",
            f"tune.search_space={json.dumps(space)}",
            iterations=3,
            horizon=50,
            warmup=10,
            fragment=100,
            minibatch=50,
            workers=None,  # the experiment's one runner per trial
            epochs=2,
        ),
    )
    assert config.sampler.num_workers == 1
    # a trainer that waits on its runner takes no CPU; the runner takes one
    assert trial_bundles(config) == [{"CPU": 0.0}, {"CPU": 1.0}]

    run = run_tune(config, out=tmp_path, plots=False)
    assert [t.status for t in run.trials] == ["done"] * trials
    records = [json.loads((t.run_dir / "trial.json").read_text()) for t in run.trials]
    # every trial was training at the same time as every other: their spans overlap
    for first in records:
        for second in records:
            assert first["started_at"] < second["last_report_at"]
    assert all(t.value("mean_speed") is not None for t in run.trials)
