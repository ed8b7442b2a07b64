"""Fixtures: a Ray cluster of ``ray start`` processes on this machine, on the loopback only.

Each node is one ``ray start --block`` process in its own session (process group), so that
stopping the cluster kills exactly the processes it started (never ``ray stop``, which would
stop every Ray on the machine, other people's included).

Ray's CLI replaces ``--node-ip-address 127.0.0.1`` with the machine's routable address
(``ray._private.services.resolve_ip_for_localhost``). To keep every node on the loopback:

- the head runs with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, Ray's switch for a one-machine
  head, under which its own address is 127.0.0.1;
- a worker node, which that switch would refuse to start, runs ``ray start`` with the
  rewrite turned off in that one process (:data:`RAY_START_LOOPBACK`) and without
  ``--node-ip-address``: Ray then takes as its own the address from which it reaches the
  head, 127.0.0.1. (The head's ports listen on 127.0.0.1 only, so ``127.0.0.2`` or the
  machine's own address would not reach it.)

Every port that Ray would otherwise take from a fixed default (GCS 6379, dashboard 8265, Ray
client 10001, dashboard agent 52365) is a free one picked here, so that several clusters can
run on one machine at once. Token authentication is on, with a token made for the cluster.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent

#: ``ray start`` for a worker node that joins a head on 127.0.0.1 without Ray rewriting that
#: address to the machine's routable one (a one-machine test only; on real machines give the
#: head's real address).
RAY_START_LOOPBACK = (
    "import sys; import ray._private.services as services; "
    "services.resolve_ip_for_localhost = lambda host: host; "
    "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; sys.exit(main())"
)

#: Object store per node: small, the machine is shared and a ring batch is kilobytes.
OBJECT_STORE_BYTES = 100 * 1024**2


def free_port() -> int:
    """A TCP port free on the loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RayNode:
    """One ``ray start --block`` process and the Ray processes it started."""

    name: str
    process: subprocess.Popen
    temp_dir: Path
    log: Path

    def pids(self) -> list[int]:
        """Every live process of this node's process group."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == self.process.pid and fields[0] != "Z":  # pgid; not a zombie
                found.append(int(entry.name))
        return found

    def raylet_pid(self) -> int:
        """The pid of this node's raylet."""
        for pid in self.pids():
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "raylet":
                    return pid
            except OSError:
                continue
        raise RuntimeError(f"{self.name}: no raylet among {self.pids()}")

    def stop(self, timeout: float = 8.0) -> None:
        """SIGTERM the node's process group, then SIGKILL what is left of it."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not self.pids():
                break
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + timeout
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.2)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


@dataclass
class LocalCluster:
    """A head and worker nodes started with ``ray start`` under ``root``."""

    root: Path
    env: dict[str, str]
    gcs_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    nodes: list[RayNode] = field(default_factory=list)

    @property
    def address(self) -> str:
        """The GCS address nodes and drivers join."""
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard(self) -> str:
        """The job server's address for ``ray job submit --address``."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    @classmethod
    def create(cls, root: Path) -> LocalCluster:
        """A cluster description with its own auth token under ``root`` (nothing started)."""
        root.mkdir(parents=True, exist_ok=True)
        token = root / "auth_token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        env = dict(os.environ)
        for name in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN"):
            env.pop(name, None)
        env.update(
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN_PATH=str(token),
            RAY_USAGE_STATS_ENABLED="0",
            PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # `flowsim` for job entrypoints
            PYTHONUNBUFFERED="1",
        )
        return cls(root=root, env=env)

    def _start(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        launcher: list[str] | None = None,
    ) -> RayNode:
        temp_dir = self.root / name
        temp_dir.mkdir(parents=True, exist_ok=True)
        log = self.root / f"{name}.log"
        command = [
            *(launcher or [str(BIN / "ray")]),
            "start",
            "--block",
            *args,
            "--num-cpus",
            "1",
            "--temp-dir",
            str(temp_dir),
            "--object-store-memory",
            str(OBJECT_STORE_BYTES),
            "--ray-client-server-port",
            str(free_port()),
            "--dashboard-agent-listen-port",
            str(free_port()),
            "--disable-usage-stats",
        ]
        with open(log, "w") as stream:
            process = subprocess.Popen(
                command,
                env=env,
                stdout=stream,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopped by that id alone
            )
        node = RayNode(name, process, temp_dir, log)
        self.nodes.append(node)
        return node

    def start_head(self, extra_env: dict[str, str] | None = None) -> RayNode:
        """``ray start --head`` with the dashboard (and its job server) on 127.0.0.1."""
        env = {**self.env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", **(extra_env or {})}
        node = self._start(
            "head",
            [
                "--head",
                "--node-ip-address",
                "127.0.0.1",
                "--port",
                str(self.gcs_port),
                "--include-dashboard",
                "true",
                "--dashboard-host",
                "127.0.0.1",
                "--dashboard-port",
                str(self.dashboard_port),
            ],
            env,
        )
        self._wait_for_log(node, "This command will now block forever")
        return node

    def add_worker(self, name: str, extra_env: dict[str, str] | None = None) -> RayNode:
        """``ray start --address`` of a worker node (its own temp dir and CPU count)."""
        node = self._start(
            name,
            ["--address", self.address],
            {**self.env, **(extra_env or {})},
            launcher=[sys.executable, "-c", RAY_START_LOOPBACK],
        )
        self._wait_for_log(node, "This command will now block forever")
        return node

    def _wait_for_log(self, node: RayNode, marker: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in node.log.read_text(errors="replace"):
                return
            if node.process.poll() is not None:
                break
            time.sleep(0.5)
        raise RuntimeError(f"ray start of {node.name} did not come up:\n{node.log.read_text()}")

    def ray(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        """Run the ``ray`` CLI against this cluster (its token, its job server)."""
        return subprocess.run(
            [str(BIN / "ray"), *args],
            # The switch keeps the CLI from rewriting 127.0.0.1 (see the module docstring).
            env={
                **self.env,
                "RAY_API_SERVER_ADDRESS": self.dashboard,
                "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            },
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def stop(self) -> None:
        """Stop every node this cluster started, workers first."""
        for node in reversed(self.nodes):
            node.stop()


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[LocalCluster]:
    """A head and one worker node, one CPU each, started with ``ray start``; each node builds
    networks into its own cache (``FLOWSIM_CACHE_DIR`` per ``ray start``), as machines without
    a shared filesystem would."""
    # A short root: Ray's Unix sockets live under the temp dir (at most 107 bytes of path).
    root = Path(tempfile.mkdtemp(prefix="flowsim-ray-"))
    cluster = LocalCluster.create(root)
    try:
        cluster.start_head({"FLOWSIM_CACHE_DIR": str(root / "cache-head")})
        cluster.add_worker("worker", {"FLOWSIM_CACHE_DIR": str(root / "cache-worker")})
        yield cluster
    finally:
        cluster.stop()
        left = [pid for node in cluster.nodes for pid in node.pids()]
        if not left:
            shutil.rmtree(root, ignore_errors=True)
        assert not left, f"Ray processes left running: {left}"
