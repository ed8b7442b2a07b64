"""Flow's traffic-light grid: ``rows`` x ``columns`` signalised intersections.

Geometry: intersection ``center{k}`` (``k = row * columns + column``; row 0 is the southmost,
column 0 the westmost) sits ``inner_length`` m from its neighbours. Every row ends in the nodes
``west{row}`` and ``east{row}`` and every column in ``south{column}`` and ``north{column}``,
``outer_length`` m beyond the outermost intersections. Edges are named ``{from}_{to}`` and run
both ways: ``west0_center0`` enters the grid at the west end of row 0, ``center0_center1`` links
two intersections, ``center2_east0`` leaves it at the east end of row 0 (of a 3 x 3 grid).
Every intersection is a traffic light. As in Flow, vehicles drive straight through every
intersection (no turns), so an inflow leaves at the far side of its row or column.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from flowsim.config import GridConfig, SignalConfig
from flowsim.scenarios.base import cached_build, run_netconvert
from flowsim.scenarios.intersection import SignalisedScenario, signal_options


def _center(row: int, column: int, columns: int) -> str:
    return f"center{row * columns + column}"


def grid_lines(rows: int, columns: int) -> list[list[str]]:
    """The node chains of the grid's straight lines, each in both driving directions.

    Rows run west -> east and east -> west, columns south -> north and north -> south; each
    chain starts and ends at a boundary node.
    """
    lines = []
    for row in range(rows):
        chain = [f"west{row}", *(_center(row, c, columns) for c in range(columns)), f"east{row}"]
        lines += [chain, chain[::-1]]
    for column in range(columns):
        chain = [
            f"south{column}",
            *(_center(r, column, columns) for r in range(rows)),
            f"north{column}",
        ]
        lines += [chain, chain[::-1]]
    return lines


def entry_edges(rows: int, columns: int) -> list[str]:
    """The edges entering the grid from its boundary, one per row and column end: row by row
    (from the west, then from the east), then column by column (from the south, the north)."""
    return [f"{chain[0]}_{chain[1]}" for chain in grid_lines(rows, columns)]


def _write_network(
    folder: Path, grid: GridConfig, signals: SignalConfig, speed_limit: float
) -> None:
    rows, columns, inner, outer = grid.rows, grid.columns, grid.inner_length, grid.outer_length
    width = 2 * outer + (columns - 1) * inner
    height = 2 * outer + (rows - 1) * inner
    nodes: dict[str, tuple[float, float, str]] = {}
    for row in range(rows):
        y = outer + row * inner
        nodes[f"west{row}"] = (0.0, y, "priority")
        nodes[f"east{row}"] = (width, y, "priority")
        for column in range(columns):
            nodes[_center(row, column, columns)] = (outer + column * inner, y, "traffic_light")
    for column in range(columns):
        x = outer + column * inner
        nodes[f"south{column}"] = (x, 0.0, "priority")
        nodes[f"north{column}"] = (x, height, "priority")
    node_xml = "\n".join(
        f'  <node id="{name}" x="{x:.2f}" y="{y:.2f}" type="{kind}"/>'
        for name, (x, y, kind) in nodes.items()
    )
    edges: list[str] = []
    connections: list[str] = []
    for chain in grid_lines(rows, columns):
        names = [f"{a}_{b}" for a, b in itertools.pairwise(chain)]
        edges += [
            f'  <edge id="{name}" from="{a}" to="{b}" numLanes="{grid.lanes}" '
            f'speed="{speed_limit}" priority="1"/>'
            for name, a, b in zip(names, chain, chain[1:], strict=False)
        ]
        # Straight on at every intersection, lane k to lane k (Flow's grid has no turns).
        connections += [
            f'  <connection from="{a}" to="{b}" fromLane="{k}" toLane="{k}"/>'
            for a, b in itertools.pairwise(names)
            for k in range(grid.lanes)
        ]
    (folder / "grid.nod.xml").write_text(f"<nodes>\n{node_xml}\n</nodes>\n")
    (folder / "grid.edg.xml").write_text("<edges>\n" + "\n".join(edges) + "\n</edges>\n")
    (folder / "grid.con.xml").write_text(
        "<connections>\n" + "\n".join(connections) + "\n</connections>\n"
    )
    run_netconvert(
        [
            "--node-files=grid.nod.xml",
            "--edge-files=grid.edg.xml",
            "--connection-files=grid.con.xml",
            "--output-file=grid.net.xml",
            "--no-turnarounds=true",
            "--offset.disable-normalization=true",
            "--no-warnings=true",
            *signal_options(signals),
        ],
        cwd=folder,
    )


def grid_network(grid: GridConfig, signals: SignalConfig, speed_limit: float) -> Path:
    """The ``.net.xml`` of a traffic-light grid, built once per layout."""
    key = {**grid.model_dump(), "signals": signals.model_dump(), "speed_limit": speed_limit}
    folder = cached_build("grid", key, lambda out: _write_network(out, grid, signals, speed_limit))
    return folder / "grid.net.xml"


class GridScenario(SignalisedScenario):
    """Flow's traffic-light grid; vehicles enter on ``inflows:`` at the grid's edges and drive
    straight across to the far side (or to a ``to:`` edge further along their line).

    Positions are measured along row 0, west to east (``west0_center0`` … ``center{C-1}_east0``).

    Example:
        >>> import numpy as np
        >>> from flowsim.config import parse_config
        >>> cfg = parse_config({"scenario": {"type": "grid", "grid": {"rows": 2, "columns": 3}},
        ...     "vehicles": [{"type": "human", "count": 0, "controller": "sumo"}],
        ...     "inflows": [{"edge": "west1_center3", "vehicle": "human", "rate": 300}]})
        >>> scenario = GridScenario(cfg.scenario, cfg.vehicles, cfg.inflows)
        >>> scenario.default_exits()["west1_center3"]
        'center5_east1'
        >>> len(scenario.instance(np.random.default_rng(0)).traffic_lights)
        6
    """

    kind = "grid"
    movements = "vehicles in the grid drive straight through every intersection"

    def __init__(self, *args, **kwargs) -> None:
        """Arguments as :class:`OpenScenario` (scenario config, vehicle groups, inflows)."""
        super().__init__(*args, **kwargs)
        grid = self.config.grid
        row0 = grid_lines(grid.rows, grid.columns)[0]
        self.main_route = tuple(f"{a}_{b}" for a, b in itertools.pairwise(row0))

    def network(self) -> Path:
        """The built (cached) grid network."""
        return grid_network(self.config.grid, self.config.signals, self.config.speed_limit)

    def default_exits(self) -> dict[str, str]:
        """Every entry edge (and every edge along a line) leads to that line's exit edge."""
        grid = self.config.grid
        exits = {}
        for chain in grid_lines(grid.rows, grid.columns):
            names = [f"{a}_{b}" for a, b in itertools.pairwise(chain)]
            exits.update(dict.fromkeys(names, names[-1]))
        return exits

    def entries(self) -> tuple[str, ...]:
        """The edges that enter the grid from its boundary: one per row and column end."""
        return tuple(entry_edges(self.config.grid.rows, self.config.grid.columns))


__all__ = ["GridScenario", "entry_edges", "grid_lines", "grid_network"]
