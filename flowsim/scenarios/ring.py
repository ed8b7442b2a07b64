"""Single- and multi-lane rings (the Sugiyama experiment), built with netconvert and cached."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import weakref
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from flowsim.config import PLACEMENT_MARGIN, ScenarioConfig, VehicleGroup
from flowsim.scenarios.base import PlacedVehicle, ScenarioInstance, cached_build, run_netconvert

#: The four quarter-circle edges of a ring, in driving order (counter-clockwise).
RING_EDGES: tuple[str, ...] = ("bottom", "right", "top", "left")
#: Points per quarter arc in the drawn shape (the lane length is set exactly, not from the shape).
_ARC_POINTS = 16


def _write_ring_network(folder: Path, length: float, lanes: int, speed_limit: float) -> None:
    radius = length / (2 * math.pi)
    start_angle = {"bottom": -math.pi / 2, "right": 0.0, "top": math.pi / 2, "left": math.pi}
    nodes = "\n".join(
        f'  <node id="{name}" x="{radius * math.cos(a):.4f}" y="{radius * math.sin(a):.4f}" '
        'type="priority"/>'
        for name, a in start_angle.items()
    )
    edges = []
    for index, name in enumerate(RING_EDGES):
        to_node = RING_EDGES[(index + 1) % len(RING_EDGES)]
        a0 = start_angle[name]
        shape = " ".join(
            f"{radius * math.cos(a0 + (math.pi / 2) * k / _ARC_POINTS):.4f},"
            f"{radius * math.sin(a0 + (math.pi / 2) * k / _ARC_POINTS):.4f}"
            for k in range(_ARC_POINTS + 1)
        )
        # An explicit length makes each lane exactly length/4 whatever the drawn shape;
        # a centred spread keeps multi-lane shapes on the circle.
        edges.append(
            f'  <edge id="{name}" from="{name}" to="{to_node}" numLanes="{lanes}" '
            f'speed="{speed_limit}" length="{length / 4:.6f}" spreadType="center" '
            f'shape="{shape}"/>'
        )
    (folder / "ring.nod.xml").write_text(f"<nodes>\n{nodes}\n</nodes>\n")
    (folder / "ring.edg.xml").write_text("<edges>\n" + "\n".join(edges) + "\n</edges>\n")
    run_netconvert(
        [
            "--node-files=ring.nod.xml",
            "--edge-files=ring.edg.xml",
            "--output-file=ring.net.xml",
            "--no-internal-links=true",
            "--no-turnarounds=true",
            "--offset.disable-normalization=true",
            "--no-warnings=true",
        ],
        cwd=folder,
    )


def ring_network(length: float, lanes: int, speed_limit: float) -> Path:
    """The ``.net.xml`` of a ring of ``length`` metres (rounded to 0.1 m), built once."""
    key = {"length": round(length, 1), "lanes": lanes, "speed_limit": speed_limit}
    folder = cached_build(
        "ring",
        key,
        lambda out: _write_ring_network(out, key["length"], lanes, speed_limit),
    )
    return folder / "ring.net.xml"


def vtype_xml(group: VehicleGroup) -> str:
    """The SUMO ``<vType>`` element for a vehicle group."""
    attributes = {
        "id": group.type,
        "length": group.length,
        "minGap": group.min_gap,
        "accel": group.accel,
        "decel": group.decel,
        "emergencyDecel": max(9.0, group.decel),
        "tau": group.tau,
        "maxSpeed": group.max_speed,
        "carFollowModel": group.car_follow_model,
        "sigma": group.sigma,
        "speedFactor": 1.0,
        "speedDev": group.speed_dev,
        "laneChangeModel": "LC2013",
    }
    if group.color:
        attributes["color"] = group.color
    body = " ".join(f"{key}={quoteattr(str(value))}" for key, value in attributes.items())
    return f"  <vType {body}/>"


class RouteFile:
    """A private route file, deleted with the last object that refers to it.

    Random placement makes new routes every episode: one file per scenario, rewritten only when
    its text changes, keeps millions of resets from filling the disk. Instances refer to it, so
    the file outlives the scenario object for as long as an instance is in use.
    """

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="flowsim-routes-"))
        self.path = self.folder / "routes.rou.xml"
        self._text = ""
        weakref.finalize(self, shutil.rmtree, self.folder, True)

    def write(self, text: str) -> Path:
        """Replace the file's content with ``text`` atomically (if it changed)."""
        if text != self._text:
            staging = self.path.with_suffix(".tmp")
            staging.write_text(text)
            os.replace(staging, self.path)
            self._text = text
        return self.path


class RingScenario:
    """A closed loop of four quarter-circle edges; vehicles drive around it forever.

    Example:
        >>> from flowsim.config import FlowsimConfig
        >>> cfg = FlowsimConfig()
        >>> ring = RingScenario(cfg.scenario, cfg.vehicles)
        >>> instance = ring.instance(np.random.default_rng(0))
        >>> round(instance.length, 1), len(instance.vehicles)
        (230.0, 22)
    """

    #: Edges in driving order; every vehicle's route repeats them from its start edge.
    loop_edges: tuple[str, ...] = RING_EDGES

    def __init__(
        self, config: ScenarioConfig, groups: list[VehicleGroup], route_loops: int = 50
    ) -> None:
        self.config = config
        self.groups = list(groups)
        self.route_loops = route_loops
        self._routes: RouteFile | None = None

    def sample_length(self, rng: np.random.Generator) -> float:
        """The ring length for the next episode (m), rounded to the 0.1 m network cache grid."""
        if isinstance(self.config.length, tuple):
            low, high = self.config.length
            return round(float(rng.uniform(low, high)), 1)
        return round(float(self.config.length), 1)

    def _positions(self, length: float, rng: np.random.Generator) -> list[tuple[int, float]]:
        """(lane, position along the ring) for every vehicle, groups in order."""
        lanes = self.config.lanes
        lengths = [g.length for g in self.groups for _ in range(g.count)]
        min_gaps = [g.min_gap + PLACEMENT_MARGIN for g in self.groups for _ in range(g.count)]
        per_lane: list[list[int]] = [[] for _ in range(lanes)]
        for index in range(len(lengths)):
            per_lane[index % lanes].append(index)  # the config's capacity check deals the same way
        placed: dict[int, tuple[int, float]] = {}
        for lane, members in enumerate(per_lane):
            if not members:
                continue
            if self.config.placement == "even":
                gaps = np.full(len(members), length / len(members))
            else:
                # Front-to-front distance from each vehicle to the next one ahead: at least the
                # leader's length plus the follower's min gap, plus a random share of the slack.
                ahead = members[1:] + members[:1]
                needed = np.array(
                    [lengths[j] + min_gaps[i] for i, j in zip(members, ahead, strict=True)]
                )
                slack = max(length - float(needed.sum()), 0.0)
                gaps = needed + rng.dirichlet(np.ones(len(members))) * slack
            if self.config.placement == "random":
                offset = float(rng.uniform(0, length))
            else:  # stagger lanes so that no two vehicles start side by side
                offset = lane * (length / len(members)) / lanes
            front = offset + np.concatenate(([0.0], np.cumsum(gaps)[:-1]))
            for vehicle_index, position in zip(members, front, strict=True):
                placed[vehicle_index] = (lane, float(position % length))
        return [placed[i] for i in range(len(lengths))]

    def instance(self, rng: np.random.Generator) -> ScenarioInstance:
        """Build (or fetch from the cache) the network and demand for one episode."""
        length = self.sample_length(rng)
        net_file = ring_network(length, self.config.lanes, self.config.speed_limit)
        edge_length = length / len(RING_EDGES)
        offsets = {name: i * edge_length for i, name in enumerate(RING_EDGES)}
        vehicles: list[PlacedVehicle] = []
        positions = iter(self._positions(length, rng))
        for group in self.groups:
            for number in range(group.count):
                lane, along = next(positions)
                edge_index = min(int(along // edge_length), len(RING_EDGES) - 1)
                on_edge = min(along - edge_index * edge_length, edge_length - 0.001)
                vehicles.append(
                    PlacedVehicle(
                        f"{group.type}_{number}", group.type, RING_EDGES[edge_index], lane, on_edge
                    )
                )
        route_file = self._write_routes(self._routes_xml(vehicles))
        return ScenarioInstance(
            net_file=net_file,
            route_file=route_file,
            length=length,
            ring_edges=RING_EDGES,
            edge_offsets=offsets,
            vehicles=tuple(vehicles),
            route_loops=self.route_loops,
            lanes=self.config.lanes,
            files_owner=self._routes,
        )

    def _write_routes(self, text: str) -> Path:
        """Write this scenario's route file (one per scenario object, replaced atomically)."""
        if self._routes is None:
            self._routes = RouteFile()
        return self._routes.write(text)

    def _routes_xml(self, vehicles: list[PlacedVehicle]) -> str:
        lines = ["<routes>", *(vtype_xml(g) for g in self.groups)]
        edges = self.loop_edges
        for index, name in enumerate(edges):
            loop = " ".join(edges[(index + k) % len(edges)] for k in range(len(edges)))
            lines.append(f'  <route id="loop_{name}" edges="{loop}" repeat="{self.route_loops}"/>')
        for vehicle in vehicles:
            lines.append(
                f'  <vehicle id="{vehicle.vehicle_id}" type="{vehicle.group}" '
                f'route="loop_{vehicle.edge}" depart="0" departPos="{vehicle.position:.3f}" '
                f'departLane="{vehicle.lane}" departSpeed="0"/>'
            )
        lines.append("</routes>")
        return "\n".join(lines) + "\n"
