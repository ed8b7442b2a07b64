"""The two ways to talk to SUMO: libsumo (in-process) and TraCI (a socket to a sumo process).

Both expose the same small surface of bulk reads and writes over lists of vehicle ids. libsumo
answers each getter in well under a microsecond, so it reads directly; TraCI pays about 40 µs
per call, so it subscribes every vehicle once and reads one subscription result per step.
"""

from __future__ import annotations

import contextlib
import gc
import io
import itertools
import os
import subprocess
import tempfile
import weakref
from typing import IO, Any

import numpy as np

from flowsim.errors import BackendUnavailable, SimulationCrashed

#: The libsumo simulation of this process is owned by at most one backend at a time; a weak
#: reference, so an env dropped without ``close()`` does not lock libsumo for the process.
_LIBSUMO_OWNER: list[weakref.ref[LibsumoBackend]] = []


def _libsumo_owner() -> LibsumoBackend | None:
    """The live backend holding this process's libsumo simulation, if any."""
    owner = _LIBSUMO_OWNER[0]() if _LIBSUMO_OWNER else None
    if owner is not None and owner.api is None:
        return None
    return owner


_LABELS = itertools.count()

#: The id of sumo-gui's main view.
GUI_VIEW = "View #0"


class Backend:
    """Common reads and writes over an object with the TraCI domain API (``api.vehicle`` …)."""

    name = "base"

    def __init__(self) -> None:
        self.api: Any = None
        #: whether the simulation runs in sumo-gui (a view to zoom and screenshot)
        self.gui = False

    # -- life cycle ---------------------------------------------------------------------
    def start(self, sumo_args: list[str], gui: bool = False) -> None:
        """Start a simulation with SUMO command-line ``sumo_args`` (no binary name)."""
        raise NotImplementedError

    def load(self, sumo_args: list[str]) -> None:
        """Replace the running simulation with one built from ``sumo_args``."""
        self.api.load(sumo_args)
        self.on_load()

    def on_load(self) -> None:
        """Hook after a (re)load; subscriptions are reset here."""

    def close(self) -> None:
        """End the simulation; safe to call twice or after a crash."""
        raise NotImplementedError

    @property
    def running(self) -> bool:
        """Whether a simulation is open."""
        return self.api is not None

    # -- stepping and events --------------------------------------------------------------
    def step(self) -> None:
        """Advance one simulation step."""
        self.api.simulationStep()

    def time(self) -> float:
        """Simulation time (s)."""
        return float(self.api.simulation.getTime())

    def vehicle_ids(self) -> tuple[str, ...]:
        """Ids of the vehicles in the network now."""
        return tuple(self.api.vehicle.getIDList())

    def departed_ids(self) -> tuple[str, ...]:
        """Ids of vehicles inserted in the last step."""
        return tuple(self.api.simulation.getDepartedIDList())

    def arrived_ids(self) -> tuple[str, ...]:
        """Ids of vehicles that reached the end of their route in the last step."""
        return tuple(self.api.simulation.getArrivedIDList())

    def vehicle_type(self, vehicle_id: str) -> str:
        """The vType id of a vehicle."""
        return str(self.api.vehicle.getTypeID(vehicle_id))

    def colliding_ids(self) -> tuple[str, ...]:
        """Ids of vehicles involved in a collision in the last step."""
        return tuple(self.api.simulation.getCollidingVehiclesIDList())

    def teleports(self) -> int:
        """Vehicles that started teleporting in the last step."""
        return int(self.api.simulation.getStartingTeleportNumber())

    # -- reads (one array entry per id, in order) -----------------------------------------
    def speed(self, vehicle_id: str) -> float:
        """One vehicle's speed (m/s)."""
        return float(self.api.vehicle.getSpeed(vehicle_id))

    def speeds(self, ids: tuple[str, ...]) -> np.ndarray:
        """Speeds (m/s)."""
        get = self.api.vehicle.getSpeed
        return np.fromiter((get(i) for i in ids), dtype=np.float64, count=len(ids))

    def leaders(self, ids: tuple[str, ...], lookahead: float) -> list[tuple[str, float]]:
        """(leader id, gap minus own min gap) per vehicle; ('', inf) where there is none."""
        get = self.api.vehicle.getLeader
        result = []
        for vehicle_id in ids:
            found = get(vehicle_id, lookahead)
            result.append(found if found and found[0] else ("", float("inf")))
        return result

    def leader_columns(
        self, ids: tuple[str, ...], lookahead: float
    ) -> tuple[tuple[str, ...], tuple[float, ...]]:
        """:meth:`leaders` as two columns: leader ids ('' where none) and gaps (any value
        where there is no leader)."""
        found = self.leaders(ids, lookahead)
        if not found:
            return (), ()
        names, gaps = zip(*found, strict=True)
        return names, gaps

    def followers(self, ids: tuple[str, ...], lookback: float) -> list[tuple[str, float]]:
        """(follower id, gap) per vehicle within ``lookback`` m; ('', inf) where there is none."""
        found = []
        for vehicle_id in ids:
            follower, gap = self.api.vehicle.getFollower(vehicle_id, lookback)
            found.append((follower, gap) if follower else ("", float("inf")))
        return found

    def distances(self, ids: tuple[str, ...]) -> np.ndarray:
        """Odometer readings: distance driven since insertion (m)."""
        get = self.api.vehicle.getDistance
        return np.fromiter((get(i) for i in ids), dtype=np.float64, count=len(ids))

    def lane_indices(self, ids: tuple[str, ...]) -> np.ndarray:
        """Lane index (0 = rightmost)."""
        get = self.api.vehicle.getLaneIndex
        return np.fromiter((get(i) for i in ids), dtype=np.int64, count=len(ids))

    def edges(self, ids: tuple[str, ...]) -> list[str]:
        """Edge id each vehicle is on."""
        get = self.api.vehicle.getRoadID
        return [get(i) for i in ids]

    def lane_positions(self, ids: tuple[str, ...]) -> np.ndarray:
        """Position of the front bumper along the current lane (m)."""
        get = self.api.vehicle.getLanePosition
        return np.fromiter((get(i) for i in ids), dtype=np.float64, count=len(ids))

    def accelerations(self, ids: tuple[str, ...]) -> np.ndarray:
        """Acceleration over the last step (m/s²)."""
        get = self.api.vehicle.getAcceleration
        return np.fromiter((get(i) for i in ids), dtype=np.float64, count=len(ids))

    def route_indices(self, ids: tuple[str, ...]) -> np.ndarray:
        """Index of the current edge within each vehicle's route."""
        get = self.api.vehicle.getRouteIndex
        return np.fromiter((get(i) for i in ids), dtype=np.int64, count=len(ids))

    def min_gap(self, vehicle_id: str) -> float:
        """A vehicle's standstill gap (m)."""
        return float(self.api.vehicle.getMinGap(vehicle_id))

    def allowed_speed(self, vehicle_id: str) -> float:
        """The speed limit of the vehicle's lane (m/s)."""
        return float(self.api.vehicle.getAllowedSpeed(vehicle_id))

    # -- writes ---------------------------------------------------------------------------
    def set_speed(self, vehicle_id: str, speed: float) -> None:
        """Command one vehicle's speed for the next step (m/s)."""
        self.api.vehicle.setSpeed(vehicle_id, speed)

    def set_speeds(self, ids: tuple[str, ...], speeds: np.ndarray) -> None:
        """Command each vehicle's speed for the next step (m/s)."""
        set_speed = self.api.vehicle.setSpeed
        for vehicle_id, speed in zip(ids, speeds.tolist(), strict=True):
            set_speed(vehicle_id, speed)

    def set_max_speeds(self, ids: tuple[str, ...], speeds: np.ndarray) -> None:
        """Set each vehicle's maximum speed (m/s); SUMO's model keeps driving it."""
        set_max_speed = self.api.vehicle.setMaxSpeed
        for vehicle_id, speed in zip(ids, speeds.tolist(), strict=True):
            set_max_speed(vehicle_id, speed)

    def release_speeds(self, ids: tuple[str, ...]) -> None:
        """Hand speed control back to SUMO's car-following model."""
        set_speed = self.api.vehicle.setSpeed
        for vehicle_id in ids:
            set_speed(vehicle_id, -1.0)

    def set_speed_mode(self, ids: tuple[str, ...], bits: int) -> None:
        """Set SUMO's speed-mode bit set for each vehicle."""
        for vehicle_id in ids:
            self.api.vehicle.setSpeedMode(vehicle_id, bits)

    def change_lanes(self, ids: tuple[str, ...], lanes: np.ndarray, duration: float) -> None:
        """Ask each vehicle to move to lane ``lanes[i]`` and stay there for ``duration`` s."""
        change = self.api.vehicle.changeLane
        for vehicle_id, lane in zip(ids, lanes.tolist(), strict=True):
            change(vehicle_id, int(lane), duration)

    def set_lane_change_mode(self, ids: tuple[str, ...], bits: int) -> None:
        """Set SUMO's lane-change-mode bit set for each vehicle."""
        for vehicle_id in ids:
            self.api.vehicle.setLaneChangeMode(vehicle_id, bits)

    def set_route(self, vehicle_id: str, edges: list[str]) -> None:
        """Replace a vehicle's route; it must start with the vehicle's current edge."""
        self.api.vehicle.setRoute(vehicle_id, edges)

    def set_color(self, vehicle_id: str, rgba: tuple[int, int, int, int]) -> None:
        """Colour a vehicle in sumo-gui."""
        self.api.vehicle.setColor(vehicle_id, rgba)

    # -- sumo-gui (TraCI with gui only) ---------------------------------------------------
    def _gui(self) -> Any:
        gui = getattr(self.api, "gui", None)
        if gui is None or not self.gui:
            raise BackendUnavailable("no sumo-gui: start the kernel with sim.gui: true.")
        return gui

    def show_network(self, margin: float) -> None:
        """Fit the whole network into sumo-gui's view, with ``margin`` of its size around it."""
        (xmin, ymin), (xmax, ymax) = self.api.simulation.getNetBoundary()
        pad = margin * max(xmax - xmin, ymax - ymin)
        self._gui().setBoundary(GUI_VIEW, xmin - pad, ymin - pad, xmax + pad, ymax + pad)

    def screenshot(self, path: str, width: int, height: int) -> None:
        """Request a PNG of the view (written by sumo-gui during the next step)."""
        self._gui().screenshot(GUI_VIEW, path, width, height)


class LibsumoBackend(Backend):
    """SUMO inside this process through libsumo: the fastest, one simulation per process."""

    name = "libsumo"

    def start(self, sumo_args: list[str], gui: bool = False) -> None:
        """Start the process's libsumo simulation, refusing a second owner."""
        if gui:
            raise BackendUnavailable("libsumo cannot open sumo-gui; set sim.backend: traci.")
        owner = _libsumo_owner()
        if owner is not None and owner is not self:
            gc.collect()  # an unreachable env (e.g. in a reference cycle) gives the slot up
            owner = _libsumo_owner()
        if owner is not None and owner is not self:
            raise BackendUnavailable(
                "libsumo runs one simulation per process and another flowsim env holds it; "
                "close that env first, run this one in another process, or set "
                "sim.backend: traci."
            )
        import libsumo

        from flowsim.scenarios.base import sumo_binary

        try:
            libsumo.start([sumo_binary("sumo"), *sumo_args])
        except libsumo.TraCIException as error:
            if "already" not in str(error).lower():
                raise SimulationCrashed(f"libsumo failed to start: {error}") from None
            # A simulation left open by a crashed owner: replace it.
            libsumo.load(sumo_args)
        self.api = libsumo
        self._raw = _RawLibsumo()
        _LIBSUMO_OWNER[:] = [weakref.ref(self)]

    def step(self) -> None:
        """Advance one simulation step (libsumo's step listeners, unused by flowsim, do not run)."""
        self._raw.step()

    def colliding_ids(self) -> tuple[str, ...]:
        """Ids of vehicles involved in a collision in the last step."""
        return tuple(self._raw.colliding_ids())

    def teleports(self) -> int:
        """Vehicles that started teleporting in the last step."""
        return self._raw.teleports()

    def speed(self, vehicle_id: str) -> float:
        """One vehicle's speed (m/s)."""
        return self._raw.get_speed(vehicle_id)

    def speeds(self, ids: tuple[str, ...]) -> np.ndarray:
        """Speeds (m/s)."""
        get = self._raw.get_speed
        return np.fromiter(map(get, ids), dtype=np.float64, count=len(ids))

    def leaders(self, ids: tuple[str, ...], lookahead: float) -> list[tuple[str, float]]:
        """(leader id, gap minus own min gap) per vehicle; ('', inf) where there is none."""
        get = self._raw.get_leader
        none = ("", float("inf"))
        # libsumo answers ('', -1.0) where there is no leader
        return [found if found[0] else none for found in map(get, ids, itertools.repeat(lookahead))]

    def leader_columns(
        self, ids: tuple[str, ...], lookahead: float
    ) -> tuple[tuple[str, ...], tuple[float, ...]]:
        """Leader ids ('' where none) and gaps (-1 where none), straight from libsumo."""
        found = list(map(self._raw.get_leader, ids, itertools.repeat(lookahead)))
        if not found:
            return (), ()
        names, gaps = zip(*found, strict=True)
        return names, gaps

    def set_speed(self, vehicle_id: str, speed: float) -> None:
        """Command one vehicle's speed for the next step (m/s)."""
        self._raw.set_speed(vehicle_id, speed)

    def set_speeds(self, ids: tuple[str, ...], speeds: np.ndarray) -> None:
        """Command each vehicle's speed for the next step (m/s)."""
        for _ in map(self._raw.set_speed, ids, speeds.tolist()):
            pass

    def close(self) -> None:
        """Close the libsumo simulation and release the process-wide slot."""
        if self.api is not None:
            with contextlib.suppress(Exception):
                self.api.close()
        self.api = None
        if _LIBSUMO_OWNER and _LIBSUMO_OWNER[0]() is self:
            _LIBSUMO_OWNER.clear()


class _RawLibsumo:
    """libsumo's compiled functions, called without the Python wrapper (half the call cost)."""

    def __init__(self) -> None:
        from libsumo import _libsumo

        self.step = _libsumo.simulation_step
        self.colliding_ids = _libsumo.simulation_getCollidingVehiclesIDList
        self.teleports = _libsumo.simulation_getStartingTeleportNumber
        self.get_speed = _libsumo.vehicle_getSpeed
        self.get_leader = _libsumo.vehicle_getLeader
        self.set_speed = _libsumo.vehicle_setSpeed


class TraciBackend(Backend):
    """A sumo or sumo-gui process over a TraCI socket, read through subscriptions.

    Each vehicle is subscribed to the variables consumers have asked for so far (speed at
    first); asking for a new variable adds it to every subscription, so from the next step on
    it arrives with the one subscription read per step instead of one call per vehicle.
    """

    name = "traci"

    def __init__(self) -> None:
        super().__init__()
        self.process: subprocess.Popen[bytes] | None = None
        self.label = f"flowsim-{os.getpid()}-{next(_LABELS)}"
        self._log: IO[bytes] | None = None
        self._subscribed: set[str] = set()
        self._results: dict[str, dict[int, Any]] | None = None
        self._lookahead: float | None = None
        self._vars: list[int] = []

    def start(self, sumo_args: list[str], gui: bool = False) -> None:
        """Launch sumo (or sumo-gui) on a free port and connect to it."""
        import traci
        from sumolib.miscutils import getFreeSocketPort

        from flowsim.scenarios.base import sumo_binary

        self._vars = [traci.constants.VAR_SPEED]
        self.gui = gui
        port = getFreeSocketPort()
        binary = sumo_binary("sumo-gui" if gui else "sumo")
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [binary, *sumo_args, "--remote-port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        try:
            # traci prints every retry to stdout; keep the user's output (e.g. --json) clean.
            with contextlib.redirect_stdout(io.StringIO()):
                traci.connect(
                    port,
                    numRetries=200,
                    proc=self.process,
                    waitBetweenRetries=0.02,
                    label=self.label,
                )
        except Exception as error:
            detail = self.error_output()
            self.close()
            raise SimulationCrashed(
                f"could not connect to sumo over TraCI: {error}. {detail}".strip()
            ) from None
        self.api = traci.getConnection(self.label)
        self.on_load()

    def error_output(self) -> str:
        """The last lines sumo wrote to stderr (for error messages)."""
        if self._log is None:
            return ""
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:])

    def on_load(self) -> None:
        """Re-subscribe: a reload drops subscriptions on SUMO's side."""
        import traci

        tc = traci.constants
        self._subscribed = set()
        self._results = None
        # Collisions, teleports, departures and arrivals then come with every step's answer.
        self.api.simulation.subscribe(
            [
                tc.VAR_COLLIDING_VEHICLES_IDS,
                tc.VAR_TELEPORT_STARTING_VEHICLES_NUMBER,
                tc.VAR_DEPARTED_VEHICLES_IDS,
                tc.VAR_ARRIVED_VEHICLES_IDS,
            ]
        )

    def departed_ids(self) -> tuple[str, ...]:
        """Vehicles inserted in the last step (from the simulation subscription)."""
        import traci

        results = self.api.simulation.getSubscriptionResults()
        return tuple(results.get(traci.constants.VAR_DEPARTED_VEHICLES_IDS, ()))

    def arrived_ids(self) -> tuple[str, ...]:
        """Vehicles that reached the end of their route in the last step (subscription)."""
        import traci

        results = self.api.simulation.getSubscriptionResults()
        return tuple(results.get(traci.constants.VAR_ARRIVED_VEHICLES_IDS, ()))

    def colliding_ids(self) -> tuple[str, ...]:
        """Vehicles in a collision in the last step (from the simulation subscription)."""
        import traci

        results = self.api.simulation.getSubscriptionResults()
        return tuple(results.get(traci.constants.VAR_COLLIDING_VEHICLES_IDS, ()))

    def teleports(self) -> int:
        """Vehicles that started teleporting in the last step (from the subscription)."""
        import traci

        results = self.api.simulation.getSubscriptionResults()
        return int(results.get(traci.constants.VAR_TELEPORT_STARTING_VEHICLES_NUMBER, 0))

    def close(self) -> None:
        """Close the connection and make sure the sumo process is gone."""
        if self.api is not None:
            with contextlib.suppress(Exception):
                self.api.close()
        self.api = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def step(self) -> None:
        """Advance one step and invalidate the cached subscription results."""
        self.api.simulationStep()
        self._results = None

    def _want(self, var: int) -> bool:
        """Add ``var`` to the subscriptions; True if it was not subscribed before."""
        if var in self._vars:
            return False
        self._vars.append(var)
        self._subscribed = set()  # re-subscribe everyone with the longer list next read
        return True

    def _subscription(self, ids: tuple[str, ...]) -> dict[str, dict[int, Any]]:
        """This step's subscription results, subscribing vehicles not yet subscribed."""
        missing = [i for i in ids if i not in self._subscribed]
        if missing:
            for vehicle_id in missing:
                self.api.vehicle.subscribe(vehicle_id, self._vars)
                if self._lookahead is not None:
                    self.api.vehicle.subscribeLeader(vehicle_id, self._lookahead)
                self._subscribed.add(vehicle_id)
            self._results = None
        if self._results is None:
            self._results = self.api.vehicle.getAllSubscriptionResults()
        return self._results

    def _column(self, ids: tuple[str, ...], var: int, getter: str) -> list[Any]:
        if self._want(var):  # first request: answer directly, subscriptions serve next steps
            get = getattr(self.api.vehicle, getter)
            return [get(i) for i in ids]
        results = self._subscription(ids)
        try:
            return [results[i][var] for i in ids]
        except KeyError:  # a vehicle inserted this step reports from the next step on
            get = getattr(self.api.vehicle, getter)
            return [get(i) for i in ids]

    def speed(self, vehicle_id: str) -> float:
        """One vehicle's speed (m/s), from this step's subscription results."""
        return float(self.speeds((vehicle_id,))[0])

    def speeds(self, ids: tuple[str, ...]) -> np.ndarray:
        """Speeds (m/s)."""
        import traci

        return np.array(self._column(ids, traci.constants.VAR_SPEED, "getSpeed"), dtype=float)

    def distances(self, ids: tuple[str, ...]) -> np.ndarray:
        """Odometer readings (m)."""
        import traci

        values = self._column(ids, traci.constants.VAR_DISTANCE, "getDistance")
        return np.array(values, dtype=np.float64)

    def lane_indices(self, ids: tuple[str, ...]) -> np.ndarray:
        """Lane indices."""
        import traci

        values = self._column(ids, traci.constants.VAR_LANE_INDEX, "getLaneIndex")
        return np.array(values, dtype=np.int64)

    def lane_positions(self, ids: tuple[str, ...]) -> np.ndarray:
        """Lane positions (m)."""
        import traci

        values = self._column(ids, traci.constants.VAR_LANEPOSITION, "getLanePosition")
        return np.array(values, dtype=np.float64)

    def accelerations(self, ids: tuple[str, ...]) -> np.ndarray:
        """Accelerations (m/s²)."""
        import traci

        values = self._column(ids, traci.constants.VAR_ACCELERATION, "getAcceleration")
        return np.array(values, dtype=np.float64)

    def route_indices(self, ids: tuple[str, ...]) -> np.ndarray:
        """Route indices."""
        import traci

        values = self._column(ids, traci.constants.VAR_ROUTE_INDEX, "getRouteIndex")
        return np.array(values, dtype=np.int64)

    def edges(self, ids: tuple[str, ...]) -> list[str]:
        """Edge ids."""
        import traci

        return self._column(ids, traci.constants.VAR_ROAD_ID, "getRoadID")

    def leaders(self, ids: tuple[str, ...], lookahead: float) -> list[tuple[str, float]]:
        """Leaders within ``lookahead`` m, subscribed after the first request."""
        import traci

        if lookahead != self._lookahead:
            self._lookahead = lookahead
            self._subscribed = set()
            found = [self.api.vehicle.getLeader(i, lookahead) for i in ids]
        else:
            results = self._subscription(ids)
            var = traci.constants.VAR_LEADER
            found = [results.get(i, {}).get(var) for i in ids]
            if any(f is None for f in found):
                found = [
                    f if f is not None else self.api.vehicle.getLeader(i, lookahead)
                    for i, f in zip(ids, found, strict=True)
                ]
        return [f if f and f[0] else ("", float("inf")) for f in found]


def make_backend(name: str) -> Backend:
    """A backend by name: ``libsumo`` or ``traci``."""
    if name == "libsumo":
        return LibsumoBackend()
    if name == "traci":
        return TraciBackend()
    raise BackendUnavailable(f"unknown sim.backend '{name}'; use libsumo or traci.")
