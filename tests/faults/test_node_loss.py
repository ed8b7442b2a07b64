"""Training on a two-node Ray cluster survives losing the worker node mid-iteration."""

from __future__ import annotations

import contextlib
import csv
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from flowsim.config import FlowsimConfig, apply_overrides
from flowsim.distributed.cluster import loopback_only
from flowsim.runs.events import read_events
from flowsim.runs.training import train

pytestmark = pytest.mark.cluster

FRAGMENT = 200


def test_node_removed_mid_iteration_training_goes_on(
    tmp_path: Path, short_run: Callable[..., list[str]]
) -> None:
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    # The whole test inside: the nodes and the driver joining them agree on 127.0.0.1.
    loopback = contextlib.ExitStack()
    loopback.enter_context(loopback_only())
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        worker = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        config = apply_overrides(
            FlowsimConfig(),
            short_run(
                f"sampler.address={cluster.address}",
                iterations=6,
                horizon=500,
                warmup=10,
                fragment=FRAGMENT,
                minibatch=None,
                workers=2,
                epochs=1,
            ),
        )
        nodes_seen: list[set[str]] = []

        def remove_worker(row: dict, trainer) -> None:
            if row["iteration"] == 1:
                nodes_seen.append({d["node"] for d in trainer.group.describe()})
                # Gone during iteration 2 (or 3): the survivor samples the lost share too.
                threading.Timer(0.2, cluster.remove_node, args=(worker,)).start()

        run = train(config, out=tmp_path, callback=remove_worker)
    finally:
        ray.shutdown()
        cluster.shutdown()
        loopback.close()
    assert len(nodes_seen[0]) == 2  # one runner per node before the loss
    with open(run.directory / "progress.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    # Full batches throughout: the survivor samples the lost runner's share too.
    assert [int(r["env_steps"]) for r in rows] == [2 * FRAGMENT * i for i in range(1, 7)]
    assert int(float(rows[-1]["runner_restarts"])) >= 1
    events = [e for e in read_events(run.directory) if e["kind"] == "runner_restart"]
    assert events and events[0]["iteration"] >= 2  # after the removal, when it was noticed
