"""Time-space diagrams: vehicle positions along a route against time, coloured by speed.

SUMO's FCD output (one ``<vehicle>`` record per vehicle per step, with its lane and position on
the lane) is read with sumolib into arrays, and each record's lane position becomes a distance
along a route: the edge's offset from the route's start plus the position on the lane. The
route is any sequence of edges, so the same code serves the ring (its four edges, distances
taken modulo the loop length), a figure eight, the main road of a merge or a vehicle's route
through a grid or OSM network; internal junction lanes are placed between the edges they join.

Example:
    >>> from flowsim.viz.timespace import Route
    >>> ring = Route(edges=("bottom", "right"), offsets={"bottom": 0.0, "right": 50.0},
    ...              length=100.0, loop=True)
    >>> ring.positions(["right_0", "bottom_0", "elsewhere_0"], [10.0, 60.0, 1.0]).tolist()
    [60.0, 60.0, nan]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Route",
    "TimeSpace",
    "plot_time_space",
    "read_fcd",
    "read_replay",
    "wave_strength",
]


def _edge_of(lane_id: str) -> str:
    """The edge a lane belongs to: ``bottom_0`` -> ``bottom``, ``:J0_1_0`` -> ``:J0_1``."""
    return lane_id.rsplit("_", 1)[0]


@dataclass(frozen=True)
class Route:
    """A sequence of edges and where each starts along it (m), for distances along the route.

    Attributes:
        edges: edge ids in driving order.
        offsets: distance from the route's start to the start of each edge (and of the internal
            junction edges between them).
        length: the route's length (m); on a loop, one lap.
        loop: whether the route closes on itself (a ring): distances are taken modulo ``length``.
    """

    edges: tuple[str, ...]
    offsets: dict[str, float]
    length: float
    loop: bool = False

    @classmethod
    def from_net(
        cls, net_file: str | Path, edges: Sequence[str], loop: bool | None = None
    ) -> Route:
        """The route along ``edges`` of the SUMO network ``net_file``, lengths read by sumolib.

        Internal junction lanes between consecutive edges (the connection's ``via`` lanes) get
        the distance where the previous edge ends, so a vehicle crossing a junction keeps a
        continuous position. ``loop`` defaults to whether the last edge leads into the first
        (a ring, a figure eight); on a loop the junction after the last edge counts too.
        """
        import sumolib

        if not edges:
            raise ValueError("a route needs at least one edge")
        net = sumolib.net.readNet(str(net_file), withInternal=True)
        missing = [e for e in edges if not net.hasEdge(e)]
        if missing:
            raise ValueError(f"edges {missing} are not in the network {net_file}")
        if loop is None:
            loop = bool(net.getEdge(edges[-1]).getConnections(net.getEdge(edges[0])))
        offsets: dict[str, float] = {}
        distance = 0.0
        for index, edge_id in enumerate(edges):
            edge = net.getEdge(edge_id)
            offsets.setdefault(edge_id, distance)
            distance += edge.getLength()
            following = index + 1 < len(edges) or loop
            if not following:
                continue
            after = net.getEdge(edges[(index + 1) % len(edges)])
            connections = edge.getConnections(after)
            via = connections[0].getViaLaneID() if connections else ""
            seen: set[str] = set()
            while via and via not in seen:  # an internal lane, possibly split at the junction
                seen.add(via)
                lane = net.getLane(via)
                offsets.setdefault(_edge_of(via), distance)
                distance += lane.getLength()
                outgoing = lane.getOutgoing()
                via = outgoing[0].getViaLaneID() if outgoing else ""
        return cls(edges=tuple(edges), offsets=offsets, length=distance, loop=loop)

    def positions(self, lanes: Sequence[str], lane_positions: Iterable[float]) -> np.ndarray:
        """Distance along the route (m) of vehicles on ``lanes`` at ``lane_positions``.

        NaN where a vehicle is on an edge that is not part of the route.
        """
        start = np.array([self.offsets.get(_edge_of(lane), np.nan) for lane in lanes])
        along = start + np.fromiter(lane_positions, dtype=np.float64, count=len(lanes))
        return np.mod(along, self.length) if self.loop else along

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready mapping (stored in ``replay.json``)."""
        return {
            "edges": list(self.edges),
            "offsets": self.offsets,
            "length": self.length,
            "loop": self.loop,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Route:
        """The route stored by :meth:`to_json`."""
        return cls(
            edges=tuple(data["edges"]),
            offsets={str(k): float(v) for k, v in data["offsets"].items()},
            length=float(data["length"]),
            loop=bool(data["loop"]),
        )


@dataclass(frozen=True)
class TimeSpace:
    """Trajectories as arrays: entry ``[t, v]`` is vehicle ``v`` at time ``time[t]``.

    ``position`` (m along the route) and ``speed`` (m/s) are NaN where a vehicle is not in the
    network or not on the route.
    """

    time: np.ndarray
    vehicle_ids: tuple[str, ...]
    vehicle_types: tuple[str, ...]
    position: np.ndarray
    speed: np.ndarray
    route: Route
    #: the record time (s) after which the replayed driver acts (the end of the warm-up)
    control_start: float = 0.0
    #: the vehicles to highlight (e.g. the AVs)
    highlight: tuple[str, ...] = field(default=())

    def columns(self, vehicle_ids: Iterable[str]) -> np.ndarray:
        """Column indices of ``vehicle_ids`` (those that appear in the data)."""
        index = {vehicle_id: i for i, vehicle_id in enumerate(self.vehicle_ids)}
        return np.array([index[v] for v in vehicle_ids if v in index], dtype=np.int64)


def read_fcd(
    path: str | Path,
    route: Route,
    control_start: float = 0.0,
    highlight: Sequence[str] = (),
) -> TimeSpace:
    """Read SUMO's FCD output into a :class:`TimeSpace` along ``route``.

    Expects SUMO's attribute order (``id … type speed pos lane``), as ``--fcd-output`` writes.
    """
    import sumolib

    times: dict[float, int] = {}
    columns: dict[str, int] = {}
    types: list[str] = []
    rows: list[int] = []
    cols: list[int] = []
    speeds: list[float] = []
    lane_ids: list[str] = []
    lane_positions: list[float] = []
    records = sumolib.xml.parse_fast_nested(
        str(path), "timestep", ["time"], "vehicle", ["id", "type", "speed", "pos", "lane"]
    )
    for step, vehicle in records:
        row = times.setdefault(float(step.time), len(times))
        column = columns.get(vehicle.id)
        if column is None:
            column = columns[vehicle.id] = len(columns)
            types.append(vehicle.type)
        rows.append(row)
        cols.append(column)
        speeds.append(float(vehicle.speed))
        lane_ids.append(vehicle.lane)
        lane_positions.append(float(vehicle.pos))
    if not rows:
        raise ValueError(f"{path} holds no vehicle records; is it SUMO FCD output?")
    shape = (len(times), len(columns))
    position = np.full(shape, np.nan)
    speed = np.full(shape, np.nan)
    position[rows, cols] = route.positions(lane_ids, lane_positions)
    speed[rows, cols] = speeds
    return TimeSpace(
        time=np.fromiter(times, dtype=np.float64, count=len(times)),
        vehicle_ids=tuple(columns),
        vehicle_types=tuple(types),
        position=position,
        speed=speed,
        route=route,
        control_start=control_start,
        highlight=tuple(highlight),
    )


def wave_strength(data: TimeSpace, start: float | None = None) -> float:
    """Mean over time slices of the speed variance across vehicles (m²/s²), from ``start`` s.

    A stop-and-go wave leaves some vehicles standing while others drive, in every slice: on
    the 22-vehicle ring the humans alone score about 5-7, a dissolved wave well under 1.
    ``start`` defaults to the middle of the controlled part (after ``data.control_start``):
    the wave needs time to form or to dissolve.
    """
    if start is None:
        start = data.control_start + 0.5 * (data.time[-1] - data.control_start)
    rows = data.time >= start
    on_route = ~np.isnan(data.position[rows])
    speeds = np.where(on_route, data.speed[rows], np.nan)
    counted = np.sum(on_route, axis=1) >= 2
    if not counted.any():
        return float("nan")
    return float(np.mean(np.nanvar(speeds[counted], axis=1)))


def _segments(time: np.ndarray, position: np.ndarray, loop_length: float | None) -> list:
    """Pieces of one trajectory without the jumps where a loop wraps or the vehicle is away."""
    keep = ~np.isnan(position)
    breaks = np.flatnonzero(~keep)
    if loop_length is not None:
        jumps = np.flatnonzero(np.abs(np.diff(np.where(keep, position, 0.0))) > loop_length / 2)
        breaks = np.union1d(breaks, jumps + 1)
    pieces = np.split(np.arange(len(time)), breaks)
    return [(time[p][keep[p]], position[p][keep[p]]) for p in pieces if keep[p].sum() > 1]


def plot_time_space(
    panels: Sequence[tuple[str, TimeSpace]],
    path: str | Path,
    max_speed: float | None = None,
) -> Path:
    """Draw one time-space panel per ``(title, data)`` side by side and save a PNG at ``path``.

    Every record is a dot at (time, position) coloured by speed on a shared scale (red slow,
    green fast); the ``highlight`` vehicles of each panel (the AVs) are drawn as black lines;
    a dashed line marks when the replayed driver took over. Panels share both axes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if max_speed is None:
        max_speed = max(float(np.nanmax(data.speed)) for _, data in panels)
    figure, axes = plt.subplots(
        1,
        len(panels),
        figsize=(6.0 * len(panels) + 1.0, 5.0),
        sharex=True,
        sharey=True,
        squeeze=False,
        constrained_layout=True,
    )
    dots = None
    for axis, (title, data) in zip(axes[0], panels, strict=True):
        times = np.broadcast_to(data.time[:, None], data.position.shape)
        present = ~np.isnan(data.position)
        dots = axis.scatter(
            times[present],
            data.position[present],
            c=data.speed[present],
            cmap="RdYlGn",
            vmin=0.0,
            vmax=max_speed,
            s=0.6,
            linewidths=0,
            rasterized=True,
        )
        loop = data.route.length if data.route.loop else None
        label: str | None = "AV"  # one legend entry for all AVs and all their pieces
        for column in data.columns(data.highlight):
            for seg_time, seg_position in _segments(data.time, data.position[:, column], loop):
                axis.plot(seg_time, seg_position, color="black", linewidth=1.2, label=label)
                label = None
        if data.control_start > data.time[0]:
            axis.axvline(
                data.control_start, color="0.3", linestyle="--", linewidth=1.0, label="warm-up ends"
            )
        axis.set_title(title)
        axis.set_xlabel("time (s)")
        axis.set_xlim(float(data.time[0]), float(data.time[-1]))
        axis.set_ylim(0.0, data.route.length)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="upper right", fontsize="small", framealpha=0.8)
    axes[0][0].set_ylabel(
        "position along the loop (m)" if panels[0][1].route.loop else "position along the route (m)"
    )
    assert dots is not None
    figure.colorbar(dots, ax=axes[0].tolist(), label="speed (m/s)", shrink=0.9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def read_replay(replay_dir: str | Path) -> TimeSpace:
    """The time-space data of a headless ``flowsim replay`` folder (its ``replay.json`` + FCD).

    The AVs are highlighted unless the humans' own model drove them (``driver: human``).
    """
    import json

    folder = Path(replay_dir)
    summary = json.loads((folder / "replay.json").read_text())
    fcd = summary.get("files", {}).get("fcd")
    if fcd is None:
        raise ValueError(f"{folder} has no FCD output; replay without --gui (or with --fcd).")
    if summary.get("route") is None:
        raise ValueError(
            f"{folder} was replayed on a network without a main route (an OSM area or your own "
            "SUMO files): a time-space diagram needs one; plot the ring, merge or figure eight."
        )
    highlight = summary["av_ids"] if summary["driver"] != "human" else []
    # FCD stamps a step's record with the time at which the step began, one step before the
    # time SUMO reports after it: the driver's first action follows the record stamped here.
    control_start = float(summary["control_start_s"]) - float(summary["step_length"])
    return read_fcd(
        folder / fcd,
        Route.from_json(summary["route"]),
        control_start=round(control_start, 9),
        highlight=highlight,
    )
