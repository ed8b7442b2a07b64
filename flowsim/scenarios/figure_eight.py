"""Flow's figure eight: two three-quarter loops joined by a crossing without signals.

Geometry (Flow's ``FigureEightNetwork``, loop radius ``r``): the straight edges ``bottom``
(up into the centre), ``top`` (up out of it), ``right`` (left into the centre) and ``left``
(left out of it) are ``r`` long; ``upper_ring`` (top -> right) and ``lower_ring``
(left -> bottom) are three-quarter circles of ``3 pi r / 2``. Vehicles drive
``bottom, top, upper_ring, right, left, lower_ring`` forever and cross themselves at the
centre, where the vertical movement has priority. Junction lanes are kept (vehicles occupy
the crossing), so positions along the loop include them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from flowsim.scenarios.base import PlacedVehicle, ScenarioInstance, cached_build, run_netconvert
from flowsim.scenarios.open import route_offsets
from flowsim.scenarios.ring import RingScenario

#: Edges in driving order around the figure eight.
FIGURE_EIGHT_EDGES: tuple[str, ...] = ("bottom", "top", "upper_ring", "right", "left", "lower_ring")
#: Points in each drawn three-quarter arc.
_ARC_POINTS = 40


def _arc(center: tuple[float, float], radius: float, start: float, stop: float) -> str:
    return " ".join(
        f"{center[0] + radius * math.cos(a):.4f},{center[1] + radius * math.sin(a):.4f}"
        for a in np.linspace(start, stop, _ARC_POINTS)
    )


def _write_network(folder: Path, radius: float, lanes: int, speed_limit: float) -> None:
    r = radius
    nodes = {"center": (0.0, 0.0), "right": (r, 0.0), "top": (0.0, r), "left": (-r, 0.0)}
    nodes["bottom"] = (0.0, -r)
    # Flow's junction radius, (2.9 + 3.3 lanes) / 2, sets the crossing's internal lanes.
    centre_radius = f' radius="{(2.9 + 3.3 * lanes) / 2:.2f}"'
    node_xml = "\n".join(
        f'  <node id="{name}" x="{x:.4f}" y="{y:.4f}" type="priority"'
        f"{centre_radius if name == 'center' else ''}/>"
        for name, (x, y) in nodes.items()
    )
    arc = 3 * math.pi * r / 2
    # (id, from, to, length, priority, shape): vertical straights outrank horizontal ones.
    edges = [
        ("bottom", "bottom", "center", r, 78, None),
        ("top", "center", "top", r, 78, None),
        ("upper_ring", "top", "right", arc, 46, _arc((r, r), r, math.pi, -math.pi / 2)),
        ("right", "right", "center", r, 46, None),
        ("left", "center", "left", r, 46, None),
        ("lower_ring", "left", "bottom", arc, 46, _arc((-r, -r), r, math.pi / 2, 2 * math.pi)),
    ]
    edge_xml = []
    for edge_id, start, end, length, priority, shape in edges:
        shape_attr = f' shape="{shape}"' if shape else ""
        edge_xml.append(
            f'  <edge id="{edge_id}" from="{start}" to="{end}" numLanes="{lanes}" '
            f'speed="{speed_limit}" priority="{priority}" length="{length:.6f}" '
            f'spreadType="center"{shape_attr}/>'
        )
    # Only the two straight movements cross the centre (no turns there).
    connections = "\n".join(
        f'  <connection from="{a}" to="{b}" fromLane="{k}" toLane="{k}"/>'
        for a, b in (("bottom", "top"), ("right", "left"))
        for k in range(lanes)
    )
    (folder / "figure_eight.nod.xml").write_text(f"<nodes>\n{node_xml}\n</nodes>\n")
    (folder / "figure_eight.edg.xml").write_text("<edges>\n" + "\n".join(edge_xml) + "\n</edges>\n")
    (folder / "figure_eight.con.xml").write_text(f"<connections>\n{connections}\n</connections>\n")
    run_netconvert(
        [
            "--node-files=figure_eight.nod.xml",
            "--edge-files=figure_eight.edg.xml",
            "--connection-files=figure_eight.con.xml",
            "--output-file=figure_eight.net.xml",
            "--no-turnarounds=true",
            "--offset.disable-normalization=true",
            "--no-warnings=true",
        ],
        cwd=folder,
    )


def figure_eight_network(radius: float, lanes: int, speed_limit: float) -> Path:
    """The ``.net.xml`` of a figure eight with loops of ``radius`` metres, built once."""
    key = {"radius": round(radius, 1), "lanes": lanes, "speed_limit": speed_limit, "junction": 2}
    folder = cached_build(
        "figure_eight", key, lambda out: _write_network(out, key["radius"], lanes, speed_limit)
    )
    return folder / "figure_eight.net.xml"


class FigureEightScenario(RingScenario):
    """Vehicles on Flow's figure eight, placed along its edges like a ring's (even or random).

    Example:
        >>> from flowsim.config import parse_config
        >>> cfg = parse_config({"scenario": {"type": "figure_eight"}, "vehicles": [
        ...     {"type": "human", "count": 13, "controller": "idm"},
        ...     {"type": "av", "count": 1, "controller": "rl"}]})
        >>> instance = FigureEightScenario(cfg.scenario, cfg.vehicles).instance(
        ...     np.random.default_rng(0))
        >>> instance.ring_edges[0], len(instance.vehicles), instance.length > 402
        ('bottom', 14, True)
    """

    loop_edges = FIGURE_EIGHT_EDGES

    def sample_length(self, rng: np.random.Generator) -> float:
        """The summed length of the figure eight's edges (m), junctions excluded."""
        return float(self.config.min_length)

    def instance(self, rng: np.random.Generator) -> ScenarioInstance:
        """Build (or fetch from the cache) the network and this episode's placement."""
        r = round(self.config.radius, 1)
        net_file = figure_eight_network(r, self.config.lanes, self.config.speed_limit)
        offsets, total = route_offsets(net_file, FIGURE_EIGHT_EDGES, closed=True)
        edge_lengths = [r if "ring" not in e else 3 * math.pi * r / 2 for e in FIGURE_EIGHT_EDGES]
        starts = np.concatenate(([0.0], np.cumsum(edge_lengths)[:-1]))
        placed = self._positions(float(sum(edge_lengths)), rng)
        vehicles: list[PlacedVehicle] = []
        slots = iter(placed)
        for group in self.groups:
            for number in range(group.count):
                lane, along = next(slots)
                k = int(np.searchsorted(starts, along, side="right") - 1)
                on_edge = min(along - starts[k], edge_lengths[k] - 0.001)
                vehicles.append(
                    PlacedVehicle(
                        f"{group.type}_{number}", group.type, FIGURE_EIGHT_EDGES[k], lane, on_edge
                    )
                )
        return ScenarioInstance(
            net_file=net_file,
            route_file=self._write_routes(self._routes_xml(vehicles)),
            length=total,
            ring_edges=FIGURE_EIGHT_EDGES,
            edge_offsets=offsets,
            vehicles=tuple(vehicles),
            route_loops=self.route_loops,
            lanes=self.config.lanes,
            files_owner=self._routes,
        )
