"""Starting or joining Ray: local by default, a cluster with ``sampler.address``."""

from __future__ import annotations

import os
import socket
from typing import Any

from flowsim.config import FlowsimConfig, SamplerConfig
from flowsim.errors import ConfigError

#: Object store for a local instance: bounded, so a 24 GiB laptop keeps room for SUMO.
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2


class ClusterUnavailable(ConfigError, ConnectionError):
    """The Ray cluster named by ``sampler.address`` cannot be reached (a setting to fix)."""


def _probe(address: str, timeout: float) -> None:
    """Fail within ``timeout`` s if nothing listens at ``host:port`` (Ray would retry for long)."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(
            f"sampler.address {address!r} is not host:port, ray://host:port, auto or null."
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as error:
        raise ClusterUnavailable(
            f"no Ray cluster answers at sampler.address {address!r} within {timeout:g} s "
            f"({error}); start one with `ray start --head`, fix the address, or set "
            "sampler.address: null for a local instance."
        ) from None


def placement_bundles(config: FlowsimConfig, trainer_cpus: float = 1.0) -> list[dict[str, float]]:
    """The resources a trainer with its runners needs: one bundle for it, one per runner.

    Give them to Ray Tune as ``PlacementGroupFactory(placement_bundles(config))`` so that each
    trial's runner actors are placed inside its own placement group and trials never starve
    each other. A trainer that only waits on its runners can ask for ``trainer_cpus=0``.
    """
    runners = max(config.sampler.num_workers, 0)
    per_runner = dict(config.sampler.resources_per_worker)
    return [{"CPU": float(trainer_cpus)}, *[dict(per_runner) for _ in range(runners)]]


def init_ray(sampler: SamplerConfig, num_cpus: int | None = None) -> dict[str, Any]:
    """Start a local Ray instance or join the configured cluster (once per process).

    Returns the cluster's total resources. A local instance has the dashboard off and a
    bounded object store; its ports listen on every interface, protected by Ray's token
    authentication (on by default for a new local instance in Ray 2.60; docs/security.md).
    """
    import ray

    if ray.is_initialized():
        return ray.cluster_resources()
    common: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": False,
        "runtime_env": {"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}},
    }
    address = sampler.address
    if address is None:
        ray.init(
            num_cpus=num_cpus or os.cpu_count(),
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            _node_ip_address="127.0.0.1",
            **common,
        )
    elif address == "auto":
        try:
            ray.init(address="auto", **common)
        except ConnectionError as error:
            raise ClusterUnavailable(
                f"sampler.address: auto found no running Ray cluster ({error}); start one with "
                "`ray start --head` or set sampler.address: null."
            ) from None
    else:
        _probe(address, sampler.connect_timeout_s)
        try:
            ray.init(address=address, **common)
        except ConnectionError as error:
            raise ClusterUnavailable(f"could not join Ray at {address!r}: {error}") from None
    return ray.cluster_resources()
