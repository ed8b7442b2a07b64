"""flowsim/Merge-v0: AV slots first come first served, observations, reward."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

import flowsim  # noqa: F401 - registers the env ids


def test_avs_get_slots_in_arrival_order_and_keep_them() -> None:
    # Only AVs on the highway, two slots: a queue must form and slots refill as AVs leave.
    env = gym.make(
        "flowsim/Merge-v0",
        overrides=["env.num_rl=2", "inflows.1.rate=900", "env.horizon=300"],
    )
    merge = env.unwrapped
    history: dict[int, list[str]] = {0: [], 1: []}
    queued_seen = 0
    try:
        env.reset(seed=0)
        for _ in range(300):
            obs, reward, terminated, _, info = env.step(np.ones(2, dtype=np.float32))
            assert env.observation_space.contains(obs)
            assert 0.0 <= reward <= 1.0 and not terminated
            queued_seen = max(queued_seen, info["queued_avs"])
            for slot, av in enumerate(merge._slots):
                if av and (not history[slot] or history[slot][-1] != av):
                    history[slot].append(av)
            # a slotted AV is in the network, and its slot's observation is non-zero
            for slot, av in enumerate(merge._slots):
                if av:
                    assert av in merge.kernel.vehicle_ids
                    assert obs[5 * slot] > 0 or obs[5 * slot + 2] > 0
        assert queued_seen > 0
        # each slot served several AVs in turn, in the order they entered (flow ids count up)
        for avs in history.values():
            assert len(avs) >= 2
            numbers = [int(av.rsplit(".", 1)[1]) for av in avs]
            assert numbers == sorted(numbers)
    finally:
        env.close()


def test_empty_slots_observe_zeros_and_ignore_actions() -> None:
    env = gym.make("flowsim/Merge-v0", overrides=["env.horizon=5"])
    try:
        obs, info = env.reset(seed=0)
        assert info["controlled_avs"] == 0  # no AV has entered yet
        assert np.array_equal(obs, np.zeros(25, dtype=np.float32))
        obs, *_ = env.step(env.action_space.high)
        assert np.isfinite(obs).all()
    finally:
        env.close()
