"""Fail-safes: bounds hold, safe_velocity prevents collisions, names are checked."""

from __future__ import annotations

import numpy as np
import pytest

from flowsim.controllers import FAILSAFES, FollowingState, apply_failsafes
from flowsim.controllers.failsafe import (
    feasible_accel,
    leader_braking_distance,
    max_safe_stop_speed,
    obey_speed_limit,
    safe_velocity,
)

STEP = 0.1


def following_state(speed, leader_speed, headway, speed_limit=30.0) -> FollowingState:
    """A state broadcasting scalars or arrays to one common length."""
    arrays = np.broadcast_arrays(
        *(np.asarray(a, dtype=float) for a in (speed, leader_speed, headway, speed_limit))
    )
    speed, leader_speed, headway, speed_limit = (np.atleast_1d(a).copy() for a in arrays)
    return FollowingState(speed, leader_speed, headway, speed_limit, STEP)


def euler_stopping_distance(speed: float, decel: float, dt: float, delay: float = 0.0) -> float:
    """Distance covered when the next speed is ``speed``, held ``delay`` s, then braking."""
    distance, current = speed * delay, speed
    while current > 0:
        distance += current * dt
        current -= decel * dt
    return distance


def test_feasible_accel_clips_to_the_vehicle_limits() -> None:
    accel = feasible_accel(np.array([-20.0, -3.0, 0.5, 4.0]), 1.0, 7.5)
    np.testing.assert_array_equal(accel, [-7.5, -3.0, 0.5, 1.0])
    # A deceleration given as a negative number means the same magnitude.
    np.testing.assert_array_equal(feasible_accel(np.array([-20.0]), 1.0, -7.5), [-7.5])


def test_obey_speed_limit_keeps_the_next_speed_under_the_limit() -> None:
    rng = np.random.default_rng(0)
    speed = rng.uniform(0, 40, 1000)
    limit = rng.uniform(5, 35, 1000)
    accel = rng.uniform(-5, 5, 1000)
    bounded = obey_speed_limit(accel, speed, limit, STEP)
    assert np.all(speed + bounded * STEP <= limit + 1e-9)
    below = speed + accel * STEP <= limit
    np.testing.assert_array_equal(bounded[below], accel[below])
    assert np.all(bounded <= accel)


def test_leader_braking_distance_matches_a_step_by_step_stop() -> None:
    for speed in (0.0, 0.3, 7.0, 15.05, 29.0):
        # The leader's speeds from the next step on: u − b·dt, u − 2·b·dt, …
        expected = euler_stopping_distance(speed - 4.5 * STEP, 4.5, STEP)
        got = leader_braking_distance(np.array([speed]), 4.5, STEP)[0]
        assert got == pytest.approx(max(expected, 0.0), abs=1e-9)


@pytest.mark.parametrize("delay", [0.0, 0.5])
def test_max_safe_stop_speed_is_the_largest_speed_that_stops_in_the_gap(delay: float) -> None:
    for gap in np.random.default_rng(1).uniform(0.0, 120.0, 300):
        speed = max_safe_stop_speed(np.array([gap]), 3.0, STEP, delay)[0]
        assert euler_stopping_distance(speed, 3.0, STEP, delay) <= gap + 1e-9
        assert euler_stopping_distance(speed + 1e-6, 3.0, STEP, delay) > gap - 1e-9


def test_safe_velocity_leaves_vehicles_without_a_leader_alone() -> None:
    state = following_state([5.0, 25.0], [5.0, 25.0], np.inf)
    accel = np.array([3.0, 3.0])
    np.testing.assert_array_equal(safe_velocity(accel, state, max_decel=4.5), accel)


def test_safe_velocity_stops_overlapping_vehicles() -> None:
    state = following_state([6.0, 0.0], [6.0, 0.0], [0.0, -1.0])
    accel = safe_velocity(np.array([1.0, 1.0]), state, max_decel=4.5)
    np.testing.assert_allclose(accel, [-6.0 / STEP, 0.0])


def test_safe_velocity_only_lowers_accelerations() -> None:
    rng = np.random.default_rng(2)
    state = following_state(
        rng.uniform(0, 30, 500), rng.uniform(0, 30, 500), rng.uniform(0.1, 100, 500)
    )
    accel = rng.uniform(-3, 3, 500)
    capped = safe_velocity(accel, state, max_decel=7.5)
    assert np.all(capped <= accel)
    assert np.any(capped < accel)


@pytest.mark.parametrize("seed", range(5))
def test_safe_velocity_prevents_collisions_when_the_leader_brakes(seed: int) -> None:
    """Followers that ask for full throttle never hit leaders braking as hard as they can."""
    rng = np.random.default_rng(seed)
    count, decel = 200, 4.5
    leader_speed = rng.uniform(0, 30, count)
    headway = rng.uniform(0.5, 60, count)
    safe_now = max_safe_stop_speed(
        headway + leader_braking_distance(leader_speed, decel, STEP), decel, STEP
    )
    speed = rng.uniform(0, 1, count) * safe_now
    smallest = np.inf
    for _ in range(600):
        state = following_state(speed, leader_speed, headway)
        accel = safe_velocity(np.full(count, 3.0), state, max_decel=decel)
        # From a safe state the fail-safe never needs more than the vehicle's braking.
        assert np.all(accel >= -decel - 1e-6)
        leader_brake = rng.uniform(0, 1, count) < 0.7
        leader_accel = np.where(leader_brake, -decel, rng.uniform(-decel, 1.0, count))
        leader_speed = np.maximum(leader_speed + leader_accel * STEP, 0.0)
        speed = np.maximum(speed + accel * STEP, 0.0)
        headway = headway + (leader_speed - speed) * STEP
        smallest = min(smallest, float(headway.min()))
    assert smallest >= -1e-9


def test_apply_failsafes_applies_names_in_order() -> None:
    state = following_state(29.5, 29.5, np.inf, speed_limit=30.0)
    accel = np.array([20.0])
    limit_first = apply_failsafes(accel, state, ["obey_speed_limit", "feasible_accel"], 1.0, 7.5)
    assert limit_first[0] == pytest.approx(1.0)
    clip_first = apply_failsafes(accel, state, ["feasible_accel", "obey_speed_limit"], 1.0, 7.5)
    assert clip_first[0] == pytest.approx(1.0)
    overspeed = following_state(32.0, 32.0, np.inf, speed_limit=30.0)
    braked = apply_failsafes(
        np.array([0.0]), overspeed, ["obey_speed_limit", "feasible_accel"], 1.0, 7.5
    )
    assert braked[0] == pytest.approx(-7.5)
    unclipped = apply_failsafes(
        np.array([0.0]), overspeed, ["feasible_accel", "obey_speed_limit"], 1.0, 7.5
    )
    assert unclipped[0] == pytest.approx(-20.0)


def test_apply_failsafes_with_no_names_returns_the_request() -> None:
    state = following_state(5.0, 5.0, 10.0)
    np.testing.assert_array_equal(apply_failsafes(np.array([9.0]), state, [], 1.0, 7.5), [9.0])


def test_apply_failsafes_rejects_unknown_names_and_lists_the_valid_ones() -> None:
    state = following_state(5.0, 5.0, 10.0)
    with pytest.raises(ValueError) as error:
        apply_failsafes(np.array([0.0]), state, ["feasible_accel", "instantaneous"], 1.0, 7.5)
    message = str(error.value)
    assert "'instantaneous'" in message
    assert all(name in message for name in FAILSAFES)
    assert set(FAILSAFES) == {"feasible_accel", "obey_speed_limit", "safe_velocity"}
