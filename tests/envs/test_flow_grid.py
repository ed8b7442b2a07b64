"""Flow's centralised traffic-light grid env (``env.type: flow_traffic_light_grid``) on real
SUMO: Flow's observation size, bounds, the switch through a yellow, requests during a yellow,
the desired-velocity and delay rewards, determinism, Gymnasium's checker and config errors."""

from __future__ import annotations

import doctest
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import flowsim.envs.flow_grid as flow_grid
from flowsim.config import load_config
from flowsim.envs import make_env
from flowsim.envs.flow_grid import FlowGridEnv
from flowsim.errors import ConfigError

BENCHMARKS = Path(__file__).resolve().parents[2] / "scenarios" / "benchmarks"
#: Short episodes: 40 one-second decisions.
SHORT = ["env.horizon=40"]
#: The module's grid0 env holds this process's libsumo: the others run over TraCI.
TRACI = "sim.backend=traci"
#: Actions that ask no light to switch, and one that asks light 0 alone.
HOLD = np.full(9, -1.0, dtype=np.float32)
SWITCH_FIRST = HOLD.copy()
SWITCH_FIRST[0] = 1.0


@pytest.fixture(scope="module")
def grid0() -> Iterator[FlowGridEnv]:
    """grid0's env as the benchmark YAML makes it, with short episodes."""
    env = make_env(BENCHMARKS / "grid0.yaml", SHORT)
    assert isinstance(env, FlowGridEnv)
    yield env
    env.close()


def _state(env: FlowGridEnv, light: int = 0) -> str:
    """The state SUMO itself shows at a light."""
    return env.kernel.backend.api.trafficlight.getRedYellowGreenState(env.signal_ids[light])


def _light(env: FlowGridEnv, obs: np.ndarray, light: int = 0) -> tuple[float, float, float]:
    """(yellow clock, direction, yellow) of a light in the observation."""
    lights = env.action_space.shape[0]
    tail = obs[-3 * lights :].reshape(3, lights)
    return float(tail[0, light]), float(tail[1, light]), float(tail[2, light])


def test_grid0_has_flows_sizes_and_bounds(grid0: FlowGridEnv) -> None:
    assert grid0.config.env.type == "flow_traffic_light_grid"
    assert grid0.observation_space.shape == (339,)  # Flow's grid0 benchmark
    assert grid0.action_space.shape == (9,)
    assert grid0.action_space.low.min() == -1.0 and grid0.action_space.high.max() == 1.0
    assert grid0.signal_ids[:3] == ("center0", "center1", "center2")
    obs, _ = grid0.reset(seed=3)
    seen = [obs]
    for _ in range(30):
        obs, reward, terminated, _, _ = grid0.step(grid0.action_space.sample())
        assert not terminated and 0.0 <= reward <= 1.0
        seen.append(obs)
    seen_all = np.array(seen)
    assert all(grid0.observation_space.contains(o) for o in seen)
    vehicles = 3 * 4 * 2 * 9
    assert seen_all[:, :vehicles].max() > 0.5  # vehicles near the lights are seen
    counts = seen_all[:, vehicles : vehicles + 48] * grid0._edge_length / 5.0
    assert counts.max() >= 1 and np.allclose(counts, np.rint(counts), atol=1e-4)  # 5 m x n / L


def test_grid1_size_is_flows_915() -> None:
    env = make_env(BENCHMARKS / "grid1.yaml", ["env.horizon=2", TRACI])
    try:
        assert env.action_space.shape == (25,)
        assert env.observation_space.shape == (915,)
        assert env.signal_ids[10] == "center10"  # natural order, as Flow numbers its lights
        obs, _ = env.reset(seed=0)
        assert obs.shape == (915,) and env.observation_space.contains(obs)
    finally:
        env.close()


def test_a_request_shows_yellow_then_the_other_green(grid0: FlowGridEnv) -> None:
    obs, _ = grid0.reset(seed=0)
    assert _state(grid0) == "GrGr" and _light(grid0, obs) == (0.0, 0.0, 0.0)
    obs, *_ = grid0.step(SWITCH_FIRST)
    assert _state(grid0) == "yryr" and _light(grid0, obs) == (0.0, 1.0, 1.0)
    assert _state(grid0, 1) == "GrGr"  # the other lights were not asked
    clocks = []
    for _ in range(3):
        obs, *_ = grid0.step(HOLD)
        clocks.append(_light(grid0, obs))
    # Flow's clock counts the yellow's seconds; the green comes after yellow_time = 3 s.
    assert clocks == [(1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (3.0, 1.0, 0.0)]
    assert _state(grid0) == "rGrG"
    obs, *_ = grid0.step(SWITCH_FIRST)  # back again
    assert _state(grid0) == "ryry" and _light(grid0, obs) == (0.0, 0.0, 1.0)


def test_requests_during_a_yellow_are_ignored(grid0: FlowGridEnv) -> None:
    grid0.reset(seed=0)
    grid0.step(SWITCH_FIRST)
    states = []
    for _ in range(3):  # asking on: two yellow seconds, then the step the yellow ends
        grid0.step(SWITCH_FIRST)
        states.append(_state(grid0))
    assert states == ["yryr", "yryr", "rGrG"]
    grid0.step(SWITCH_FIRST)  # now it may switch again
    assert _state(grid0) == "ryry"


def test_odd_actions(grid0: FlowGridEnv) -> None:
    grid0.reset(seed=0)
    grid0.step(np.full(9, np.nan))  # NaN asks nothing
    assert _state(grid0) == "GrGr"
    with pytest.raises(ValueError, match=r"shape \(9,\)"):
        grid0.step(np.zeros(4))
    huge = np.full(9, -np.inf)
    huge[0] = np.inf  # clipped to the box: light 0 is asked, the others not
    grid0.step(huge)
    assert _state(grid0) == "yryr" and _state(grid0, 1) == "GrGr"


def test_reward_is_flows_desired_velocity(grid0: FlowGridEnv) -> None:
    grid0.reset(seed=1)
    rewards = []
    for _ in range(20):
        _, reward, *_ = grid0.step(HOLD)
        speeds = grid0.kernel.speeds()
        target = np.full(speeds.size, 50.0)  # grid0's target_speed, Flow's 50 m/s
        max_cost = np.linalg.norm(target)
        eps = float(np.finfo(np.float32).eps)
        expected = max(max_cost - np.linalg.norm(speeds - target), 0) / (max_cost + eps)
        assert reward == pytest.approx(expected, rel=1e-12)
        rewards.append(reward)
    assert max(rewards) > 0.3  # vehicles at 30 m/s: (1 - 20 / 50) per vehicle at most 0.6


def test_delay_reward_is_minus_flows_min_delay() -> None:
    env = make_env(BENCHMARKS / "grid0.yaml", ["env.horizon=15", "env.reward=delay", TRACI])
    try:
        env.reset(seed=0)
        for _ in range(15):
            _, reward, *_ = env.step(HOLD)
            speeds = env.kernel.speeds()
            eps = float(np.finfo(np.float32).eps)  # Flow's epsilon, added in float64
            expected = -1.0 * np.sum((35.0 - speeds) / 35.0) / (speeds.size + eps)
            assert reward == pytest.approx(expected, rel=1e-12) and reward < 0
    finally:
        env.close()


def test_same_seed_same_episode(grid0: FlowGridEnv) -> None:
    def rollout(seed: int) -> tuple[np.ndarray, np.ndarray]:
        grid0.action_space.seed(seed)
        observations, rewards = [grid0.reset(seed=seed)[0]], []
        for _ in range(25):
            obs, reward, *_ = grid0.step(grid0.action_space.sample())
            observations.append(obs)
            rewards.append(reward)
        return np.array(observations), np.array(rewards)

    first, again = rollout(5), rollout(5)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])


def test_passes_gymnasiums_checker(grid0: FlowGridEnv) -> None:
    check_env(grid0, skip_render_check=True)


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"env\.num_observed"):
        load_config(BENCHMARKS / "grid0.yaml", ["env.num_observed=0"])
    with pytest.raises(ConfigError, match=r"env\.reward"):
        load_config(BENCHMARKS / "grid0.yaml", ["env.reward=speed"])
    with pytest.raises(ConfigError, match=r"env\.min_green"):  # Flow's env has no min green
        load_config(BENCHMARKS / "grid0.yaml", ["env.min_green=5"])
    with pytest.raises(ConfigError, match="has none"):
        FlowGridEnv({"env": {"type": "flow_traffic_light_grid"}})  # the ring


def test_docstring_examples_run(grid0: FlowGridEnv) -> None:
    grid0.close()  # the example's env takes this process's libsumo
    found = doctest.testmod(flow_grid, optionflags=doctest.ELLIPSIS)
    assert found.attempted > 0 and found.failed == 0
