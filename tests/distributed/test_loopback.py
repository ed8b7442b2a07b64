"""The local Ray instance flowsim starts listens on the loopback interface only."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

#: TCP states in /proc/net/tcp*: 0A is LISTEN.
LISTEN = "0A"


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _socket_inodes(pids: set[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    return inodes


def _listening_addresses(inodes: set[str]) -> list[str]:
    """Local addresses of the listening TCP sockets among ``inodes``, as text."""
    addresses = []
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] != LISTEN or fields[9] not in inodes:
                continue
            raw = bytes.fromhex(fields[1].split(":")[0])
            # /proc prints each 32-bit word in host (little-endian) order
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            addresses.append(socket.inet_ntop(family, words))
    return addresses


@pytest.fixture(scope="module")
def local_ray() -> Iterator[tuple[subprocess.Popen, list[str]]]:
    """A process that started flowsim's local Ray instance and ran one task in a worker; its
    ``ready`` line carries the driver's and the worker's niceness."""
    script = textwrap.dedent(
        """
        import os
        import sys
        import ray
        from flowsim.config import SamplerConfig
        from flowsim.distributed.cluster import init_ray

        init_ray(SamplerConfig(), num_cpus=1)
        worker_nice = ray.get(ray.remote(lambda: os.nice(0)).remote())  # a worker is up too
        print("ready", os.nice(0), worker_nice, flush=True)
        sys.stdin.readline()
        ray.shutdown()
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline().split()
        assert ready[:1] == ["ready"], "init_ray's process did not come up"
        yield process, ready[1:]
    finally:
        if process.stdin is not None:
            process.stdin.write("\n")
            process.stdin.flush()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_local_ray_listens_on_loopback_only(local_ray: tuple[subprocess.Popen, list[str]]) -> None:
    """Every listening port of the processes init_ray starts is on 127.0.0.1 (or ::1 /
    the IPv4-mapped loopback), never on 0.0.0.0 or the machine's own address."""
    process, _ = local_ray
    pids = _descendants(process.pid) | {process.pid}
    addresses = _listening_addresses(_socket_inodes(pids))
    assert addresses, "found no listening socket of Ray's processes"
    loopback = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
    assert set(addresses) <= loopback, f"Ray listens on {sorted(set(addresses))}"


def test_local_ray_workers_run_at_the_drivers_priority(
    local_ray: tuple[subprocess.Popen, list[str]],
) -> None:
    """The runners are the work, not background: Ray's default would start its workers at
    niceness 15, behind the driver and anything else on a shared machine."""
    _, (driver_nice, worker_nice) = local_ray
    assert worker_nice == driver_nice
