"""Signal control: spaces, yellow and min-green rules, queues under a held phase, rewards,
the TraCI path, the PettingZoo env and config errors (the registry-wide checker and
determinism tests in test_envs.py cover the two registered ids too)."""

from __future__ import annotations

import doctest
import importlib
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import parallel_api_test

from flowsim.config import load_config
from flowsim.envs import make_env
from flowsim.envs.multiagent_signals import parallel_env
from flowsim.envs.presets import PRESETS
from flowsim.envs.signals import TrafficLightGridEnv
from flowsim.errors import ConfigError
from flowsim.sim.signals import green_states, yellow_between

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
#: One SUMO step (1 s) per agent step, so the light can be watched second by second.
EVERY_SECOND = ["env.sims_per_step=1", "env.horizon=200"]


def _state(env: TrafficLightGridEnv, index: int = 0) -> str:
    return env.kernel.backend.api.trafficlight.getRedYellowGreenState(env.signal_ids[index])


def test_phase_helpers() -> None:
    assert green_states(["GGrr", "yyrr", "rrGG", "rryy", "rrrr", "GGrr"]) == ["GGrr", "rrGG"]
    assert yellow_between("GGgrr", "rrGGG") == "yygrr"  # green to green stays


@pytest.mark.parametrize("name", ["intersection", "grid"])
def test_shipped_yaml_matches_env_preset(name: str) -> None:
    shipped, preset = load_config(SCENARIOS / f"{name}.yaml"), PRESETS[name]
    for section in ("name", "scenario", "vehicles", "inflows", "env", "sim"):
        assert getattr(shipped, section) == getattr(preset, section), section


def test_intersection_spaces() -> None:
    env = gym.make("flowsim/Intersection-v0").unwrapped
    try:
        assert env.signal_ids == ("center",)
        assert env.action_space == gym.spaces.Discrete(2)
        # 2 green phases + min-green flag + density and queue of 8 incoming lanes
        assert env.observation_space.shape == (2 + 1 + 2 * 8,)
        obs, info = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        assert {"queue", "waiting_time", "arrived", "vehicles", "mean_speed"} <= set(info)
    finally:
        env.close()


def test_grid_spaces_and_checker() -> None:
    env = gym.make("flowsim/TrafficLightGrid-v0", overrides=["env.horizon=30"]).unwrapped
    try:
        assert env.action_space == gym.spaces.MultiDiscrete([2] * 9)
        assert env.observation_space.shape == (9 * (2 + 1 + 2 * 4),)
        check_env(env, skip_render_check=True)
    finally:
        env.close()


def test_yellow_all_red_then_green_and_min_green() -> None:
    env = gym.make("flowsim/Intersection-v0", overrides=EVERY_SECOND).unwrapped
    try:
        env.reset(seed=0)
        north_south, east_west = env.signals.greens[0]
        all_red = env.signals.all_red[0]  # the programme's 1 s all-red between its greens
        assert all_red == "r" * len(north_south) and env.signals.red_time[0] == 1.0
        assert _state(env) == north_south and env.signals.phase[0] == 0
        for _ in range(8):  # yellow 2 s + all-red 1 s + min green 5 s must pass first
            obs, *_ = env.step(1)
            assert _state(env) == north_south
        assert obs[2] == 1.0  # the min-green flag
        env.step(1)  # now the switch starts: 2 s of yellow, then 1 s of all-red
        yellow = yellow_between(north_south, east_west)
        assert _state(env) == yellow and "y" in yellow
        env.step(1)
        assert _state(env) == yellow
        env.step(1)
        assert _state(env) == all_red
        obs, *_ = env.step(1)
        assert _state(env) == east_west
        assert obs[:3].tolist() == [0.0, 1.0, 0.0]  # phase one-hot, min green not yet
        env.step(0)  # too early to switch back
        assert _state(env) == east_west
        env.step(np.nan)  # NaN keeps the phase
        assert env.signals.phase[0] == 1
    finally:
        env.close()


def _mean_queues(phase_of_step) -> tuple[float, float]:
    """Halted vehicles on the north-south and east-west approaches, averaged over 300 s."""
    env = gym.make("flowsim/Intersection-v0").unwrapped
    try:
        env.reset(seed=0)
        lanes = env.signals.lanes
        north_south = np.array([lane.startswith(("north_in", "south_in")) for lane in lanes])
        east_west = np.array([lane.startswith(("east_in", "west_in")) for lane in lanes])
        totals = np.zeros(2)
        for step in range(60):
            env.step(phase_of_step(step))
            halting = env.signals.readings().halting
            totals += halting[north_south].sum(), halting[east_west].sum()
    finally:
        env.close()
    return totals[0] / 60, totals[1] / 60


def test_holding_one_phase_queues_the_other_approach() -> None:
    held_ns, held_ew = _mean_queues(lambda step: 0)  # north-south green throughout
    assert held_ns < 1 and held_ew > 20
    alternate_ns, alternate_ew = _mean_queues(lambda step: (step // 4) % 2)  # 20 s each
    assert alternate_ew < held_ew / 2 and alternate_ns > held_ns


@pytest.mark.parametrize("kind", ["queue", "pressure", "diff_waiting_time"])
def test_rewards(kind: str) -> None:
    env = gym.make(
        "flowsim/TrafficLightGrid-v0", overrides=[f"env.signal_reward={kind}", "env.horizon=50"]
    ).unwrapped
    try:
        env.reset(seed=0)
        signals = env.signals
        for _ in range(40):  # every light green for north-south: east-west queues build
            _, reward, terminated, truncated, info = env.step(np.zeros(9))
        expected = {
            "queue": -signals.queues(),
            "pressure": -signals.pressures(),
            "diff_waiting_time": None,
        }[kind]
        if expected is None:
            waiting = signals.waiting_times()
            _, reward, *_ = env.step(np.ones(9))
            expected = (waiting - signals.waiting_times()) / 100.0
        assert reward == pytest.approx(expected.sum())
        assert env.signal_rewards == pytest.approx(expected)
        if kind == "queue":
            assert reward == -info["queue"] and info["queue"] > 0
        assert not terminated and not truncated
    finally:
        env.close()


def test_vehicles_arrive_during_an_episode() -> None:
    env = gym.make("flowsim/TrafficLightGrid-v0").unwrapped
    try:
        env.reset(seed=0)
        arrived = 0
        for _ in range(200):
            *_, info = env.step(env.action_space.sample())
            arrived += info["arrived"]
        assert arrived > 50 and info["vehicles"] > 0
    finally:
        env.close()


def test_traci_reads_the_same_as_libsumo() -> None:
    def rollout(backend: str) -> tuple[np.ndarray, list[float]]:
        env = make_env(PRESETS["intersection"], [f"sim.backend={backend}", "env.horizon=40"])
        env.action_space.seed(3)
        try:
            observations = [env.reset(seed=5)[0]]
            rewards = []
            for _ in range(30):
                obs, reward, *_ = env.step(env.action_space.sample())
                observations.append(obs)
                rewards.append(reward)
        finally:
            env.close()
        return np.array(observations), rewards

    libsumo_obs, libsumo_rewards = rollout("libsumo")
    traci_obs, traci_rewards = rollout("traci")
    assert np.array_equal(libsumo_obs, traci_obs)
    assert libsumo_rewards == pytest.approx(traci_rewards)
    assert libsumo_obs[-1].sum() > 0


def test_passes_pettingzoo_parallel_api_test() -> None:
    env = parallel_env(overrides=["env.horizon=30"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the API test reports soft failures as warnings
            parallel_api_test(env, num_cycles=40)  # past the horizon: agents empty at step 30
    finally:
        env.close()


def test_multiagent_splits_the_single_agent_task() -> None:
    env = parallel_env(overrides=["env.horizon=5"])
    # a second simulation in this process: over TraCI (libsumo runs one per process)
    single = gym.make(
        "flowsim/TrafficLightGrid-v0", overrides=["env.horizon=5", "sim.backend=traci"]
    ).unwrapped
    try:
        assert env.possible_agents == [f"center{k}" for k in range(9)]
        observations, _ = env.reset(seed=1)
        vector, _ = single.reset(seed=1)
        assert np.array_equal(np.concatenate([observations[a] for a in env.agents]), vector)
        phases = {agent: k % 2 for k, agent in enumerate(env.agents)}
        for step in range(5):
            observations, rewards, terminations, truncations, _ = env.step(phases)
            vector, reward, *_ = single.step(np.array([k % 2 for k in range(9)]))
            assert np.array_equal(np.concatenate(list(observations.values())), vector)
            assert sum(rewards.values()) == pytest.approx(reward)
            assert not any(terminations.values())
            assert all(truncations.values()) == (step == 4)
        assert env.agents == []
    finally:
        env.close()
        single.close()


def test_multiagent_determinism() -> None:
    def rollout() -> list[dict]:
        env = parallel_env(preset="intersection", overrides=["env.horizon=40"])
        try:
            env.action_space("center").seed(2)
            env.reset(seed=9)
            return [env.step({"center": env.action_space("center").sample()})[1] for _ in range(40)]
        finally:
            env.close()

    assert rollout() == rollout()


def test_signal_env_on_a_ring_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"has none; give a network with traffic lights"):
        TrafficLightGridEnv({"env": {"type": "traffic_light_grid"}})


def test_wrong_number_of_phases_is_refused() -> None:
    env = gym.make("flowsim/TrafficLightGrid-v0").unwrapped
    try:
        env.reset(seed=0)
        with pytest.raises(ValueError, match="expected 9 green phase"):
            env.step(np.zeros(3))
    finally:
        env.close()


@pytest.mark.parametrize(
    "module", ["flowsim.sim.signals", "flowsim.envs.signals", "flowsim.envs.multiagent_signals"]
)
def test_docstring_examples_run(module: str) -> None:
    found = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert found.attempted > 0 and found.failed == 0


def test_multiagent_type_points_at_its_factory() -> None:
    overrides = ["env.type=multiagent_traffic_light_grid"]
    with pytest.raises(ConfigError, match=r"flowsim\.envs\.multiagent_signals\.parallel_env"):
        make_env(PRESETS["grid"], overrides)
    env = parallel_env(PRESETS["grid"], [*overrides, "env.horizon=3"])
    try:
        observations, _ = env.reset(seed=0)
        assert len(observations) == 9
    finally:
        env.close()
