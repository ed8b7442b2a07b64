"""The kernel on real SUMO: both backends, arrays, commands, crashes and restarts."""

from __future__ import annotations

import numpy as np
import pytest

from flowsim.config import parse_config
from flowsim.errors import BackendUnavailable, SimulationCrashed
from flowsim.scenarios import make_scenario
from flowsim.sim import Kernel

SUMO_RING = {
    "vehicles": [{"type": "human", "count": 22, "controller": "sumo"}],
    "sim": {"seed": 0},
}


def _loaded(backend: str, data: dict | None = None) -> Kernel:
    cfg = parse_config({**(data or SUMO_RING), "sim": {"backend": backend}})
    kernel = Kernel(cfg.sim)
    kernel.load(make_scenario(cfg).instance(np.random.default_rng(0)), seed=0)
    return kernel


def _trace(backend: str, steps: int = 300) -> np.ndarray:
    kernel = _loaded(backend)
    try:
        rows = []
        for _ in range(steps):
            kernel.step()
            rows.append(kernel.speeds().copy())
        return np.array(rows)
    finally:
        kernel.close()


def test_libsumo_and_traci_agree() -> None:
    assert np.allclose(_trace("libsumo"), _trace("traci"), atol=1e-9)


@pytest.mark.parametrize("backend", ["libsumo", "traci"])
def test_state_arrays(backend: str) -> None:
    kernel = _loaded(backend)
    try:
        for _ in range(50):
            kernel.step()
        n = len(kernel.vehicle_ids)
        assert n == 22
        positions = kernel.positions()
        assert positions.shape == (n,) and np.all((positions >= 0) & (positions < 230.0))
        everyone = np.arange(n)
        headway, leader_speed = kernel.leaders(everyone)
        leader_ids = kernel.leader_ids(everyone)
        # On one lane, a vehicle's headway is the distance to the next position minus its length.
        order = np.argsort(positions)
        ahead = np.roll(order, -1)
        expected = np.mod(positions[ahead] - positions[order], 230.0) - 5.0
        assert np.allclose(headway[order], expected, atol=0.05)
        assert [leader_ids[i] for i in order] == [kernel.vehicle_ids[j] for j in ahead]
        assert np.allclose(leader_speed[order], kernel.speeds()[ahead])
        assert kernel.lanes().tolist() == [0] * n
        assert set(kernel.edges()) <= {"bottom", "right", "top", "left"}
        assert kernel.accelerations().shape == (n,)
    finally:
        kernel.close()


@pytest.mark.parametrize("backend", ["libsumo", "traci"])
def test_commanded_acceleration_is_applied(backend: str) -> None:
    kernel = _loaded(backend)
    try:
        for _ in range(20):
            kernel.step()
        first = np.array([0])
        before = float(kernel.speeds()[0])
        kernel.set_speed_mode(first, 0)
        kernel.apply_accelerations(first, np.array([-1.0]))
        kernel.step()
        assert kernel.speeds()[0] == pytest.approx(max(before - 0.1, 0.0), abs=1e-6)
    finally:
        kernel.close()


def test_second_libsumo_simulation_is_refused() -> None:
    kernel = _loaded("libsumo")
    try:
        other = Kernel(parse_config(SUMO_RING).sim)
        cfg = parse_config(SUMO_RING)
        with pytest.raises(BackendUnavailable, match="one simulation per process"):
            other.load(make_scenario(cfg).instance(np.random.default_rng(0)), seed=0)
    finally:
        kernel.close()


def test_killed_sumo_is_reported_and_restarted() -> None:
    kernel = _loaded("traci")
    try:
        kernel.step()
        kernel.backend.process.kill()
        kernel.backend.process.wait()
        with pytest.raises(SimulationCrashed, match="SUMO died"):
            for _ in range(5):
                kernel.step()
        kernel.restart()
        assert kernel.restarts == 1
        kernel.step()
        assert len(kernel.vehicle_ids) == 22 and kernel.time == pytest.approx(0.2)
    finally:
        kernel.close()
    assert kernel.backend.process is None


def test_traci_close_leaves_no_process() -> None:
    kernel = _loaded("traci")
    process = kernel.backend.process
    kernel.close()
    assert process.poll() is not None


def test_lane_change_on_multilane_ring() -> None:
    cfg = parse_config(
        {
            "scenario": {"type": "multilane_ring", "length": 300, "placement": "even"},
            "vehicles": [{"type": "human", "count": 6, "controller": "sumo"}],
        }
    )
    kernel = Kernel(cfg.sim)
    kernel.load(make_scenario(cfg).instance(np.random.default_rng(0)), seed=0)
    try:
        first = np.array([0])
        start_lane = int(kernel.lanes()[0])
        direction = np.array([1 if start_lane == 0 else -1])
        for _ in range(30):
            kernel.apply_lane_changes(first, direction)
            kernel.step()
        assert int(kernel.lanes()[0]) == start_lane + direction[0]
    finally:
        kernel.close()
