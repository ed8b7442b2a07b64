"""``flowsim train``: a run directory, the trainer and its runners, the loop, resume.

A run directory (:class:`~flowsim.runs.directory.RunDirectory`) holds the resolved
``config.yaml``, ``progress.csv`` (one row per iteration), ``events.jsonl``, TensorBoard
events, ``checkpoints/`` (written atomically; the last K and the best are kept) and
``summary.json`` at the end. The iterations themselves run in :func:`flowsim.runs.loop.train_until`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flowsim.algos.base import Trainer
from flowsim.algos.build import build_trainer
from flowsim.config import FlowsimConfig
from flowsim.distributed.base import RunnerGroup, make_runner_group
from flowsim.errors import ConfigError
from flowsim.runs.callbacks import (
    CSVWriter,
    EventsFlush,
    FunctionCallback,
    ProgressBar,
    TensorBoardWriter,
)
from flowsim.runs.directory import Row, RunDirectory
from flowsim.runs.loop import (
    Callback,
    best_figure,
    best_return,
    eval_column,
    progress_columns,
    train_until,
)
from flowsim.runs.resume import resume_config

logger = logging.getLogger(__name__)

__all__ = ["Run", "RunnerNodes", "make_trainer", "sampler_seed", "train"]


@dataclass
class Run:
    """A finished (or interrupted) training run: where it lives and what it learned."""

    directory: Path
    trainer: Trainer
    rows: list[Row] = field(default_factory=list)

    @property
    def policy(self) -> Any:
        """The trained torch actor-critic (``policy.distribution(obs)``, ``policy.value``)."""
        return self.trainer.model  # type: ignore[attr-defined]


def sampler_seed(seed: int, iteration: int) -> int:
    """Base seed of the runners of a run that starts (or resumes) at ``iteration``.

    A fresh run uses ``train.seed``; a resumed one draws fresh streams from
    ``(seed, iteration)``, so resuming the same checkpoint twice samples the same episodes and
    the resumed run does not replay the episodes its first iterations saw.
    """
    if iteration == 0:
        return seed
    return int(np.random.SeedSequence([seed, iteration]).generate_state(1)[0] >> 2)


class RunnerNodes:
    """A runner group that notes the Ray node of every runner it gets a batch from.

    Each batch's runner metrics carry their runner's node (``metrics["runners"][i]["node"]``,
    the first 12 hex digits of Ray's node id); :func:`train` writes the set to
    ``summary.json`` as ``runner_nodes``, so a run on a cluster says where it sampled without
    Ray's State API (and a node lost mid-run is still listed). In-process runners have none.
    Everything else is the wrapped group's.
    """

    def __init__(self, group: RunnerGroup) -> None:
        self.group = group
        self.nodes: set[str] = set()

    def sample(self, *args: Any, **kwargs: Any) -> Any:
        batch = self.group.sample(*args, **kwargs)
        self.nodes.update(
            runner["node"] for runner in batch.metrics.get("runners", []) if runner.get("node")
        )
        return batch

    def __getattr__(self, name: str) -> Any:
        if name == "group":  # not set yet (an unpickled copy): no recursion
            raise AttributeError(name)
        return getattr(self.group, name)


def make_trainer(config: FlowsimConfig, iteration: int = 0) -> tuple[Trainer, RunnerNodes]:
    """The trainer for ``config.train.algo`` and the runner group it samples from (on a
    multi-agent env with several policies, one learner per policy), which notes the nodes its
    runners sample on (:class:`RunnerNodes`).

    ``iteration`` is where a resumed run continues; it picks the runners' seeds
    (:func:`sampler_seed`). The caller closes the group.
    """
    group = RunnerNodes(
        make_runner_group(config, base_seed=sampler_seed(config.train.seed, iteration))
    )
    try:
        trainer = build_trainer(config, group)
    except BaseException:
        group.close()
        raise
    return trainer, group


def train(
    config: FlowsimConfig | None,
    out: Path | None = None,
    resume: Path | None = None,
    show_progress: bool = False,
    callback: Callable[[Row, Trainer], bool | None] | Callback | None = None,
    overrides: list[str] | None = None,
) -> Run:
    """Train ``config`` (or continue the run at ``resume``) and return the run.

    ``callback(row, trainer)`` (a function, or a :class:`~flowsim.runs.loop.Callback`) runs
    after every iteration, once its checkpoint is written; returning ``False`` stops training
    there, as if ``train.iterations`` were reached.

    A resumed run reads its own ``config.yaml``, restores the trainer (network, optimiser,
    normaliser, learner RNG) from the newest intact checkpoint and rewrites ``progress.csv``
    to the rows saved with it, so no iteration is lost or duplicated. Episodes in flight when
    the run stopped are not part of a checkpoint: the runners start fresh episodes from seeds
    derived from the checkpoint's iteration (:func:`sampler_seed`). ``overrides``
    (``key=value``, only with ``resume``) change the settings a resume may change
    (:data:`~flowsim.runs.resume.RESUMABLE_KEYS`): a higher ``train.iterations`` extends the
    run; ``config.yaml`` is updated and the ``resumed`` event names the change. Any other key
    is a :class:`~flowsim.errors.ConfigError`. A run that stopped before its first checkpoint
    trains from the start in its own directory with its ``config.yaml`` and says so (stderr,
    and a ``resumed`` event at iteration 0); a folder without ``config.yaml`` is no run
    (:class:`~flowsim.errors.ConfigError`).

    Faults the run survives (SUMO restarted in a runner, a runner replaced, a checkpoint that
    could not be written, a damaged checkpoint skipped, the resume itself) are logged to
    ``events.jsonl`` and counted in ``progress.csv`` (:mod:`flowsim.runs.events`). A checkpoint
    that cannot be written (a full disk) is skipped with a warning; after
    :data:`~flowsim.runs.loop.MAX_WRITE_FAILURES_IN_A_ROW` in a row the run stops and says how
    to resume.
    """
    damaged: list[tuple[Path, str]] = []
    state: dict[str, Any] | None = None
    changes: list[str] = []
    fresh_start = False
    if resume is not None:
        directory = RunDirectory.open(resume)
        saved = directory.load_config()
        if directory.checkpoint_paths():
            state, checkpoint = directory.latest_checkpoint(damaged)
            done = int(state["trainer"]["iteration"])
        else:  # it stopped before its first checkpoint: nothing to continue but its config
            fresh_start, done = True, 0
        config, changes = resume_config(saved, overrides, done, str(directory.path))
        if fresh_start:
            print(
                f"{directory.path} has no checkpoint yet (it stopped before its first); "
                "training it from the start with its config.yaml.",
                file=sys.stderr,
            )
        if changes:
            directory.write_config(config)  # the run directory tells what the run does now
        elif config.train.iterations <= done:
            print(
                f"{directory.path} has done its {config.train.iterations} iterations; nothing "
                "to train (extend it with --set train.iterations=N).",
                file=sys.stderr,
            )
    else:
        if config is None:
            raise ConfigError("train() needs a config unless it resumes a run.")
        if overrides:
            raise ConfigError(
                "train(overrides=...) applies to a resumed run; apply them to the config "
                "(flowsim.config.apply_overrides) for a new one."
            )
        directory = RunDirectory.create(config, out)

    trainer, group = make_trainer(config, int(state["trainer"]["iteration"]) if state else 0)
    # what best.pt is the best of: progress.csv's return_mean, or the greedy evaluation's column
    best_column = eval_column(config.train) or "return_mean"
    try:
        rows: list[Row] = []
        best: float | None = None
        if state is not None:
            trainer.load_state_dict(state["trainer"])
            trainer.set_learning_rates(config.train)  # the checkpoint's optimiser has its own
            rows = list(state["rows"])
            logger.info("resuming %s from %s (iteration %d)", directory, checkpoint, done)
        events = directory.events(rows[-1] if rows else None)
        if fresh_start:
            detail = "no checkpoint yet: training from the start"
            if dropped := directory.progress_rows_past(0):
                detail += f"; {dropped} progress row(s) without a checkpoint redone"
            if changes:
                detail += f"; --set {', '.join(changes)}"
            events.record("resumed", 0, detail)
        if state is not None:
            for path, reason in damaged:
                events.record("checkpoint_damaged", done, f"{path.name}: {reason}")
            dropped = directory.progress_rows_past(done)
            detail = f"from {checkpoint.name}; {dropped} progress row(s) past it dropped and redone"
            if changes:
                detail += f"; --set {', '.join(changes)}"
            events.record("resumed", done, detail)
            dropped_best = directory.drop_checkpoints_after(done)
            best = None if dropped_best else best_figure(rows, best_column)
        callbacks: list[Callback] = [
            CSVWriter(directory, rows, progress_columns(trainer), events),
            EventsFlush(events),
            TensorBoardWriter(directory),
            ProgressBar(config.train.iterations, trainer.iteration, show_progress),
        ]
        if callback is not None:
            is_object = hasattr(callback, "on_iteration")  # a Callback, else fn(row, trainer)
            callbacks.append(callback if is_object else FunctionCallback(callback))
        best = train_until(
            trainer,
            group,
            directory,
            rows,
            events,
            callbacks,
            iterations=config.train.iterations,
            keep_checkpoints=config.train.keep_checkpoints,
            best=best,
        )
    finally:
        group.close()
    directory.write_summary(
        {
            "iterations": trainer.iteration,
            "env_steps": trainer.env_steps,
            "wall_s": rows[-1]["wall_s"] if rows else 0.0,
            "final_return_mean": rows[-1]["return_mean"] if rows else None,
            "best_return_mean": best_return(rows),
            "best_by": config.train.best_by,
            # the figure best.pt was chosen by and its iteration (None: no best.pt was written)
            "best": best,
            "best_iteration": _iteration_of(rows, best_column, best),
            "faults": dict(events.counts),  # survived, as counted in events.jsonl
            "runner_nodes": sorted(group.nodes),  # Ray nodes that sampled (none in-process)
        }
    )
    return Run(directory.path, trainer, rows)


def _iteration_of(rows: list[Row], column: str, value: float | None) -> int | None:
    """The first iteration whose ``column`` is ``value`` (the best's), if any."""
    if value is None:
        return None
    return next((int(r["iteration"]) for r in rows if r.get(column) == value), None)
