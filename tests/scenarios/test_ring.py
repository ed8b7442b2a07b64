"""Ring networks: exact lane lengths, caching, placement, and vehicles that never leave."""

from __future__ import annotations

import numpy as np
import pytest
import sumolib

from flowsim.config import parse_config
from flowsim.scenarios import make_scenario
from flowsim.scenarios.ring import RING_EDGES, RingScenario, ring_network
from flowsim.sim.simulation import Simulation


@pytest.mark.parametrize(("length", "lanes"), [(230.0, 1), (261.7, 1), (460.0, 3)])
def test_lane_length_equals_ring_length(length: float, lanes: int) -> None:
    net = sumolib.net.readNet(str(ring_network(length, lanes, 30.0)))
    assert {e.getID() for e in net.getEdges()} == set(RING_EDGES)
    for lane_index in range(lanes):
        total = sum(net.getEdge(e).getLane(lane_index).getLength() for e in RING_EDGES)
        assert abs(total - length) < 0.1


def test_networks_are_cached_by_parameters() -> None:
    first = ring_network(240.0, 1, 30.0)
    stamp = first.stat().st_mtime_ns
    assert ring_network(240.0, 1, 30.0) == first
    assert first.stat().st_mtime_ns == stamp  # not rebuilt
    assert ring_network(240.04, 1, 30.0) == first  # same 0.1 m grid cell
    assert ring_network(240.1, 1, 30.0) != first
    assert ring_network(240.0, 2, 30.0) != first


def test_even_placement_spacing() -> None:
    cfg = parse_config({"scenario": {"placement": "even"}})
    instance = make_scenario(cfg).instance(np.random.default_rng(0))
    positions = np.sort(instance.start_positions())
    gaps = np.diff(np.append(positions, positions[0] + instance.length))
    assert np.allclose(gaps, 230.0 / 22, atol=0.02)


def test_random_placement_keeps_min_gaps_and_varies() -> None:
    cfg = parse_config({"scenario": {"placement": "random"}})
    scenario = make_scenario(cfg)
    a = scenario.instance(np.random.default_rng(1)).start_positions()
    b = scenario.instance(np.random.default_rng(2)).start_positions()
    assert not np.allclose(np.sort(a), np.sort(b))
    ordered = np.sort(a)
    gaps = np.diff(np.append(ordered, ordered[0] + 230.0))
    assert gaps.min() >= 7.0  # length 5 + min_gap 2 (+ a placement margin)


def test_length_range_resampled_each_episode() -> None:
    cfg = parse_config({"scenario": {"length": [220, 270]}})
    scenario = make_scenario(cfg)
    rng = np.random.default_rng(0)
    lengths = {scenario.sample_length(rng) for _ in range(20)}
    assert len(lengths) > 10
    assert all(220 <= x <= 270 and round(x, 1) == x for x in lengths)


def test_vehicles_stay_on_the_ring_forever() -> None:
    cfg = parse_config(
        {"vehicles": [{"type": "human", "count": 10, "controller": "sumo"}], "env": {"horizon": 10}}
    )
    simulation = Simulation(cfg, rl_as_human=True)
    simulation.scenario = RingScenario(cfg.scenario, cfg.vehicles, route_loops=1)
    try:
        simulation.reset(seed=0)
        for _ in range(3000):  # 300 s: free-flowing cars do many loops of a 1-loop route
            simulation.step()
        assert len(simulation.kernel.vehicle_ids) == 10
        distance = simulation.kernel.backend.distances(simulation.kernel.vehicle_ids)
        assert distance.min() > 3 * 230.0
    finally:
        simulation.close()


def test_exact_fit_random_placement_inserts_everyone() -> None:
    # 22 vehicles x (5 + 2 + margin) m fill a 154.3 m ring almost exactly.
    cfg = parse_config(
        {
            "scenario": {"length": 154.3},
            "vehicles": [{"type": "human", "count": 22, "controller": "sumo"}],
        }
    )
    simulation = Simulation(cfg, rl_as_human=True)
    try:
        for seed in range(3):
            simulation.reset(seed=seed)
            assert len(simulation.kernel.vehicle_ids) == 22
    finally:
        simulation.close()


def test_random_resets_reuse_one_route_file() -> None:
    cfg = parse_config({"scenario": {"placement": "random"}})
    scenario = make_scenario(cfg)
    files = {scenario.instance(np.random.default_rng(seed)).route_file for seed in range(20)}
    assert len(files) == 1 and len(list(next(iter(files)).parent.iterdir())) == 1
