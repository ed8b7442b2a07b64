"""``flowsim tune``: check the ``tune:`` section, run the trials on Ray Tune, report.

:func:`check_tune` rejects bad input before Ray starts (search-space keys and values, the
metric, scheduler settings, a missing optional package); :func:`run_tune` then creates
``OUT/tune-<name>-<time>/``, starts Ray (or joins ``sampler.address``), checks that one trial's
placement group fits the cluster, and runs Ray Tune's ``Tuner``. :func:`resume_tune` continues
an interrupted run with ``Tuner.restore``. Both end with :func:`summarize`: the trials table,
``best_config.yaml``, ``tune_summary.json`` and the plots.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flowsim import jsonout
from flowsim.config import FlowsimConfig, dump_config
from flowsim.config.env import SIGNAL_ENV_TYPES
from flowsim.config.tune import TuneConfig
from flowsim.errors import ConfigError, FlowsimError
from flowsim.tune.results import (
    TUNE_CONFIG_FILE,
    TrialSummary,
    best_trial,
    collect_trials,
    load_tune_config,
    results_table,
    write_best_config,
)
from flowsim.tune.trainable import trial_bundles, trial_config

__all__ = [
    "SUMMARY_FILE",
    "TuneRun",
    "check_tune",
    "reported_metrics",
    "resume_tune",
    "run_tune",
    "show",
    "summarize",
]

#: The tuning run's summary: best trial, every trial's values and figures, timing.
SUMMARY_FILE = "tune_summary.json"
#: Above this many combinations of range ends, each key's values are checked on their own.
_MAX_CHECKED_COMBINATIONS = 256


@dataclass
class TuneRun:
    """A finished (or interrupted) tuning run: where it lives and what it found."""

    directory: Path
    trials: list[TrialSummary]
    best: TrialSummary | None
    best_config: Path | None
    summary: dict[str, Any]
    plots: dict[str, str]


def reported_metrics(algos: set[str], signals: bool = False) -> tuple[str, ...]:
    """The ``progress.csv`` columns every trainer in ``algos`` reports (and Tune receives);
    ``signals``: on a signal env, with RESCO's trip metrics (``avg_delay`` …)."""
    from flowsim.algos.base import trainer_class
    from flowsim.runs.loop import PROGRESS_COLUMNS
    from flowsim.sim.trips import TRIP_METRICS

    common: list[str] | None = None
    trips = TRIP_METRICS if signals else ()
    for algo in sorted(algos):
        columns = [*PROGRESS_COLUMNS, *trips, *trainer_class(algo).EXTRA_METRICS]
        common = columns if common is None else [c for c in common if c in columns]
    return tuple(common or PROGRESS_COLUMNS)


def _settings(config: FlowsimConfig, source: str) -> TuneConfig:
    if config.tune is None:
        raise ConfigError(
            f"{source} has no tune: section; add one, e.g.\n"
            "  tune:\n    metric: return_mean\n    search_space:\n"
            "      train.lr: {loguniform: [1.0e-4, 1.0e-2]}\n"
            "(see docs/tune.md; scenarios/tune_cartpole.yaml is a complete example)."
        )
    return config.tune


def _combinations(settings: TuneConfig) -> list[dict[str, Any]]:
    """Trial values to check: every combination of range ends, or each key alone."""
    keys = list(settings.search_space)
    choices = [settings.search_space[k].representatives() for k in keys]
    total = 1
    for values in choices:
        total *= len(values)
    if total <= _MAX_CHECKED_COMBINATIONS:
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*choices)]
    return [{key: value} for key, values in zip(keys, choices, strict=True) for value in values]


def check_tune(config: FlowsimConfig, source: str = "the config") -> list[dict[str, Any]]:
    """Reject a ``tune:`` section that cannot run, before any trial starts (no Ray needed).

    Checks that every search-space value makes a valid config (each range's ends, combined
    while there are few combinations), that the trainer reports ``tune.metric``, that the
    scheduler and search algorithm can be built (``optuna`` installed), and that the stop
    condition fits ``train.iterations``. Returns the trial values it checked (used to size
    placement groups).

    Raises:
        ConfigError: the message names the key and the fix (the CLI exits with code 2).
    """
    settings = _settings(config, source)
    base = config.model_dump(mode="json")
    combinations = _combinations(settings)
    algos = {config.train.algo}
    for params in combinations:
        try:
            trial = trial_config(base, params)
        except KeyError as error:
            raise ConfigError(
                f"tune.search_space: {error.args[0]!r} is not set in {source} (a list is too "
                "short or a section is null); fix the key or add the section to the YAML."
            ) from None
        except ConfigError as error:
            keys = ", ".join(params)
            raise ConfigError(
                f"tune.search_space: a trial with {params} would be invalid:\n  {error}\n"
                f"Narrow the values of {keys} so that every trial is a valid config."
            ) from None
        algos.add(trial.train.algo)
    columns = reported_metrics(algos, config.env.type in SIGNAL_ENV_TYPES)
    if settings.metric not in columns:
        import difflib

        close = difflib.get_close_matches(settings.metric, columns, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(
            f"tune.metric '{settings.metric}' is not reported by the {'/'.join(sorted(algos))} "
            f"trainer{hint}; trials report the progress.csv columns {', '.join(columns)}. "
            "Set tune.metric to one of them."
        )
    if settings.scheduler.time_attr not in columns:  # all three are shared columns today
        raise ConfigError(f"tune.scheduler.time_attr {settings.scheduler.time_attr} is unknown.")
    stop = settings.stop
    if stop.iterations is not None and stop.iterations > config.train.iterations:
        raise ConfigError(
            f"tune.stop.iterations {stop.iterations} is more than train.iterations "
            f"{config.train.iterations}, where every trial ends; raise train.iterations or "
            "lower tune.stop.iterations."
        )
    population = settings.num_samples
    for distribution in settings.search_space.values():
        if distribution.kind == "grid":
            population *= len(distribution.values)
    if settings.scheduler.type == "pbt" and population < 2:
        raise ConfigError(
            "tune.scheduler: pbt needs a population of 2 or more trials; raise "
            "tune.num_samples (or give a grid of several values)."
        )
    from flowsim.tune.space import default_max_t, make_scheduler, make_searcher

    scheduler = settings.scheduler
    if scheduler.type == "asha" and scheduler.grace_period is not None:
        max_t = default_max_t(settings, config)
        if scheduler.grace_period >= max_t:
            raise ConfigError(
                f"tune.scheduler.grace_period {scheduler.grace_period:g} is not below the "
                f"trial length {max_t:g} ({scheduler.time_attr}): ASHA would never stop a "
                "trial; lower grace_period or use scheduler: fifo."
            )
    make_scheduler(settings, config)
    make_searcher(settings)
    return combinations


def _check_resources(
    config: FlowsimConfig, combinations: list[dict[str, Any]], cluster: dict[str, Any]
) -> None:
    """Refuse a trial placement group bigger than the whole cluster (it would wait forever)."""
    assert config.tune is not None
    base = config.model_dump(mode="json")
    for params in combinations or [{}]:
        trial = trial_config(base, params)
        bundles = trial_bundles(trial, config.tune.trainer_cpus)
        for name in sorted({k for bundle in bundles for k in bundle}):
            needed = sum(bundle.get(name, 0.0) for bundle in bundles)
            available = float(cluster.get(name, 0.0))
            if needed > available:
                runners = trial.sampler.num_workers
                raise ConfigError(
                    f"one trial needs {needed:g} {name} (trainer "
                    f"{bundles[0].get(name, 0.0):g} + {runners} runner(s) x "
                    f"{trial.sampler.resources_per_worker.get(name, 0.0):g}) but the Ray "
                    f"cluster has {available:g}; lower sampler.num_workers or "
                    "tune.trainer_cpus, or join a bigger cluster (--address)."
                )


def _tune_dir(out: Path, name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    directory = out / f"tune-{name}-{stamp}"
    suffix = 1
    while directory.exists():
        suffix += 1
        directory = out / f"tune-{name}-{stamp}-{suffix}"
    return directory


def _quiet_ray() -> None:
    """Tune's own console output off: flowsim shows a progress bar and a table instead."""
    # Forced experiment snapshots (checkpointing every iteration) are expected here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Ray's newer console output prints an experiment banner even at verbose=0; the classic
    # reporter prints nothing at verbose=0.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    for name in ("ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _trainable(config: FlowsimConfig, tune_dir: Path) -> Any:
    """The function trainable with its data and its per-trial placement group."""
    from ray import tune

    from flowsim.tune.trainable import run_trial, trial_resources

    settings = config.tune
    assert settings is not None
    base = config.model_dump(mode="json")
    trainable = tune.with_parameters(
        run_trial,
        base=base,
        experiment_dir=str(tune_dir.resolve()),
        metric=settings.metric,
        checkpoint_every=settings.checkpoint_interval(),
        keep_checkpoints=config.train.keep_checkpoints,
    )
    resources = functools.partial(
        trial_resources,
        base=base,
        trainer_cpus=settings.trainer_cpus,
        strategy=settings.placement_strategy,
    )
    return tune.with_resources(trainable, resources)


def _tuner(config: FlowsimConfig, tune_dir: Path, show_progress: bool, callbacks: list[Any]) -> Any:
    from ray import tune

    from flowsim.tune.progress import TrialProgress
    from flowsim.tune.space import TrialStopper, make_scheduler, make_searcher, param_space
    from flowsim.tune.trainable import trial_dirname

    settings = config.tune
    assert settings is not None
    return tune.Tuner(
        _trainable(config, tune_dir),
        param_space=param_space(settings),
        tune_config=tune.TuneConfig(
            metric=settings.metric,
            mode=settings.mode,
            search_alg=make_searcher(settings),
            scheduler=make_scheduler(settings, config),
            num_samples=settings.num_samples,
            max_concurrent_trials=(
                settings.max_concurrent_trials if settings.search.type == "optuna" else None
            ),
            time_budget_s=settings.time_budget_s,
            reuse_actors=settings.reuse_actors,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=tune_dir.name,
            storage_path=str(tune_dir.parent.resolve()),
            stop=TrialStopper(settings),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=settings.checkpoints_kept()),
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            callbacks=[
                TrialProgress(config.train.iterations, settings.metric, show_progress),
                *callbacks,
            ],
            verbose=0,
        ),
    )


def run_tune(
    config: FlowsimConfig,
    out: str | Path = "runs",
    show_progress: bool = False,
    plots: bool = True,
    callbacks: list[Any] | None = None,
) -> TuneRun:
    """Tune ``config`` (its ``tune:`` section) on Ray Tune; return the run and its best trial.

    Writes ``OUT/tune-<name>-<time>/`` with ``tune_config.yaml``, one ``trial-<id>/`` per
    trial (Tune's files and a flowsim ``run/``), then ``best_config.yaml``,
    ``tune_summary.json`` and ``plots/``. Ray starts locally, or joins ``sampler.address``.
    ``callbacks`` are extra Ray Tune callbacks (e.g. to time trials).
    """
    combinations = check_tune(config)
    _start_ray(config, combinations)
    tune_dir = _tune_dir(Path(out), config.name)
    tune_dir.mkdir(parents=True)
    (tune_dir / TUNE_CONFIG_FILE).write_text(dump_config(config))
    return _fit(tune_dir, _tuner(config, tune_dir, show_progress, callbacks or []), plots)


def resume_tune(
    tune_dir: str | Path,
    address: str | None = None,
    show_progress: bool = False,
    plots: bool = True,
    overrides: list[str] | None = None,
) -> TuneRun:
    """Continue an interrupted tuning run: unfinished and failed trials go on from their
    last checkpoints (Ray Tune's ``Tuner.restore``), finished ones are kept.

    ``overrides`` (``key=value``) change what a resume may change
    (:func:`flowsim.runs.resume.resume_config`), for every trial from now on, and
    ``tune_config.yaml`` is updated; ``train.iterations``, ``sampler.num_workers`` and
    ``sampler.resources_per_worker``, the keys of ``tune.search_space`` and the ``tune``
    section itself are refused (Ray Tune restores its trials, their resources and its
    scheduler as they were saved).
    """
    from ray import tune

    from flowsim.runs.resume import resume_config

    tune_dir = Path(tune_dir)
    config = load_tune_config(tune_dir)
    if not (tune_dir / "tuner.pkl").is_file():
        raise ConfigError(
            f"--resume {tune_dir}: Ray Tune saved no state there yet (no tuner.pkl); start "
            f"it again with `flowsim tune {tune_dir / TUNE_CONFIG_FILE}`."
        )
    changes: list[str] = []
    if overrides:
        settings = _settings(config, str(tune_dir / TUNE_CONFIG_FILE))
        sized = (
            "each trial's placement group was sized for its runners and Ray Tune restores "
            "trials with their resources; start a new tuning run instead"
        )
        refused = {
            "train.iterations": "finished trials stay finished and the scheduler keeps its "
            "horizon; extend one trial with `flowsim train --resume TRIAL/run --set "
            "train.iterations=N`, or start a new tuning run",
            "sampler.num_workers": sized,
            "sampler.resources_per_worker": sized,
            **{
                key: "tune.search_space gives every trial its own value"
                for key in settings.search_space
            },
        }
        config, changes = resume_config(
            config, overrides, 0, str(tune_dir), command="flowsim tune", refused=refused
        )
    saved = config  # --address is for this session only
    if address is not None:
        config = config.model_copy(
            update={"sampler": config.sampler.model_copy(update={"address": address})}
        )
    combinations = check_tune(config, source=str(tune_dir / TUNE_CONFIG_FILE))
    if changes:  # the tuning directory tells what its trials now do
        (tune_dir / TUNE_CONFIG_FILE).write_text(dump_config(saved))
        logging.getLogger(__name__).info("resuming %s with %s", tune_dir, ", ".join(changes))
    _start_ray(config, combinations)
    tuner = tune.Tuner.restore(
        str(tune_dir.resolve()),
        trainable=_trainable(config, tune_dir),
        resume_unfinished=True,
        resume_errored=True,
    )
    return _fit(tune_dir, tuner, plots)


def _start_ray(config: FlowsimConfig, combinations: list[dict[str, Any]]) -> None:
    """Start Ray (or join ``sampler.address``) and check that a trial fits the cluster."""
    from flowsim.distributed.cluster import init_ray

    _quiet_ray()
    cluster = init_ray(config.sampler)
    _check_resources(config, combinations, cluster)


def _fit(tune_dir: Path, tuner: Any, plots: bool) -> TuneRun:
    """Run the trials, then summarise the tuning directory."""
    from ray import tune

    started = time.perf_counter()
    try:
        results = tuner.fit()
    except tune.TuneError as error:
        raise FlowsimError(f"Ray Tune failed: {error}") from None
    wall = time.perf_counter() - started
    errors = [str(e).strip().splitlines()[-1] for e in results.errors]
    return summarize(tune_dir, wall_s=wall, errors=errors, plots=plots)


def summarize(
    tune_dir: str | Path,
    wall_s: float | None = None,
    errors: list[str] | None = None,
    plots: bool = True,
    finished: bool = True,
) -> TuneRun:
    """Write ``best_config.yaml``, ``tune_summary.json`` and the plots of a tuning directory."""
    tune_dir = Path(tune_dir)
    config = load_tune_config(tune_dir)
    settings = config.tune
    assert settings is not None
    trials = collect_trials(tune_dir, finished=finished)
    best = best_trial(trials, settings.metric, settings.mode)
    best_config = write_best_config(tune_dir, config, best, settings.metric) if best else None
    files: dict[str, str] = {}
    if plots and trials:
        from flowsim.viz.tune import plot_tune

        files = plot_tune(tune_dir, finished=finished)["files"]
    summary: dict[str, Any] = {
        "tune_dir": str(tune_dir),
        "metric": settings.metric,
        "mode": settings.mode,
        "scheduler": settings.scheduler.type,
        "search": settings.search.type,
        "trials": [
            {
                "trial_id": t.trial_id,
                "params": t.params,
                "status": t.status,
                settings.metric: t.value(settings.metric),
                f"best_{settings.metric}": t.best_value(settings.metric, settings.mode),
                "iterations": t.iterations,
                "env_steps": t.env_steps,
                "exploits": len(t.restored_from),
                "restored_from": [e["trial_id"] for e in t.restored_from],
                "run_dir": str(t.run_dir),
            }
            for t in trials
        ],
        "best_trial": best.trial_id if best else None,
        "best_params": best.params if best else None,
        f"best_{settings.metric}": best.value(settings.metric) if best else None,
        "best_config": str(best_config) if best_config else None,
        "plots": files,
        "errors": errors or [],
        "interrupted": any(t.status in ("unfinished", "not started") for t in trials),
    }
    if wall_s is not None:
        summary["wall_s"] = wall_s
        summary["trials_per_hour"] = 3600.0 * len(trials) / wall_s if wall_s > 0 else None
    (tune_dir / SUMMARY_FILE).write_text(jsonout.dumps(summary) + "\n")
    return TuneRun(tune_dir, trials, best, best_config, summary, files)


def show(run: TuneRun) -> None:
    """Print the trials table and where the results are (the CLI's report)."""
    from rich.console import Console
    from rich.markup import escape

    settings = load_tune_config(run.directory).tune
    assert settings is not None
    console = Console()
    if not console.is_terminal:  # a log file or a pipe: no need to squeeze the table into 80
        console = Console(width=200)
    console.print(results_table(run.trials, settings, run.best))
    for error in run.summary["errors"]:
        console.print(f"[red]trial error:[/] {escape(error)}", highlight=False, soft_wrap=True)
    if run.best is None:
        console.print(f"[yellow]no trial reported {escape(settings.metric)}[/]; no best config.")
    lines = {"tuning directory": str(run.directory)}
    if run.best_config is not None:
        lines["best config"] = f"{run.best_config}  (flowsim train {run.best_config})"
        lines["best trial run"] = str(run.best.run_dir) if run.best else ""
    lines.update(run.plots)
    for name, value in lines.items():
        console.print(f"{name}: {escape(value)}", highlight=False, soft_wrap=True)
    if run.summary["interrupted"]:
        console.print(
            f"[yellow]interrupted[/]: continue with `flowsim tune --resume "
            f"{escape(str(run.directory))}`",
            highlight=False,
            soft_wrap=True,
        )
