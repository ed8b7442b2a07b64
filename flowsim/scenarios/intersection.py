"""A single signalised four-way intersection (sumo-rl's single intersection).

Geometry: the centre node ``center`` (a traffic light) and four arms of ``arm_length`` m, each
with an approach edge ending at the centre and an exit edge leaving it: ``north_in`` /
``north_out``, ``south_in`` / ``south_out``, ``east_in`` / ``east_out``, ``west_in`` /
``west_out``, with ``lanes`` lanes each way. Every approach connects to the three other arms:
right from the rightmost lane, straight from every lane, left from the leftmost lane; there are
no U-turns. netconvert writes the signal programme (``scenario.signals``: fixed-time or
actuated, green and yellow times). Demand comes from ``scenario.intersection.demand`` (veh/h
per approach) split over ``turns`` (left / straight / right shares), plus any ``inflows:``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path

from flowsim.config import InflowConfig, IntersectionConfig, SignalConfig
from flowsim.errors import ConfigError
from flowsim.scenarios.base import cached_build, run_netconvert
from flowsim.scenarios.open import OpenScenario

#: The four arms, and the unit vector from the centre towards each arm's end.
ARMS: dict[str, tuple[int, int]] = {
    "north": (0, 1),
    "south": (0, -1),
    "east": (1, 0),
    "west": (-1, 0),
}

#: Approach -> movement -> the arm whose exit edge the movement leaves on.
MOVEMENTS: dict[str, dict[str, str]] = {
    "north": {"left": "east", "straight": "south", "right": "west"},  # heading south
    "south": {"left": "west", "straight": "north", "right": "east"},  # heading north
    "east": {"left": "south", "straight": "west", "right": "north"},  # heading west
    "west": {"left": "north", "straight": "east", "right": "south"},  # heading east
}

#: Longest green (s) of an actuated programme, as in Flow's actuated grid baseline (netconvert
#: keeps its own minimum, 15 s here).
ACTUATED_MAX_GREEN = 45


def signal_options(signals: SignalConfig) -> list[str]:
    """netconvert options that program every traffic light as ``signals`` describes."""
    green = max(1, round(signals.green))
    options = [
        f"--tls.default-type={'static' if signals.program == 'fixed' else 'actuated'}",
        f"--tls.green.time={green}",
        f"--tls.yellow.time={max(1, round(signals.yellow))}",
    ]
    if signals.program == "actuated":
        options.append(f"--tls.max-dur={max(ACTUATED_MAX_GREEN, green)}")
    return options


def _write_network(
    folder: Path, layout: IntersectionConfig, signals: SignalConfig, speed_limit: float
) -> None:
    length, lanes = layout.arm_length, layout.lanes
    nodes = ['  <node id="center" x="0" y="0" type="traffic_light"/>']
    edges = []
    for arm, (dx, dy) in ARMS.items():
        nodes.append(
            f'  <node id="{arm}" x="{dx * length:.2f}" y="{dy * length:.2f}" type="priority"/>'
        )
        for edge, start, end in ((f"{arm}_in", arm, "center"), (f"{arm}_out", "center", arm)):
            edges.append(
                f'  <edge id="{edge}" from="{start}" to="{end}" numLanes="{lanes}" '
                f'speed="{speed_limit}" priority="1"/>'
            )
    connections = []
    for arm, movements in MOVEMENTS.items():
        for movement, exit_arm in movements.items():
            if movement == "straight":
                pairs = [(k, k) for k in range(lanes)]
            elif movement == "right":
                pairs = [(0, 0)]
            else:
                pairs = [(lanes - 1, lanes - 1)]
            connections += [
                f'  <connection from="{arm}_in" to="{exit_arm}_out" fromLane="{a}" toLane="{b}"/>'
                for a, b in pairs
            ]
    (folder / "intersection.nod.xml").write_text("<nodes>\n" + "\n".join(nodes) + "\n</nodes>\n")
    (folder / "intersection.edg.xml").write_text("<edges>\n" + "\n".join(edges) + "\n</edges>\n")
    (folder / "intersection.con.xml").write_text(
        "<connections>\n" + "\n".join(connections) + "\n</connections>\n"
    )
    run_netconvert(
        [
            "--node-files=intersection.nod.xml",
            "--edge-files=intersection.edg.xml",
            "--connection-files=intersection.con.xml",
            "--output-file=intersection.net.xml",
            "--no-turnarounds=true",
            "--offset.disable-normalization=true",
            "--no-warnings=true",
            *signal_options(signals),
        ],
        cwd=folder,
    )


def intersection_network(
    layout: IntersectionConfig, signals: SignalConfig, speed_limit: float
) -> Path:
    """The ``.net.xml`` of a four-arm signalised intersection, built once per layout."""
    key = {
        "arm_length": layout.arm_length,
        "lanes": layout.lanes,
        "signals": signals.model_dump(),
        "speed_limit": speed_limit,
    }
    folder = cached_build(
        "intersection", key, lambda out: _write_network(out, layout, signals, speed_limit)
    )
    return folder / "intersection.net.xml"


@lru_cache(maxsize=64)
def _successors(net_file: Path) -> dict[str, frozenset[str]]:
    """Normal edge -> the normal edges a vehicle can drive onto next (junction lanes skipped)."""
    following: dict[str, set[str]] = {}
    for connection in ET.parse(net_file).getroot().iter("connection"):
        start, end = connection.get("from", ""), connection.get("to", "")
        if not start.startswith(":") and not end.startswith(":"):
            following.setdefault(start, set()).add(end)
    return {edge: frozenset(ends) for edge, ends in following.items()}


def reachable_edges(net_file: Path, start: str) -> set[str]:
    """Every edge a vehicle entering on ``start`` can reach (``start`` included)."""
    following = _successors(Path(net_file).resolve())
    seen, frontier = {start}, [start]
    while frontier:
        for edge in following.get(frontier.pop(), ()):
            if edge not in seen:
                seen.add(edge)
                frontier.append(edge)
    return seen


class SignalisedScenario(OpenScenario):
    """An open network of traffic lights whose inflows must be able to reach their exits."""

    #: How vehicles may drive, for the message when an exit cannot be reached.
    movements = "vehicles turn left, go straight or turn right, but never make U-turns"

    def check_inflows(self, edges: dict[str, tuple[float, int]]) -> list[tuple[InflowConfig, str]]:
        """As :meth:`OpenScenario.check_inflows`, and every destination is reachable."""
        checked = super().check_inflows(edges)
        net_file = self.network()
        own = len(self.builtin_inflows())
        for index, (inflow, to_edge) in enumerate(checked):
            reachable = reachable_edges(net_file, inflow.edge)
            if to_edge in reachable:
                continue
            where = f"inflows[{index - own}]" if index >= own else f"scenario.{self.kind}"
            exits = sorted(e for e in reachable if e != inflow.edge and e not in self.entries())
            raise ConfigError(
                f"{where}.to: '{to_edge}' cannot be reached from edge '{inflow.edge}' "
                f"({self.movements}); give one of: {', '.join(exits) or 'none'}, or leave to: "
                "out for the default exit."
            )
        return checked

    def entries(self) -> tuple[str, ...]:
        """The edges vehicles enter the network on."""
        return tuple(self.default_exits())


class IntersectionScenario(SignalisedScenario):
    """One signalised four-way crossing; vehicles enter on the ``*_in`` edges and leave on the
    ``*_out`` edges, as ``scenario.intersection.demand`` / ``turns`` and ``inflows:`` say.

    The built-in demand is driven by the first vehicle group that is not ``rl`` (or the first
    group). An inflow without ``to:`` goes straight across.

    Example:
        >>> import numpy as np
        >>> from flowsim.config import parse_config
        >>> cfg = parse_config({"scenario": {"type": "intersection"},
        ...     "vehicles": [{"type": "human", "count": 0, "controller": "sumo"}]})
        >>> instance = IntersectionScenario(cfg.scenario, cfg.vehicles).instance(
        ...     np.random.default_rng(0))
        >>> instance.traffic_lights, instance.ring_edges
        (('center',), ('west_in', 'east_out'))
    """

    main_route = ("west_in", "east_out")
    kind = "intersection"

    def network(self) -> Path:
        """The built (cached) intersection network."""
        return intersection_network(
            self.config.intersection, self.config.signals, self.config.speed_limit
        )

    def default_exits(self) -> dict[str, str]:
        """Each approach drives straight across."""
        return {f"{arm}_in": f"{moves['straight']}_out" for arm, moves in MOVEMENTS.items()}

    def builtin_inflows(self) -> list[InflowConfig]:
        """One flow per approach and movement: the approach's demand times the turn's share."""
        layout = self.config.intersection
        total_share = sum(layout.turns.values())
        drivers = [g for g in self.groups if g.controller.type != "rl"] or self.groups
        vehicle = drivers[0].type
        inflows = []
        for arm, movements in MOVEMENTS.items():
            demand = layout.demand.get(arm, 0.0)
            for movement, exit_arm in movements.items():
                rate = demand * layout.turns.get(movement, 0.0) / total_share
                if rate > 0:
                    inflows.append(
                        InflowConfig(
                            edge=f"{arm}_in",
                            vehicle=vehicle,
                            to=f"{exit_arm}_out",
                            rate=rate,
                            lane="best",
                        )
                    )
        return inflows


__all__ = [
    "ARMS",
    "MOVEMENTS",
    "IntersectionScenario",
    "SignalisedScenario",
    "intersection_network",
    "reachable_edges",
    "signal_options",
]
