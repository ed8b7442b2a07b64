"""``flowsim bench resco``: the signal baselines that need no training, on RESCO's eight maps,
next to the figures RESCO published.

RESCO's figures are its baselines' mean ``avg_delay`` over all episodes, as its table script
(``utils/graph.py``) reports them from its raw results (``utils/avg_timeLoss.py``); docs/resco.md
says how they were read and why flowsim's ``greedy`` is RESCO's ``MAXWAVE``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from flowsim.bench.env import require_sumo_rl
from flowsim.bench.results import machine_description
from flowsim.config import RESCO_MAPS, FlowsimConfig, load_config
from flowsim.errors import ConfigError
from flowsim.sim.trips import TRIP_METRICS

#: flowsim's baseline (``--signals NAME``) -> the RESCO agent it stands for.
RESCO_AGENTS = {"program": "FIXED", "greedy": "MAXWAVE", "max_pressure": "MAXPRESSURE"}

#: A difference to RESCO's figure above this share is explained in docs/resco.md.
NOTABLE_DIFFERENCE = 0.15

#: Maps whose demand is written as ``<vehicle>`` elements: only there does RESCO's script
#: (``utils/readXML.py``) add the vehicles that never entered; on the others (``<trip>``
#: elements) its figure covers the vehicles that entered (docs/resco.md).
SCRIPT_COUNTS_WAITING = frozenset(("cologne3", "grid4x4", "arterial4x4"))


@dataclass(frozen=True)
class PublishedDelay:
    """RESCO's ``avg_delay`` (s) of one baseline on one map, from its raw results.

    Attributes:
        mean: the mean over its episodes: the figure RESCO's table script reports.
        median: the median over the same episodes (a few jammed episodes lift the mean).
        episodes: how many episodes RESCO ran, each with a new SUMO seed.
        first_episode: its first episode, the one that ran the demand file sumo-rl ships
            for ``grid4x4`` and ``arterial4x4`` (RESCO drew another file per episode there).
    """

    mean: float
    median: float
    episodes: int
    first_episode: float


#: (map, flowsim baseline) -> RESCO's figure. No fixed-time figure exists for the 4 x 4 maps.
PUBLISHED: dict[tuple[str, str], PublishedDelay] = {
    ("cologne1", "program"): PublishedDelay(56.61, 56.85, 30, 55.37),
    ("cologne1", "greedy"): PublishedDelay(27.81, 27.94, 30, 28.04),
    ("cologne1", "max_pressure"): PublishedDelay(65.85, 31.09, 30, 31.91),
    ("cologne3", "program"): PublishedDelay(46.35, 39.04, 30, 39.97),
    ("cologne3", "greedy"): PublishedDelay(90.67, 21.95, 30, 21.09),
    ("cologne3", "max_pressure"): PublishedDelay(162.28, 28.05, 30, 24.72),
    ("cologne8", "program"): PublishedDelay(63.77, 64.21, 30, 63.08),
    ("cologne8", "greedy"): PublishedDelay(21.87, 21.85, 100, 21.68),
    ("cologne8", "max_pressure"): PublishedDelay(47.73, 29.71, 100, 28.76),
    ("ingolstadt1", "program"): PublishedDelay(39.40, 39.47, 30, 39.51),
    ("ingolstadt1", "greedy"): PublishedDelay(28.32, 27.99, 30, 28.52),
    ("ingolstadt1", "max_pressure"): PublishedDelay(23.62, 23.61, 30, 23.62),
    ("ingolstadt7", "program"): PublishedDelay(91.31, 91.45, 30, 87.90),
    ("ingolstadt7", "greedy"): PublishedDelay(80.56, 80.31, 100, 75.12),
    ("ingolstadt7", "max_pressure"): PublishedDelay(46.82, 46.41, 100, 53.68),
    ("ingolstadt21", "program"): PublishedDelay(133.10, 130.37, 30, 130.50),
    ("ingolstadt21", "greedy"): PublishedDelay(76.32, 69.61, 100, 69.39),
    ("ingolstadt21", "max_pressure"): PublishedDelay(136.72, 115.61, 100, 107.81),
    ("grid4x4", "greedy"): PublishedDelay(34.32, 34.45, 30, 33.31),
    ("grid4x4", "max_pressure"): PublishedDelay(52.55, 52.53, 30, 52.06),
    ("arterial4x4", "greedy"): PublishedDelay(820.81, 710.86, 30, 705.31),
    ("arterial4x4", "max_pressure"): PublishedDelay(952.75, 967.95, 30, 916.51),
}


def parse_choice(flag: str, value: str, choices: Sequence[str]) -> tuple[str, ...]:
    """A comma-separated ``--maps`` / ``--baselines`` value, each name checked against
    ``choices``."""
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = [name for name in names if name not in choices]
    if not names or unknown:
        raise ConfigError(
            f"{flag} {value}: choose from {', '.join(choices)} (comma-separated), "
            f"e.g. {flag} {choices[0]}."
        )
    return names


def map_config(folder: Path, map_name: str, overrides: Sequence[str] = ()) -> FlowsimConfig:
    """The experiment YAML of ``map_name`` in ``folder`` (``scenarios/resco/<map>.yaml``)."""
    path = Path(folder) / f"{map_name}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"--folder {folder}: no {path.name} there; give the folder of RESCO's YAMLs, "
            "e.g. --folder scenarios/resco."
        )
    return load_config(path, list(overrides))


def baseline_episode(config: FlowsimConfig, baseline: str, seed: int) -> dict[str, float]:
    """One episode of ``baseline`` on ``config``'s map from episode seed ``seed``: its trip
    metrics and insertion backlog.

    The episode is the signal env's (:class:`~flowsim.envs.signals.TrafficLightGridEnv`, the
    task the multi-agent env wraps) with the rule ``flowsim evaluate`` plays
    (:class:`~flowsim.evaluation.evaluate.BaselineActor`): reset with ``seed``, from which the
    env derives the SUMO seed as it does for a trained policy's episode ``seed``, then
    ``env.warmup_steps`` steps under SUMO's programme and ``env.horizon`` decisions of
    ``env.sims_per_step`` steps. Besides :data:`TRIP_METRICS` (the env's, at the episode's
    end) it returns ``never_inserted`` (vehicles still waiting to enter at the end) and
    ``avg_delay_inserted``, the ``avg_delay`` of the vehicles that entered, which is what
    RESCO's script reports on maps whose demand is written as trips (see
    :data:`SCRIPT_COUNTS_WAITING`).
    """
    from flowsim.distributed.play import play_episode
    from flowsim.envs.signals import TrafficLightGridEnv
    from flowsim.evaluation.evaluate import BaselineActor

    env = TrafficLightGridEnv(config)
    try:
        metrics = play_episode(env, BaselineActor(baseline)(env), seed).metrics
        api = env.kernel.backend.api
        waiting = api.simulation.getPendingVehicles()
        waited = sum(api.vehicle.getDepartDelay(vehicle_id) for vehicle_id in waiting)
        inserted = int(metrics["throughput"]) + len(api.vehicle.getIDList())
    finally:
        env.close()
    total = metrics["avg_delay"] * (inserted + len(waiting))  # avg_delay averages over both
    return {
        **{metric: float(metrics[metric]) for metric in TRIP_METRICS},
        "never_inserted": float(len(waiting)),
        "avg_delay_inserted": (total - waited) / inserted if inserted else float("nan"),
    }


def compare(map_name: str, baseline: str, episodes: list[dict[str, float]]) -> dict[str, Any]:
    """flowsim's figures over ``episodes`` (:func:`baseline_episode`'s) beside RESCO's.

    ``avg_delay`` is flowsim's metric; ``avg_delay_as_resco`` counts the same vehicles as
    RESCO's script did on this map (without those that never entered, on maps of trips), and
    ``difference`` is its relative difference to RESCO's published mean.
    """
    published = PUBLISHED.get((map_name, baseline))

    def mean(metric: str) -> float:
        return statistics.fmean(episode[metric] for episode in episodes)

    like_resco = "avg_delay" if map_name in SCRIPT_COUNTS_WAITING else "avg_delay_inserted"
    row: dict[str, Any] = {
        "map": map_name,
        "baseline": baseline,
        "resco_agent": RESCO_AGENTS[baseline],
        **{metric: mean(metric) for metric in TRIP_METRICS},
        "avg_delay_per_episode": [episode["avg_delay"] for episode in episodes],
        "never_inserted": mean("never_inserted"),
        "avg_delay_as_resco": mean(like_resco),
        "resco_avg_delay": None,
        "resco_median": None,
        "resco_episodes": None,
        "resco_first_episode": None,
        "difference": None,
    }
    if published is not None:
        row.update(
            resco_avg_delay=published.mean,
            resco_median=published.median,
            resco_episodes=published.episodes,
            resco_first_episode=published.first_episode,
            difference=(row["avg_delay_as_resco"] - published.mean) / published.mean,
        )
    return row


def bench_resco(
    maps: Sequence[str] = RESCO_MAPS,
    baselines: Sequence[str] = tuple(RESCO_AGENTS),
    episodes: int = 1,
    folder: Path = Path("scenarios/resco"),
    overrides: Sequence[str] = (),
    report: Callable[[str], None] = lambda phase: None,
    finished: Callable[[dict[str, Any]], None] = lambda row: None,
) -> dict[str, Any]:
    """Run each baseline for ``episodes`` episodes on each map and compare with RESCO.

    Episode ``i`` is the signal env's episode from seed ``sim.seed + i`` (its reset derives
    the SUMO seed, as for a trained policy's episodes). ``report`` is called with each phase
    as it starts, ``finished`` with each map and baseline's row once its episodes are done.
    ``overrides`` (``--set``) apply to every map, e.g. a shorter window for a quick check.
    """
    if episodes < 1:
        raise ConfigError(f"--episodes {episodes}: give at least 1, e.g. 3.")
    require_sumo_rl("flowsim bench resco")
    configs = {name: map_config(folder, name, overrides) for name in maps}  # fail before running
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for map_name, config in configs.items():
        for baseline in baselines:
            metrics: list[dict[str, float]] = []
            began = time.perf_counter()
            for episode in range(episodes):
                report(f"{map_name}: {baseline}, episode {episode + 1}/{episodes}")
                metrics.append(baseline_episode(config, baseline, config.sim.seed + episode))
            row = compare(map_name, baseline, metrics)
            row["wall_s"] = time.perf_counter() - began
            rows.append(row)
            finished(row)
    return {
        "benchmark": "resco",
        "config": maps[0] if len(maps) == 1 else "all" if set(maps) == set(RESCO_MAPS) else "maps",
        "maps": list(maps),
        "baselines": list(baselines),
        "episodes": episodes,
        "overrides": list(overrides),
        "rows": rows,
        "notable_difference": NOTABLE_DIFFERENCE,
        "wall_s": time.perf_counter() - started,
        "sumo_rl": metadata.version("sumo-rl"),
        "machine": machine_description(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
