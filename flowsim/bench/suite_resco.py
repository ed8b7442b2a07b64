"""``flowsim bench suite resco``: RESCO's eight maps trained here, beside RESCO's best learner.

For each map (``scenarios/resco/<map>.yaml``): flowsim's no-training signal baselines
(:data:`RESCO_BASELINES`), a PPO training run under the wall-time budget (one agent per light
with one shared policy on the maps of several lights, the single-agent signal env on the maps
of one) that keeps ``best.pt`` by a greedy evaluation of ``avg_delay`` (lowest best), then the
final and the best checkpoint played greedily on the baselines' seeds, every figure RESCO's
``avg_delay`` over the whole hour. :mod:`flowsim.bench.suite` runs it, resumably; the goal of
a row is the best learner's figure RESCO published (:data:`RESCO_BEST`) or lower, and never
worse than max-pressure. docs/resco.md explains the figures.

One more row, :data:`FLOW_GRID` (``--rows flowgrid``): Flow's 3 x 3 traffic-light grid
(``scenarios/multiagent_grid.yaml``, one agent per light, one shared policy), trained and
measured the same way. RESCO published no figure for it; its goal is at or below SUMO's
actuated programme (the ``program`` baseline there, Flow's own baseline for the grid) and
max-pressure.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowsim.bench.resco import PUBLISHED, SCRIPT_COUNTS_WAITING, baseline_episode
from flowsim.bench.suite import Defaults, Report, Suite, save_png, stats
from flowsim.config import FlowsimConfig

if TYPE_CHECKING:
    from flowsim.distributed.play import EpisodeResult

__all__ = [
    "BASELINES",
    "DEFAULTS",
    "FLOW_GRID",
    "FLOW_GRID_FILE",
    "ONE_LIGHT_MAPS",
    "RESCO_BASELINES",
    "RESCO_BEST",
    "RESCO_SOURCE",
    "RESCO_SUITE",
    "RESCO_TRAINING",
    "ROWS",
    "SOURCE",
    "RescoLearner",
    "baseline",
    "compare",
    "describe",
    "plot",
    "row_file",
    "score",
    "settings",
]


@dataclass(frozen=True)
class RescoLearner:
    """RESCO's best learner on one map.

    Attributes:
        avg_delay: its ``avg_delay`` (s) in its best episode, as RESCO's table script reports.
        algorithm: which learner that was.
    """

    avg_delay: float
    algorithm: str


#: Where :data:`RESCO_BEST` comes from.
RESCO_SOURCE = (
    "Ault & Sharon: Reinforcement Learning Benchmarks for Traffic Signal Control, NeurIPS 2021 "
    "Datasets and Benchmarks: the best learner per map, its best episode's avg_delay as RESCO's "
    "table script (utils/graph.py) reports it; RESCO trained 100 to 1,400 one-hour episodes"
)

#: map -> RESCO's best learner (:data:`RESCO_SOURCE`).
RESCO_BEST: dict[str, RescoLearner] = {
    "grid4x4": RescoLearner(32.95, "IDQN"),
    "arterial4x4": RescoLearner(654.13, "FMA2C"),
    "ingolstadt1": RescoLearner(20.9, "IPPO"),
    "ingolstadt7": RescoLearner(31.19, "IDQN"),
    "ingolstadt21": RescoLearner(59.64, "IDQN"),
    "cologne1": RescoLearner(26.05, "IDQN"),
    "cologne3": RescoLearner(23.99, "IDQN"),
    "cologne8": RescoLearner(21.62, "IPPO"),
}

#: The row of Flow's traffic-light grid with one agent per light: no RESCO figure.
FLOW_GRID = "flowgrid"

#: Its YAML, in the folder above ``--folder`` (``scenarios/`` beside ``scenarios/resco/``).
FLOW_GRID_FILE = "multiagent_grid.yaml"

#: flowsim's no-training rules measured on every map (``flowsim simulate --signals NAME``).
BASELINES = RESCO_BASELINES = ("max_pressure", "greedy", "fixed_cycle", "program")

#: ``flowsim bench suite resco``'s defaults: an hour of training per map, three episodes.
DEFAULTS = Defaults(Path("scenarios/resco"), budget_min=60.0, episodes=3)

#: Maps with one signal: trained on the single-agent signal env.
ONE_LIGHT_MAPS = frozenset(("cologne1", "ingolstadt1"))

#: The suite's training settings on every map (before ``--set``): PPO, ``best.pt`` by the
#: lowest greedy ``avg_delay``, an evaluation of two episodes (one per runner) every five
#: iterations (ten one-hour training episodes).
RESCO_TRAINING = (
    "train.algo=ppo",
    "train.eval_metric=avg_delay",
    "train.eval_every=5",
    "train.eval_episodes=2",
    "train.minibatch_size=256",
)


def row_file(row: str, folder: Path) -> Path:
    """A row's YAML (the ``row_file`` hook): ``<folder>/<map>.yaml`` for RESCO's maps,
    :data:`FLOW_GRID_FILE` in the folder above ``folder`` for Flow's grid."""
    if row == FLOW_GRID:
        return Path(folder).parent / FLOW_GRID_FILE
    return Path(folder) / f"{row}.yaml"


def settings(row: str) -> list[str]:
    """A map's training settings (the ``settings`` hook)."""
    single = ["env.type=traffic_light_grid"] if row in ONE_LIGHT_MAPS else []
    return [*single, *RESCO_TRAINING]


def describe(row: str) -> dict[str, Any]:
    """A map's metric and RESCO's figures (the ``describe`` hook); Flow's grid has none
    (``resco.best_learner`` None) and is compared with SUMO's actuated programme."""
    if row == FLOW_GRID:
        return {
            "metric": "avg_delay",
            "metric_name": "RESCO's average delay",
            "unit": "s",
            "agents": "one per light, shared policy",
            "resco": {"best_learner": None, "algorithm": None, "baselines": {}},
            "goal": "at or below SUMO's actuated programme (program) and max_pressure",
        }
    best = RESCO_BEST[row]
    published = {
        name: PUBLISHED[(row, name)].mean for name in RESCO_BASELINES if (row, name) in PUBLISHED
    }
    return {
        "metric": "avg_delay",
        "metric_name": "RESCO's average delay",
        "unit": "s",
        "agents": "single" if row in ONE_LIGHT_MAPS else "one per light, shared policy",
        "resco": {
            "best_learner": best.avg_delay,
            "algorithm": best.algorithm,
            "baselines": published,
        },
    }


def baseline(
    row: str, name: str, config: FlowsimConfig, episodes: int, seed: int, report: Report
) -> dict[str, Any]:
    """A no-training rule's ``avg_delay`` over ``episodes`` hours from seeds ``seed + k``
    (``as_resco``: counted as RESCO's script counts, on RESCO's maps) and the vehicles never
    inserted; on Flow's grid ``program`` also names the programme SUMO ran
    (``scenario.signals.program``: actuated as the YAML ships)."""
    runs = []
    for k in range(episodes):
        report(f"{name}, episode {k + 1}/{episodes}")
        runs.append(baseline_episode(config, name, seed + k))
    figures: dict[str, Any] = {
        **stats([run["avg_delay"] for run in runs]),
        "never_inserted": statistics.fmean(run["never_inserted"] for run in runs),
        "throughput": statistics.fmean(run["throughput"] for run in runs),
    }
    if row == FLOW_GRID:
        if name == "program":
            figures["program"] = config.scenario.signals.program
    else:
        like_resco = "avg_delay" if row in SCRIPT_COUNTS_WAITING else "avg_delay_inserted"
        figures["as_resco"] = statistics.fmean(run[like_resco] for run in runs)
    return figures


def score(row: str, config: FlowsimConfig, result: EpisodeResult) -> float:
    """A policy's played hour: its ``avg_delay`` (the ``score`` hook)."""
    return result.metrics["avg_delay"]


def compare(row: str, state: dict[str, Any]) -> dict[str, Any]:
    """The map's trained policy (``best``, else ``final``) against RESCO's best learner and
    flowsim's max-pressure: the row's goal is at or below the first and never above the
    second. On Flow's grid (no RESCO figure: ``to_resco_best`` and ``beats_resco_best`` None)
    the goal is at or below SUMO's actuated programme (``program``) and max-pressure."""
    chosen = state.get("best") or state["final"]
    policy = chosen["mean"]
    pressure = state["max_pressure"]["mean"]
    if row == FLOW_GRID:
        program = state["program"]["mean"]
        beats_program, beats_pressure = policy <= program, policy <= pressure
        return {
            "policy": "best" if state.get("best") else "final",
            "to_resco_best": None,
            "to_program": (policy - program) / program,
            "to_max_pressure": (policy - pressure) / pressure,
            "beats_resco_best": None,
            "beats_program": beats_program,
            "beats_max_pressure": beats_pressure,
            "goal_met": beats_program and beats_pressure,
        }
    resco = RESCO_BEST[row].avg_delay
    beats_resco, beats_pressure = policy <= resco, policy <= pressure
    return {
        "policy": "best" if state.get("best") else "final",
        "to_resco_best": (policy - resco) / resco,
        "to_max_pressure": (policy - pressure) / pressure,
        "beats_resco_best": beats_resco,
        "beats_max_pressure": beats_pressure,
        "goal_met": beats_resco and beats_pressure,
    }


def plot(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Bars per map, ``avg_delay`` on a log scale: RESCO's best learner (none on Flow's
    grid, labelled there), flowsim's max-pressure and flowsim's trained policy; written as a
    PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [state["row"] for state in rows]
    published = [RESCO_BEST[name].avg_delay if name in RESCO_BEST else np.nan for name in names]
    bars = [
        ("RESCO's best learner", published, "#616161"),
        ("flowsim max-pressure", [state["max_pressure"]["mean"] for state in rows], "#90caf9"),
        (
            "flowsim PPO (best.pt)",
            [(state.get("best") or state["final"])["mean"] for state in rows],
            "#1565c0",
        ),
    ]
    x = np.arange(len(rows))
    width = 0.26
    figure, axes = plt.subplots(figsize=(max(7.0, 1.3 * len(rows) + 3), 4.8))
    for offset, (label, values, color) in zip((-1, 0, 1), bars, strict=True):
        drawn = axes.bar(x + offset * width, values, width, label=label, color=color)
        shown = ["—" if np.isnan(value) else f"{value:.1f}" for value in values]
        axes.bar_label(drawn, labels=shown, fontsize=7)
    axes.set_yscale("log")
    axes.set_ylabel("avg_delay (s, log scale)")
    labels = [
        f"{name}\n({RESCO_BEST[name].algorithm if name in RESCO_BEST else 'no RESCO figure'})"
        for name in names
    ]
    axes.set_xticks(x, labels, fontsize=8)
    axes.set_xlim(-0.75, len(rows) - 0.25)
    every = [value for _, values, _ in bars for value in values if not np.isnan(value)]
    axes.set_ylim(min(every) / 2, max(every) * 3)  # room for the legend above the bars
    axes.set_title(
        "RESCO's maps: avg_delay of RESCO's best learner (best episode),\nflowsim's "
        "max-pressure and trained policy (greedy, mean over episodes)",
        fontsize=9,
    )
    axes.legend(fontsize=8, ncol=3, loc="upper left")
    return save_png(figure, path)


#: This module as :class:`~flowsim.bench.suite.SuiteHooks`: the rows (RESCO's maps, then
#: Flow's grid).
SOURCE, ROWS = RESCO_SOURCE, (*RESCO_BEST, FLOW_GRID)

#: RESCO's maps as a :class:`~flowsim.bench.suite.Suite`.
RESCO_SUITE = Suite("resco", "RESCO's maps", sys.modules[__name__], DEFAULTS)
