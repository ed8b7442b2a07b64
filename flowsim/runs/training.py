"""``flowsim train``: a run directory, the training loop, checkpoints and resume.

A run directory holds the resolved ``config.yaml``, ``progress.csv`` (one row per iteration),
TensorBoard events, ``checkpoints/`` (written atomically; the last K and the best are kept)
and ``summary.json`` at the end.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from flowsim import jsonout
from flowsim.config import FlowsimConfig, dump_config, load_config
from flowsim.errors import ConfigError, FlowsimError
from flowsim.runs.checkpoints import read_checkpoint, save_checkpoint
from flowsim.runs.events import FAULT_COLUMNS, RunEvents

logger = logging.getLogger(__name__)

PROGRESS_COLUMNS = (
    "iteration",
    "env_steps",
    "wall_s",
    "episodes",
    "return_mean",
    "return_min",
    "return_max",
    "mean_speed",
    "policy_loss",
    "value_loss",
    "kl",
    "entropy",
    "clip_frac",
    "steps_per_s",
    *FAULT_COLUMNS,
)

#: Checkpoints that may fail to be written one after another (a full disk) before the run
#: stops, asking for space and a ``--resume``; single failures are logged and skipped.
MAX_WRITE_FAILURES_IN_A_ROW = 3


def progress_columns(trainer: Any) -> tuple[str, ...]:
    """``progress.csv``'s columns: the shared ones, then the trainer's own (``EXTRA_METRICS``)."""
    return PROGRESS_COLUMNS + tuple(getattr(trainer, "EXTRA_METRICS", ()))


@dataclass
class Run:
    """A finished (or interrupted) training run: where it lives and what it learned."""

    directory: Path
    trainer: Any
    rows: list[dict[str, float]] = field(default_factory=list)

    @property
    def policy(self) -> Any:
        """The trained torch actor-critic (``policy.distribution(obs)``, ``policy.value``)."""
        return self.trainer.model


def _checkpoints(directory: Path) -> list[Path]:
    return sorted(directory.glob("checkpoint-*.pt"))


def load_latest_checkpoint(
    run_dir: Path, damaged: list[tuple[Path, str]] | None = None
) -> tuple[dict[str, Any], Path]:
    """The newest checkpoint of a run that loads; a damaged one falls back to the previous.

    Each damaged checkpoint skipped is added to ``damaged`` (path, reason) when given.
    """
    folder = run_dir / "checkpoints"
    candidates = _checkpoints(folder) if folder.is_dir() else []
    if not candidates:
        raise ConfigError(
            f"--resume {run_dir}: no checkpoints/checkpoint-*.pt there; give a run directory "
            "written by `flowsim train`."
        )
    for path in reversed(candidates):
        try:
            return read_checkpoint(path), path
        except ConfigError:
            raise
        except Exception as error:
            logger.warning("checkpoint %s is damaged (%s); using the previous one", path, error)
            if damaged is not None:
                damaged.append((path, f"{type(error).__name__}: {error}"))
            print(
                f"warning: checkpoint {path.name} is damaged; falling back to the previous one",
                file=sys.stderr,
            )
    raise ConfigError(f"--resume {run_dir}: every checkpoint is damaged; start a new run.")


def load_checkpoint(run_dir: Path, which: str = "latest") -> tuple[dict[str, Any], Path]:
    """A run's ``latest`` intact checkpoint or its ``best`` one (by mean training return)."""
    if which == "latest":
        return load_latest_checkpoint(run_dir)
    if which != "best":
        raise ConfigError(f"checkpoint '{which}': choose latest or best.")
    path = Path(run_dir) / "checkpoints" / "best.pt"
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; use the latest checkpoint instead.")
    try:
        return read_checkpoint(path), path
    except ConfigError:
        raise
    except Exception as error:
        raise ConfigError(f"{path} is damaged ({error}); use the latest checkpoint.") from error


#: ``train.algo`` -> (module, trainer class); imported on demand.
TRAINERS = {
    "ppo": ("flowsim.algos.ppo", "PPOTrainer"),
    "trpo": ("flowsim.algos.trpo", "TRPOTrainer"),
    "es": ("flowsim.algos.es", "ESTrainer"),
}


def new_run_directory(config: FlowsimConfig, out: str | Path | None = None) -> Path:
    """A fresh ``<out>/<name>-<timestamp>[-k]`` run folder with ``checkpoints/`` and the
    effective ``config.yaml`` (``out`` defaults to ``runs``)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    root = Path(out) if out is not None else Path("runs")
    directory = root / f"{config.name}-{stamp}"
    suffix = 1
    while directory.exists():
        suffix += 1
        directory = root / f"{config.name}-{stamp}-{suffix}"
    (directory / "checkpoints").mkdir(parents=True)
    (directory / "config.yaml").write_text(dump_config(config))
    return directory


def sampler_seed(seed: int, iteration: int) -> int:
    """Base seed of the runners of a run that starts (or resumes) at ``iteration``.

    A fresh run uses ``train.seed``; a resumed one draws fresh streams from
    ``(seed, iteration)``, so resuming the same checkpoint twice samples the same episodes and
    the resumed run does not replay the episodes its first iterations saw.
    """
    if iteration == 0:
        return seed
    return int(np.random.SeedSequence([seed, iteration]).generate_state(1)[0] >> 2)


def make_trainer(config: FlowsimConfig, iteration: int = 0) -> tuple[Any, Any]:
    """The trainer for ``config.train.algo`` and the runner group it samples from.

    ``iteration`` is where a resumed run continues; it picks the runners' seeds
    (:func:`sampler_seed`).
    """
    import importlib

    from flowsim.distributed import LocalRunnerGroup, RayRunnerGroup
    from flowsim.envs import make_env
    from flowsim.policies.spec import PolicySpec

    probe = make_env(config)  # spaces only: a flowsim env starts SUMO at reset, not here
    observation_space, action_space = probe.observation_space, probe.action_space
    probe.close()
    spec = PolicySpec.for_spaces(
        observation_space,
        action_space,
        tuple(config.train.hidden),
        init_log_std=config.train.init_log_std,
    )
    seed = sampler_seed(config.train.seed, iteration)
    workers = config.sampler.num_workers
    if workers == 0:
        group: Any = LocalRunnerGroup(config, 1, spec, base_seed=seed)
    else:
        group = RayRunnerGroup(config, workers, spec, base_seed=seed)
    module, name = TRAINERS[config.train.algo]
    trainer_class = getattr(importlib.import_module(module), name)
    try:
        trainer = trainer_class(config, group, observation_space, action_space)
    except BaseException:
        group.close()
        raise
    return trainer, group


def train(
    config: FlowsimConfig | None,
    out: Path | None = None,
    resume: Path | None = None,
    show_progress: bool = False,
    callback: Callable[[dict[str, float], Any], bool | None] | None = None,
) -> Run:
    """Train ``config`` (or continue the run at ``resume``) and return the run.

    ``callback(row, trainer)`` runs after every iteration (once its checkpoint is written);
    returning ``False`` stops training there, as if ``train.iterations`` were reached.

    A resumed run reads its own ``config.yaml``, restores the trainer (network, optimiser,
    normaliser, learner RNG) from the newest intact checkpoint and rewrites ``progress.csv``
    to the rows saved with it, so no iteration is lost or duplicated. Episodes in flight when
    the run stopped are not part of a checkpoint: the runners start fresh episodes from seeds
    derived from the checkpoint's iteration (:func:`sampler_seed`).

    Faults the run survives (SUMO restarted in a runner, a runner replaced, a checkpoint that
    could not be written, a damaged checkpoint skipped, the resume itself) are logged to
    ``events.jsonl`` and counted in ``progress.csv`` (:mod:`flowsim.runs.events`). A checkpoint that
    cannot be written (a full disk) is skipped with a warning; after
    :data:`MAX_WRITE_FAILURES_IN_A_ROW` in a row the run stops and says how to resume.
    """
    damaged: list[tuple[Path, str]] = []
    if resume is not None:
        resume = Path(resume)
        if not (resume / "config.yaml").is_file():
            raise ConfigError(
                f"--resume {resume}: not a run directory (no config.yaml); give a folder "
                "written by `flowsim train`."
            )
        state, checkpoint = load_latest_checkpoint(resume, damaged)
        config = load_config(resume / "config.yaml")
        directory = resume
    else:
        if config is None:
            raise ConfigError("train() needs a config unless it resumes a run.")
        directory = new_run_directory(config, out)
        state = None

    assert config is not None
    trainer, group = make_trainer(config, int(state["trainer"]["iteration"]) if state else 0)
    rows: list[dict[str, float]] = []
    if state is not None:
        trainer.load_state_dict(state["trainer"])
        rows = list(state["rows"])
        logger.info("resuming %s from %s (iteration %d)", directory, checkpoint, trainer.iteration)
    events = RunEvents(directory, rows[-1] if rows else None)
    if state is not None:
        for path, reason in damaged:
            events.record("checkpoint_damaged", trainer.iteration, f"{path.name}: {reason}")
        dropped = _rows_past(directory / "progress.csv", trainer.iteration)
        events.record(
            "resumed",
            trainer.iteration,
            f"from {checkpoint.name}; {dropped} progress row(s) past it dropped and redone",
        )
    columns = progress_columns(trainer)
    # Rewriting drops rows a crash left past the checkpoint.
    write_progress(directory / "progress.csv", rows, columns)
    progress_stale = False  # True after a failed append: the next write rewrites the file
    failures_in_a_row = 0
    runner_restarts = getattr(group, "runner_restarts", 0)
    best = max((r["return_mean"] for r in rows if not math.isnan(r["return_mean"])), default=None)
    writer = _tensorboard(directory)
    started = time.perf_counter() - (rows[-1]["wall_s"] if rows else 0.0)
    try:
        with _progress(config.train.iterations, trainer.iteration, show_progress) as update:
            while trainer.iteration < config.train.iterations:
                metrics = trainer.train_iteration()
                restarted = int(metrics.get("restarts", 0))
                if restarted:
                    events.record(
                        "sim_restart", trainer.iteration, "SUMO died in a runner", restarted
                    )
                replaced = getattr(group, "runner_restarts", 0) - runner_restarts
                runner_restarts += replaced
                if replaced:
                    reasons = "; ".join(getattr(group, "drain_replacements", list)())
                    events.record("runner_restart", trainer.iteration, reasons, replaced)
                row: dict[str, float] = {
                    key: float(metrics.get(key, float("nan"))) for key in columns
                }
                for key in ("iteration", "env_steps", "episodes"):
                    row[key] = int(row[key])
                row["wall_s"] = time.perf_counter() - started
                row.update(events.counts)
                rows.append(row)
                improved = not math.isnan(row["return_mean"]) and (
                    best is None or row["return_mean"] > best
                )
                best = row["return_mean"] if improved else best
                try:
                    save_iteration(
                        directory, trainer, rows, config.train.keep_checkpoints, improved
                    )
                    failures_in_a_row = 0
                except OSError as error:
                    failures_in_a_row += 1
                    events.record("write_failed", trainer.iteration, f"checkpoint: {error}")
                    row.update(events.counts)
                    if failures_in_a_row >= MAX_WRITE_FAILURES_IN_A_ROW:
                        _write_progress_quietly(directory / "progress.csv", rows, columns)
                        raise FlowsimError(
                            f"{failures_in_a_row} checkpoints in a row could not be written "
                            f"under {directory / 'checkpoints'} ({error.strerror or error}). "
                            "Free space there, then continue with `flowsim train --resume "
                            f"{directory}`: it starts from the newest checkpoint on disk."
                        ) from None
                try:
                    if progress_stale:
                        write_progress(directory / "progress.csv", rows, columns)
                    else:
                        append_progress(directory / "progress.csv", row, columns)
                    progress_stale = False
                except OSError as error:
                    progress_stale = True
                    events.record("write_failed", trainer.iteration, f"progress.csv: {error}")
                    row.update(events.counts)
                events.flush()
                if writer is not None:
                    for key, value in row.items():
                        if math.isfinite(value):  # NaN (e.g. ES has no policy loss) is skipped
                            writer.add_scalar(key, value, int(row["env_steps"]))
                update(row)
                if callback is not None and callback(row, trainer) is False:
                    break
    finally:
        events.flush()
        group.close()
        if writer is not None:
            writer.close()
    summary = {
        "iterations": trainer.iteration,
        "env_steps": trainer.env_steps,
        "wall_s": rows[-1]["wall_s"] if rows else 0.0,
        "final_return_mean": rows[-1]["return_mean"] if rows else None,
        "best_return_mean": best,
        "faults": dict(events.counts),  # survived, as counted in events.jsonl
    }
    (directory / "summary.json").write_text(jsonout.dumps(summary) + "\n")
    return Run(directory, trainer, rows)


def save_iteration(
    directory: Path, trainer: Any, rows: list[dict[str, float]], keep: int, best: bool
) -> None:
    """Checkpoint this iteration (with the progress rows), keep the last ``keep`` and the best."""
    folder = directory / "checkpoints"
    state = {
        "trainer": trainer.state_dict(),
        "rows": rows,
        "policy": trainer.model.export(trainer.normalizer),  # the runners' numpy layout
    }
    path = folder / f"checkpoint-{trainer.iteration:06d}.pt"
    save_checkpoint(state, path)
    if best:
        save_checkpoint(state, folder / "best.pt")
    for old in _checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)


def _rows_past(path: Path, iteration: int) -> int:
    """How many rows of a ``progress.csv`` lie past ``iteration`` (a crash wrote them)."""
    try:
        with open(path, newline="") as stream:
            return sum(
                1
                for row in csv.DictReader(stream)
                if (row.get("iteration") or "").isdigit() and int(row["iteration"]) > iteration
            )
    except OSError:
        return 0


def _write_progress_quietly(
    path: Path, rows: list[dict[str, float]], columns: tuple[str, ...]
) -> None:
    """:func:`write_progress`, logging instead of raising when the disk refuses."""
    try:
        write_progress(path, rows, columns)
    except OSError as error:
        logger.warning("could not rewrite %s: %s", path, error)


def write_progress(path: Path, rows: list[dict[str, float]], columns: tuple[str, ...]) -> None:
    """Write ``progress.csv`` with ``columns`` from ``rows``, replacing the file atomically."""
    staging = path.with_suffix(".tmp")
    try:
        with open(staging, "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def append_progress(path: Path, row: dict[str, float], columns: tuple[str, ...]) -> None:
    """Append one iteration's row to ``progress.csv`` (written by :func:`write_progress`)."""
    with open(path, "a", newline="") as stream:
        csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore").writerow(row)


def _tensorboard(directory: Path) -> Any:
    try:
        from tensorboardX import SummaryWriter
    except ImportError:  # optional: progress.csv has the same numbers
        return None
    return SummaryWriter(str(directory / "tensorboard"))


class _progress:
    """A rich progress bar over iterations with steps/s, return and mean speed."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, done, enabled
        self._progress: Any = None

    def __enter__(self) -> Any:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        console = Console(stderr=True)
        if not self.enabled or not console.is_terminal:
            return lambda row: None
        self._progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeRemainingColumn(),
            console=console,
        )
        self._progress.__enter__()
        task = self._progress.add_task("train", total=self.total, completed=self.done, status="")

        def update(row: dict[str, float]) -> None:
            status = (
                f"{row['steps_per_s']:,.0f} steps/s  return {row['return_mean']:.1f}"
                f"  speed {row['mean_speed']:.2f} m/s"
            )
            self._progress.update(task, completed=int(row["iteration"]), status=status)

        return update

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
