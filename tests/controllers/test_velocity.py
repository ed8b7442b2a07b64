"""FollowerStopper and PISaturation: command laws, state handling, and the Sugiyama ring."""

from __future__ import annotations

import numpy as np
import pytest

from flowsim.controllers import (
    IDM,
    Controller,
    FollowerStopper,
    FollowingState,
    PISaturation,
)
from flowsim.controllers.failsafe import feasible_accel, safe_velocity

STEP = 0.1


def following_state(speed, leader_speed, headway, step_length: float = STEP) -> FollowingState:
    """A state broadcasting scalars or arrays to one common length."""
    arrays = np.broadcast_arrays(
        np.asarray(speed, dtype=float),
        np.asarray(leader_speed, dtype=float),
        np.asarray(headway, dtype=float),
    )
    speed, leader_speed, headway = (np.atleast_1d(a).copy() for a in arrays)
    return FollowingState(
        speed=speed,
        leader_speed=leader_speed,
        headway=headway,
        speed_limit=np.full(speed.shape, 30.0),
        step_length=step_length,
    )


# -- FollowerStopper ------------------------------------------------------------------------
def test_follower_stopper_regions_at_zero_closing_speed() -> None:
    stopper = FollowerStopper(v_des=10.0)
    headway = np.array([-1.0, 0.0, 4.5, 4.875, 5.25, 5.625, 6.0, 50.0, np.inf])
    command = stopper.command_velocity(following_state(4.0, 4.0, headway))
    # 0 up to dx_1, ramps to the leader's 4 m/s at dx_2, then to v_des at dx_3.
    np.testing.assert_allclose(command, [0, 0, 0, 2.0, 4.0, 7.0, 10.0, 10.0, 10.0])


def test_follower_stopper_boundaries_grow_with_closing_speed() -> None:
    stopper = FollowerStopper(v_des=10.0)
    closing = 3.0  # leader 3 m/s slower: dx_1 = 4.5 + 9/3 = 7.5, dx_2 = 9.75, dx_3 = 15
    command = stopper.command_velocity(following_state(8.0, 5.0, [7.0, 8.625, 9.75, 15.0]))
    np.testing.assert_allclose(command, [0.0, 2.5, 5.0, 10.0])
    assert closing**2 / (2 * stopper.d_3) + stopper.dx_3_0 == 15.0


def test_follower_stopper_never_commands_more_than_v_des_or_the_leader_when_close() -> None:
    stopper = FollowerStopper(v_des=6.0)
    rng = np.random.default_rng(0)
    speed, leader_speed = rng.uniform(0, 20, 500), rng.uniform(0, 20, 500)
    headway = rng.uniform(-2, 40, 500)
    command = stopper.command_velocity(following_state(speed, leader_speed, headway))
    assert np.all((command >= 0) & (command <= 6.0 + 1e-12))
    close = headway <= stopper.dx_2_0
    assert np.all(command[close] <= np.minimum(leader_speed[close], 6.0) + 1e-12)


def test_follower_stopper_command_is_continuous_in_headway() -> None:
    stopper = FollowerStopper(v_des=12.0)
    headway = np.linspace(0.0, 30.0, 30_001)
    command = stopper.command_velocity(following_state(9.0, 7.0, headway))
    assert np.max(np.abs(np.diff(command))) < 0.01


def test_follower_stopper_reaches_its_command_in_one_step() -> None:
    stopper = FollowerStopper(v_des=6.0)
    accel = stopper.accelerations(following_state([5.0, 5.0], [5.0, 5.0], [np.inf, 0.0]))
    np.testing.assert_allclose(accel, [(6.0 - 5.0) / STEP, -5.0 / STEP])


def test_follower_stopper_vectorised_equals_one_vehicle_at_a_time() -> None:
    stopper = FollowerStopper(v_des=8.0)
    rng = np.random.default_rng(1)
    speed, leader_speed = rng.uniform(0, 15, 40), rng.uniform(0, 15, 40)
    headway = rng.uniform(0, 20, 40)
    headway[::9] = np.inf
    together = stopper.accelerations(following_state(speed, leader_speed, headway))
    one_by_one = [
        stopper.accelerations(following_state(speed[i], leader_speed[i], headway[i]))[0]
        for i in range(40)
    ]
    np.testing.assert_array_equal(together, one_by_one)


def test_follower_stopper_rejects_unordered_boundaries() -> None:
    with pytest.raises(ValueError, match="dx_1_0 < dx_2_0 < dx_3_0"):
        FollowerStopper(dx_2_0=7.0)
    with pytest.raises(ValueError, match="d_1 >= d_2 >= d_3"):
        FollowerStopper(d_3=2.0)


# -- PISaturation ---------------------------------------------------------------------------
def test_pi_saturation_history_covers_the_window_and_no_more() -> None:
    pi = PISaturation()
    pi.reset(1, np.random.default_rng(0))
    assert pi.history_steps(STEP) == 380
    far = 20.0  # alpha = 1, beta = 1/2, catch-up = v_catch·(20 − 7)/(30 − 7)
    catch_up = 13.0 / 23.0
    for _ in range(600):
        pi.accelerations(following_state(10.0, 10.0, far))
    commands = [
        2.0 + STEP * pi.accelerations(following_state(2.0, 2.0, far))[0] for _ in range(380)
    ]
    # v_cmd = (average + catch-up)/2 + previous/2, so the average is recoverable.
    averages = 2.0 * np.diff(commands) + np.array(commands[:-1]) - catch_up
    assert averages[-2] == pytest.approx((379 * 2.0 + 10.0) / 380)
    assert averages[-1] == pytest.approx(2.0)
    for _ in range(60):
        accel = pi.accelerations(following_state(2.0, 2.0, far))
    assert accel[0] == pytest.approx(catch_up / STEP, rel=1e-9)


def test_pi_saturation_follows_the_leader_when_close() -> None:
    pi = PISaturation()
    pi.reset(1, np.random.default_rng(0))
    for _ in range(50):
        accel = pi.accelerations(following_state(8.0, 3.0, 3.0))
    # alpha = 0 below the safety distance: the command converges to the leader's speed.
    assert accel[0] == pytest.approx((3.0 - 8.0) / STEP, rel=1e-9)


def test_pi_saturation_starts_from_its_own_speed_and_handles_no_leader() -> None:
    pi = PISaturation()
    pi.reset(2, np.random.default_rng(0))
    accel = pi.accelerations(following_state([5.0, 5.0], [5.0, 5.0], [np.inf, 4.0]))
    assert np.all(np.isfinite(accel))
    # No leader: beta = 1/2 between (mean 5 + v_catch) and the previous command, 5.
    assert accel[0] == pytest.approx(0.5 * 1.0 / STEP)
    assert accel[1] == pytest.approx(0.0)


def test_pi_saturation_reset_sizes_state_and_forgets_history() -> None:
    pi = PISaturation()
    pi.reset(3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="reset for 3 vehicles but got 2"):
        pi.accelerations(following_state([1.0, 2.0], [1.0, 2.0], 10.0))
    state = following_state([4.0, 6.0, 8.0], [5.0, 5.0, 5.0], [9.0, 12.0, 30.0])
    first = pi.accelerations(state)
    for _ in range(20):
        pi.accelerations(following_state([9.0, 9.0, 9.0], 9.0, 30.0))
    pi.reset(3, np.random.default_rng(0))
    np.testing.assert_array_equal(pi.accelerations(state), first)


def test_pi_saturation_vectorised_equals_one_vehicle_at_a_time() -> None:
    rng = np.random.default_rng(2)
    speeds = rng.uniform(0, 10, (30, 5))
    leader_speeds = rng.uniform(0, 10, (30, 5))
    headways = rng.uniform(1, 40, (30, 5))
    together = PISaturation()
    together.reset(5, rng)
    singles = [PISaturation() for _ in range(5)]
    for single in singles:
        single.reset(1, rng)
    for step in range(30):
        accel = together.accelerations(
            following_state(speeds[step], leader_speeds[step], headways[step])
        )
        for i, single in enumerate(singles):
            alone = single.accelerations(
                following_state(speeds[step, i], leader_speeds[step, i], headways[step, i])
            )
            assert accel[i] == pytest.approx(alone[0], rel=1e-12, abs=1e-12)


# -- the Sugiyama ring ----------------------------------------------------------------------
def simulate_ring(
    automated: Controller | None = None,
    switch_on_s: float = 0.0,
    seconds: float = 300.0,
    seed: int = 0,
) -> tuple[float, float]:
    """22 vehicles on a 230 m ring, IDM (noise 0.2) except vehicle 0 when ``automated``.

    Vehicle 0 drives as a human until ``switch_on_s``, then under ``automated`` with the
    feasible-acceleration and safe-velocity fail-safes. Returns the speed standard deviation
    across vehicles averaged over the last 30 s, and the smallest headway seen (m).
    """
    count, ring, vehicle_length = 22, 230.0, 5.0
    rng = np.random.default_rng(seed)
    humans = IDM(noise=0.2)
    humans.reset(count, rng)
    if automated is not None:
        automated.reset(1, rng)
    position = np.arange(count) * ring / count
    speed = np.zeros(count)
    spreads, smallest = [], np.inf
    steps = round(seconds / STEP)
    for step in range(steps):
        headway = (np.roll(position, -1) - position) % ring - vehicle_length
        leader_speed = np.roll(speed, -1)
        state = FollowingState(speed, leader_speed, headway, np.full(count, 30.0), STEP)
        accel = humans.accelerations(state)
        if automated is not None and step * STEP >= switch_on_s:
            own = FollowingState(speed[:1], leader_speed[:1], headway[:1], np.full(1, 30.0), STEP)
            command = feasible_accel(automated.accelerations(own), 1.0, 1.5)
            accel[0] = safe_velocity(command, own, max_decel=1.5)[0]
        speed = np.maximum(speed + accel * STEP, 0.0)
        position = (position + speed * STEP) % ring
        smallest = min(smallest, float(headway.min()))
        if step >= steps - round(30.0 / STEP):
            spreads.append(speed.std())
    return float(np.mean(spreads)), smallest


@pytest.fixture(scope="module")
def human_ring() -> tuple[float, float]:
    return simulate_ring()


def test_idm_ring_forms_a_stop_and_go_wave(human_ring: tuple[float, float]) -> None:
    spread, smallest = human_ring
    assert spread > 1.0
    assert smallest > 0.0


@pytest.mark.parametrize(
    "automated",
    [PISaturation(), FollowerStopper(v_des=3.0)],
    ids=["pi_saturation", "follower_stopper"],
)
def test_one_automated_vehicle_dissolves_the_wave(
    automated: Controller, human_ring: tuple[float, float]
) -> None:
    spread, smallest = simulate_ring(automated, switch_on_s=100.0)
    assert spread < 0.3
    assert spread < 0.2 * human_ring[0]
    assert smallest > 0.0
