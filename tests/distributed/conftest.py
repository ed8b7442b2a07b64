"""Fixtures shared by the sampler tests."""

from __future__ import annotations

import pytest

from flowsim.config import FlowsimConfig
from flowsim.distributed.cluster import init_ray


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance for the module (2 CPUs here), shut down afterwards."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    init_ray(FlowsimConfig().sampler)
    yield
    ray.shutdown()
