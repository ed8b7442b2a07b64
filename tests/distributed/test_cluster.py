"""The sampler on a two-node Ray cluster (ray.cluster_utils.Cluster on this machine)."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from flowsim.config import FlowsimConfig, apply_overrides
from flowsim.distributed import RayRunnerGroup
from flowsim.distributed.cluster import ClusterUnavailable, init_ray, loopback_only

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster():
    """A head node and a worker node, one CPU each; the driver is connected to it."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    with loopback_only():  # the nodes the tests add later keep the switch too
        nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        yield nodes
    ray.shutdown()
    nodes.shutdown()


def test_node_loss_is_survived_and_capacity_comes_back(cluster) -> None:
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    config = apply_overrides(
        FlowsimConfig(),
        ["env.warmup_steps=10", "env.horizon=150", f"sampler.address={cluster.address}"],
    )
    group = RayRunnerGroup(config, 2)
    try:
        first = group.sample(num_steps=100)
        nodes = {m["node"] for m in first.metrics["runners"]}
        assert len(nodes) == 2  # one runner per node

        remover = threading.Timer(0.3, cluster.remove_node, args=(worker,))
        remover.start()
        batch = group.sample(num_steps=10_000)  # the worker node goes away meanwhile
        remover.join()
        assert len(batch) == 20_000 and group.runner_restarts == 1
        # Nothing counted twice: each env's rows form one block that follows itself in time.
        ended = batch.terminated | batch.truncated | batch.fragment_end
        for env in np.unique(batch.env_index):
            rows = np.flatnonzero(batch.env_index == env)
            assert np.array_equal(rows, np.arange(rows[0], rows[-1] + 1))
            inner = rows[:-1][~ended[rows[:-1]]]
            assert np.array_equal(batch.obs[inner + 1], batch.next_obs[inner])

        cluster.add_node(num_cpus=1)  # capacity returns: the replacement gets placed
        deadline = time.monotonic() + 60
        while len(group._live_runners(wait_s=1)) < 2 and time.monotonic() < deadline:
            pass
        again = group.sample(num_steps=20)
        assert set(np.unique(again.env_index)) == {0, 1}
        assert len({m["node"] for m in again.metrics["runners"]}) == 2
    finally:
        group.close()


def test_unreachable_address_fails_fast_naming_the_setting() -> None:
    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sampler = apply_overrides(
        FlowsimConfig(), [f"sampler.address=127.0.0.1:{port}", "sampler.connect_timeout_s=2"]
    ).sampler
    import ray

    if ray.is_initialized():
        ray.shutdown()
    started = time.monotonic()
    with pytest.raises(ClusterUnavailable, match=r"sampler\.address"):
        init_ray(sampler)
    assert time.monotonic() - started < 10
