"""Car-following models: equilibria, free road, emergencies, noise and vectorisation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flowsim.controllers import (
    IDM,
    OVM,
    BandoFTL,
    CarFollowingModel,
    FollowingState,
    Gipps,
    LinearOVM,
)

STEP = 0.1
MODELS = [IDM, OVM, BandoFTL, LinearOVM, Gipps]


def following_state(speed, leader_speed, headway, step_length: float = STEP) -> FollowingState:
    """A state broadcasting scalars or arrays to one common length."""
    speed, leader_speed, headway = np.broadcast_arrays(
        np.asarray(speed, dtype=float),
        np.asarray(leader_speed, dtype=float),
        np.asarray(headway, dtype=float),
    )
    speed, leader_speed, headway = (np.atleast_1d(a).copy() for a in (speed, leader_speed, headway))
    return FollowingState(
        speed=speed,
        leader_speed=leader_speed,
        headway=headway,
        speed_limit=np.full(speed.shape, 30.0),
        step_length=step_length,
    )


def random_states(count: int, seed: int = 1) -> FollowingState:
    """Varied states: close and far leaders, closing and opening, some without a leader."""
    rng = np.random.default_rng(seed)
    speed = rng.uniform(0.0, 30.0, count)
    leader_speed = np.clip(speed + rng.normal(0.0, 3.0, count), 0.0, None)
    headway = rng.uniform(0.5, 80.0, count)
    headway[::7] = np.inf
    leader_speed[::7] = speed[::7]
    headway[3::11] = 0.0
    headway[5::13] = -0.5
    return following_state(speed, leader_speed, headway)


# -- IDM ------------------------------------------------------------------------------------
@pytest.mark.parametrize("speed", [0.0, 3.0, 10.0, 20.0, 29.0])
def test_idm_is_at_rest_at_its_equilibrium_gap(speed: float) -> None:
    idm = IDM()
    gap = (idm.s0 + speed * idm.T) / math.sqrt(1.0 - (speed / idm.v0) ** idm.delta)
    at, closer, farther = idm.accelerations(
        following_state(speed, speed, [gap, 0.95 * gap, 1.05 * gap])
    )
    assert at == pytest.approx(0.0, abs=1e-9)
    assert closer < 0 < farther


def test_idm_accelerates_at_a_on_a_free_road_from_standstill() -> None:
    idm = IDM(a=1.3)
    free, far = idm.accelerations(following_state(0.0, 0.0, [np.inf, 1e4]))
    assert free == 1.3
    assert far == pytest.approx(1.3, rel=1e-6)
    at_v0 = idm.accelerations(following_state(idm.v0, idm.v0, np.inf))
    assert at_v0 == pytest.approx(0.0, abs=1e-12)


def test_idm_free_road_acceleration_falls_with_speed() -> None:
    speeds = np.linspace(0.0, 30.0, 31)
    accel = IDM().accelerations(following_state(speeds, speeds, np.inf))
    assert np.all(np.diff(accel) < 0)
    assert accel[0] == pytest.approx(1.0) and accel[-1] == pytest.approx(0.0, abs=1e-12)


def test_idm_brakes_hard_at_tiny_gaps() -> None:
    accel = IDM().accelerations(following_state(10.0, 0.0, [0.5, 0.1, 1e-6]))
    assert np.all(np.isfinite(accel))
    assert np.all(accel < -100.0)
    assert accel[0] > accel[1] > accel[2]


def test_idm_approaching_a_stopped_leader_stops_behind_it() -> None:
    idm = IDM()
    speed, gap = np.array([20.0]), np.array([150.0])
    smallest = gap[0]
    for _ in range(2000):
        accel = idm.accelerations(following_state(speed, 0.0, gap))
        speed = np.maximum(speed + accel * STEP, 0.0)
        gap = gap - speed * STEP
        smallest = min(smallest, gap[0])
    assert speed[0] < 0.05
    assert 0.5 < smallest <= idm.s0 + 0.5


# -- OVM, Bando, linear OVM ----------------------------------------------------------------
def test_ovm_optimal_velocity_goes_from_zero_to_v_max() -> None:
    ovm = OVM()
    velocity = ovm.optimal_velocity(np.array([0.0, ovm.h_st, 8.5, ovm.h_go, 100.0, np.inf]))
    np.testing.assert_allclose(velocity, [0.0, 0.0, ovm.v_max / 2, ovm.v_max, ovm.v_max, 30.0])


@pytest.mark.parametrize("model", [OVM(), BandoFTL(), LinearOVM()])
def test_optimal_velocity_models_rest_where_speed_equals_the_optimal_velocity(
    model: CarFollowingModel,
) -> None:
    headway = np.array([6.0, 9.0, 12.0])
    speed = model.optimal_velocity(headway)  # type: ignore[attr-defined]
    accel = model.accelerations(following_state(speed, speed, headway))
    np.testing.assert_allclose(accel, 0.0, atol=1e-12)
    faster = model.accelerations(following_state(speed + 1.0, speed + 1.0, headway))
    assert np.all(faster < 0)


def test_bando_ftl_matches_its_formula() -> None:
    bando = BandoFTL()
    accel = bando.accelerations(following_state(8.0, 6.0, 10.0))[0]
    optimal = 32.0 * (math.tanh(10.0 / 2.0 - 2.0) + math.tanh(2.0)) / (1.0 + math.tanh(2.0))
    assert accel == pytest.approx(0.5 * (optimal - 8.0) + 20.0 * (6.0 - 8.0) / 10.0**2)


def test_linear_ovm_optimal_velocity_is_piecewise_linear() -> None:
    model = LinearOVM()
    velocity = model.optimal_velocity(np.array([2.0, 5.0, 10.0, 1000.0]))
    np.testing.assert_allclose(velocity, [0.0, 0.0, 1.689 * 5.0, 30.0])


def test_models_without_a_leader_drive_towards_their_free_speed() -> None:
    for model, free_speed in [(OVM(), 30.0), (BandoFTL(), 32.0), (LinearOVM(), 30.0)]:
        slow, fast = model.accelerations(following_state([5.0, 40.0], [5.0, 40.0], np.inf))
        assert slow > 0 > fast, type(model).__name__
        at_free = model.accelerations(following_state(free_speed, free_speed, np.inf))
        assert at_free == pytest.approx(0.0, abs=1e-9), type(model).__name__


# -- Gipps ----------------------------------------------------------------------------------
def test_gipps_free_road_step_is_its_acceleration_law() -> None:
    gipps = Gipps()
    accel = gipps.accelerations(following_state(0.0, 0.0, np.inf))[0]
    assert accel == pytest.approx(2.5 * 1.5 * 1.0 * math.sqrt(0.025) / STEP)
    at_v0 = gipps.accelerations(following_state(30.0, 30.0, np.inf))[0]
    assert at_v0 == pytest.approx(0.0, abs=1e-12)


def test_gipps_stops_behind_a_stopped_leader() -> None:
    gipps = Gipps()
    speed, gap = np.array([15.0]), np.array([80.0])
    smallest = gap[0]
    for _ in range(1500):
        accel = gipps.accelerations(following_state(speed, 0.0, gap))
        speed = np.maximum(speed + accel * STEP, 0.0)
        gap = gap - speed * STEP
        smallest = min(smallest, gap[0])
    assert speed[0] == pytest.approx(0.0, abs=1e-9)
    assert smallest > 0.0


# -- every model ------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", MODELS)
def test_no_nan_for_infinite_zero_or_negative_headway(cls: type[CarFollowingModel]) -> None:
    speeds = np.array([0.0, 0.0, 0.0, 12.0, 12.0, 12.0, 35.0])
    headways = np.array([np.inf, 0.0, -3.0, np.inf, 0.0, -3.0, 1e-9])
    for noise in (0.0, 0.5):
        accel = cls(noise=noise).accelerations(following_state(speeds, speeds, headways))
        assert np.all(np.isfinite(accel)), accel


@pytest.mark.parametrize("cls", MODELS)
def test_overlapping_vehicles_brake_at_least_to_a_stop_in_one_step(
    cls: type[CarFollowingModel],
) -> None:
    speed = np.array([0.0, 4.0, 12.0, 25.0])
    for headway in (0.0, -1.0):
        accel = cls(noise=0.3).accelerations(following_state(speed, speed, headway))
        assert np.all(accel <= -speed / STEP + 1e-12)


@pytest.mark.parametrize("cls", MODELS)
def test_vectorised_equals_one_vehicle_at_a_time(cls: type[CarFollowingModel]) -> None:
    states = random_states(60)
    model = cls()
    together = model.accelerations(states)
    one_by_one = [
        model.accelerations(
            following_state(states.speed[i], states.leader_speed[i], states.headway[i])
        )[0]
        for i in range(states.num_vehicles)
    ]
    np.testing.assert_array_equal(together, one_by_one)


@pytest.mark.parametrize("cls", MODELS)
def test_noise_has_the_documented_mean_and_standard_deviation(
    cls: type[CarFollowingModel],
) -> None:
    count = 200_000
    state = following_state(np.full(count, 8.0), 8.0, 14.0)
    clean = cls().accelerations(state)
    noisy_model = cls(noise=0.2)
    noisy_model.reset(count, np.random.default_rng(42))
    perturbation = noisy_model.accelerations(state) - clean
    expected_std = 0.2 * math.sqrt(STEP)
    assert abs(perturbation.mean()) < 4 * expected_std / math.sqrt(count)
    assert perturbation.std() == pytest.approx(expected_std, rel=0.01)


def test_noise_is_reproducible_with_a_seeded_generator() -> None:
    state = following_state(np.full(50, 8.0), 8.0, 14.0)

    def draws(seed: int) -> np.ndarray:
        idm = IDM(noise=0.2)
        idm.reset(50, np.random.default_rng(seed))
        return np.stack([idm.accelerations(state) for _ in range(3)])

    np.testing.assert_array_equal(draws(7), draws(7))
    assert not np.array_equal(draws(7), draws(8))


def test_noiseless_model_draws_nothing_from_its_generator() -> None:
    rng = np.random.default_rng(3)
    idm = IDM()
    idm.reset(4, rng)
    idm.accelerations(following_state(np.full(4, 5.0), 5.0, 20.0))
    assert rng.random() == np.random.default_rng(3).random()


def test_parameters_are_keyword_only_and_validated() -> None:
    with pytest.raises(TypeError):
        IDM(25.0)  # type: ignore[misc]
    with pytest.raises(ValueError, match="'T' of IDM must be >= 0"):
        IDM(T=-1.0)
    with pytest.raises(ValueError, match="'b' of Gipps must be > 0"):
        Gipps(b=0.0)
    with pytest.raises(ValueError, match="'h_go' of OVM must exceed h_st"):
        OVM(h_st=10.0, h_go=5.0)
    assert isinstance(IDM(v0=25).v0, float)
