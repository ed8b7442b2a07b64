"""The multi-agent ring (PettingZoo parallel env): API test, determinism, reward, horizon,
collisions and config errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from flowsim.config import load_config, parse_config
from flowsim.envs.multiagent import MULTIAGENT_RING, MultiAgentRingEnv, parallel_env
from flowsim.errors import ConfigError

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
FAST = ["env.warmup_steps=20", "env.horizon=50"]
#: An AV that ignores SUMO's safety checks and accelerates hard runs into its leader.
CRASHING = ["vehicles.1.speed_mode=aggressive", "env.max_accel=10", "env.warmup_steps=100"]


def test_passes_pettingzoo_parallel_api_test() -> None:
    env = parallel_env(overrides=FAST)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the API test reports soft failures as warnings
            parallel_api_test(env, num_cycles=60)  # past the horizon: agents empty at step 50
    finally:
        env.close()


def test_agents_are_the_avs_with_flows_spaces() -> None:
    env = parallel_env(overrides=FAST)
    try:
        assert env.possible_agents == ["av_0", "av_1", "av_2"]
        assert env.metadata["name"] == "flowsim_multiagent_ring_v0"
        observations, infos = env.reset(seed=0)
        assert env.agents == env.possible_agents
        assert {"mean_speed", "speed_std", "collisions"} <= set(infos["av_1"])
        av_ids = env.kernel.ids_of(env.ring.simulation.rl_indices())
        assert list(av_ids) == env.agents
        for agent, obs in observations.items():
            space = env.observation_space(agent)
            assert space.contains(obs) and space.shape == (3,)
            assert np.array_equal(space.low, [0.0, -1.0, 0.0])
            action_space = env.action_space(agent)
            assert action_space.shape == (1,) and action_space.low[0] == -1.0
        # Each AV sees its own state: speed / v_max with v_max the 30 m/s speed limit.
        speeds = env.kernel.speeds()[env.ring.simulation.rl_indices()]
        got = [observations[agent][0] for agent in env.agents]
        assert got == pytest.approx(speeds / 30.0, abs=1e-6)
    finally:
        env.close()


def test_same_seed_same_trajectory() -> None:
    def rollout() -> tuple[np.ndarray, np.ndarray]:
        env = parallel_env(overrides=FAST)
        for number, agent in enumerate(env.possible_agents):
            env.action_space(agent).seed(7 + number)
        observations, rewards = [], []
        try:
            obs, _ = env.reset(seed=42)
            observations.append([obs[a] for a in env.possible_agents])
            for _ in range(30):
                actions = {agent: env.action_space(agent).sample() for agent in env.agents}
                obs, reward, *_ = env.step(actions)
                assert all(env.observation_space(a).contains(o) for a, o in obs.items())
                observations.append([obs[a] for a in env.possible_agents])
                rewards.append([reward[a] for a in env.possible_agents])
        finally:
            env.close()
        return np.array(observations), np.array(rewards)

    first, second = rollout(), rollout()
    assert np.array_equal(first[0], second[0])
    assert np.array_equal(first[1], second[1])


def test_shared_reward_is_flows_formula() -> None:
    env = parallel_env(overrides=[*FAST, "env.accel_penalty=4"])
    try:
        env.reset(seed=0)
        actions = {"av_0": np.array([0.5]), "av_1": np.array([-0.25]), "av_2": np.array([0.0])}
        _, rewards, terminated, truncated, infos = env.step(actions)
        speeds = env.kernel.speeds()
        expected = 4 * speeds.mean() / 20 - 4 * (0.5 + 0.25 + 0.0) / 3
        assert set(rewards) == set(env.possible_agents)
        assert all(reward == pytest.approx(expected) for reward in rewards.values())
        assert infos["av_2"]["mean_speed"] == pytest.approx(speeds.mean())
        assert not any(terminated.values()) and not any(truncated.values())
    finally:
        env.close()


def test_actions_are_clipped_and_nan_or_missing_means_no_command() -> None:
    env = parallel_env(overrides=[*FAST, "env.accel_penalty=4"])
    try:
        env.reset(seed=0)
        # av_0 asks for 5 m/s² (clipped to 1), av_1 sends NaN, av_2 sends nothing: effort 1/3.
        _, rewards, *_ = env.step({"av_0": np.array([5.0]), "av_1": np.array([np.nan])})
        expected = 4 * env.kernel.speeds().mean() / 20 - 4 * 1.0 / 3
        assert rewards["av_1"] == pytest.approx(expected)
        with pytest.raises(ValueError, match="unknown agents"):
            env.step({"human_0": np.array([0.0])})
    finally:
        env.close()


def test_horizon_truncates_every_agent_and_empties_agents() -> None:
    env = parallel_env(overrides=["env.warmup_steps=0", "env.horizon=5"])
    try:
        env.reset(seed=0)
        flags = []
        for _ in range(5):
            _, _, terminated, truncated, _ = env.step({a: np.zeros(1) for a in env.agents})
            assert not any(terminated.values())
            flags.append(set(truncated.values()))
        assert flags == [{False}] * 4 + [{True}]
        assert env.agents == []
        with pytest.raises(RuntimeError, match="reset"):
            env.step({})
        env.reset(seed=1)
        assert env.agents == env.possible_agents
    finally:
        env.close()


def test_collision_terminates_every_agent() -> None:
    env = parallel_env(overrides=CRASHING)
    try:
        env.reset(seed=0)
        for _ in range(300):
            _, rewards, terminated, _, infos = env.step({a: np.array([10.0]) for a in env.agents})
            if not env.agents:
                break
        assert set(terminated) == set(env.possible_agents) and all(terminated.values())
        assert all(reward == 0.0 for reward in rewards.values())
        assert infos["av_0"]["collisions"] > 0
    finally:
        env.close()


def test_without_termination_removed_avs_leave_alone() -> None:
    env = parallel_env(overrides=[*CRASHING, "env.terminate_on_collision=false"])
    try:
        env.reset(seed=0)
        # av_0 drives aggressively (into a human or another AV); the others hold their speed.
        for _ in range(300):
            obs, _, terminated, _, _ = env.step({"av_0": np.array([10.0])})
            if "av_0" not in env.agents:
                break
        removed = {agent for agent, done in terminated.items() if done}
        assert "av_0" in removed and all(np.array_equal(obs[a], np.zeros(3)) for a in removed)
        assert env.agents == [a for a in env.possible_agents if a not in removed] != []
        # The survivors keep their own observations and actions (slots do not shift).
        survivor = env.agents[-1]
        index = env.kernel.index_of((survivor,))
        speed = float(env.kernel.speeds()[index[0]])
        assert obs[survivor][0] == pytest.approx(speed / 30.0, abs=1e-6) and speed > 1.0
        obs, rewards, *_ = env.step({survivor: np.array([-1.0])})
        assert set(obs) == set(env.agents) and np.isfinite(rewards[survivor])
        index = env.kernel.index_of((survivor,))
        assert env.kernel.accelerations()[index[0]] == pytest.approx(-1.0, abs=0.05)
        assert all(env.observation_space(a).contains(o) for a, o in obs.items())
    finally:
        env.close()


def test_config_without_avs_names_the_fix() -> None:
    humans_only = {
        "vehicles": [{"type": "human", "count": 22, "controller": {"type": "idm"}}],
    }
    with pytest.raises(ConfigError, match=r"controller: rl.*add a group"):
        MultiAgentRingEnv(humans_only)


def test_render_modes_other_than_none_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"sim\.gui=true"):
        MultiAgentRingEnv(render_mode="human")


def test_yaml_mirrors_the_default_config() -> None:
    shipped = load_config(SCENARIOS / "multiagent_ring.yaml")
    default = parse_config(MULTIAGENT_RING, source="MULTIAGENT_RING")
    assert shipped.model_dump() == default.model_dump()
    assert shipped.scenario.length == (220.0, 270.0)


def test_single_agent_tools_refuse_the_multiagent_type_clearly() -> None:
    from flowsim.envs import make_env
    from flowsim.errors import ConfigError

    with pytest.raises(ConfigError, match="parallel_env"):
        make_env(SCENARIOS / "multiagent_ring.yaml")
