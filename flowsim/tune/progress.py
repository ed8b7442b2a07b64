"""A rich progress bar per trial while Ray Tune runs (Tune's own console output is off)."""

from __future__ import annotations

from typing import Any

from ray.tune import Callback

__all__ = ["TrialProgress", "TrialTimer"]


class TrialProgress(Callback):
    """A Ray Tune callback drawing one progress bar per trial on stderr (terminals only).

    Ray Tune pickles it with the experiment (``Tuner.restore`` brings it back), so it holds no
    console state until the experiment starts.
    """

    def __init__(self, iterations: int, metric: str, enabled: bool = True) -> None:
        self.iterations, self.metric, self.enabled = iterations, metric, enabled
        self._progress: Any = None
        self._console: Any = None  # without a terminal: one line per trial that ends
        self._tasks: dict[str, Any] = {}
        self._last: dict[str, dict[str, Any]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"iterations": self.iterations, "metric": self.metric, "enabled": self.enabled}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    def setup(self, **info: Any) -> None:
        """Start the bars if stderr is a terminal."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        console = Console(stderr=True)
        if not self.enabled:
            return
        if not console.is_terminal:
            self._console = console
            return
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
        )
        self._progress.start()

    def _task(self, trial: Any) -> Any:
        if trial.trial_id not in self._tasks:
            self._tasks[trial.trial_id] = self._progress.add_task(
                f"trial {trial.trial_id}", total=self.iterations, status="starting"
            )
        return self._tasks[trial.trial_id]

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A bar for the new trial."""
        if self._progress is not None:
            self._task(trial)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        """Move the trial's bar to its iteration and show its metric."""
        self._last[trial.trial_id] = result
        if self._progress is None:
            return
        self._progress.update(
            self._task(trial),
            completed=int(result.get("iteration", 0)),
            status=self._shown(result),
        )

    def _shown(self, result: dict[str, Any]) -> str:
        value = result.get(self.metric)
        return f"{self.metric} {value:,.4g}" if isinstance(value, int | float) else ""

    def _line(self, trial: Any, what: str) -> None:
        result = self._last.get(trial.trial_id, {})
        self._console.print(
            f"trial {trial.trial_id} {what} after {int(result.get('iteration', 0))} "
            f"iterations {self._shown(result)}",
            highlight=False,
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Mark the trial finished (or stopped by the scheduler)."""
        if self._progress is not None:
            self._progress.update(self._task(trial), status="[green]ended")
        elif self._console is not None:
            self._line(trial, "ended")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Mark the trial failed."""
        if self._progress is not None:
            self._progress.update(self._task(trial), status="[red]error")
        elif self._console is not None:
            self._line(trial, "failed")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Leave the bars on screen and stop redrawing."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class TrialTimer(Callback):
    """Records when each trial starts and ends on the driver's clock (``flowsim bench tune``).

    A trial's span covers everything Tune adds around the training: its placement group, its
    actor, imports in that fresh process, every report and checkpoint persisted.
    """

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Note the start (the first one: a paused and resumed trial keeps it)."""
        import time

        self.started.setdefault(trial.trial_id, time.perf_counter())

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Note the end."""
        import time

        self.ended[trial.trial_id] = time.perf_counter()

    def spans(self) -> dict[str, float]:
        """Seconds from start to end of every finished trial."""
        return {t: self.ended[t] - self.started[t] for t in self.ended if t in self.started}

    def max_concurrent(self) -> int:
        """Most trials that were running at the same time."""
        events = sorted(
            [(self.started[t], 1) for t in self.ended if t in self.started]
            + [(self.ended[t], -1) for t in self.ended if t in self.started]
        )
        running = most = 0
        for _, change in events:
            running += change
            most = max(most, running)
        return most
