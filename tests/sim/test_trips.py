"""RESCO's trip metrics read from SUMO during a run against SUMO's own tripinfo file of it."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from flowsim import testing
from flowsim.config import apply_overrides, load_config
from flowsim.envs.presets import PRESETS
from flowsim.sim.simulation import Simulation
from flowsim.sim.trips import TRIP_METRICS, TRIP_OPTIONS, TripMeter

#: More vehicles than the intersection's two lanes per arm take: some never get in.
JAMMED = [
    "scenario.intersection.demand.north=2400",
    "scenario.intersection.demand.south=2400",
    "scenario.intersection.demand.east=3600",
    "scenario.intersection.demand.west=3600",
]

#: RESCO's cologne1 from the installed sumo-rl package, its first ten minutes.
COLOGNE1 = """
scenario:
  type: sumo
  sumo: {resco: cologne1, begin: 25200, end: 25800}
vehicles: [{type: human, count: 0, controller: sumo}]
env: {type: traffic_light_grid}
sim: {step_length: 1.0, teleport_time: -1}
"""


def resco_metrics(tripinfo: Path) -> dict[str, float]:
    """RESCO's definitions applied to a tripinfo file written with ``write-unfinished`` and
    ``write-undeparted``: delay over every vehicle (an undeparted one's ``departDelay`` is its
    wait to be inserted), trip time and waiting time over those that departed."""
    trips = list(ET.parse(tripinfo).getroot().iter("tripinfo"))
    departed = [t for t in trips if float(t.get("depart", "-1")) >= 0]
    finished = [t for t in departed if float(t.get("arrival", "-1")) >= 0]
    delays = [float(t.get("timeLoss")) + float(t.get("departDelay")) for t in trips]
    return {
        "avg_delay": sum(delays) / len(delays),
        "avg_trip_time": sum(float(t.get("duration")) for t in departed) / len(departed),
        "avg_waiting_time": sum(float(t.get("waitingTime")) for t in departed) / len(departed),
        "throughput": float(len(finished)),
        "undeparted": float(len(trips) - len(departed)),
        "unfinished": float(len(departed) - len(finished)),
    }


@pytest.mark.parametrize("backend", ["libsumo", "traci"])
def test_trip_metrics_match_sumos_tripinfo_file(tmp_path: Path, backend: str) -> None:
    config = apply_overrides(PRESETS["intersection"], [*JAMMED, f"sim.backend={backend}"])
    simulation = Simulation(config)
    meter = TripMeter(simulation.kernel)
    tripinfo = tmp_path / "tripinfo.xml"
    simulation.kernel.extra_args += [
        "--tripinfo-output",
        str(tripinfo),
        "--tripinfo-output.write-unfinished",
        "true",
        "--tripinfo-output.write-undeparted",
        "true",
    ]
    try:
        simulation.reset(seed=3)
        for _ in range(300):
            simulation.step()
        measured = meter.measure()
    finally:
        simulation.close()  # SUMO writes the unfinished and undeparted trips now
    expected = resco_metrics(tripinfo)
    assert expected["undeparted"] > 20 and expected["unfinished"] > 20  # every part is exercised
    assert expected["throughput"] > 50
    assert measured["throughput"] == expected["throughput"]
    for key in ("avg_delay", "avg_trip_time", "avg_waiting_time"):
        # SUMO keeps times in milliseconds: its file and its device totals agree to that
        assert measured[key] == pytest.approx(expected[key], abs=1e-3), key


def test_meter_adds_its_options_once_and_measures_an_empty_start() -> None:
    simulation = Simulation(PRESETS["intersection"])
    TripMeter(simulation.kernel)
    meter = TripMeter(simulation.kernel)
    assert simulation.kernel.extra_args == list(TRIP_OPTIONS)
    try:
        simulation.reset(seed=0)
        measured = meter.measure()
    finally:
        simulation.close()
    assert set(measured) == set(TRIP_METRICS)
    assert measured["throughput"] == 0
    assert math.isnan(measured["avg_trip_time"]) or measured["avg_trip_time"] >= 0


@testing.needs_sumo_rl()
def test_trip_metrics_match_tripinfo_on_resco_cologne1(tmp_path: Path) -> None:
    path = tmp_path / "cologne1.yaml"
    path.write_text(COLOGNE1)
    config = load_config(path)
    simulation = Simulation(config)
    meter = TripMeter(simulation.kernel)
    tripinfo = tmp_path / "tripinfo.xml"
    simulation.kernel.extra_args += [
        "--tripinfo-output",
        str(tripinfo),
        "--tripinfo-output.write-unfinished",
        "true",
        "--tripinfo-output.write-undeparted",
        "true",
    ]
    try:
        simulation.reset(seed=0)
        for _ in range(600):  # 7:00 to 7:10 of the map's morning
            simulation.step()
        measured = meter.measure()
    finally:
        simulation.close()
    expected = resco_metrics(tripinfo)
    assert expected["undeparted"] > 0 and expected["unfinished"] > 0
    assert measured["throughput"] == expected["throughput"] > 100
    for key in ("avg_delay", "avg_trip_time", "avg_waiting_time"):
        assert measured[key] == pytest.approx(expected[key], abs=1e-3), key
