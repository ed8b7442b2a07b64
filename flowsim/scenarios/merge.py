"""Flow's merge: a single highway with an on-ramp joining it at 45 degrees.

Geometry (Flow's ``MergeNetwork``): the highway runs ``inflow_highway`` (the entry edge,
``merge.inflow_length``) -> ``left`` (``pre_merge_length``) -> the merge node ``center`` ->
``center`` (the edge after it, ``post_merge_length``); the ramp runs ``inflow_merge`` ->
``bottom`` (``merge_length``) -> ``center``. Vehicles leave at the end of edge ``center``. Waves
start where ramp vehicles squeeze in and travel back up the highway; AVs on the highway can
absorb them.
"""

from __future__ import annotations

import math
from pathlib import Path

from flowsim.config import MergeConfig
from flowsim.scenarios.base import cached_build, run_netconvert
from flowsim.scenarios.open import OpenScenario

#: The highway's edges in driving order (positions are measured along them).
MERGE_HIGHWAY: tuple[str, ...] = ("inflow_highway", "left", "center")
#: The on-ramp's edges in driving order (it joins the highway at edge ``center``).
MERGE_RAMP: tuple[str, ...] = ("inflow_merge", "bottom", "center")
#: The ramp's angle to the highway (rad), as in Flow.
_ANGLE = math.pi / 4


def _write_network(folder: Path, merge: MergeConfig, speed_limit: float) -> None:
    pre, post, ramp, entry = (
        merge.pre_merge_length,
        merge.post_merge_length,
        merge.merge_length,
        merge.inflow_length,
    )
    nodes = {
        "inflow_highway": (-entry, 0.0),
        "left": (0.0, 0.0),
        "center": (pre, 0.0),
        "right": (pre + post, 0.0),
        "inflow_merge": (
            pre - (ramp + entry) * math.cos(_ANGLE),
            -(ramp + entry) * math.sin(_ANGLE),
        ),
        "bottom": (pre - ramp * math.cos(_ANGLE), -ramp * math.sin(_ANGLE)),
    }
    radius = {"center": ' radius="10"'}  # Flow's merge node radius
    node_xml = "\n".join(
        f'  <node id="{name}" x="{x:.4f}" y="{y:.4f}" type="priority"{radius.get(name, "")}/>'
        for name, (x, y) in nodes.items()
    )
    h, m = merge.highway_lanes, merge.merge_lanes
    # (id, from, to, lanes, priority): the highway has the right of way at the merge.
    edges = [
        ("inflow_highway", "inflow_highway", "left", h, 3),
        ("left", "left", "center", h, 3),
        ("center", "center", "right", h, 3),
        ("inflow_merge", "inflow_merge", "bottom", m, 2),
        ("bottom", "bottom", "center", m, 2),
    ]
    edge_xml = "\n".join(
        f'  <edge id="{e}" from="{a}" to="{b}" numLanes="{lanes}" speed="{speed_limit}" '
        f'priority="{priority}"/>'
        for e, a, b, lanes, priority in edges
    )
    (folder / "merge.nod.xml").write_text(f"<nodes>\n{node_xml}\n</nodes>\n")
    (folder / "merge.edg.xml").write_text(f"<edges>\n{edge_xml}\n</edges>\n")
    run_netconvert(
        [
            "--node-files=merge.nod.xml",
            "--edge-files=merge.edg.xml",
            "--output-file=merge.net.xml",
            "--no-turnarounds=true",
            "--offset.disable-normalization=true",
            "--no-warnings=true",
        ],
        cwd=folder,
    )


def merge_network(merge: MergeConfig, speed_limit: float) -> Path:
    """The ``.net.xml`` of a merge with the given lengths and lanes, built once."""
    key = {**merge.model_dump(), "speed_limit": speed_limit}
    folder = cached_build("merge", key, lambda out: _write_network(out, merge, speed_limit))
    return folder / "merge.net.xml"


class MergeScenario(OpenScenario):
    """A highway with an on-ramp (Flow's merge); vehicles enter on ``inflows:`` and leave at
    the end of edge ``center``. Vehicles with a ``count`` start spread along the highway.

    Example:
        >>> import numpy as np
        >>> from flowsim.config import parse_config
        >>> cfg = parse_config({"scenario": {"type": "merge"},
        ...     "vehicles": [{"type": "human", "count": 0, "controller": "sumo"}],
        ...     "inflows": [{"edge": "inflow_highway", "vehicle": "human", "rate": 1800}]})
        >>> instance = MergeScenario(cfg.scenario, cfg.vehicles, cfg.inflows).instance(
        ...     np.random.default_rng(0))
        >>> instance.open, instance.ring_edges
        (True, ('inflow_highway', 'left', 'center'))
    """

    main_route = MERGE_HIGHWAY
    kind = "merge"

    def network(self) -> Path:
        """The built (cached) merge network."""
        return merge_network(self.config.merge, self.config.speed_limit)

    def default_exits(self) -> dict[str, str]:
        """Every entry edge (highway, ramp, or any edge along them) drives to the end."""
        return {edge: "center" for edge in (*MERGE_HIGHWAY, *MERGE_RAMP)}
