"""Learning curves of a run from its ``progress.csv``: return, mean speed and steps/s, and for a
multi-agent run with several policies each policy's own curves.

Iterations where the run survived a fault (its ``progress.csv`` counters grew) are marked.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

__all__ = [
    "fault_rows",
    "plot_learning_curves",
    "plot_policy_curves",
    "policy_columns",
    "read_progress",
]

#: (column, axis label) of the curves, one panel column each.
CURVES = (
    ("return_mean", "mean episode return"),
    ("mean_speed", "mean speed (m/s)"),
    ("steps_per_s", "sampled steps / s"),
)
#: (column, axis label) of the x axes, one panel row each.
X_AXES = (("env_steps", "environment steps"), ("wall_s", "wall time (s)"))


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def read_progress(path: str | Path) -> dict[str, np.ndarray]:
    """The columns of a ``progress.csv`` as float arrays (NaN where a cell is empty)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{path} has no rows yet; plot after the first training iteration.")
    return {name: np.array([_number(row.get(name)) for row in rows]) for name in rows[0]}


def fault_rows(progress: dict[str, np.ndarray]) -> np.ndarray:
    """Indices of the rows where one of the fault counters (:mod:`flowsim.runs.events`) grew."""
    from flowsim.runs.events import FAULT_COLUMNS

    columns = [np.nan_to_num(progress[c]) for c in FAULT_COLUMNS if c in progress]
    if not columns:  # a run written before flowsim counted faults
        return np.zeros(0, dtype=int)
    total = np.sum(columns, axis=0)
    return np.flatnonzero(np.diff(total, prepend=0.0) > 0)


def plot_learning_curves(progress_csv: str | Path, path: str | Path, title: str = "") -> Path:
    """Plot return, mean speed and steps/s against env steps (top) and wall time (bottom).

    The return panel shades the range between the iteration's worst and best episode; dashed
    red lines mark iterations where the run survived a fault (see ``events.jsonl``). Saves a
    PNG at ``path`` and returns it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    progress = read_progress(progress_csv)
    missing = [c for c, _ in (*CURVES, *X_AXES) if c not in progress]
    if missing:
        raise ValueError(f"{progress_csv} lacks the columns {missing}; is it a flowsim run's?")
    figure, axes = plt.subplots(
        len(X_AXES), len(CURVES), figsize=(13.0, 7.0), squeeze=False, constrained_layout=True
    )
    marker = "o" if len(progress["env_steps"]) < 20 else None
    faults = fault_rows(progress)
    for row, (x_name, x_label) in enumerate(X_AXES):
        x = progress[x_name]
        for column, (y_name, y_label) in enumerate(CURVES):
            axis = axes[row][column]
            axis.plot(x, progress[y_name], marker=marker, color="tab:blue")
            if y_name == "return_mean" and "return_min" in progress and "return_max" in progress:
                axis.fill_between(
                    x, progress["return_min"], progress["return_max"], alpha=0.2, color="tab:blue"
                )
            for index, at in enumerate(x[faults]):
                label = "fault survived" if index == 0 and row == column == 0 else None
                axis.axvline(at, color="tab:red", linestyle="--", linewidth=0.8, label=label)
            if len(faults) and row == column == 0:
                axis.legend(loc="best", fontsize="small")
            axis.set_xlabel(x_label)
            axis.set_ylabel(y_label)
            axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


#: (metric, axis label) of the per-policy panels, where ``progress.csv`` has the columns
#: ``<policy>/<metric>`` (:class:`flowsim.algos.multiagent.MultiPolicyTrainer` writes them).
POLICY_CURVES = (
    ("reward_mean", "mean reward per decision"),
    ("policy_loss", "policy loss"),
    ("value_loss", "value loss"),
    ("entropy", "entropy"),
)


def policy_columns(progress_csv: str | Path) -> dict[str, list[str]]:
    """The policies with per-policy columns in ``progress_csv`` (``<policy>/<metric>``), each
    with its metrics among :data:`POLICY_CURVES`; empty for a single-policy run."""
    with open(progress_csv, newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle), [])
    known = {metric for metric, _ in POLICY_CURVES}
    policies: dict[str, list[str]] = {}
    for column in header:
        policy, _, metric = column.rpartition("/")
        if policy and metric in known:
            policies.setdefault(policy, []).append(metric)
    return policies


def plot_policy_curves(progress_csv: str | Path, path: str | Path, title: str = "") -> Path:
    """Plot each policy's curves against env steps: one panel per metric of
    :data:`POLICY_CURVES` that ``progress.csv`` has, one line per policy. Saves a PNG at
    ``path`` and returns it.

    Raises:
        ValueError: ``progress.csv`` has no per-policy columns (a single-policy run).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = policy_columns(progress_csv)
    if not policies:
        raise ValueError(f"{progress_csv} has no per-policy columns (<policy>/reward_mean ...).")
    progress = read_progress(progress_csv)
    panels = [(m, label) for m, label in POLICY_CURVES if any(m in ms for ms in policies.values())]
    figure, axes = plt.subplots(
        1, len(panels), figsize=(4.4 * len(panels), 4.0), squeeze=False, constrained_layout=True
    )
    x = progress["env_steps"]
    marker = "o" if len(x) < 20 else None
    for axis, (metric, label) in zip(axes[0], panels, strict=True):
        for policy, metrics in policies.items():
            if metric in metrics:
                axis.plot(x, progress[f"{policy}/{metric}"], marker=marker, label=policy)
        axis.set_xlabel("environment steps")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[0][0].legend(loc="best", fontsize="small", ncol=1 + len(policies) // 8)
    if title:
        figure.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
