"""Shared fixtures: a private network cache per test session, repository paths."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flowsim import testing

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"


@pytest.fixture(scope="session", autouse=True)
def _network_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Build networks into a fresh cache so tests exercise netconvert, not a stale cache."""
    os.environ["FLOWSIM_CACHE_DIR"] = str(tmp_path_factory.mktemp("flowsim-cache"))


@pytest.fixture
def short_run() -> Callable[..., list[str]]:
    """The overrides of a short training run (`flowsim.testing.short_run`)."""
    return testing.short_run


@pytest.fixture
def ring_yaml() -> Path:
    """The shipped ring experiment."""
    return SCENARIOS / "ring.yaml"


@pytest.fixture(scope="session")
def display() -> Iterator[str]:
    """A private Xvfb display for GUI tests (``.ci/run`` installs xvfb); Xvfb picks the number."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb; .ci/run does this)")
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    with os.fdopen(read_end) as announced:
        number = announced.readline().strip()  # written once the server accepts clients
    if server.poll() is not None or not number:
        pytest.fail("Xvfb could not start")
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray instance for the module (the machine's CPUs), shut down afterwards."""
    import ray

    from flowsim.config import FlowsimConfig
    from flowsim.distributed.cluster import init_ray

    if ray.is_initialized():
        ray.shutdown()
    init_ray(FlowsimConfig().sampler)
    yield
    ray.shutdown()
