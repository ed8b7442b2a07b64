"""``flowsim plot``: a run's learning curves and the time-space diagrams people want.

The diagrams come from two headless replays on one seed (:mod:`flowsim.viz.replay`): the all-human
baseline on the left (on a signal env, the network's own signal programme), the trained policy
(or a controller) on the right. A multi-agent run with several policies also gets each policy's
curves. The drawing itself lives in :mod:`flowsim.viz`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowsim.errors import ConfigError
from flowsim.viz.replay import DEFAULT_SEED, load_source, replay, replay_drivers

__all__ = ["default_plot_folder", "plot"]

#: Panel titles of the drivers.
_TITLES = {
    "human": "all human",
    "policy": "trained AV",
    "pi_saturation": "PISaturation AV",
    "follower_stopper": "FollowerStopper AV",
    "program": "signal programme",
    "fixed_cycle": "fixed cycle",
    "max_pressure": "max-pressure",
    "greedy": "greedy signals",
}


def default_plot_folder(target: Path, is_run: bool, name: str) -> Path:
    """Where plots go by default: ``RUN_DIR/plots`` for a run, ``runs/plots-<name>`` for a YAML."""
    return target / "plots" if is_run else Path("runs") / f"plots-{name}"


def plot(
    target: str | Path,
    out: str | Path | None = None,
    *,
    driver: str | None = None,
    seed: int = DEFAULT_SEED,
    steps: int | None = None,
    checkpoint: str = "latest",
    overrides: list[str] | None = None,
    report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Write a run's (or config's) plots into ``out``; return the files and wave strengths.

    - ``learning_curves.png`` from the run's ``progress.csv`` (skipped for a config), and
      ``policy_curves.png`` when it has per-policy columns (a multi-agent run with several
      policies: ``<policy>/reward_mean`` …);
    - ``time_space.png``: the baseline replay (all human; on a signal env the network's own
      programme) beside one driven by ``driver`` (the policy for a run, ``pi_saturation`` or
      on a signal env ``max_pressure`` for a config), both on ``seed``; their replays stay in
      ``out/replay-<baseline>`` and ``out/replay-<driver>``. A network without a main route
      (an OSM area, your own SUMO files) has no time-space axis: the diagram is left out.

    ``wave_strength`` is the mean speed variance across vehicles (m²/s²) over the second half
    of each replay (:func:`flowsim.viz.timespace.wave_strength`).
    """
    from flowsim.viz.curves import plot_learning_curves, plot_policy_curves, policy_columns
    from flowsim.viz.timespace import plot_time_space, read_replay, wave_strength

    source = load_source(target, checkpoint, overrides)
    is_run = source.run_dir is not None
    drivers = replay_drivers(source.config)
    signals = "program" in drivers  # a signal env: its drivers are the signal rules
    baseline = "program" if signals else "human"
    driver = driver or ("policy" if is_run else "max_pressure" if signals else "pi_saturation")
    others = [d for d in ("policy", *drivers) if d != baseline and (is_run or d != "policy")]
    if not others:
        raise ConfigError(
            f"{target}: no driver to compare with the {_TITLES[baseline]} on env.type "
            f"{source.config.env.type} (its AVs come and go); plot a trained run of it."
        )
    if driver not in others:
        raise ConfigError(
            f"--driver {driver}: the right panel compares with the {_TITLES[baseline]}; "
            f"use {', '.join(others)}."
        )
    if out is None:
        out = default_plot_folder(Path(target), is_run, source.config.name)
    folder = Path(out)
    files: dict[str, str] = {}

    # Replays first: they check the request before writing anything.
    panels = []
    waves: dict[str, float] = {}
    summaries: dict[str, Any] = {}
    for name in (baseline, driver):
        if report is not None:
            report(f"replaying: {name}")
        replay_dir = folder / f"replay-{name}"
        summaries[name] = replay(source, replay_dir, driver=name, seed=seed, steps=steps)
        if summaries[name]["route"] is None:  # no main route: no time-space axis
            break
        data = read_replay(replay_dir)
        waves[name] = wave_strength(data)
        panels.append((f"{_TITLES[name]} (seed {seed})", data))
    if len(panels) == 2:
        if report is not None:
            report("time-space diagram")
        files["time_space"] = str(plot_time_space(panels, folder / "time_space.png"))

    progress_csv = source.origin / "progress.csv" if is_run else None
    if progress_csv is not None and progress_csv.is_file():
        if report is not None:
            report("learning curves")
        try:
            title = f"{source.config.name}: {source.config.train.algo}"
            curves = plot_learning_curves(progress_csv, folder / "learning_curves.png", title)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        files["learning_curves"] = str(curves)
        if policy_columns(progress_csv):
            title = f"{source.config.name}: each policy"
            files["policy_curves"] = str(
                plot_policy_curves(progress_csv, folder / "policy_curves.png", title)
            )
    return {
        "out": str(folder),
        "files": files,
        "wave_strength": waves,
        "mean_speed": {name: s["mean_speed"] for name, s in summaries.items()},
        "speed_std": {name: s["speed_std"] for name, s in summaries.items()},
    }
