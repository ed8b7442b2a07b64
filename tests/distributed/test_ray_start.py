"""A private Ray instance that does not come up in time: one retry, then a clear flowsim error."""

from __future__ import annotations

from typing import Any

import pytest
import ray

from flowsim.distributed import cluster
from flowsim.errors import FlowsimError

# Ray 2.60's own words when its raylet misses the 30 s it is given (ray/_private/node.py)
LATE_RAYLET = (
    "The current node timed out during startup. This could happen because some of the "
    "raylet failed to startup or the GCS has become overloaded."
)


def _late_raylet(times: int) -> tuple[list[dict[str, Any]], Any]:
    """A stand-in for ray.init that fails as Ray does ``times`` times, then succeeds."""
    calls: list[dict[str, Any]] = []

    def init(**kwargs: Any) -> None:
        calls.append(kwargs)
        if len(calls) <= times:
            raise Exception(LATE_RAYLET)  # Ray raises exactly this

    return calls, init


def test_a_late_raylet_is_retried_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls, init = _late_raylet(times=1)
    monkeypatch.setattr(ray, "init", init)
    cluster._start_local(2, {})
    assert len(calls) == 2
    assert all(call["address"] == "local" for call in calls)
    assert all(call["_node_ip_address"] == "127.0.0.1" for call in calls)


def test_a_raylet_late_every_time_is_a_flowsim_error_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls, init = _late_raylet(times=cluster.LOCAL_START_ATTEMPTS)
    monkeypatch.setattr(ray, "init", init)
    with pytest.raises(cluster.RayStartFailed) as caught:
        cluster._start_local(2, {})
    assert len(calls) == cluster.LOCAL_START_ATTEMPTS
    message = str(caught.value)
    assert isinstance(caught.value, FlowsimError)
    assert "sampler.num_workers=0" in message and "timed out during startup" in message
    assert caught.value.__cause__ is None  # shown without Ray's traceback
