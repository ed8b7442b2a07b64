"""Pictures of a tuning run: parallel coordinates of the trials and their learning curves.

``flowsim plot TUNE_DIR`` draws both from the trials' ``run/`` folders (no Ray needed):

- ``parallel_coordinates.png``: one vertical axis per tuned key plus the metric, one line per
  trial, coloured by the metric (log axes for ``loguniform`` keys, one tick per value for
  categorical ones);
- ``learning_curves.png``: every trial's metric against iterations on one axis, the best
  trial drawn thick, PBT exploits marked where a trial copied another's weights.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from flowsim.config.tune import Distribution, TuneConfig
from flowsim.tune.results import TrialSummary, best_trial, collect_trials, load_tune_config

__all__ = ["plot_learning_curves", "plot_parallel_coordinates", "plot_tune"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _axis_positions(
    values: list[Any], distribution: Distribution | None
) -> tuple[np.ndarray, list[float], list[str]]:
    """Values mapped to [0, 1] on one axis, with tick positions and labels.

    ``grid`` / ``choice`` keys (and non-numeric values) get one tick per listed value, sampled
    or not; numbers get a linear axis (log for ``loguniform``) labelled at its ends.
    """
    numeric = all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )
    listed = distribution is not None and distribution.kind in ("grid", "choice")
    if listed or not numeric:
        options = list(distribution.values) if listed and distribution is not None else []
        for value in values:
            if value not in options:
                options.append(value)
        if numeric and all(isinstance(o, int | float) for o in options):
            options.sort()
        span = max(len(options) - 1, 1)
        places = [i / span if len(options) > 1 else 0.5 for i in range(len(options))]
        labels = [f"{o:.4g}" if isinstance(o, float) else str(o) for o in options]
        positions = np.array([places[options.index(v)] for v in values])
        return positions, places, labels
    data = np.asarray(values, dtype=float)
    log = distribution is not None and distribution.kind == "loguniform"
    scaled = np.log10(data) if log else data
    low, high = float(np.min(scaled)), float(np.max(scaled))
    spread = high - low
    positions = (scaled - low) / spread if spread > 0 else np.full(len(data), 0.5)
    if spread > 0:
        return positions, [0.0, 1.0], [f"{np.min(data):.3g}", f"{np.max(data):.3g}"]
    return positions, [0.5], [f"{data[0]:.3g}"]


def plot_parallel_coordinates(
    trials: list[TrialSummary], settings: TuneConfig, path: str | Path
) -> Path:
    """One line per trial across the tuned keys and the metric, coloured by the metric."""
    plt = _pyplot()
    from matplotlib import cm, colors

    metric, keys = settings.metric, list(settings.search_space)
    scored = [t for t in trials if t.value(metric) is not None]
    unscored = [t for t in trials if t.value(metric) is None and t.params]
    figure, axis = plt.subplots(figsize=(max(6.0, 2.2 * (len(keys) + 1)), 5.0))
    columns: list[tuple[np.ndarray, list[float], list[str]]] = []
    shown = scored + unscored
    for key in keys:
        values = [t.params.get(key) for t in shown]
        columns.append(_axis_positions(values, settings.search_space[key]))
    metric_values = [t.value(metric) for t in scored]
    if scored:
        columns.append(_axis_positions([float(v or 0.0) for v in metric_values], None))
    names = [*keys, metric] if scored else keys
    norm = colors.Normalize(
        vmin=min(metric_values, default=0.0) or 0.0, vmax=max(metric_values, default=1.0) or 1.0
    )
    colormap = cm.viridis
    x = np.arange(len(names))
    best = best_trial(trials, metric, settings.mode)
    for row, trial in enumerate(shown):
        y = [column[0][row] if row < len(column[0]) else np.nan for column in columns]
        if trial.value(metric) is None:
            axis.plot(x[: len(keys)], y[: len(keys)], color="0.6", linestyle="--", alpha=0.7)
            continue
        axis.plot(
            x,
            y,
            color=colormap(norm(trial.value(metric))),
            linewidth=3.0 if trial is best else 1.5,
            alpha=0.9,
            marker="o",
        )
    for position, (_, ticks, labels) in zip(x, columns, strict=True):
        axis.axvline(position, color="0.3", linewidth=0.8)
        for tick, label in zip(ticks, labels, strict=True):
            axis.annotate(
                label, (position, tick), xytext=(4, 0), textcoords="offset points", fontsize=8
            )
    axis.set_xticks(x, names, rotation=15)
    axis.set_yticks([])
    axis.set_ylim(-0.05, 1.05)
    axis.set_xlim(-0.2, len(names) - 0.5)
    for side in ("top", "right", "left"):
        axis.spines[side].set_visible(False)
    mappable = cm.ScalarMappable(norm=norm, cmap=colormap)
    figure.colorbar(mappable, ax=axis, label=metric)
    note = f", {len(unscored)} without a value (dashed)" if unscored else ""
    axis.set_title(f"{len(trials)} trials by {metric} ({settings.mode}){note}")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _carried(values: np.ndarray) -> np.ndarray:
    """NaN (an iteration without a finished episode) replaced by the last value, as reported."""
    filled = values.copy()
    for index in range(1, len(filled)):
        if math.isnan(filled[index]):
            filled[index] = filled[index - 1]
    return filled


def plot_learning_curves(
    trials: list[TrialSummary], settings: TuneConfig, path: str | Path, x_axis: str = "iteration"
) -> Path:
    """Every trial's metric against ``x_axis`` (iteration, env_steps, wall_s) on one axis.

    An iteration in which no episode ended shows the trial's previous value, as Tune saw it.
    """
    plt = _pyplot()
    metric = settings.metric
    best = best_trial(trials, metric, settings.mode)
    figure, axis = plt.subplots(figsize=(9.0, 5.5))
    palette = plt.get_cmap("tab10" if len(trials) <= 10 else "tab20")
    for index, trial in enumerate(trials):
        if not trial.rows:
            continue
        x = np.array([r.get(x_axis, math.nan) for r in trial.rows])
        y = _carried(np.array([r.get(metric, math.nan) for r in trial.rows]))
        label = trial.trial_id + (" (best)" if trial is best else "")
        if len(trials) > 20 and trial is not best:
            label = None
        color = palette(index % palette.N)
        axis.plot(
            x, y, label=label, color=color, linewidth=2.8 if trial is best else 1.2, alpha=0.9
        )
        for event in trial.restored_from:
            at = [i for i, r in enumerate(trial.rows) if r.get("iteration") == event["iteration"]]
            if at:
                axis.plot(x[at[0]], y[at[0]], marker="x", color=color, markersize=9)
    if any(t.restored_from for t in trials):
        axis.plot([], [], "x", color="0.3", label="PBT exploit (copied weights)")
    axis.set_xlabel(
        {"iteration": "iteration", "env_steps": "environment steps"}.get(x_axis, x_axis)
    )
    axis.set_ylabel(metric)
    axis.grid(alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=8, loc="best")
    axis.set_title(f"{metric} of {len(trials)} trials")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_tune(
    tune_dir: str | Path, out: str | Path | None = None, finished: bool = True
) -> dict[str, Any]:
    """Draw a tuning run's plots into ``out`` (default ``TUNE_DIR/plots``); return the files."""
    config = load_tune_config(tune_dir)
    assert config.tune is not None
    settings = config.tune
    trials = collect_trials(tune_dir, finished=finished)
    folder = Path(out) if out is not None else Path(tune_dir) / "plots"
    files = {
        "parallel_coordinates": str(
            plot_parallel_coordinates(trials, settings, folder / "parallel_coordinates.png")
        ),
        "learning_curves": str(
            plot_learning_curves(trials, settings, folder / "learning_curves.png")
        ),
    }
    best = best_trial(trials, settings.metric, settings.mode)
    return {
        "out": str(folder),
        "files": files,
        "trials": len(trials),
        "best_trial": best.trial_id if best else None,
        "best_value": best.value(settings.metric) if best else None,
    }
