"""The one training loop: iterations, fault counts, progress rows, the best, checkpoints.

``flowsim train`` and every ``flowsim tune`` trial run :func:`train_until`; what differs
between them (the CSV and TensorBoard writers, a progress bar, Ray Tune's reports) is a
:class:`Callback`. The loop knows trainers only through :class:`~flowsim.algos.base.Trainer`
and runners only through :class:`~flowsim.distributed.base.RunnerGroup`.

``best.pt`` is the checkpoint of the best mean training return (``train.best_by: return``)
or of the best deterministic evaluation (``train.best_by: eval``: every ``train.eval_every``
iterations and at the last, ``train.eval_episodes`` greedy episodes on the trainer's own
runners, seeds :data:`EVAL_SEED` + k, scored by ``train.eval_metric``; the figure is
progress.csv's ``eval_<metric>`` column, the highest best but for :data:`LOWER_IS_BETTER`).
``train.time_budget_s`` ends a run by wall time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from flowsim.config.env import SIGNAL_ENV_TYPES
from flowsim.errors import ConfigError, FlowsimError
from flowsim.runs.events import FAULT_COLUMNS
from flowsim.sim.trips import TRIP_METRICS

if TYPE_CHECKING:
    from flowsim.algos.base import Trainer
    from flowsim.config import TrainConfig
    from flowsim.distributed.base import RunnerGroup
    from flowsim.runs.directory import Row, RunDirectory
    from flowsim.runs.events import RunEvents

__all__ = [
    "EVAL_SEED",
    "LOWER_IS_BETTER",
    "MAX_WRITE_FAILURES_IN_A_ROW",
    "PROGRESS_COLUMNS",
    "Callback",
    "best_figure",
    "best_return",
    "eval_column",
    "evaluate_greedy",
    "is_better",
    "progress_columns",
    "train_until",
]

#: progress.csv's columns every trainer writes; on a signal env RESCO's trip metrics
#: (:data:`~flowsim.sim.trips.TRIP_METRICS`), then a trainer's ``EXTRA_METRICS``, follow.
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

#: Columns written as integers.
_INTEGER_COLUMNS = ("iteration", "env_steps", "episodes")

#: Seed of the first episode of a ``best_by: eval`` evaluation (episode k: ``EVAL_SEED + k``);
#: away from ``flowsim evaluate``'s 1000 + k, so the episodes that pick ``best.pt`` are not
#: the ones that report on it.
EVAL_SEED = 500_000

#: ``train.eval_metric`` -> the played episode's figure (:class:`~flowsim.distributed.play.
#: EpisodeResult`): its return, its mean speed over every step, the bottleneck's outflow, a
#: signal env's average delay (RESCO's ``avg_delay``).
_EPISODE_FIGURES = {
    "return": "return",
    "mean_speed": "episode_mean_speed",
    "outflow": "outflow",
    "avg_delay": "avg_delay",
}

#: ``train.eval_metric`` values whose lowest figure is the best (every other: the highest).
LOWER_IS_BETTER = frozenset(("avg_delay",))


def _lower_is_better(column: str) -> bool:
    """Whether progress.csv's ``column`` (``eval_<metric>`` or ``return_mean``) is best low."""
    return column.removeprefix("eval_") in LOWER_IS_BETTER and column.startswith("eval_")


def is_better(figure: float, best: float | None, column: str) -> bool:
    """Whether ``figure`` of progress.csv's ``column`` beats ``best`` (None: nothing yet): a
    finite figure, lower for :data:`LOWER_IS_BETTER` evaluations, higher otherwise."""
    if not math.isfinite(figure):
        return False
    if best is None:
        return True
    return figure < best if _lower_is_better(column) else figure > best


def _train_settings(trainer: Trainer) -> TrainConfig | None:
    """The trainer's ``train:`` section (None for a trainer built without a config)."""
    config = getattr(trainer, "config", None)
    return getattr(config, "train", None)


def eval_column(train: TrainConfig | None) -> str | None:
    """progress.csv's column of the deterministic evaluation, ``eval_<train.eval_metric>``,
    with ``train.best_by: eval``; None otherwise."""
    if train is None or train.best_by != "eval":
        return None
    return f"eval_{train.eval_metric}"


def progress_columns(trainer: Trainer) -> tuple[str, ...]:
    """``progress.csv``'s columns: the shared ones, with ``train.best_by: eval`` the
    evaluation's (:func:`eval_column`), on a signal env (the trainer's ``config.env.type``) the
    trip metrics ``avg_delay``, ``avg_trip_time``, ``avg_waiting_time`` and ``throughput``
    (means over the iteration's finished episodes), then the trainer's own
    (``EXTRA_METRICS``)."""
    config = getattr(trainer, "config", None)
    signals = config is not None and config.env.type in SIGNAL_ENV_TYPES
    column = eval_column(_train_settings(trainer))
    return (
        PROGRESS_COLUMNS
        + ((column,) if column else ())
        + (TRIP_METRICS if signals else ())
        + tuple(trainer.EXTRA_METRICS)
    )


def best_return(rows: Sequence[Row]) -> float | None:
    """The best finite ``return_mean`` of ``rows`` (None before the first finished episode)."""
    return best_figure(rows, "return_mean")


def best_figure(rows: Sequence[Row], column: str) -> float | None:
    """The best finite value of ``column`` in ``rows`` (None if there is none): what
    ``best.pt`` holds, ``column`` being ``return_mean`` or :func:`eval_column`'s (the largest,
    the smallest for a :data:`LOWER_IS_BETTER` evaluation)."""
    values = [r[column] for r in rows if column in r and math.isfinite(r[column])]
    return (min if _lower_is_better(column) else max)(values, default=None)


def evaluate_greedy(
    trainer: Trainer, group: RunnerGroup, episodes: int, metric: str = "return"
) -> float:
    """The trainer's current policy played greedily (mean action, argmax) on ``group``'s
    runners for ``episodes`` episodes from seeds :data:`EVAL_SEED` + k: the mean of
    ``metric`` (``return``, ``mean_speed``, ``outflow`` or ``avg_delay``, as
    ``train.eval_metric``).

    Raises:
        ConfigError: the env reports no such figure (``outflow`` off the bottleneck).
    """
    from flowsim.distributed.play import EpisodeJob

    key = _EPISODE_FIGURES[metric]
    group.set_weights(trainer.export_policy(), trainer.iteration)
    played = group.play([EpisodeJob(EVAL_SEED + k) for k in range(episodes)])
    figures = [result.as_dict().get(key, math.nan) for result in played]
    if any(not math.isfinite(value) for value in figures) and metric != "return":
        raise ConfigError(
            f"train.eval_metric {metric}: this env reports no {metric} (the bottleneck "
            "reports outflow, the traffic envs mean_speed, the signal envs avg_delay); choose "
            "another train.eval_metric "
            "or train.best_by return."
        )
    return float(sum(figures) / len(figures)) if figures else math.nan


class Callback:
    """What the loop tells a run's writers and watchers (a plain contract, as in SB3).

    Subclass it and override what you need; an object with the same methods works too
    (``on_checkpoint`` and ``close`` may be left out).
    """

    def on_iteration(self, row: Row, trainer: Trainer) -> bool | None:
        """After each iteration (its checkpoint written); returning ``False`` stops the run
        there, as if ``train.iterations`` were reached."""
        return None

    def on_checkpoint(self, path: Path, row: Row) -> None:
        """A checkpoint of the iteration ``row`` was written to ``path`` (before
        :meth:`on_iteration` of that iteration)."""

    def close(self) -> None:
        """The loop ended (finished, stopped or failed); called once."""


def train_until(
    trainer: Trainer,
    group: RunnerGroup,
    directory: RunDirectory,
    rows: list[Row],
    events: RunEvents,
    callbacks: Sequence[Callback],
    iterations: int,
    keep_checkpoints: int,
    checkpoint_every: int = 1,
    best: float | None = None,
) -> float | None:
    """Train until ``trainer.iteration`` reaches ``iterations``, the trainer's
    ``train.time_budget_s`` is spent, or a callback says stop.

    Each iteration: :meth:`Trainer.train_iteration`; the faults it survived recorded in
    ``events`` (SUMO restarts from the metrics' ``restarts``, runner replacements from the
    group); the ``progress.csv`` row appended to ``rows`` (``wall_s`` going on from the last
    row); with ``train.best_by: eval``, every ``train.eval_every`` iterations and at the last,
    a greedy evaluation (:func:`evaluate_greedy`) in the row's :func:`eval_column`; the best
    ``return_mean`` (or evaluation) tracked; a checkpoint every ``checkpoint_every`` iterations,
    at the last and at a new best evaluation (the newest ``keep_checkpoints`` and ``best.pt``
    kept); then each callback's ``on_checkpoint`` and ``on_iteration``. Every callback is
    closed at the end.

    A checkpoint that cannot be written (a full disk) is recorded and skipped; after
    :data:`MAX_WRITE_FAILURES_IN_A_ROW` in a row the run stops with a
    :class:`~flowsim.errors.FlowsimError` that says how to resume.

    Returns:
        The best ``return_mean`` (or evaluation) seen (``best`` is the one before this call:
        None for a fresh run, or when the checkpoint of the best was dropped).
    """
    columns = progress_columns(trainer)
    settings = _train_settings(trainer)
    budget_s = settings.time_budget_s if settings is not None else None
    column = eval_column(settings)
    failures_in_a_row = 0
    runner_restarts = group.runner_restarts
    started = time.perf_counter() - (rows[-1]["wall_s"] if rows else 0.0)
    try:
        while trainer.iteration < iterations:
            metrics = trainer.train_iteration()
            restarted = int(metrics.get("restarts", 0))
            if restarted:
                events.record("sim_restart", trainer.iteration, "SUMO died in a runner", restarted)
            replaced = group.runner_restarts - runner_restarts
            runner_restarts += replaced
            if replaced:
                reasons = "; ".join(group.drain_replacements())
                events.record("runner_restart", trainer.iteration, reasons, replaced)
            row: Row = {key: float(metrics.get(key, math.nan)) for key in columns}
            for key in _INTEGER_COLUMNS:
                row[key] = int(row[key])
            row["wall_s"] = time.perf_counter() - started
            last = trainer.iteration >= iterations or (
                budget_s is not None and row["wall_s"] >= budget_s
            )
            if column is not None and settings is not None:
                if trainer.iteration % settings.eval_every == 0 or last:
                    row[column] = evaluate_greedy(
                        trainer, group, settings.eval_episodes, settings.eval_metric
                    )
                    row["wall_s"] = time.perf_counter() - started
                figure = row[column]
            else:
                figure = row["return_mean"]
            row.update(events.counts)
            rows.append(row)
            improved = is_better(figure, best, column or "return_mean")
            best = figure if improved else best

            saved: Path | None = None
            if (
                trainer.iteration % checkpoint_every == 0
                or last
                or (improved and column is not None)
            ):
                state = {
                    "trainer": trainer.state_dict(),
                    "rows": rows,
                    "policy": trainer.export_policy(),  # the runners' numpy layout
                }
                try:
                    saved = directory.save_checkpoint(
                        state, trainer.iteration, keep_checkpoints, best=improved
                    )
                    failures_in_a_row = 0
                except OSError as error:
                    failures_in_a_row += 1
                    events.record("write_failed", trainer.iteration, f"checkpoint: {error}")
                    row.update(events.counts)
                    if failures_in_a_row >= MAX_WRITE_FAILURES_IN_A_ROW:
                        raise FlowsimError(
                            f"{failures_in_a_row} checkpoints in a row could not be written "
                            f"under {directory.checkpoints} ({error.strerror or error}). "
                            "Free space there, then continue with `flowsim train --resume "
                            f"{directory.path}`: it starts from the newest checkpoint on disk."
                        ) from None

            if saved is not None:
                for callback in callbacks:
                    on_checkpoint = getattr(callback, "on_checkpoint", None)
                    if on_checkpoint is not None:
                        on_checkpoint(saved, row)
            stop = False
            for callback in callbacks:
                stop = callback.on_iteration(row, trainer) is False or stop
            if stop or last:
                break
    finally:
        for callback in callbacks:
            close = getattr(callback, "close", None)
            if close is not None:
                close()
    return best
