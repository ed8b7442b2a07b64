"""How `init_ray` picks the Ray to use from the environment (the job test covers joining)."""

from __future__ import annotations

import pytest

from flowsim.config import FlowsimConfig
from flowsim.distributed.cluster import ClusterUnavailable, init_ray


def test_a_job_servers_http_address_is_refused_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")
    with pytest.raises(ClusterUnavailable, match="RAY_API_SERVER_ADDRESS"):
        init_ray(FlowsimConfig().sampler)
    assert not ray.is_initialized()
