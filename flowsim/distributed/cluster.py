"""Starting or joining Ray: local by default, a cluster with ``sampler.address``."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any

from flowsim.config import FlowsimConfig, SamplerConfig
from flowsim.errors import ConfigError, FlowsimError

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


def _job_env_vars() -> dict[str, str]:
    """Environment variables the Ray job this driver runs in already sets for its workers.

    Inside ``ray job submit`` Ray merges the job's ``runtime_env`` with the driver's
    ``ray.init(runtime_env=...)`` and refuses a variable set by both; flowsim's thread
    defaults give way to the job's.
    """
    import json

    injected = os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR")
    if not injected:
        return {}
    try:
        runtime_env = json.loads(injected).get("runtime_env") or {}
    except (ValueError, AttributeError):
        return {}
    return dict(runtime_env.get("env_vars") or {})


#: Ray 2.60's switch that keeps a one-machine instance on the address it is given: unset, Ray
#: replaces ``127.0.0.1`` by the machine's network address and its ports listen there.
LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """While Ray processes start inside it (a local instance, ``ray.cluster_utils`` nodes; they
    inherit the environment), Ray keeps 127.0.0.1 and listens there only; a value of the switch
    the user set is left as it is."""
    if LOOPBACK_SWITCH in os.environ:
        yield
        return
    from ray._private import ray_constants  # read once when ray is imported: set it here too

    before = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[LOOPBACK_SWITCH] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        os.environ.pop(LOOPBACK_SWITCH, None)
        ray_constants.ENABLE_RAY_CLUSTER = before


#: Attempts at starting the private local Ray instance: Ray gives its raylet a fixed 30 s to
#: register, which a machine busy with other work can miss once.
LOCAL_START_ATTEMPTS = 2


class RayStartFailed(FlowsimError, RuntimeError):
    """The private local Ray instance did not come up (the CLI says so, exit 1)."""


def _start_local(num_cpus: int, common: dict[str, Any]) -> None:
    """Start the private loopback Ray instance, retrying once; raise :class:`RayStartFailed`."""
    import ray

    for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
        try:
            with loopback_only():
                ray.init(
                    # "local": always a new private instance, even where `ray start` left a
                    # cluster on this machine (plain ray.init() would join it and refuse num_cpus)
                    address="local",
                    num_cpus=num_cpus,
                    object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                    _node_ip_address="127.0.0.1",
                    # runners at the driver's priority: they are the work (Ray's default, 15,
                    # puts them behind every other process of a shared machine)
                    _system_config={"worker_niceness": 0},
                    **common,
                )
            return
        except Exception as error:  # Ray raises a bare Exception when its raylet is late
            ray.shutdown()  # stop what the failed attempt started before trying again
            if attempt == LOCAL_START_ATTEMPTS:
                raise RayStartFailed(
                    f"Ray could not start its local instance on 127.0.0.1 "
                    f"({LOCAL_START_ATTEMPTS} attempts; Ray said: {error}). This happens on "
                    "a machine too busy for Ray's raylet to register within Ray's 30 s; run "
                    "again when it is quieter, or sample without Ray: "
                    "--set sampler.num_workers=0."
                ) from None


def init_ray(sampler: SamplerConfig, num_cpus: int | None = None) -> dict[str, Any]:
    """Start a local Ray instance or join the configured cluster (once per process).

    Returns the cluster's total resources. A local instance has the dashboard off and a
    bounded object store, and every one of its ports listens on 127.0.0.1 only (Ray 2.60
    otherwise swaps ``127.0.0.1`` for the machine's network address and listens there);
    Ray's token authentication stays on as well (docs/security.md). Its workers run at the
    driver's priority (Ray's own default starts them at niceness 15).

    With ``sampler.address: null`` and ``RAY_ADDRESS`` set, flowsim joins that cluster as Ray's
    own ``ray.init()`` does: this is how ``flowsim train`` started by ``ray job submit`` (which
    sets ``RAY_ADDRESS`` for its entrypoint) runs its runners on the job's cluster instead of
    starting a second, private Ray on the head node (docs/cluster.md). An ``http://``
    ``RAY_ADDRESS`` (a job server's, for ``ray job submit``) is refused with the fix, as Ray's
    own ``ray.init`` refuses it.
    """
    import ray

    if ray.is_initialized():
        return ray.cluster_resources()
    threads = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    job_env = _job_env_vars()
    common: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": False,
        "runtime_env": {"env_vars": {k: v for k, v in threads.items() if k not in job_env}},
    }
    address = sampler.address
    environment_address = os.environ.get("RAY_ADDRESS", "")
    if address is None and environment_address.startswith(("http://", "https://")):
        raise ClusterUnavailable(
            f"RAY_ADDRESS={environment_address!r} is a job server's address (for `ray job "
            "submit`), not a cluster to join; set RAY_API_SERVER_ADDRESS for the job CLI instead "
            "and unset RAY_ADDRESS (a local instance), or set it to the cluster's host:port."
        )
    if address is None and environment_address:
        try:
            ray.init(address=environment_address, **common)
        except ConnectionError as error:
            raise ClusterUnavailable(
                f"RAY_ADDRESS={environment_address!r} names no running Ray cluster ({error}); "
                "start one with `ray start --head`, or unset RAY_ADDRESS for a local instance."
            ) from None
    elif address is None:
        _start_local(num_cpus or os.cpu_count() or 1, common)
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
