"""Issue 21's fast paths give the same numbers as the plain ones they stand in for."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flowsim.config import parse_config
from flowsim.controllers.base import FollowingState
from flowsim.controllers.car_following import IDM, NOISE_BLOCK
from flowsim.envs import make_env
from flowsim.sim.simulation import Simulation


def _state(count: int, step_length: float = 0.1) -> FollowingState:
    speed = np.linspace(0.0, 12.0, count)
    return FollowingState(
        speed=speed,
        leader_speed=speed[::-1].copy(),
        headway=np.linspace(3.0, 30.0, count),
        speed_limit=np.full(count, 30.0),
        step_length=step_length,
    )


def test_noise_drawn_in_blocks_is_the_stream_drawn_call_by_call() -> None:
    """Group sizes change (vehicles leave and enter) and the step length once: the noise is
    still the generator's standard normal stream in order, scaled as one draw per call."""
    sizes = [21] * 150 + [20] * 60 + [25] * 120 + [NOISE_BLOCK + 7] * 2 + [3] * 10
    steps = [0.1] * 300 + [0.5] * (len(sizes) - 300)
    idm, clean = IDM(noise=0.2), IDM()
    idm.reset(sizes[0], np.random.default_rng(11))
    stream = np.random.default_rng(11)
    for count, step_length in zip(sizes, steps, strict=True):
        state = _state(count, step_length)
        expected = clean.accelerations(state) + 0.2 * math.sqrt(step_length) * (
            stream.standard_normal(count)
        )
        np.testing.assert_array_equal(idm.accelerations(state), expected)
    idm.reset(5, np.random.default_rng(12))  # a reset starts the new generator's stream
    expected = clean.accelerations(_state(5)) + 0.2 * math.sqrt(0.1) * (
        np.random.default_rng(12).standard_normal(5)
    )
    np.testing.assert_array_equal(idm.accelerations(_state(5)), expected)


@pytest.fixture(scope="module")
def ring_env():
    # TraCI: the module's other test owns this process's libsumo simulation meanwhile
    env = make_env(None, overrides=["env.warmup_steps=5", "env.horizon=50", "sim.backend=traci"])
    env.reset(seed=0)
    yield env
    env.close()


@pytest.mark.parametrize(
    "value", [0.3, -0.7, 1.0, -1.0, 5.0, -5.0, 0.0, -0.0, np.inf, -np.inf, np.nan]
)
def test_one_number_action_is_sanitized_as_the_array_formula(ring_env, value: float) -> None:
    given = np.array([value], dtype=np.float32)
    plain = given.astype(np.float64)
    plain[plain != plain] = 0.0
    low = ring_env.action_space.low.astype(np.float64)
    high = ring_env.action_space.high.astype(np.float64)
    expected = np.minimum(np.maximum(plain, low), high)
    got = ring_env.sanitize_action(given)
    assert got.dtype == np.float64 and got.shape == (1,)
    assert got.tobytes() == expected.tobytes()  # tells -0.0 from 0.0


def test_leaders_kept_across_steps_match_a_fresh_read_while_lanes_change() -> None:
    """On a two-lane ring vehicles change lanes, so who leads whom changes: the kernel's kept
    leader map must follow, giving what reading every leader afresh gives."""
    config = parse_config(
        {
            "scenario": {"type": "multilane_ring", "lanes": 2, "length": 230},
            "vehicles": [
                {
                    "type": "human",
                    "count": 20,
                    "controller": {"type": "idm", "params": {"noise": 0.2}},
                }
            ],
            "sim": {"seed": 3},
        }
    )
    simulation = Simulation(config)
    try:
        simulation.reset(seed=3)
        kernel = simulation.kernel
        everyone = np.arange(len(kernel.vehicle_ids))
        changed = 0
        previous = None
        for step in range(300):
            if step % 10 == 0:  # move a few vehicles to the other lane
                movers = everyone[step // 10 % 4 :: 4]
                lanes = kernel.lanes()[movers]
                kernel.apply_lane_changes(movers, np.where(lanes == 0, 1, -1), 2.0)
            simulation.step()
            headway, leader_speed = kernel.leaders(everyone)
            fresh = kernel._read_leaders(everyone)
            np.testing.assert_array_equal(headway, fresh.headway)
            np.testing.assert_array_equal(leader_speed, fresh.leader_speed)
            names = kernel.leader_ids(everyone)
            changed += previous is not None and names != previous
            previous = names
        assert changed > 0, "no leader changed: the test did not exercise a new leader map"
    finally:
        simulation.close()
