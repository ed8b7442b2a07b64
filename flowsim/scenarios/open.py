"""Open networks: vehicles enter on inflows (SUMO ``<flow>``), drive a route and leave.

A subclass builds (and caches) its network and names its entry edges' default exits; this base
checks the inflows against the built network, writes the routes file (vehicle types, flows,
and any vehicles placed at t=0 along the main route) and hands the kernel a
:class:`ScenarioInstance` with ``open=True``, whose positions are measured along the main route.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path

import numpy as np

from flowsim.config import InflowConfig, ScenarioConfig, VehicleGroup
from flowsim.errors import ConfigError
from flowsim.scenarios.base import PlacedVehicle, ScenarioInstance
from flowsim.scenarios.ring import RouteFile, vtype_xml


@lru_cache(maxsize=64)
def _net_edges(net_file: Path) -> dict[str, tuple[float, int]]:
    """(lane-0 length, lanes) of every normal (non-internal) edge of a built network."""
    edges: dict[str, tuple[float, int]] = {}
    for edge in ET.parse(net_file).getroot().iter("edge"):
        if edge.get("function") == "internal":
            continue
        lanes = edge.findall("lane")
        if lanes:
            edges[edge.get("id", "")] = (float(lanes[0].get("length", "0")), len(lanes))
    return edges


def net_edges(net_file: Path) -> dict[str, tuple[float, int]]:
    """(length of lane 0 in m, number of lanes) for every normal edge of ``net_file``."""
    return _net_edges(Path(net_file).resolve())


@lru_cache(maxsize=64)
def _traffic_light_ids(net_file: Path) -> tuple[str, ...]:
    ids = {tl.get("id", "") for _, tl in ET.iterparse(net_file) if tl.tag == "tlLogic"}
    return tuple(sorted(ids))


def traffic_light_ids(net_file: Path) -> tuple[str, ...]:
    """Ids of the traffic-light programmes in ``net_file``, sorted (read once per process:
    a city network takes a fraction of a second to parse, once per reset would show)."""
    return _traffic_light_ids(Path(net_file).resolve())


def route_offsets(
    net_file: Path, route: tuple[str, ...], closed: bool = False
) -> tuple[dict[str, float], float]:
    """Distance from the route's start to each of its edges and the junction lanes between
    them, and the route's total length (m), read from the network (lane 0).

    ``closed``: the route is a loop, so the junction from its last edge back to its first
    counts too (the total is then one lap).
    """
    root = ET.parse(net_file).getroot()
    lengths: dict[str, float] = {}
    for edge in root.iter("edge"):
        lane = edge.find("lane")
        if lane is not None:
            lengths[edge.get("id", "")] = float(lane.get("length", "0"))
    via: dict[tuple[str, str], str | None] = {}
    for connection in root.iter("connection"):
        key = (connection.get("from", ""), connection.get("to", ""))
        if key not in via or connection.get("fromLane") == "0":
            via[key] = connection.get("via")
    offsets: dict[str, float] = {}
    total = 0.0
    for index, edge in enumerate(route):
        offsets[edge] = total
        total += lengths[edge]
        if index + 1 == len(route) and not closed:
            break
        following = route[(index + 1) % len(route)]
        lane = via.get((edge, following))
        while lane:  # a junction may split its lane in two (an internal junction)
            internal = lane.rsplit("_", 1)[0]
            offsets[internal] = total
            total += lengths[internal]
            lane = via.get((internal, following))
    return offsets, total


def flow_xml(flow_id: str, inflow: InflowConfig, to_edge: str) -> str:
    """One SUMO ``<flow>`` element for ``inflow`` from its edge to ``to_edge``."""
    attribute, value = inflow.sumo_rate
    return (
        f'  <flow id="{flow_id}" type="{inflow.vehicle}" from="{inflow.edge}" to="{to_edge}" '
        f'begin="{inflow.begin:g}" end="{inflow.end:g}" {attribute}="{value:g}" '
        f'departLane="{inflow.lane}" departSpeed="{inflow.speed}"/>'
    )


class OpenScenario:
    """Base of the open networks (merge, grid, intersection, osm).

    Subclasses implement :meth:`network` and set :attr:`main_route`; they may override
    :meth:`default_exits` (where an inflow without ``to:`` drives) and :meth:`builtin_inflows`
    (demand the scenario's own config describes, e.g. the intersection's ``demand``).
    """

    #: The route positions are measured along (e.g. the highway); empty: positions are NaN.
    main_route: tuple[str, ...] = ()
    #: Scenario type, for messages.
    kind = "open"

    def __init__(
        self,
        config: ScenarioConfig,
        groups: list[VehicleGroup],
        inflows: list[InflowConfig] | None = None,
    ) -> None:
        self.config = config
        self.groups = list(groups)
        self.inflows = list(inflows or [])
        self._routes: RouteFile | None = None

    # -- to implement ---------------------------------------------------------------------
    def network(self) -> Path:
        """The built (cached) ``.net.xml``."""
        raise NotImplementedError

    def default_exits(self) -> dict[str, str]:
        """Entry edge -> the exit edge an inflow on it drives to when it has no ``to:``."""
        return {}

    def builtin_inflows(self) -> list[InflowConfig]:
        """Inflows implied by the scenario's own section (added to the config's ``inflows``)."""
        return []

    def extra_routes(self, rng: np.random.Generator) -> str:
        """Extra route-file content (e.g. randomTrips' routes), inside ``<routes>``."""
        return ""

    # -- shared ---------------------------------------------------------------------------
    def all_inflows(self) -> list[InflowConfig]:
        """The scenario's built-in inflows followed by the config's."""
        return [*self.builtin_inflows(), *self.inflows]

    def check_inflows(self, edges: dict[str, tuple[float, int]]) -> list[tuple[InflowConfig, str]]:
        """Each inflow with its destination; a ConfigError names an unknown edge or lane."""
        exits = self.default_exits()
        known = sorted(edges)
        shown = ", ".join(known[:12]) + (" …" if len(known) > 12 else "")
        checked = []
        own = len(self.builtin_inflows())
        for index, inflow in enumerate(self.all_inflows()):
            where = f"inflows[{index - own}]" if index >= own else f"scenario.{self.kind}"
            if inflow.edge not in edges:
                raise ConfigError(
                    f"{where}.edge: '{inflow.edge}' is not an edge of the {self.kind} network; "
                    f"edges: {shown}. `flowsim scenarios build CONFIG --out DIR --json` lists "
                    "them all."
                )
            to_edge = inflow.to or exits.get(inflow.edge)
            if to_edge is None:
                raise ConfigError(
                    f"{where}.to: edge '{inflow.edge}' has no default exit in the {self.kind} "
                    f"network; give to: (one of {shown})."
                )
            if to_edge not in edges:
                raise ConfigError(
                    f"{where}.to: '{to_edge}' is not an edge of the {self.kind} network; "
                    f"edges: {shown}."
                )
            lanes = edges[inflow.edge][1]
            if isinstance(inflow.lane, int) and inflow.lane >= lanes:
                raise ConfigError(
                    f"{where}.lane: {inflow.lane} but edge '{inflow.edge}' has {lanes} lane(s); "
                    f"give 0 to {lanes - 1} or free."
                )
            checked.append((inflow, to_edge))
        return checked

    def _placed(self, offsets: dict[str, float], total: float) -> list[PlacedVehicle]:
        """Vehicles with a count, spread evenly along the main route at t=0."""
        count = sum(group.count for group in self.groups)
        if count == 0:
            return []
        if not self.main_route:
            raise ConfigError(
                f"vehicles: scenario.type {self.kind} has no main route to place vehicles on at "
                "the start; set every group's count to 0 and bring vehicles in with inflows:."
            )
        edges = [e for e in self.main_route]
        starts = np.array([offsets[e] for e in edges])
        spacing = total / count
        placed = []
        k = 0
        for group in self.groups:
            for number in range(group.count):
                along = k * spacing
                i = int(np.searchsorted(starts, along, side="right") - 1)
                placed.append(
                    PlacedVehicle(
                        f"{group.type}_{number}", group.type, edges[i], 0, along - starts[i]
                    )
                )
                k += 1
        return placed

    def instance(self, rng: np.random.Generator) -> ScenarioInstance:
        """Build (or fetch from the cache) the network and write this episode's routes."""
        net_file = self.network()
        edges = net_edges(net_file)
        flows = self.check_inflows(edges)
        if self.main_route:
            offsets, total = route_offsets(net_file, self.main_route)
        else:
            offsets, total = {}, 1.0
        vehicles = self._placed(offsets, total)
        lines = ["<routes>", *(vtype_xml(g) for g in self.groups)]
        if vehicles:
            lines.append(f'  <route id="main" edges="{" ".join(self.main_route)}"/>')
        for vehicle in vehicles:
            # A route starting at the vehicle's edge: the main route from there on.
            start = self.main_route.index(vehicle.edge)
            lines.append(
                f'  <vehicle id="{vehicle.vehicle_id}" type="{vehicle.group}" depart="0" '
                f'departPos="{vehicle.position:.3f}" departLane="{vehicle.lane}" '
                f'departSpeed="0"><route edges="{" ".join(self.main_route[start:])}"/></vehicle>'
            )
        for index, (inflow, to_edge) in enumerate(flows):
            lines.append(flow_xml(f"{inflow.vehicle}_flow{index}", inflow, to_edge))
        extra = self.extra_routes(rng)
        if extra:
            lines.append(extra)
        lines.append("</routes>")
        if self._routes is None:
            self._routes = RouteFile()
        route_file = self._routes.write("\n".join(lines) + "\n")
        lanes = max((n for _, n in edges.values()), default=1)
        return ScenarioInstance(
            net_file=net_file,
            route_file=route_file,
            length=total,
            ring_edges=self.main_route,
            edge_offsets=offsets,
            vehicles=tuple(vehicles),
            route_loops=1,
            lanes=lanes,
            files_owner=self._routes,
            open=True,
            traffic_lights=traffic_light_ids(net_file),
        )


@lru_cache(maxsize=64)
def _edge_speeds(net_file: Path) -> dict[str, float]:
    speeds: dict[str, float] = {}
    for edge in ET.parse(net_file).getroot().iter("edge"):
        lane = edge.find("lane")
        if lane is not None:
            speeds[edge.get("id", "")] = float(lane.get("speed", "0"))
    return speeds


def edge_speeds(net_file: Path) -> dict[str, float]:
    """Speed limit of lane 0 of every edge of ``net_file``, junction (internal) edges included."""
    return _edge_speeds(Path(net_file).resolve())
