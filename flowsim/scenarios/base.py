"""What every scenario produces, and the on-disk cache of built SUMO networks."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flowsim.errors import FlowsimError

#: Bump when a generator's output changes, so stale cached networks are not reused.
GENERATOR_VERSION = "1"


@dataclass(frozen=True)
class PlacedVehicle:
    """A vehicle's start: id, group (SUMO vType), edge, lane and position on the edge (m)."""

    vehicle_id: str
    group: str
    edge: str
    lane: int
    position: float


@dataclass(frozen=True)
class ScenarioInstance:
    """One concrete network and demand, ready for the kernel to load.

    Attributes:
        net_file: SUMO network (``.net.xml``).
        route_file: SUMO routes with vehicle types and vehicles.
        length: length of the loop a vehicle drives (m), or of the main route.
        ring_edges: edge ids in driving order around the loop.
        edge_offsets: distance from the loop's origin to each edge's start (m).
        vehicles: where each vehicle starts, in id order.
        route_loops: loops in each vehicle's initial route (the router extends them).
        lanes: the most lanes on any edge.
        open: vehicles enter on inflows and leave at exits (no loop, no router); ``length``
            and ``edge_offsets`` then describe the main route, if any.
        traffic_lights: ids of the network's traffic-light programmes.
        route_files: more route files, loaded after ``route_file`` (your own files' demand).
        additional_files: SUMO additional files of the scenario (``sim.additional_files``
            come on top).
        begin: the simulated second SUMO starts at (``--begin``).
        end: the end of the demand window (SUMO's ``--end``), or None; under flowsim's control
            SUMO keeps running past it, so an episode's length is the env's.
    """

    net_file: Path
    route_file: Path
    length: float
    ring_edges: tuple[str, ...]
    edge_offsets: dict[str, float]
    vehicles: tuple[PlacedVehicle, ...]
    route_loops: int
    lanes: int = 1
    #: Keeps alive whatever owns the files (e.g. a private route folder deleted with its owner).
    files_owner: object = field(default=None, compare=False, repr=False)
    open: bool = False
    traffic_lights: tuple[str, ...] = ()
    route_files: tuple[Path, ...] = ()
    additional_files: tuple[Path, ...] = ()
    begin: float = 0.0
    end: float | None = None

    @property
    def all_route_files(self) -> tuple[Path, ...]:
        """Every route file SUMO loads, flowsim's (vehicle types, inflows) first."""
        return (self.route_file, *self.route_files)

    @property
    def vehicle_ids(self) -> tuple[str, ...]:
        """All vehicle ids, in the order the kernel's arrays use."""
        return tuple(vehicle.vehicle_id for vehicle in self.vehicles)

    def start_positions(self) -> np.ndarray:
        """Each vehicle's initial position along the loop (m)."""
        return np.array(
            [self.edge_offsets[v.edge] + v.position for v in self.vehicles], dtype=np.float64
        )


class NetconvertError(FlowsimError, RuntimeError):
    """netconvert rejected a generated network."""


def cache_dir() -> Path:
    """Where built networks are kept: ``$FLOWSIM_CACHE_DIR`` or ``~/.cache/flowsim``."""
    root = os.environ.get("FLOWSIM_CACHE_DIR") or Path.home() / ".cache" / "flowsim"
    return Path(root)


def parameter_hash(kind: str, params: dict[str, object]) -> str:
    """A short stable hash of a generator's name, version and parameters."""
    payload = json.dumps(
        {"kind": kind, "version": GENERATOR_VERSION, "params": params}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def cached_build(kind: str, params: dict[str, object], build: Callable[[Path], None]) -> Path:
    """Return the cached folder for ``params``, running ``build(folder)`` once if absent.

    The folder is built in a temporary sibling and renamed into place, so concurrent
    processes never see a half-written network.
    """
    target = cache_dir() / "networks" / f"{kind}-{parameter_hash(kind, params)}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(staging)
        (staging / "params.json").write_text(json.dumps(params, sort_keys=True, indent=1))
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # lost a race only if the winner's folder is there
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def sumo_binary(name: str) -> str:
    """Path of a SUMO executable (``sumo``, ``sumo-gui``, ``netconvert``) from eclipse-sumo."""
    import sumo

    path = Path(sumo.SUMO_HOME) / "bin" / name
    if not path.exists():
        raise FlowsimError(
            f"{name} is missing from the eclipse-sumo package at {path}; "
            "reinstall it with `pip install --force-reinstall eclipse-sumo`."
        )
    return str(path)


def run_netconvert(args: list[str], cwd: Path) -> None:
    """Run netconvert with ``args`` in ``cwd``; raise :class:`NetconvertError` with its output."""
    command = [sumo_binary("netconvert"), *args]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise NetconvertError("netconvert failed: " + " | ".join(detail))
