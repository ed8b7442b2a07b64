"""Ring routing: routes go around the ring and are renewed before they run out."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from flowsim.controllers import ContinuousRouter, ring_route

RING = ["bottom", "right", "top", "left"]


def test_ring_route_starts_on_the_edge_and_goes_around_loops_times() -> None:
    route = ring_route("top", RING, loops=3)
    assert len(route) == len(RING) * 3 + 1
    assert route[0] == route[-1] == "top"
    for edge, following in itertools.pairwise(route):
        assert RING.index(following) == (RING.index(edge) + 1) % len(RING)
    assert route.count("top") == 4 and route.count("bottom") == 3


def test_ring_route_rejects_edges_off_the_ring_and_bad_loops() -> None:
    with pytest.raises(ValueError, match="'middle' is not on the ring"):
        ring_route("middle", RING, 2)
    with pytest.raises(ValueError, match="loops must be >= 1"):
        ring_route("top", RING, 0)


def test_router_renews_only_routes_with_less_than_a_loop_left() -> None:
    router = ContinuousRouter(RING, loops=5)
    edges = ["bottom", "right", "top", "left", "bottom"]
    remaining = np.array([4, 3, 0, 40, 2])
    routes = router.new_routes(edges, remaining)
    assert sorted(routes) == [1, 2, 4]
    for index, route in routes.items():
        assert route == ring_route(edges[index], RING, 5)


def test_router_returns_nothing_when_every_route_is_long_enough() -> None:
    router = ContinuousRouter(RING, loops=2)
    assert router.new_routes(["top", "left"], np.array([4, 8])) == {}
    assert router.new_routes([], np.array([], dtype=int)) == {}


def test_a_renewed_route_is_not_renewed_again() -> None:
    router = ContinuousRouter(RING, loops=1)
    route = router.new_routes(["right"], np.array([0]))[0]
    assert router.new_routes(["right"], np.array([len(route) - 1])) == {}


def test_router_waits_while_vehicles_are_inside_a_junction() -> None:
    router = ContinuousRouter(RING, loops=2)
    assert router.new_routes([":top_0", ""], np.array([0, 0])) == {}


def test_router_rejects_edges_off_the_ring_and_mismatched_inputs() -> None:
    router = ContinuousRouter(RING, loops=2)
    with pytest.raises(ValueError, match="vehicle 0 is on edge 'highway'"):
        router.new_routes(["highway"], np.array([0]))
    with pytest.raises(ValueError, match="got 2 edges but 1 remaining"):
        router.new_routes(["top", "left"], np.array([0]))


def test_router_returns_fresh_lists() -> None:
    router = ContinuousRouter(RING, loops=2)
    first = router.new_routes(["top"], np.array([0]))[0]
    first.append("nowhere")
    assert router.new_routes(["top"], np.array([0]))[0][-1] == "top"


def test_router_rejects_bad_rings() -> None:
    with pytest.raises(ValueError, match="ring_edges is empty"):
        ContinuousRouter([], loops=2)
    with pytest.raises(ValueError, match="lists an edge twice"):
        ContinuousRouter(["a", "b", "a"], loops=2)
    with pytest.raises(ValueError, match="loops must be >= 1"):
        ContinuousRouter(RING, loops=0)
