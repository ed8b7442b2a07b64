"""Registered envs: the Gymnasium checker, determinism, info, horizon and collisions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import flowsim
from flowsim.envs import ENV_IDS, make_env

FAST = ["env.warmup_steps=20", "env.horizon=100"]


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_registered_env_passes_checker(env_id: str) -> None:
    env = gym.make(env_id, overrides=FAST)
    try:
        check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_same_seed_same_trajectory(env_id: str) -> None:
    def rollout() -> tuple[np.ndarray, np.ndarray]:
        env = gym.make(env_id, overrides=FAST)
        env.action_space.seed(7)
        observations, rewards = [], []
        try:
            obs, _ = env.reset(seed=42)
            observations.append(obs)
            for _ in range(50):
                obs, reward, *_ = env.step(env.action_space.sample())
                observations.append(obs)
                rewards.append(reward)
        finally:
            env.close()
        return np.array(observations), np.array(rewards)

    first, second = rollout(), rollout()
    assert np.array_equal(first[0], second[0])
    assert np.array_equal(first[1], second[1])


def test_quick_start_example() -> None:
    env = gym.make("flowsim/Ring-v0")
    try:
        obs, info = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert {"mean_speed", "speed_std", "collisions"} <= set(info)
        assert np.isfinite(reward) and not terminated and not truncated
        assert info["sim_time"] == pytest.approx(0.1 * 756)  # insertion, warm-up, 1 step of 5
    finally:
        env.close()


def test_horizon_truncates() -> None:
    env = make_env(flowsim.FlowsimConfig(), overrides=["env.warmup_steps=0", "env.horizon=5"])
    try:
        env.reset(seed=0)
        flags = [env.step(np.zeros(1))[3] for _ in range(5)]
        assert flags == [False] * 4 + [True]
    finally:
        env.close()


def test_reward_is_flows_formula() -> None:
    env = make_env(flowsim.FlowsimConfig(), overrides=["env.warmup_steps=50"])
    try:
        env.reset(seed=0)
        _, reward, *_ = env.step(np.array([0.5]))
        speeds = env.unwrapped.kernel.speeds()
        assert reward == pytest.approx(4 * speeds.mean() / 20 - 4 * 0.5)
    finally:
        env.close()


def test_ring_length_resampled_at_reset() -> None:
    env = make_env(
        flowsim.FlowsimConfig(), overrides=["scenario.length=[220, 270]", "env.warmup_steps=0"]
    )
    try:
        lengths = set()
        env.reset(seed=0)
        for _ in range(4):
            env.reset()
            lengths.add(env.simulation.instance.length)
        assert len(lengths) >= 3 and all(220 <= x <= 270 for x in lengths)
    finally:
        env.close()


def test_collision_terminates() -> None:
    # An AV with SUMO's safety checks off and a huge acceleration runs into its leader.
    env = make_env(
        flowsim.FlowsimConfig(),
        overrides=[
            "vehicles.1.speed_mode=aggressive",
            "env.max_accel=10",
            "env.warmup_steps=100",
        ],
    )
    try:
        env.reset(seed=0)
        for _ in range(300):
            _, reward, terminated, _truncated, info = env.step(np.array([10.0]))
            if terminated:
                break
        assert terminated and info["collisions"] > 0 and reward == 0.0
    finally:
        env.close()


def test_nan_action_is_no_command() -> None:
    env = make_env(flowsim.FlowsimConfig(), overrides=["env.warmup_steps=10"])
    try:
        env.reset(seed=0)
        obs, reward, *_ = env.step(np.array([np.nan]))
        assert np.all(np.isfinite(obs)) and np.isfinite(reward)
    finally:
        env.close()


def test_traci_backend_env() -> None:
    env = gym.make("flowsim/Ring-v0", overrides=["sim.backend=traci", *FAST])
    try:
        obs, _ = env.reset(seed=0)
        for _ in range(10):
            obs, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
    finally:
        env.close()


def test_different_seeds_differ_and_unseeded_resets_vary() -> None:
    env = make_env(flowsim.FlowsimConfig(), overrides=["env.warmup_steps=5"])
    try:
        first, _ = env.reset(seed=1)
        second, _ = env.reset(seed=2)
        third, _ = env.reset()
        assert not np.array_equal(first, second) and not np.array_equal(second, third)
    finally:
        env.close()


def test_first_unseeded_reset_uses_sim_seed() -> None:
    observations = []
    for _ in range(2):
        env = make_env(flowsim.FlowsimConfig(), overrides=["env.warmup_steps=5", "sim.seed=4"])
        try:
            observations.append(env.reset()[0])
        finally:
            env.close()
    assert np.array_equal(*observations)


def test_dropped_env_does_not_lock_libsumo() -> None:
    import gc

    first = gym.make("flowsim/Ring-v0", overrides=FAST)
    first.reset(seed=0)
    del first
    gc.collect()
    second = gym.make("flowsim/Ring-v0", overrides=FAST)
    try:
        obs, _ = second.reset(seed=0)
        assert second.observation_space.contains(obs)
    finally:
        second.close()


def test_reset_after_sumo_died_starts_a_fresh_simulation() -> None:
    env = make_env(flowsim.FlowsimConfig(), overrides=["sim.backend=traci", *FAST])
    try:
        env.reset(seed=0)
        env.kernel.backend.process.kill()
        env.kernel.backend.process.wait()
        with pytest.raises(flowsim.SimulationCrashed):
            for _ in range(5):
                env.step(np.zeros(1))
        obs, info = env.reset(seed=0)
        assert env.observation_space.contains(obs) and info["restarts"] == 1
    finally:
        env.close()


def test_collisions_keep_stateful_controllers_and_slots_consistent() -> None:
    # PISaturation humans remember per-vehicle history; an aggressive AV crashes into one.
    env = make_env(
        "scenarios/multilane_ring.yaml",
        overrides=[
            "vehicles.0.controller=pi_saturation",
            "vehicles.1.speed_mode=aggressive",
            "env.max_accel=10",
            "env.terminate_on_collision=false",
            "env.warmup_steps=50",
        ],
    )
    try:
        env.reset(seed=0)
        removed = 0
        for _ in range(400):
            obs, _, terminated, _, info = env.step(np.full(env.action_space.shape, 10.0))
            removed += info["collisions"]
            assert not terminated and env.observation_space.contains(obs)
        assert removed > 0
        assert len(env.kernel.vehicle_ids) < env.num_vehicles
        assert np.count_nonzero(obs.reshape(3, -1)[0] == 0) >= env.num_vehicles - len(
            env.kernel.vehicle_ids
        )
    finally:
        env.close()
