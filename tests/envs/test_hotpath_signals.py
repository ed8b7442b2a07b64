"""The signal envs' observations, rewards and info pinned to the values recorded before issue
21's hot-path work (commit 475bdb6): reading SUMO differently must not change a single number.

Seeded random actions on the intersection (each reward kind) and on RESCO's cologne8 (one agent
for all eight lights, and one agent per light). The observations are compared through a hash
of their bytes (they are exact float32 ratios of vehicle counts); rewards and info to 1e-9.
The values are SUMO 1.28's (the version pyproject.toml pins); another SUMO moves them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from flowsim import testing
from flowsim.envs.multiagent_signals import parallel_env
from flowsim.envs.signals import TrafficLightGridEnv

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
INTERSECTION = SCENARIOS / "intersection.yaml"
COLOGNE8 = SCENARIOS / "resco" / "cologne8.yaml"

needs_sumo_rl = testing.needs_sumo_rl()

#: (yaml, overrides, decisions, seed) -> (observation hash, sum of rewards, sum of |rewards|,
#: last info's (queue, waiting_time, arrived, vehicles, mean_speed), vehicles arrived in all,
#: the episode's avg_delay)
PINNED = {
    "diff_waiting_time": (
        INTERSECTION,
        ["env.horizon=60"],
        60,
        3,
        "b447aeaf88aa43dd",
        -2.22,
        57.78,
        (42.0, 222.0, 12, 98, 4.400435374149659),
        326,
        25.184590267872906,
    ),
    "pressure": (
        INTERSECTION,
        ["env.horizon=60", "env.signal_reward=pressure"],
        60,
        4,
        "ff59b77c38343e28",
        -1244.0,
        1252.0,
        (28.0, 112.0, 0, 86, 7.174678294573644),
        338,
        13.704341131577387,
    ),
    "queue": (
        INTERSECTION,
        ["env.horizon=60", "env.signal_reward=queue"],
        60,
        4,
        "ff59b77c38343e28",
        -792.0,
        792.0,
        (28.0, 112.0, 0, 86, 7.174678294573644),
        338,
        13.704341131577387,
    ),
    "average_speed": (
        INTERSECTION,
        ["env.horizon=60", "env.signal_reward=average_speed"],
        60,
        4,
        "ff59b77c38343e28",
        33.3258833416223,
        33.3258833416223,
        (28.0, 112.0, 0, 86, 7.174678294573644),
        338,
        13.704341131577387,
    ),
    "cologne8": (
        COLOGNE8,
        ["env.type=traffic_light_grid", "env.horizon=30"],
        30,
        1,
        "85ba0938d259c4f8",
        -1.1099999999999988,
        39.06999999999999,
        (13.0, 111.0, 7, 45, 6.9875488786561615),
        102,
        39.59609412826469,
    ),
}


@pytest.mark.parametrize(
    "case",
    [pytest.param(name, marks=needs_sumo_rl) if name == "cologne8" else name for name in PINNED],
)
def test_signal_env_matches_the_recorded_run(case: str) -> None:
    yaml, overrides, decisions, seed, digest, total, magnitude, last, arrived, delay = PINNED[case]
    env = TrafficLightGridEnv(yaml, overrides)
    try:
        observation, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        hashed = hashlib.sha256(observation.tobytes())
        rewards, arrivals = [], 0
        for _ in range(decisions):
            observation, reward, _, _, info = env.step(env.action_space.sample())
            hashed.update(observation.tobytes())
            rewards.append(reward)
            arrivals += info["arrived"]
    finally:
        env.close()
    assert hashed.hexdigest()[:16] == digest
    assert float(np.sum(rewards)) == pytest.approx(total, abs=1e-9)
    assert float(np.sum(np.abs(rewards))) == pytest.approx(magnitude, abs=1e-9)
    keys = ("queue", "waiting_time", "arrived", "vehicles", "mean_speed")
    assert tuple(info[key] for key in keys) == pytest.approx(last, abs=1e-9)
    assert arrivals == arrived
    assert info["avg_delay"] == pytest.approx(delay, abs=1e-9)


@needs_sumo_rl
def test_multiagent_signal_env_matches_the_recorded_run() -> None:
    """cologne8 with one agent per light: each agent's observations and rewards."""
    env = parallel_env(COLOGNE8, ["env.horizon=20"])
    try:
        env.reset(seed=2)
        spaces = {agent: env.action_space(agent) for agent in env.possible_agents}
        for offset, space in enumerate(spaces.values()):
            space.seed(2 + offset)
        hashed = hashlib.sha256()
        magnitude = dict.fromkeys(env.possible_agents, 0.0)
        for _ in range(20):
            observations, rewards, *_ = env.step(
                {agent: space.sample() for agent, space in spaces.items()}
            )
            for agent in env.possible_agents:
                hashed.update(observations[agent].tobytes())
                magnitude[agent] += abs(rewards[agent])
    finally:
        env.close()
    assert hashed.hexdigest()[:16] == "b5b018fa326cc2e0"
    assert magnitude == pytest.approx(
        {
            "247379907": 10.86,
            "252017285": 5.6,
            "256201389": 0.28,
            "26110729": 6.37,
            "280120513": 0.84,
            "32319828": 0.0,
            "62426694": 6.36,
            "cluster_1098574052_1098574061_247379905": 18.39,
        },
        abs=1e-9,
    )
