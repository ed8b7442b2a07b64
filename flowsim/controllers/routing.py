"""Routing on closed loops: keep vehicles driving around a ring forever.

SUMO removes a vehicle when it reaches the end of its route, so a vehicle on a ring gets a
finite route of several loops and, before it runs out, a fresh one from where it is.

Example:
    >>> import numpy as np
    >>> router = ContinuousRouter(["bottom", "right", "top", "left"], loops=2)
    >>> router.new_routes(["top", "left"], np.array([9, 2]))
    {1: ['left', 'bottom', 'right', 'top', 'left', 'bottom', 'right', 'top', 'left']}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ring_route(start_edge: str, ring_edges: Sequence[str], loops: int) -> list[str]:
    """The route that starts on ``start_edge`` and drives ``loops`` times around the ring.

    It lists ``len(ring_edges)·loops + 1`` edges, ending back on ``start_edge``.
    """
    if start_edge not in ring_edges:
        raise ValueError(f"edge '{start_edge}' is not on the ring {list(ring_edges)}")
    if loops < 1:
        raise ValueError(f"loops must be >= 1, got {loops}")
    start = list(ring_edges).index(start_edge)
    one_loop = [*ring_edges[start:], *ring_edges[:start]]
    return one_loop * loops + [start_edge]


class ContinuousRouter:
    """Gives vehicles that are about to run out of route a fresh route around the ring.

    Args:
        ring_edges: edge ids in driving order around the ring, each once.
        loops: loops in each new route (>= 1).
    """

    def __init__(self, ring_edges: list[str], loops: int) -> None:
        if not ring_edges:
            raise ValueError("ring_edges is empty; a ring needs at least one edge")
        if len(set(ring_edges)) != len(ring_edges):
            raise ValueError(f"ring_edges lists an edge twice: {ring_edges}")
        if loops < 1:
            raise ValueError(f"loops must be >= 1, got {loops}")
        self.ring_edges = list(ring_edges)
        self.loops = int(loops)
        self._routes = {edge: ring_route(edge, self.ring_edges, self.loops) for edge in ring_edges}

    def new_routes(self, edges: list[str], remaining: np.ndarray) -> dict[int, list[str]]:
        """New routes for the vehicles with fewer than one loop of edges left.

        Args:
            edges: current edge of each vehicle.
            remaining: edges left in each vehicle's route after its current one.

        Returns:
            ``{vehicle index: route}`` for the vehicles to reroute, each route starting at the
            vehicle's current edge; empty when none needs one. Vehicles inside a junction
            (internal edges, ids starting with ``:``) or on no edge wait for a ring edge.
        """
        remaining = np.asarray(remaining)
        if len(edges) != len(remaining):
            raise ValueError(
                f"got {len(edges)} edges but {len(remaining)} remaining counts; one per vehicle"
            )
        routes: dict[int, list[str]] = {}
        for index in np.flatnonzero(remaining < len(self.ring_edges)).tolist():
            edge = edges[index]
            if not edge or edge.startswith(":"):
                continue
            if edge not in self._routes:
                raise ValueError(
                    f"vehicle {index} is on edge '{edge}', which is not on the ring "
                    f"{self.ring_edges}"
                )
            routes[index] = list(self._routes[edge])
        return routes
