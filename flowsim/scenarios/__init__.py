"""Network and demand generators; each writes SUMO XML once and caches it by its parameters."""

from __future__ import annotations

from flowsim.config import FlowsimConfig
from flowsim.errors import ConfigError
from flowsim.scenarios.base import PlacedVehicle, ScenarioInstance, cache_dir, sumo_binary
from flowsim.scenarios.bottleneck import BOTTLENECK_EDGES, BottleneckScenario
from flowsim.scenarios.figure_eight import (
    FIGURE_EIGHT_EDGES,
    FigureEightScenario,
    figure_eight_network,
)
from flowsim.scenarios.grid import GridScenario
from flowsim.scenarios.intersection import IntersectionScenario
from flowsim.scenarios.merge import MERGE_HIGHWAY, MergeScenario
from flowsim.scenarios.open import OpenScenario
from flowsim.scenarios.osm import OSMScenario
from flowsim.scenarios.ring import RING_EDGES, RingScenario, ring_network
from flowsim.scenarios.sumo import SumoScenario

#: Scenario ``type`` values and the class that generates each.
SCENARIOS: dict[str, type[RingScenario] | type[OpenScenario]] = {
    "ring": RingScenario,
    "multilane_ring": RingScenario,
    "figure_eight": FigureEightScenario,
    "merge": MergeScenario,
    "bottleneck": BottleneckScenario,
    "intersection": IntersectionScenario,
    "grid": GridScenario,
    "osm": OSMScenario,
    "sumo": SumoScenario,
}

#: One line per scenario type, for listings.
SCENARIO_DESCRIPTIONS: dict[str, str] = {
    "ring": "single-lane ring road (the Sugiyama experiment); length fixed or re-sampled",
    "multilane_ring": "ring road with several lanes; humans change lanes with SUMO's LC2013",
    "figure_eight": "Flow's figure eight: two 3/4 loops crossing at an unsignalised junction",
    "merge": "Flow's merge: a highway with an on-ramp; vehicles enter on inflows and leave",
    "bottleneck": "Flow's bottleneck: 4N lanes drop to 2N, then N, at zipper merges",
    "intersection": "one signalised four-way crossing (sumo-rl); demand per approach and turn",
    "grid": "Flow's traffic-light grid: rows x columns signals, vehicles drive straight across",
    "osm": "an OpenStreetMap extract (file, or place via osmnx) with random trips through it",
    "sumo": "your own SUMO files (.sumocfg, or network and routes) as they are, or a RESCO map",
}


def make_scenario(config: FlowsimConfig) -> RingScenario | OpenScenario:
    """The scenario generator that ``config.scenario.type`` names, for ``config.vehicles``
    (and ``config.inflows`` on an open network)."""
    kind = config.scenario.type
    if kind not in SCENARIOS:
        raise ConfigError(f"scenario.type {kind} has no generator in this version of flowsim.")
    generator = SCENARIOS[kind]
    if issubclass(generator, OpenScenario):
        return generator(config.scenario, config.vehicles, config.inflows)
    return generator(config.scenario, config.vehicles)


__all__ = [
    "BOTTLENECK_EDGES",
    "FIGURE_EIGHT_EDGES",
    "MERGE_HIGHWAY",
    "RING_EDGES",
    "SCENARIOS",
    "SCENARIO_DESCRIPTIONS",
    "BottleneckScenario",
    "FigureEightScenario",
    "GridScenario",
    "IntersectionScenario",
    "MergeScenario",
    "OpenScenario",
    "PlacedVehicle",
    "RingScenario",
    "ScenarioInstance",
    "SumoScenario",
    "cache_dir",
    "figure_eight_network",
    "make_scenario",
    "ring_network",
    "sumo_binary",
]
