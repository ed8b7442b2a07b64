"""The run's writers and watchers as loop callbacks (:class:`~flowsim.runs.loop.Callback`).

- :class:`CSVWriter`: ``progress.csv``, one row per iteration, healed after a failed write;
- :class:`TensorBoardWriter`: the same rows as TensorBoard scalars over env steps;
- :class:`EventsFlush`: ``events.jsonl`` lines a full disk held back, written when it can;
- :class:`ProgressBar`: a rich bar with steps/s, return, mean speed, on a signal env
  ``avg_delay`` and the last greedy evaluation (``train.best_by: eval``), on a terminal;
- :class:`FunctionCallback`: ``train(callback=fn)``'s ``fn(row, trainer)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from flowsim.runs.loop import Callback

if TYPE_CHECKING:
    from flowsim.algos.base import Trainer
    from flowsim.runs.directory import Row, RunDirectory
    from flowsim.runs.events import RunEvents

__all__ = ["CSVWriter", "EventsFlush", "FunctionCallback", "ProgressBar", "TensorBoardWriter"]


class CSVWriter(Callback):
    """``progress.csv`` with ``columns``: rewritten from ``rows`` at once (a resumed run drops
    rows a crash left past its checkpoint), then one row appended per iteration.

    A failed write (a full disk) is recorded in ``events`` and counted in the row; the next
    write rewrites the whole file, and :meth:`close` does so once more if it still lags.
    """

    def __init__(
        self,
        directory: RunDirectory,
        rows: list[Row],
        columns: Sequence[str],
        events: RunEvents,
    ) -> None:
        self.directory, self.rows, self.columns, self.events = directory, rows, columns, events
        directory.write_progress(rows, columns)

    def on_iteration(self, row: Row, trainer: Trainer) -> None:
        """Append ``row`` (the last of the loop's rows)."""
        try:
            self.directory.append_progress(self.rows, self.columns)
        except OSError as error:
            self.events.record("write_failed", int(row["iteration"]), f"progress.csv: {error}")
            row.update(self.events.counts)

    def close(self) -> None:
        """Leave ``progress.csv`` with every row (when the disk lets it)."""
        self.directory.heal_progress(self.rows, self.columns)


class EventsFlush(Callback):
    """Writes the ``events.jsonl`` lines a full disk held back, each iteration and at the end."""

    def __init__(self, events: RunEvents) -> None:
        self.events = events

    def on_iteration(self, row: Row, trainer: Trainer) -> None:
        """Flush held-back events."""
        self.events.flush()

    def close(self) -> None:
        """Flush held-back events."""
        self.events.flush()


class TensorBoardWriter(Callback):
    """Each row's finite values as TensorBoard scalars, stepped by ``env_steps``."""

    def __init__(self, directory: RunDirectory) -> None:
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(str(directory.tensorboard))

    def on_iteration(self, row: Row, trainer: Trainer) -> None:
        """Add the row's scalars."""
        for key, value in row.items():
            if math.isfinite(value):  # NaN (e.g. ES has no policy loss) is skipped
                self.writer.add_scalar(key, value, int(row["env_steps"]))

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()


class ProgressBar(Callback):
    """A rich progress bar over iterations with steps/s, return, mean speed and, on a signal
    env, RESCO's ``avg_delay``.

    Shown only when ``enabled`` and standard error is a terminal.
    """

    def __init__(self, total: int, done: int, enabled: bool = True) -> None:
        from rich.console import Console

        self._progress: Any = None
        console = Console(stderr=True)
        if not enabled or not console.is_terminal:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeRemainingColumn(),
            console=console,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=total, completed=done, status="")

    def on_iteration(self, row: Row, trainer: Trainer) -> None:
        """Move the bar to the row's iteration."""
        if self._progress is None:
            return
        status = (
            f"{row['steps_per_s']:,.0f} steps/s  return {row['return_mean']:.1f}"
            f"  speed {row['mean_speed']:.2f} m/s"
        )
        if "avg_delay" in row:  # a signal env: RESCO's figure of merit
            status += f"  delay {row['avg_delay']:.1f} s"
        evaluated = [key for key in row if key.startswith("eval_") and math.isfinite(row[key])]
        if evaluated:  # train.best_by eval: the greedy evaluation of this iteration
            status += f"  {evaluated[0].replace('_', ' ')} {row[evaluated[0]]:.2f}"
        self._progress.update(self._task, completed=int(row["iteration"]), status=status)

    def close(self) -> None:
        """Take the bar down."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class FunctionCallback(Callback):
    """A plain function ``fn(row, trainer)`` as a callback; ``False`` from it stops the run."""

    def __init__(self, function: Callable[[Row, Trainer], bool | None]) -> None:
        self.function = function

    def on_iteration(self, row: Row, trainer: Trainer) -> bool | None:
        """Call the function."""
        return self.function(row, trainer)
