"""Flow's merge: geometry, vehicles entering and leaving, the human baseline, inflow errors."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from flowsim.config import load_config, parse_config
from flowsim.errors import ConfigError
from flowsim.evaluation.simulate import simulate
from flowsim.scenarios import MERGE_HIGHWAY, make_scenario
from flowsim.scenarios.open import net_edges
from flowsim.sim.simulation import Simulation
from flowsim.testing import run_cli

ROOT = Path(__file__).resolve().parents[2]
MERGE = ROOT / "scenarios" / "merge.yaml"


def test_network_is_flows_merge() -> None:
    config = load_config(MERGE)
    instance = make_scenario(config).instance(np.random.default_rng(0))
    root = ET.parse(instance.net_file).getroot()
    lengths = {edge: length for edge, (length, _) in net_edges(instance.net_file).items()}
    assert set(lengths) == {"inflow_highway", "left", "center", "inflow_merge", "bottom"}
    merge = config.scenario.merge
    assert lengths["left"] == pytest.approx(merge.pre_merge_length, abs=15)
    assert lengths["bottom"] == pytest.approx(merge.merge_length, abs=15)
    joining = {(c.get("from"), c.get("to")) for c in root.iter("connection")}
    assert {("left", "center"), ("bottom", "center")} <= joining
    # Positions run along the highway, junction lanes included, strictly increasing.
    assert instance.open and instance.ring_edges == MERGE_HIGHWAY
    offsets = [instance.edge_offsets[e] for e in MERGE_HIGHWAY]
    assert offsets == sorted(offsets) and offsets[0] == 0.0
    assert instance.length > sum(lengths[e] for e in MERGE_HIGHWAY) - 1


def test_vehicles_enter_join_their_group_and_leave() -> None:
    # humans driven by a flowsim controller, so groups and controller state follow the arrays
    config = load_config(
        MERGE, ["vehicles.0.controller=idm", "vehicles.0.count=3", "sim.step_length=0.5"]
    )
    simulation = Simulation(config)
    simulation.reset(seed=0)
    kernel = simulation.kernel
    added = removed = 0
    try:
        for _ in range(600):  # 300 s
            events = simulation.step()
            added += len(events.added)
            removed += len(events.removed)
            ids = kernel.vehicle_ids
            assert len(set(ids)) == len(ids) == kernel.speeds().size
            grouped = sorted(int(i) for g in simulation.groups for i in g.indices)
            assert grouped == list(range(len(ids)))  # every vehicle in exactly one group
            for group in simulation.groups:
                assert all(kernel.vehicle_type(i) == group.name for i in group.ids)
                assert tuple(ids[i] for i in group.indices) == group.ids
    finally:
        simulation.close()
    assert added > 100 and removed > 50  # about 2100 veh/h enter; those at the end leave


def test_all_human_baseline_runs_with_travel_times() -> None:
    result = simulate(load_config(MERGE), steps=1500)  # 750 s
    assert result["entered"] > 350 and result["arrived"] > 300
    assert result["collisions"] == 0
    assert 0 < result["run_mean_speed"] < 30
    assert result["mean_travel_time_s"] > 700 / 30  # no faster than the speed limit allows
    assert result["equilibrium_speed"] is None  # a ring's notion


def test_simulate_cli_json_on_merge() -> None:
    done = run_cli("simulate", str(MERGE), "--steps", "200", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["entered"] > 0 and "route_length" in summary


def _merge(inflows: list[dict]) -> dict:
    return {
        "scenario": {"type": "merge"},
        "vehicles": [{"type": "human", "count": 0, "controller": "sumo"}],
        "inflows": inflows,
    }


def test_inflow_on_a_missing_edge_names_it(tmp_path: Path) -> None:
    config = parse_config(_merge([{"edge": "nowhere", "vehicle": "human", "rate": 100}]))
    with pytest.raises(ConfigError, match=r"inflows\[0\]\.edge: 'nowhere'.*inflow_highway"):
        make_scenario(config).instance(np.random.default_rng(0))
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(_merge([{"edge": "nowhere", "vehicle": "human", "rate": 100}])))
    done = run_cli("simulate", str(path), "--steps", "10")
    assert done.returncode == 2
    assert "nowhere" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("inflow", "message"),
    [
        ({"rate": -5}, "rate -5.0 is negative"),
        ({"rate": 100, "period": 2}, "exactly one of rate"),
        ({"probability": 1.5}, "above 1"),
        ({"rate": 100, "vehicle": "truck"}, "no vehicle group 'truck'"),
        ({"rate": 100, "lane": "left"}, "lane 'left'"),
        ({"rate": 100, "begin": 50, "end": 10}, "end 10.0 must be after begin"),
    ],
)
def test_bad_inflows_are_refused(tmp_path: Path, inflow: dict, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(_merge([{"edge": "inflow_highway", "vehicle": "human", **inflow}])))
    done = run_cli("simulate", str(path), "--steps", "10")
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_inflows_on_a_ring_are_refused() -> None:
    with pytest.raises(ConfigError, match="closed loop"):
        parse_config({"inflows": [{"edge": "bottom", "vehicle": "human", "rate": 100}]})


def test_inflow_lane_beyond_the_edge_is_refused() -> None:
    config = parse_config(
        _merge([{"edge": "inflow_merge", "vehicle": "human", "rate": 9, "lane": 2}])
    )
    with pytest.raises(ConfigError, match=r"lane: 2 but edge 'inflow_merge' has 1 lane"):
        make_scenario(config).instance(np.random.default_rng(0))


def test_traci_and_libsumo_see_the_same_arrivals_and_departures() -> None:
    runs = [
        simulate(load_config(MERGE, [f"sim.backend={backend}"]), steps=400)
        for backend in ("libsumo", "traci")
    ]
    for key in ("entered", "arrived", "run_mean_speed", "mean_travel_time_s"):
        assert runs[0][key] == runs[1][key], key
