"""Flow's bottleneck: a straight road whose 4N lanes drop to 2N and then to N.

Geometry (Flow's ``BottleneckNetwork``, a scaled model of the Bay Bridge toll plaza): edges
``1`` (100 m) -> ``2`` (310 m) -> ``3`` (140 m) with 4N lanes, a zipper junction, ``4``
(280 m) with 2N lanes, a second zipper junction, and ``5`` (155 m) with N lanes; lanes 2k and
2k+1 feed lane k at each drop, so no vehicle needs to change lanes. Vehicles enter on edge
``1`` and leave at the end of edge ``5``; the capacity drop at the merges is what the AVs
learn to avoid.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from flowsim.config import BottleneckConfig
from flowsim.scenarios.base import ScenarioInstance, cached_build, run_netconvert
from flowsim.scenarios.open import OpenScenario

#: The road's edges in driving order.
BOTTLENECK_EDGES: tuple[str, ...] = ("1", "2", "3", "4", "5")
#: Each edge's length (m), as Flow's network.
BOTTLENECK_LENGTHS: dict[str, float] = {"1": 100.0, "2": 310.0, "3": 140.0, "4": 280.0, "5": 155.0}
#: Lanes of each edge per unit of ``scaling`` (4N -> 2N -> N).
LANES_PER_N: dict[str, int] = {"1": 4, "2": 4, "3": 4, "4": 2, "5": 1}
#: LC2013 parameters that switch off every lane change SUMO would decide on its own (the
#: vType-level counterpart of Flow's lane-change mode 0).
_NO_LANE_CHANGES = 'lcStrategic="-1" lcCooperative="0" lcSpeedGain="0" lcKeepRight="0"'


def bottleneck_lanes(scaling: int) -> dict[str, int]:
    """Lanes of every edge for lane scaling ``scaling`` (N)."""
    return {edge: per_n * scaling for edge, per_n in LANES_PER_N.items()}


def _write_network(folder: Path, scaling: int, speed_limit: float) -> None:
    xs = np.concatenate([[0.0], np.cumsum([BOTTLENECK_LENGTHS[e] for e in BOTTLENECK_EDGES])])
    # Nodes 0..5 at the edges' ends; the lane drops are zipper merges (radius 20 m, as Flow).
    zipper = {3, 4}
    node_xml = "\n".join(
        f'  <node id="n{k}" x="{x:.2f}" y="0.00" '
        + ('type="zipper" radius="20"' if k in zipper else 'type="priority"')
        + "/>"
        for k, x in enumerate(xs)
    )
    lanes = bottleneck_lanes(scaling)
    edge_xml = "\n".join(
        f'  <edge id="{e}" from="n{k}" to="n{k + 1}" numLanes="{lanes[e]}" '
        f'speed="{speed_limit}" length="{BOTTLENECK_LENGTHS[e]}" spreadType="center"/>'
        for k, e in enumerate(BOTTLENECK_EDGES)
    )
    # At each drop lanes 2k and 2k+1 merge into lane k.
    connections = [
        f'  <connection from="{a}" to="{b}" fromLane="{lane}" toLane="{lane // 2}"/>'
        for a, b in (("3", "4"), ("4", "5"))
        for lane in range(lanes[a])
    ]
    (folder / "bottleneck.nod.xml").write_text(f"<nodes>\n{node_xml}\n</nodes>\n")
    (folder / "bottleneck.edg.xml").write_text(f"<edges>\n{edge_xml}\n</edges>\n")
    (folder / "bottleneck.con.xml").write_text(
        "<connections>\n" + "\n".join(connections) + "\n</connections>\n"
    )
    run_netconvert(
        [
            "--node-files=bottleneck.nod.xml",
            "--edge-files=bottleneck.edg.xml",
            "--connection-files=bottleneck.con.xml",
            "--output-file=bottleneck.net.xml",
            "--no-turnarounds=true",
            "--offset.disable-normalization=true",
            "--no-warnings=true",
        ],
        cwd=folder,
    )


def bottleneck_network(bottleneck: BottleneckConfig, speed_limit: float) -> Path:
    """The ``.net.xml`` of a bottleneck with lane scaling ``bottleneck.scaling``, built once."""
    key = {"scaling": bottleneck.scaling, "speed_limit": speed_limit}
    folder = cached_build(
        "bottleneck",
        key,
        lambda out: _write_network(out, bottleneck.scaling, speed_limit),
    )
    return folder / "bottleneck.net.xml"


class BottleneckScenario(OpenScenario):
    """Flow's lane-drop bottleneck; vehicles enter on ``inflows:`` (edge ``1``) and leave at
    the end of edge ``5``. AVs (``controller: rl``) never change lanes; humans do only with
    ``scenario.bottleneck.human_lane_changes`` (Flow's bottleneck1).

    Example:
        >>> import numpy as np
        >>> from flowsim.config import parse_config
        >>> cfg = parse_config({"scenario": {"type": "bottleneck", "speed_limit": 23},
        ...     "vehicles": [{"type": "human", "count": 0, "controller": "sumo"}],
        ...     "inflows": [{"edge": "1", "vehicle": "human", "rate": 1900}]})
        >>> instance = BottleneckScenario(cfg.scenario, cfg.vehicles, cfg.inflows).instance(
        ...     np.random.default_rng(0))
        >>> instance.open, instance.ring_edges, instance.lanes
        (True, ('1', '2', '3', '4', '5'), 4)
    """

    main_route = BOTTLENECK_EDGES
    kind = "bottleneck"

    def network(self) -> Path:
        """The built (cached) bottleneck network."""
        return bottleneck_network(self.config.bottleneck, self.config.speed_limit)

    def default_exits(self) -> dict[str, str]:
        """Every edge drives to the end of edge ``5``."""
        return {edge: "5" for edge in BOTTLENECK_EDGES}

    def instance(self, rng: np.random.Generator) -> ScenarioInstance:
        """The open scenario's instance, with lane changes switched off in the vTypes of the
        groups that must keep their lane."""
        instance = super().instance(rng)
        frozen = [
            g.type
            for g in self.groups
            if g.controller.type == "rl" or not self.config.bottleneck.human_lane_changes
        ]
        if not frozen:
            return instance
        text = instance.route_file.read_text()
        for vtype in frozen:
            text = re.sub(
                rf'(<vType id="{re.escape(vtype)}"[^/]*)/>', rf"\1 {_NO_LANE_CHANGES}/>", text
            )
        assert self._routes is not None
        return dataclasses.replace(instance, route_file=self._routes.write(text))
