"""Flow's bottleneck: lane counts and lengths, zipper merges, vehicles through and out, the
outflow against SUMO's own arrivals, lane changes per variant, bad inputs."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from flowsim.config import load_config
from flowsim.scenarios import BOTTLENECK_EDGES, make_scenario
from flowsim.scenarios.bottleneck import BOTTLENECK_LENGTHS
from flowsim.scenarios.open import net_edges
from flowsim.sim.simulation import Simulation
from flowsim.testing import run_cli

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "scenarios" / "benchmarks"


@pytest.mark.parametrize("variant, scaling", [("bottleneck0", 1), ("bottleneck2", 2)])
def test_network_is_flows_lane_drop(variant: str, scaling: int) -> None:
    config = load_config(BENCHMARKS / f"{variant}.yaml")
    instance = make_scenario(config).instance(np.random.default_rng(0))
    edges = net_edges(instance.net_file)
    assert set(edges) == set(BOTTLENECK_EDGES)
    lanes = {edge: count for edge, (_, count) in edges.items()}
    n = scaling
    assert lanes == {"1": 4 * n, "2": 4 * n, "3": 4 * n, "4": 2 * n, "5": n}
    for edge, (length, _) in edges.items():
        assert length == pytest.approx(BOTTLENECK_LENGTHS[edge], abs=0.1)
    root = ET.parse(instance.net_file).getroot()
    kinds = {j.get("id"): j.get("type") for j in root.iter("junction")}
    assert kinds["n3"] == kinds["n4"] == "zipper"
    # Lanes 2k and 2k+1 feed lane k at both drops (and nothing else joins there).
    joins = {
        (c.get("from"), int(c.get("fromLane")), int(c.get("toLane")))
        for c in root.iter("connection")
        if c.get("from") in ("3", "4") and c.get("to") in ("4", "5")
    }
    assert joins == {(e, lane, lane // 2) for e in ("3", "4") for lane in range(lanes[e])}
    assert instance.open and instance.ring_edges == BOTTLENECK_EDGES
    assert instance.lanes == 4 * n


def test_vehicles_pass_and_outflow_matches_sumos_arrivals(tmp_path: Path) -> None:
    config = load_config(BENCHMARKS / "bottleneck0.yaml")
    simulation = Simulation(config, rl_as_human=True)
    trips = tmp_path / "trips.xml"
    simulation.kernel.extra_args = ["--tripinfo-output", str(trips)]
    simulation.reset(seed=3)
    kernel = simulation.kernel
    seen: set[str] = set()
    for _ in range(400):  # 200 s
        simulation.step()
        seen.update(kernel.vehicle_ids)
    end, window = kernel.time, 100.0
    outflow = simulation.outflow(window)
    simulation.close()
    arrivals = [float(t.get("arrival")) for t in ET.parse(trips).getroot().iter("tripinfo")]
    assert len(arrivals) > 20  # vehicles drove the 985 m and left
    assert all(t.get("arrivalLane", "").startswith("5_") for t in ET.parse(trips).getroot())
    # SUMO stamps an arrival with the time its step began: the window's 200 steps, ending at
    # ``end`` on the kernel's clock, began at end - window, ..., end - dt.
    in_window = sum(end - window - 1e-9 <= t < end - 1e-9 for t in arrivals)
    assert outflow == pytest.approx(in_window * 3600 / window)
    assert len(seen) > len(arrivals)  # some are still on the road


def _lane_changes(variant: str, steps: int = 400) -> int:
    """Lane changes on edges 1 to 3 (before the first drop) over ``steps`` steps."""
    config = load_config(BENCHMARKS / f"{variant}.yaml")
    simulation = Simulation(config, rl_as_human=True)
    simulation.reset(seed=1)
    kernel = simulation.kernel
    lane_of: dict[str, int] = {}
    changes = 0
    for _ in range(steps):
        simulation.step()
        for vehicle_id, edge, lane in zip(
            kernel.vehicle_ids, kernel.edges(), kernel.lanes().tolist(), strict=True
        ):
            if edge in ("1", "2", "3"):
                changes += vehicle_id in lane_of and lane_of[vehicle_id] != lane
                lane_of[vehicle_id] = lane
    simulation.close()
    return changes


def test_only_bottleneck1_humans_change_lanes() -> None:
    assert _lane_changes("bottleneck0") == 0
    assert _lane_changes("bottleneck1") > 0


@pytest.mark.parametrize(
    "override, key",
    [
        ("scenario.bottleneck.scaling=0", "scenario.bottleneck.scaling"),
        ("scenario.bottleneck.lanes=3", "scenario.bottleneck.lanes"),
        ("inflows.0.edge=7", "inflows[0].edge"),
    ],
)
def test_bad_inputs_exit_2_naming_the_key(override: str, key: str) -> None:
    result = run_cli(
        "simulate", str(BENCHMARKS / "bottleneck0.yaml"), "--steps", "5", "--set", override
    )
    assert result.returncode == 2, result.stderr
    assert key in result.stderr
