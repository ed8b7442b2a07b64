"""``flowsim bench suite flow``: Flow's CoRL 2018 benchmark table, trained and evaluated here.

For each row (``scenarios/benchmarks/<row>.yaml``): the all-human baseline, a training run
under the wall-time budget that keeps ``best.pt`` by a greedy evaluation of Flow's metric,
then the final and the best checkpoint played greedily (:mod:`flowsim.bench.suite` runs it,
resumably). The figures sit beside Flow's published ones (:data:`FLOW_TABLE`).
docs/benchmarks.md describes each task.

Humans and policies play the same episodes: episode ``k`` is reset with seed ``seed + k``
through :class:`~flowsim.envs.base.FlowsimEnv`'s reset (the humans on :class:`AllHumanEnv`,
the policies on the row's env), which derives the scenario instance and SUMO seed from it,
then runs ``env.warmup_steps`` and ``env.horizon`` agent steps of ``env.sims_per_step`` SUMO
steps. Both are scored by :func:`episode_figure` from the played episode: Flow's average
speed is the network's mean speed averaged over the agent steps after the warm-up
(``episode_mean_speed``).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces

from flowsim.bench.suite import Defaults, Report, Suite, save_png, stats
from flowsim.config import FlowsimConfig, apply_overrides
from flowsim.envs.base import FlowsimEnv

if TYPE_CHECKING:
    from flowsim.distributed.play import EpisodeResult

__all__ = [
    "BASELINES",
    "DEFAULTS",
    "FLOW_SOURCE",
    "FLOW_SUITE",
    "FLOW_TABLE",
    "METRICS",
    "ROWS",
    "SOURCE",
    "AllHumanEnv",
    "FlowRow",
    "baseline",
    "compare",
    "describe",
    "episode_figure",
    "flow_delay",
    "human_config",
    "human_figures",
    "plot",
    "score",
    "settings",
]


@dataclass(frozen=True)
class FlowRow:
    """One row of Flow's published table.

    Attributes:
        metric: ``speed`` (average speed, m/s), ``delay`` (Flow's grid delay measure, s) or
            ``outflow`` (veh/h over the last 500 s).
        human: the all-human (or actuated-signal) baseline.
        best_rl: the best of Flow's four algorithms after 500 iterations.
        algorithm: which algorithm that was.
    """

    metric: str
    human: float
    best_rl: float
    algorithm: str


#: Where :data:`FLOW_TABLE` comes from.
FLOW_SOURCE = (
    "Vinitsky, Kreidieh, Le Flem, Kheterpal, Jang, Wu, Liaw, Liang, Bayen: Benchmarks for "
    "reinforcement learning in mixed-autonomy traffic, CoRL 2018 (PMLR 87:399-409), Table 1: "
    "average over 40 rollouts, 3 seeds, after 500 iterations of 50 rollouts"
)

#: Flow's published figures per row (:data:`FLOW_SOURCE`).
FLOW_TABLE: dict[str, FlowRow] = {
    "figureeight0": FlowRow("speed", 4.18, 8.26, "TRPO"),
    "figureeight1": FlowRow("speed", 4.18, 6.43, "ARS"),
    "figureeight2": FlowRow("speed", 4.18, 5.96, "ES"),
    "merge0": FlowRow("speed", 7.39, 14.95, "TRPO"),
    "merge1": FlowRow("speed", 7.39, 17.29, "ES"),
    "merge2": FlowRow("speed", 7.39, 17.36, "ES"),
    "grid0": FlowRow("delay", 280.8, 296.8, "PPO"),
    "grid1": FlowRow("delay", 276.8, 296.2, "PPO"),
    "bottleneck0": FlowRow("outflow", 1023.0, 1360.0, "ES"),
    "bottleneck1": FlowRow("outflow", 1135.0, 1378.0, "ES"),
    "bottleneck2": FlowRow("outflow", 1889.0, 2324.0, "ES"),
}

#: metric -> (what it is, unit, the ``train.eval_metric`` that keeps ``best.pt``). The delay
#: falls as the mean speed rises (:func:`flow_delay`), so the grid keeps the fastest policy.
METRICS: dict[str, tuple[str, str, str]] = {
    "speed": ("average speed", "m/s", "mean_speed"),
    "delay": ("Flow's delay measure", "s", "mean_speed"),
    "outflow": ("outflow, last 500 s", "veh/h", "outflow"),
}

#: How the two readings of the grid figure compare a policy with Flow's.
GRID_DIRECTIONS = {
    "paper": "a delay: lower is better (the paper's text; here Flow's RL is worse than its humans)",
    "code": "higher is better (Flow's regression script flow/benchmarks/create_movies.sh: "
    "reward / 296 >= 0.97)",
}

#: ``flowsim bench suite flow``'s defaults: 30 minutes of training per row, 40 episodes.
DEFAULTS = Defaults(Path("scenarios/benchmarks"), budget_min=30.0, episodes=40)

#: A human baseline further than this from Flow's is compared by improvement over each
#: platform's own humans as well (issue 19).
NOTABLE_HUMAN_DIFFERENCE = 0.15


def human_config(config: FlowsimConfig) -> FlowsimConfig:
    """``config`` with every ``rl`` group driven as its humans drive: by the controller
    ``flowsim evaluate`` gives the AV in its human baseline
    (:func:`~flowsim.evaluation.evaluate.human_controller`: the largest flowsim-driven human
    group's, e.g. IDM with noise on the figure eight, where figureeight2's human group of 0
    vehicles says how its humans would drive), or by SUMO's own model where SUMO drives every
    human (the merge, the bottleneck).

    Raises:
        ConfigError: the config has ``rl`` groups but no human group to say how humans drive.
    """
    from flowsim.evaluation.evaluate import human_controller

    avs = [index for index, group in enumerate(config.vehicles) if group.controller.type == "rl"]
    if not avs:
        return config
    humans = [group.controller.type for group in config.vehicles if group.controller.type != "rl"]
    if humans and all(driver == "sumo" for driver in humans):
        controller: dict[str, Any] = {"type": "sumo", "params": {}}
    else:
        controller = human_controller(config).model_dump(mode="json")
    overrides = [f"vehicles.{index}.controller={json.dumps(controller)}" for index in avs]
    return apply_overrides(config, overrides)


def flow_delay(config: FlowsimConfig, seconds: float, mean_speed: float) -> float:
    """Flow's grid measure (``rewards.min_delay_unscaled`` summed over the rollout) for a run of
    ``seconds`` whose vehicles' mean speed, averaged over its steps, is ``mean_speed``: the
    time integral of the mean slowdown ``(v_top - v) / v_top``, ``v_top`` the speed limit.

    Exact when every step has a vehicle on the network (grid0/1 insert from the first step).
    """
    v_top = config.scenario.speed_limit
    return seconds * (1.0 - mean_speed / v_top)


def _episode_seconds(config: FlowsimConfig) -> float:
    """Simulated seconds of an episode after its warm-up."""
    return config.env.horizon * config.env.sims_per_step * config.sim.step_length


class AllHumanEnv(FlowsimEnv):
    """A row's network with no agent: every vehicle drives as its config says (give it
    :func:`human_config`; signals run SUMO's own programme, the grid's actuated one).

    Reset, warm-up, ``env.sims_per_step`` and the horizon are :class:`FlowsimEnv`'s, as for
    the row's own env, so episode seed ``s`` runs the scenario instance and SUMO seed that the
    policy's episode ``s`` runs.

    Observation and action: empty. Reward: 0. Termination and truncation: the base env's.
    Info: the base env's, plus ``outflow`` over ``env.outflow_window`` where the row's env
    has one (the bottleneck's, as its env reports it).
    """

    def __init__(self, config: FlowsimConfig) -> None:
        """The env of ``config`` (its ``env.type`` is not read)."""
        super().__init__(config)
        self.observation_space = spaces.Box(0.0, 0.0, (0,), dtype=np.float32)
        self.action_space = spaces.Box(0.0, 0.0, (0,), dtype=np.float32)

    def observe(self) -> np.ndarray:
        """Nothing to observe."""
        return np.zeros(0, dtype=np.float32)

    def apply_action(self, action: np.ndarray) -> None:
        """No vehicle takes commands."""

    def step_reward(self, action: np.ndarray) -> float:
        """No reward."""
        return 0.0

    def _info(self, collisions: int) -> dict[str, Any]:
        info = super()._info(collisions)
        window = getattr(self.config.env, "outflow_window", None)
        if window is not None:
            info["outflow"] = self.simulation.outflow(window)
        return info


def _no_action(_obs: np.ndarray, _env: Any) -> np.ndarray:
    """The all-human env's action."""
    return np.zeros(0)


def episode_figure(metric: str, config: FlowsimConfig, result: EpisodeResult) -> float:
    """A played episode of ``config``'s env (the policy's or the humans') in ``metric``:
    ``outflow`` as the env reports it at the episode's end; ``speed``, Flow's average speed,
    the network's mean speed averaged over the agent steps after warm-up
    (``episode_mean_speed``; an empty network counts as 0 m/s, which Flow's visualiser leaves
    out, but no row's network is empty after its warm-up); ``delay``, :func:`flow_delay` of
    that speed over the episode's seconds after warm-up."""
    if metric == "outflow":
        return result.metrics["outflow"]
    speed = result.metrics["episode_mean_speed"]
    return flow_delay(config, _episode_seconds(config), speed) if metric == "delay" else speed


def human_figures(
    config: FlowsimConfig,
    metric: str,
    episodes: int,
    seed: int,
    report: Report = lambda phase: None,
) -> list[float]:
    """The all-human baseline over ``episodes`` episodes from seeds ``seed + k``, each scored
    with ``metric`` (:func:`episode_figure`): :func:`human_config` played on :class:`AllHumanEnv`,
    so episode ``k`` has the SUMO seed, warm-up, length and metric of the policy's episode
    ``k``."""
    from flowsim.distributed.play import play_episode

    env = AllHumanEnv(human_config(config))
    figures = []
    try:
        for k in range(episodes):
            report(f"all-human baseline, episode {k + 1}/{episodes}")
            figures.append(episode_figure(metric, config, play_episode(env, _no_action, seed + k)))
    finally:
        env.close()
    return figures


def baseline(
    row: str, name: str, config: FlowsimConfig, episodes: int, seed: int, report: Report
) -> dict[str, Any]:
    """The row's all-human baseline (the ``baseline`` hook): :func:`human_figures`."""
    return stats(human_figures(config, FLOW_TABLE[row].metric, episodes, seed, report))


def score(row: str, config: FlowsimConfig, result: EpisodeResult) -> float:
    """A policy's played episode in the row's metric."""
    return episode_figure(FLOW_TABLE[row].metric, config, result)


def settings(row: str) -> list[str]:
    """A row's training settings: ``best.pt`` by Flow's metric."""
    return [f"train.eval_metric={METRICS[FLOW_TABLE[row].metric][2]}"]


def describe(row: str) -> dict[str, Any]:
    """A row's metric and Flow's figures (the ``describe`` hook)."""
    flow = FLOW_TABLE[row]
    name, unit, _ = METRICS[flow.metric]
    return {
        "metric": flow.metric,
        "metric_name": name,
        "unit": unit,
        "flow": {"human": flow.human, "best_rl": flow.best_rl, "algorithm": flow.algorithm},
    }


def _improvement(metric: str, human: float, policy: float) -> float:
    """The policy's gain over the humans as a share of theirs; positive is better traffic
    (for the grid's delay: less delay, the paper's reading)."""
    if not human:
        return math.nan
    gain = (policy - human) / abs(human)
    return -gain if metric == "delay" else gain


def compare(row: str, state: dict[str, Any]) -> dict[str, Any]:
    """The row's figures against Flow's: the difference of the humans, each platform's gain
    over its own humans, and whether flowsim's policy beats Flow's best RL."""
    flow = FLOW_TABLE[row]
    human = state["human"]["mean"]
    chosen = state.get("best") or state["final"]
    policy = chosen["mean"]
    comparison: dict[str, Any] = {
        "policy": "best" if state.get("best") else "final",
        "human_difference": (human - flow.human) / flow.human,
        "gain_over_humans": {
            "flow": _improvement(flow.metric, flow.human, flow.best_rl),
            "flowsim": _improvement(flow.metric, human, policy),
        },
    }
    if flow.metric == "delay":
        comparison["beats_flow_rl"] = {
            "code": policy >= flow.best_rl,
            "paper": policy <= flow.best_rl,
        }
        comparison["directions"] = GRID_DIRECTIONS
    else:
        comparison["beats_flow_rl"] = policy >= flow.best_rl
    comparison["compare_by_gain"] = abs(comparison["human_difference"]) > NOTABLE_HUMAN_DIFFERENCE
    return comparison


def plot(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Bars per row: humans and RL, Flow's beside flowsim's, as a share of Flow's humans
    (top), and each platform's gain over its own humans (bottom); written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [state["row"] for state in rows]
    flow = [FLOW_TABLE[name] for name in names]
    policy = [(state.get("best") or state["final"])["mean"] for state in rows]
    human = [state["human"]["mean"] for state in rows]
    x = np.arange(len(rows))
    width = 0.2
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(max(9.0, 1.0 * len(rows) + 3), 8))
    bars = [
        ("Flow humans", [f.human for f in flow], "#9e9e9e", "//"),
        ("Flow best RL", [f.best_rl for f in flow], "#616161", ""),
        ("flowsim humans", human, "#90caf9", "//"),
        ("flowsim RL", policy, "#1565c0", ""),
    ]
    highest = 1.0
    for offset, (label, values, color, hatch) in zip((-1.5, -0.5, 0.5, 1.5), bars, strict=True):
        shares = [value / f.human for value, f in zip(values, flow, strict=True)]
        highest = max(highest, *shares)
        drawn = top.bar(x + offset * width, shares, width, label=label, color=color, hatch=hatch)
        top.bar_label(drawn, labels=[f"{value:.4g}" for value in values], fontsize=6)
    top.axhline(1.0, color="black", linewidth=0.6)
    top.set_ylim(0, highest * 1.3)
    top.set_ylabel("figure / Flow's humans")
    top.set_title(
        "Flow's benchmark table (CoRL 2018) beside flowsim, each row in its own metric "
        "(bar labels)",
        fontsize=10,
    )
    top.legend(ncol=4, fontsize=8, loc="upper left")
    gains = [compare(state["row"], state)["gain_over_humans"] for state in rows]
    for offset, (label, key, color) in zip(
        (-0.5, 0.5), (("Flow", "flow", "#616161"), ("flowsim", "flowsim", "#1565c0")), strict=True
    ):
        values = [100 * gain[key] for gain in gains]
        drawn = bottom.bar(x + offset * width, values, width, label=label, color=color)
        bottom.bar_label(drawn, labels=[f"{value:+.0f} %" for value in values], fontsize=7)
    bottom.axhline(0.0, color="black", linewidth=0.6)
    bottom.set_ylabel("RL over own humans (%)")
    bottom.set_title(
        "gain over each platform's own humans (grid: less delay is a gain)", fontsize=10
    )
    bottom.legend(fontsize=8)
    bottom.margins(y=0.2)
    labels = [
        f"{name}\n{METRICS[f.metric][1]}" + (" (delay)" if f.metric == "delay" else "")
        for name, f in zip(names, flow, strict=True)
    ]
    for axes in (top, bottom):
        axes.set_xticks(x, labels, fontsize=8)
        axes.set_xlim(-0.75, len(rows) - 0.25)
    return save_png(figure, path)


#: This module as :class:`~flowsim.bench.suite.SuiteHooks`: the rows, the one baseline.
SOURCE, ROWS, BASELINES = FLOW_SOURCE, tuple(FLOW_TABLE), ("human",)

#: Flow's table as a :class:`~flowsim.bench.suite.Suite`.
FLOW_SUITE = Suite("flow", "Flow's table", sys.modules[__name__], DEFAULTS)
