"""flowsim/LaneChangeRing-v0: AVs change lanes on command, with a cooldown and a reward cost."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import flowsim  # noqa: F401  (registers the envs)
from flowsim.envs.ring import AccelEnv

FAST = ["env.warmup_steps=50", "env.horizon=300", "vehicles.0.count=10"]


def _lanes(env: gym.Env) -> np.ndarray:
    inner = env.unwrapped
    return inner.kernel.lanes()[inner._av_indices].copy()


def test_commanded_lane_changes_happen_and_cost_reward() -> None:
    env = gym.make("flowsim/LaneChangeRing-v0", overrides=FAST)
    try:
        env.reset(seed=0)
        inner = env.unwrapped
        n = inner.num_avs
        assert env.action_space.shape == (2 * n,)
        start = _lanes(env)
        towards_other_lane = np.where(start == 0, 1.0, -1.0)
        changes, moved = 0, np.zeros(n, dtype=bool)
        for _ in range(150):
            action = np.concatenate([np.zeros(n), towards_other_lane]).astype(np.float32)
            _, reward, terminated, _, _ = env.step(action)
            changes += inner._changes
            if inner._changes:  # the change's cost is in this step's reward
                assert reward == pytest.approx(
                    AccelEnv.step_reward(inner, action)
                    - inner.config.env.lane_change_penalty * inner._changes
                )
            moved |= _lanes(env) != start
            assert not terminated
        assert moved.any()  # SUMO carried out commanded changes
        # One change per AV per lane_change_duration (5 s = 50 steps) at most.
        assert changes <= n * (150 // 50 + 1)
    finally:
        env.close()


def test_no_command_keeps_lanes() -> None:
    env = gym.make("flowsim/LaneChangeRing-v0", overrides=FAST)
    try:
        env.reset(seed=1)
        start = _lanes(env)
        for _ in range(100):
            env.step(np.zeros(env.action_space.shape, dtype=np.float32))
        assert np.array_equal(_lanes(env), start)  # SUMO never moves an AV on its own
    finally:
        env.close()
