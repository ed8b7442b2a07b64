"""Reading a tuning directory: trials, the best one, the table, ``best_config.yaml``.

Everything here reads files only (``tune_config.yaml`` and each trial's ``run/`` folder), so
``flowsim plot TUNE_DIR`` works on a finished, running or interrupted tuning run without Ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowsim.config import FlowsimConfig, dump_config, load_config
from flowsim.config.tune import TuneConfig
from flowsim.errors import ConfigError
from flowsim.tune.reporter import read_trial_record
from flowsim.tune.trainable import RUN_FOLDER, trial_config

__all__ = [
    "BEST_CONFIG_FILE",
    "TUNE_CONFIG_FILE",
    "UNFINISHED_STATES",
    "TrialSummary",
    "best_trial",
    "collect_trials",
    "is_tune_dir",
    "load_tune_config",
    "results_table",
    "tune_states",
    "write_best_config",
]

#: The experiment's resolved config (with its ``tune:`` section), written before any trial.
TUNE_CONFIG_FILE = "tune_config.yaml"
#: The best trial's config, ready for ``flowsim train``.
BEST_CONFIG_FILE = "best_config.yaml"


@dataclass
class TrialSummary:
    """One trial as its files tell it."""

    trial_id: str
    folder: Path
    params: dict[str, Any]
    rows: list[dict[str, float]] = field(default_factory=list)
    status: str = "pending"
    restored_from: list[dict[str, Any]] = field(default_factory=list)
    started_at: float | None = None
    last_report_at: float | None = None

    @property
    def run_dir(self) -> Path:
        """The trial's flowsim run directory (``flowsim evaluate`` / ``replay`` read it)."""
        return self.folder / RUN_FOLDER

    @property
    def iterations(self) -> int:
        """Training iterations done (a PBT trial counts those of the weights it copied)."""
        return int(self.rows[-1]["iteration"]) if self.rows else 0

    @property
    def env_steps(self) -> int:
        """Environment steps sampled."""
        return int(self.rows[-1]["env_steps"]) if self.rows else 0

    def value(self, metric: str) -> float | None:
        """The metric as the trial last reported it: its last finite value, or ``None``."""
        for row in reversed(self.rows):
            number = row.get(metric, math.nan)
            if math.isfinite(number):
                return number
        return None

    def best_value(self, metric: str, mode: str) -> float | None:
        """The trial's best finite value of the metric over its iterations."""
        values = [r[metric] for r in self.rows if math.isfinite(r.get(metric, math.nan))]
        if not values:
            return None
        return max(values) if mode == "max" else min(values)


def is_tune_dir(path: str | Path) -> bool:
    """Whether ``path`` is a folder written by ``flowsim tune``."""
    return (Path(path) / TUNE_CONFIG_FILE).is_file()


def load_tune_config(tune_dir: str | Path) -> FlowsimConfig:
    """The experiment config a tuning directory was started with."""
    tune_dir = Path(tune_dir)
    if not is_tune_dir(tune_dir):
        raise ConfigError(
            f"{tune_dir} is not a tuning directory (no {TUNE_CONFIG_FILE}); give a folder "
            "written by `flowsim tune`, e.g. runs/tune-cartpole-20261124-101500."
        )
    config = load_config(tune_dir / TUNE_CONFIG_FILE)
    if config.tune is None:
        raise ConfigError(f"{tune_dir / TUNE_CONFIG_FILE} has no tune: section.")
    return config


def _read_rows(path: Path) -> list[dict[str, float]]:
    import csv

    if not path.is_file():
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for raw in csv.DictReader(handle):
            row = {}
            for key, text in raw.items():
                try:
                    row[key] = float(text) if text not in (None, "") else math.nan
                except ValueError:
                    row[key] = math.nan
            rows.append(row)
    return rows


#: Ray Tune trial states of a trial that has not ended (``flowsim tune --resume`` goes on).
UNFINISHED_STATES = ("PENDING", "RUNNING", "PAUSED")


def tune_states(tune_dir: str | Path) -> dict[str, str]:
    """Ray Tune's state of every trial (``TERMINATED``, ``ERROR``, ``PENDING``, ...).

    Read from the experiment's saved state; empty if Tune has written none yet.
    """
    try:
        from ray.tune import ExperimentAnalysis

        analysis = ExperimentAnalysis(str(Path(tune_dir).resolve()))
        return {trial.trial_id: trial.status for trial in analysis.trials}
    except Exception:  # no or damaged state: the trials' own files still tell most of it
        return {}


def _status(trial: TrialSummary, config: FlowsimConfig, finished: bool, state: str | None) -> str:
    from flowsim.tune.space import TrialStopper

    assert config.tune is not None
    if state == "ERROR" or (trial.folder / "error.txt").is_file():
        return "error"
    if state in UNFINISHED_STATES:
        return "unfinished" if trial.rows else "not started"
    if trial.iterations >= config.train.iterations:
        return "done"
    if trial.rows:
        reason = TrialStopper(config.tune).reason(trial.rows[-1])
        if reason is not None:
            return f"stopped: {reason}"
    if not trial.rows:
        return "not started" if finished else "pending"
    return "stopped early" if finished else "unfinished"


def collect_trials(tune_dir: str | Path, finished: bool = True) -> list[TrialSummary]:
    """Every trial of a tuning directory, in the order Tune created them.

    A trial's status is ``done`` (all ``train.iterations``), ``stopped: <condition>``
    (``tune.stop``), ``stopped early`` (by the scheduler or the time budget), ``error``,
    ``unfinished`` or ``not started`` (an interrupted run). Ray Tune's saved state decides
    between ended and unfinished; without it, ``finished`` says whether the run has ended.
    """
    tune_dir = Path(tune_dir)
    config = load_tune_config(tune_dir)
    states = tune_states(tune_dir)
    trials = []
    for folder in sorted(tune_dir.glob("trial-*")):
        if not folder.is_dir():
            continue
        run_dir = folder / RUN_FOLDER
        record = read_trial_record(run_dir)
        trial = TrialSummary(
            trial_id=record.get("trial_id", folder.name.removeprefix("trial-")),
            folder=folder,
            params=record.get("params", {}),
            rows=_read_rows(run_dir / "progress.csv"),
            restored_from=record.get("restored_from", []),
            started_at=record.get("started_at"),
            last_report_at=record.get("last_report_at"),
        )
        trial.status = _status(trial, config, finished, states.get(trial.trial_id))
        trials.append(trial)
    return trials


def best_trial(trials: list[TrialSummary], metric: str, mode: str) -> TrialSummary | None:
    """The trial whose last reported metric is best (Ray Tune's ``scope="last"``)."""
    scored = [t for t in trials if t.value(metric) is not None]
    if not scored:
        return None
    sign = 1.0 if mode == "max" else -1.0
    return max(scored, key=lambda t: sign * float(t.value(metric) or 0.0))


def write_best_config(
    tune_dir: str | Path, config: FlowsimConfig, trial: TrialSummary, metric: str
) -> Path:
    """``TUNE_DIR/best_config.yaml``: the experiment with the best trial's values set.

    It has no ``tune:`` section, so ``flowsim train best_config.yaml`` trains it as it is.
    """
    best = trial_config(config.model_dump(mode="json"), trial.params)
    shown = ", ".join(f"{k}={v}" for k, v in trial.params.items()) or "(no parameters)"
    header = (
        f"# Best trial {trial.trial_id} of {Path(tune_dir).name}: {metric} = "
        f"{trial.value(metric)} after {trial.iterations} iterations.\n"
        f"# Its values: {shown}\n"
        "# Train it: flowsim train best_config.yaml\n"
    )
    if trial.restored_from:
        header += (
            "# PBT changed this trial's values while it trained; these are its last ones "
            "(the schedule itself is in its run/trial.json).\n"
        )
    path = Path(tune_dir) / BEST_CONFIG_FILE
    path.write_text(header + dump_config(best))
    return path


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def results_table(
    trials: list[TrialSummary], settings: TuneConfig, best: TrialSummary | None
) -> Any:
    """A rich table: one row per trial with its values, metric, iterations and status."""
    from rich.markup import escape
    from rich.table import Table

    metric = settings.metric
    table = Table(title=f"trials ({metric}, {settings.mode})", header_style="bold")
    table.add_column("trial", no_wrap=True)
    keys = list(settings.search_space)
    for key in keys:
        table.add_column(key, justify="right")
    table.add_column(metric, justify="right")
    table.add_column(f"best {metric}", justify="right")
    table.add_column("iterations", justify="right")
    table.add_column("env steps", justify="right")
    pbt = settings.scheduler.type == "pbt"
    if pbt:
        table.add_column("exploits", justify="right")
    table.add_column("status")
    for trial in trials:
        value, top = trial.value(metric), trial.best_value(metric, settings.mode)
        cells = [
            trial.trial_id + (" ★" if trial is best else ""),
            *(_shown(trial.params.get(key, "")) for key in keys),
            "" if value is None else f"{value:,.4g}",
            "" if top is None else f"{top:,.4g}",
            str(trial.iterations),
            f"{trial.env_steps:,}",
        ]
        if pbt:
            cells.append(
                ", ".join(f"←{e['trial_id']}@{e['iteration']}" for e in trial.restored_from) or "0"
            )
        cells.append(trial.status)
        table.add_row(
            *(escape(cell) for cell in cells), style="bold green" if trial is best else None
        )
    return table
