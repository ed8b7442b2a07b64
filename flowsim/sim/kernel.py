"""The kernel: one SUMO simulation behind a backend, read into numpy arrays once per step."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NoReturn

import numpy as np

from flowsim.config import SimConfig
from flowsim.errors import BackendUnavailable, ConfigError, SimulationCrashed
from flowsim.scenarios.base import ScenarioInstance
from flowsim.sim.backends import Backend, make_backend

_FATAL: tuple[type[BaseException], ...] = ()
_REFUSED: tuple[type[BaseException], ...] = ()


def _exception_types() -> None:
    global _FATAL, _REFUSED
    import libsumo
    import traci

    _FATAL = (traci.FatalTraCIError, libsumo.FatalTraCIError, ConnectionError, OSError)
    _REFUSED = (traci.TraCIException, libsumo.TraCIException)


class crash_guard:
    """Turn a dead simulation (closed socket, fatal TraCI error) into :class:`SimulationCrashed`.

    A plain class rather than ``@contextmanager``: it wraps every kernel call, several per step.
    It holds no state, so the per-step calls share instances made once (``_STEPPING`` …).
    """

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _tb: object
    ) -> bool:
        if kind is None:
            return False
        assert error is not None
        crashed = self.translate(error)
        if crashed is not None:
            raise crashed from None
        return False

    def reraise(self, error: BaseException) -> NoReturn:
        """Raise the :class:`SimulationCrashed` that ``error`` means, or ``error`` itself if
        it is not SUMO's (the ``except`` side of :meth:`translate`'s ``try`` blocks)."""
        crashed = self.translate(error)
        if crashed is None:
            raise error
        raise crashed from None

    def translate(self, error: BaseException) -> SimulationCrashed | None:
        """The :class:`SimulationCrashed` that ``error`` means, or None if it is not SUMO's.

        The kernel's per-step calls use it in a ``try`` block (free in Python 3.11 when
        nothing is raised) instead of ``with``, which costs two method calls every time.
        """
        if not _FATAL:
            _exception_types()
        if isinstance(error, _FATAL):
            return SimulationCrashed(f"SUMO died while {self.what}: {error}")
        if isinstance(error, _REFUSED):
            text = str(error)
            if "connection" in text.lower() or "not running" in text.lower():
                return SimulationCrashed(f"SUMO died while {self.what}: {text}")
            return SimulationCrashed(f"SUMO refused a command while {self.what}: {text}")
        return None


@dataclass(frozen=True)
class StepEvents:
    """What happened in the last step that an env may want to react to.

    ``removed`` lists vehicles that left the network (removed after a collision, or arrived at
    the end of their route on an open network); ``added`` lists vehicles that entered it (on an
    open network's inflows). The kernel's arrays follow at once, so indices taken before the
    step are stale when either is non-empty; added vehicles come last, in insertion order.
    """

    collisions: tuple[str, ...] = ()
    teleports: int = 0
    removed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    #: vehicles that reached the end of their route in this step (SUMO's arrivals, open
    #: networks only)
    arrived: int = 0

    @property
    def changed(self) -> bool:
        """True when vehicles left or entered the network in this step."""
        return bool(self.removed or self.added)


#: The events of a step in which nothing happened (most steps): one shared, immutable instance.
_QUIET = StepEvents()


#: How far ahead (m) a vehicle looks for its leader on an open network without a main route
#: (OSM areas, your own files): beyond the distance any car-following model reacts to.
OPEN_LEADER_LOOKAHEAD = 250.0

#: Guards for the calls made every step, built once (see :class:`crash_guard`).
_STEPPING = crash_guard("stepping")
_READING_SPEEDS = crash_guard("reading speeds")
_READING_LEADERS = crash_guard("reading leaders")
_SETTING_SPEEDS = crash_guard("setting speeds")

#: NumPy constants of the per-step maths: a 0-d array operand costs a ufunc less than a
#: Python float (no conversion), and gives the same float64 result.
_ZERO = np.array(0.0)
_FLOAT64 = np.dtype(np.float64)

#: Marks an index set the kernel has not seen yet (its watch positions may be None).
_UNSEEN = np.zeros(0, dtype=np.int64)


@dataclass(slots=True)
class _Leaders:
    """The leaders of some vehicles read in one step, entry i for the i-th vehicle asked about."""

    headway: np.ndarray
    leader_speed: np.ndarray
    #: leader ids as the backend returned them ('' where there is none)
    names: tuple[str, ...]


@dataclass(slots=True)
class _LeaderMap:
    """Who leads whom among an index set, kept while the leaders' ids stay the same.

    On a single-lane loop nobody overtakes, so the ids SUMO names as leaders repeat step after
    step: the id lookups then happen once, not every step.
    """

    #: the leader ids this map was built from
    names: tuple[str, ...]
    #: array index of each vehicle's leader; the vehicle's own index where it has none (or an
    #: untracked one), so that ``speeds[leader]`` gives its own speed there
    leader: np.ndarray
    #: rows without a (tracked) leader: their headway is inf; None when every row has one
    free: np.ndarray | None
    #: each vehicle's standstill gap, which SUMO's gap leaves out
    min_gap: np.ndarray


@dataclass(slots=True)
class _StepCache:
    speed: np.ndarray | None = None
    position: np.ndarray | None = None
    lane: np.ndarray | None = None
    acceleration: np.ndarray | None = None
    speed_limit: np.ndarray | None = None
    edges: list[str] | None = None
    #: leaders of the watched vehicles (``Kernel.watch_leaders``), read on the first request
    watched: _Leaders | None = None
    #: leaders of other index sets asked for in this step, by ``indices.tobytes()``
    others: dict[bytes, _Leaders] = field(default_factory=dict)


class Kernel:
    """Starts, steps, reloads and closes SUMO; reads state as arrays and applies commands.

    Arrays are indexed like :attr:`vehicle_ids` (the scenario's vehicles in order). Reads are
    lazy and cached for the current step, so a consumer pays only for what it reads. On an open
    network each step only notes who entered and left; the id list and the per-vehicle arrays
    follow when next read.

    Example:
        >>> from flowsim.config import FlowsimConfig
        >>> from flowsim.scenarios import make_scenario
        >>> cfg = FlowsimConfig()
        >>> kernel = Kernel(cfg.sim)
        >>> kernel.load(make_scenario(cfg).instance(np.random.default_rng(0)), seed=0)
        >>> kernel.speeds().shape
        (22,)
        >>> kernel.close()
    """

    def __init__(self, sim: SimConfig) -> None:
        self.sim = sim
        self._step_0d = np.array(float(sim.step_length))
        self.backend: Backend = make_backend(sim.backend)
        self.instance: ScenarioInstance | None = None
        self._ids: tuple[str, ...] = ()
        self.events = StepEvents()
        self.restarts = 0
        self._index: dict[str, int] = {}
        #: open networks: every vehicle in the network, in array order, with its (entry number,
        #: min gap, speed limit at entry); ``_ids``, ``_index`` and the arrays follow it when
        #: read (:meth:`_sync`), not at every step
        self._present: dict[str, tuple[int, float, float]] = {}
        self._entries = 0
        #: True when vehicles entered or left since ``_ids`` and the arrays were last rebuilt
        self._stale = False
        self._min_gap = np.zeros(0)
        self._speed_limit = np.zeros(0)
        self._cache = _StepCache()
        self._last_args: list[str] | None = None
        self._route_lengths: dict[str, int] = {}
        self._leader_watch = np.zeros(0, dtype=np.int64)
        self._ids_memo: dict[bytes, tuple[str, ...]] = {}
        #: per ``indices.tobytes()``: their positions in the watch set, None if not all in it
        self._watch_positions: dict[bytes, np.ndarray | None] = {}
        #: who leads whom in the watch set, rebuilt when the leaders' ids change
        self._watch_map: _LeaderMap | None = None
        self._start_time = 0.0
        self._steps_since_load = 0
        #: vType of vehicles that entered during the episode (inflows), by id
        self._entered_type: dict[str, str] = {}
        self._placed_type: dict[str, str] = {}
        #: open networks: lane speed limit of every edge (internal ones included)
        self._edge_speed: dict[str, float] | None = None
        #: SUMO options added to every start and load, e.g. ``["--fcd-output", "fcd.xml"]``
        #: (outputs of a replay) or sumo-gui's ``--delay``; set before ``load``.
        self.extra_args: list[str] = []

    # -- life cycle -----------------------------------------------------------------------
    def _sumo_args(self, instance: ScenarioInstance, seed: int) -> list[str]:
        args = [
            "--net-file",
            str(instance.net_file),
            "--route-files",
            ",".join(str(path) for path in instance.all_route_files),
            "--step-length",
            repr(self.sim.step_length),
            "--seed",
            str(seed),
            "--time-to-teleport",
            repr(self.sim.teleport_time),
            "--collision.action",
            self.sim.collision_action,
            "--collision.check-junctions",
            "true" if self.sim.check_junction_collisions else "false",
            "--no-step-log",
            "true",
            "--no-warnings",
            "true",
            "--duration-log.disable",
            "true",
        ]
        additional = [*instance.additional_files, *self.sim.additional_files]
        if additional:
            args += ["--additional-files", ",".join(str(path) for path in additional)]
        if instance.begin:  # your own files' time window (e.g. RESCO's Cologne from 7:00)
            args += ["--begin", repr(instance.begin)]
        if instance.end is not None:
            args += ["--end", repr(instance.end)]
        if self.sim.gui:
            args += ["--start", "true", "--quit-on-end", "true"]
        return args + self.extra_args

    def load(self, instance: ScenarioInstance, seed: int) -> None:
        """Load ``instance`` (starting SUMO on first use) and insert all its vehicles."""
        args = self._sumo_args(instance, seed)
        if self.backend.running:
            try:
                with crash_guard("loading the scenario"):
                    self.backend.load(args)
            except SimulationCrashed:
                # The simulation died earlier (e.g. sumo was killed): start a fresh one.
                self.backend.close()
                self.backend = make_backend(self.sim.backend)
                self.restarts += 1
        if not self.backend.running:
            with crash_guard("starting SUMO"):
                self.backend.start(args, gui=self.sim.gui)
        self._last_args = args
        self.instance = instance
        # Leaders are looked for along one loop or main route, else within a fixed distance.
        self._lookahead = instance.length if instance.ring_edges else OPEN_LEADER_LOOKAHEAD
        self._ids = instance.vehicle_ids
        self._index = {vehicle_id: i for i, vehicle_id in enumerate(self._ids)}
        self._present = {v: (k, 0.0, 0.0) for k, v in enumerate(self._ids)} if instance.open else {}
        self._entries = len(self._ids)
        self._stale = False
        self._route_lengths = {}
        self._leader_watch = np.zeros(0, dtype=np.int64)
        self._ids_memo = {}
        self._watch_positions = {}
        self._watch_map = None
        self._cache = _StepCache()
        self._entered_type = {}
        self._placed_type = {v.vehicle_id: v.group for v in instance.vehicles}
        self._edge_speed = None
        if instance.open:
            from flowsim.scenarios.open import edge_speeds

            self._edge_speed = edge_speeds(instance.net_file)
        with crash_guard("reading the time"):
            self._start_time = self.backend.time()
        self._steps_since_load = 0
        self._min_gap = np.zeros(len(self.vehicle_ids))
        self._speed_limit = np.zeros(len(self.vehicle_ids))
        self.step()  # vehicles depart at t=0 and exist after the first step
        present = set(self.backend.vehicle_ids())
        missing = [i for i in instance.vehicle_ids if i not in present]
        if missing:
            raise ConfigError(
                f"SUMO could not insert {len(missing)} of {len(self.vehicle_ids)} vehicles "
                f"(e.g. {missing[0]}); give them more room: lower a group's count or raise "
                "scenario.length."
            )
        with crash_guard("reading vehicle attributes"):
            self._min_gap = np.array([self.backend.min_gap(i) for i in self.vehicle_ids])
            self._speed_limit = np.array([self.backend.allowed_speed(i) for i in self.vehicle_ids])
        if instance.open:
            gaps, limits = self._min_gap.tolist(), self._speed_limit.tolist()
            self._present = {
                v: (entry, gaps[k], limits[k])
                for k, (v, (entry, _, _)) in enumerate(self._present.items())
            }
        self.events = StepEvents()  # the load's first step is not an event of the episode

    def restart(self) -> None:
        """Start a fresh SUMO after a crash, with the last scenario and seed."""
        if self.instance is None or self._last_args is None:
            raise BackendUnavailable("restart() before any load(): call load() first.")
        self.backend.close()
        self.backend = make_backend(self.sim.backend)
        self.restarts += 1
        instance, args = self.instance, self._last_args
        seed = int(args[args.index("--seed") + 1])
        self.load(instance, seed)

    def close(self) -> None:
        """Close SUMO; the kernel can be loaded again afterwards."""
        self.backend.close()
        self._cache = _StepCache()

    # -- stepping -------------------------------------------------------------------------
    def step(self) -> StepEvents:
        """Advance one step; return the collisions and teleports it produced."""
        backend = self.backend
        try:
            backend.step()
            self._steps_since_load += 1
            collisions = backend.colliding_ids()
            teleports = backend.teleports()
        except Exception as error:
            _STEPPING.reraise(error)
        self._cache = _StepCache()
        if not collisions and not teleports and self._edge_speed is None:
            self.events = _QUIET  # a closed network where nothing happened: most steps
            return _QUIET
        removed: tuple[str, ...] = ()
        added: tuple[str, ...] = ()
        arrivals = 0
        if collisions or teleports:
            with crash_guard("listing vehicles"):
                present = set(self.backend.vehicle_ids())
            removed = tuple(i for i in self.vehicle_ids if i not in present)
            if removed:
                self._drop_missing(present)
        if self._edge_speed is not None:  # an open network: vehicles enter and leave
            with crash_guard("listing departures and arrivals"):
                arrived = backend.arrived_ids()
                departed = backend.departed_ids()
            arrivals = len(arrived)
            if arrived:
                left = self._leave(arrived)
                if left:
                    removed += left
            if departed:
                known = self._present
                added = tuple([i for i in departed if i not in known])
                if added:
                    self._add_entered(added)
        self.events = StepEvents(
            collisions=collisions,
            teleports=teleports,
            removed=removed,
            added=added,
            arrived=arrivals,
        )
        return self.events

    def _add_entered(self, ids: tuple[str, ...]) -> None:
        """Note vehicles that entered the network (they come after the present ones)."""
        with crash_guard("reading new vehicles"):
            types = [self.backend.vehicle_type(i) for i in ids]
            gaps = [self.backend.min_gap(i) for i in ids]
            limits = [self.backend.allowed_speed(i) for i in ids]
        present, entered, entry = self._present, self._entered_type, self._entries
        for k, vehicle_id in enumerate(ids):
            present[vehicle_id] = (entry + k, gaps[k], limits[k])
            entered[vehicle_id] = types[k]
        self._entries = entry + len(ids)
        self._changed()

    def _leave(self, arrived: tuple[str, ...]) -> tuple[str, ...]:
        """Forget the vehicles of ``arrived`` that are in the network; return those, in array
        order."""
        present, entered = self._present, self._entered_type
        left = [i for i in arrived if i in present]
        if not left:
            return ()
        if len(left) > 1:
            left.sort(key=lambda vehicle_id: present[vehicle_id][0])
        for vehicle_id in left:
            del present[vehicle_id]
            entered.pop(vehicle_id, None)
        self._changed()
        return tuple(left)

    def _changed(self) -> None:
        """Vehicles entered or left an open network: rebuild the arrays when next read, and
        drop what was keyed by array index."""
        self._stale = True
        self._leader_watch = np.zeros(0, dtype=np.int64)
        self._ids_memo = {}
        self._watch_positions = {}
        self._watch_map = None

    def vehicle_type(self, vehicle_id: str) -> str:
        """The vType (vehicle group) of a vehicle present in the network."""
        entered = self._entered_type.get(vehicle_id)
        if entered is not None:
            return entered
        assert self.instance is not None
        return self._placed_type[vehicle_id]

    def _sync(self) -> None:
        """Bring the id list, the index and the arrays up to date with an open network's
        vehicles (those in it now, placed ones first, the others in order of entry)."""
        present = self._present
        self._ids = ids = tuple(present)
        self._index = dict(zip(ids, range(len(ids)), strict=True))
        rows = np.array(list(present.values()), dtype=np.float64).reshape(len(ids), 3)
        self._min_gap = rows[:, 1].copy()
        self._speed_limit = rows[:, 2].copy()
        self._stale = False

    @property
    def vehicle_ids(self) -> tuple[str, ...]:
        """Ids of the vehicles in the network, in array order."""
        if self._stale:
            self._sync()
        return self._ids

    def _drop_missing(self, present: set[str]) -> None:
        ids = self.vehicle_ids
        keep = [i for i, vehicle_id in enumerate(ids) if vehicle_id in present]
        self._ids = tuple(ids[i] for i in keep)
        self._index = {vehicle_id: i for i, vehicle_id in enumerate(self._ids)}
        self._min_gap = self._min_gap[keep]
        self._speed_limit = self._speed_limit[keep]
        for vehicle_id in set(self._entered_type) - present:
            del self._entered_type[vehicle_id]
        for vehicle_id in set(self._present) - present:
            del self._present[vehicle_id]
        self._leader_watch = np.zeros(0, dtype=np.int64)
        self._ids_memo = {}
        self._watch_positions = {}
        self._watch_map = None

    @property
    def time(self) -> float:
        """Simulation time (s), counted by the kernel (no call to SUMO)."""
        return round(self._start_time + self._steps_since_load * self.sim.step_length, 9)

    def index_of(self, vehicle_ids: tuple[str, ...]) -> np.ndarray:
        """Array positions of those ``vehicle_ids`` that are in the network, in order."""
        if self._stale:
            self._sync()
        return np.array([self._index[i] for i in vehicle_ids if i in self._index], dtype=np.int64)

    # -- reads ----------------------------------------------------------------------------
    def speeds(self) -> np.ndarray:
        """Speed of every vehicle (m/s)."""
        speed = self._cache.speed
        if speed is None:
            try:
                speed = self._cache.speed = self.backend.speeds(self.vehicle_ids)
            except Exception as error:
                _READING_SPEEDS.reraise(error)
        return speed

    def speed_of(self, index: int) -> float:
        """Speed (m/s) of the vehicle at ``index``: from this step's speeds if they were read,
        else that vehicle's alone (an AV's command between an env's decisions needs no more)."""
        speed = self._cache.speed
        if speed is not None:
            return speed.item(index)
        try:
            return self.backend.speed(self.vehicle_ids[index])
        except Exception as error:
            _READING_SPEEDS.reraise(error)

    def speed_limits(self) -> np.ndarray:
        """Lane speed limit for every vehicle (m/s).

        On a loop it is read once per vehicle; on an open network, where edges differ, it is
        the limit of the edge each vehicle is on now.
        """
        if self._edge_speed is None:
            return self._speed_limit
        if self._stale:
            self._sync()
        if self._cache.speed_limit is None:
            speeds, edges = self._edge_speed, self.edges()
            fallback = self._speed_limit
            self._cache.speed_limit = np.fromiter(
                (speeds.get(e, fallback[k]) for k, e in enumerate(edges)), np.float64, len(edges)
            )
        return self._cache.speed_limit

    def min_gaps(self) -> np.ndarray:
        """Standstill gap of every vehicle (m)."""
        if self._stale:
            self._sync()
        return self._min_gap

    def lanes(self) -> np.ndarray:
        """Lane index of every vehicle."""
        if self._cache.lane is None:
            with crash_guard("reading lanes"):
                self._cache.lane = self.backend.lane_indices(self.vehicle_ids)
        return self._cache.lane

    def edges(self) -> list[str]:
        """Edge id of every vehicle."""
        if self._cache.edges is None:
            with crash_guard("reading edges"):
                self._cache.edges = self.backend.edges(self.vehicle_ids)
        return self._cache.edges

    def accelerations(self) -> np.ndarray:
        """Realised acceleration of every vehicle over the last step (m/s²)."""
        if self._cache.acceleration is None:
            with crash_guard("reading accelerations"):
                self._cache.acceleration = self.backend.accelerations(self.vehicle_ids)
        return self._cache.acceleration

    def positions(self) -> np.ndarray:
        """Position of every vehicle's front bumper along the loop (m, from the loop's origin).

        On an open network: along its main route (NaN for vehicles off that route).
        """
        if self._cache.position is None:
            assert self.instance is not None
            offsets = self.instance.edge_offsets
            with crash_guard("reading positions"):
                edges = self.edges()
                along = self.backend.lane_positions(self.vehicle_ids)
            start = np.fromiter((offsets.get(e, np.nan) for e in edges), np.float64, len(edges))
            if self.instance.open:  # along the main route; NaN off it
                self._cache.position = start + along
            else:
                self._cache.position = np.mod(start + along, self.instance.length)
        return self._cache.position

    def leaders(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(headway, leader speed) for the vehicles at ``indices``.

        Headway is the bumper-to-bumper gap (m); where no leader is found within one loop it is
        ``inf`` and the leader speed is the vehicle's own speed.
        """
        if self._stale:
            self._sync()
        key = indices.tobytes()
        within = self._watch_positions.get(key, _UNSEEN)
        if within is _UNSEEN:
            within = self._watch_positions[key] = self._positions_in_watch(indices)
        if within is not None:
            # The first read of a step fetches every watched vehicle: later reads hit the cache.
            watched = self._cache.watched
            if watched is None:
                watched = self._cache.watched = self._read_watched_leaders()
            return watched.headway[within], watched.leader_speed[within]
        read = self._other_leaders(indices, key)
        return read.headway.copy(), read.leader_speed.copy()

    def followers(
        self, indices: np.ndarray, lookback: float = 1000.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """(gap to the follower in m, follower speed) for the vehicles at ``indices``.

        Where no follower is within ``lookback`` m the gap is ``inf`` and the speed is the
        vehicle's own. Read on demand (one call per vehicle), not cached.
        """
        ids = self.ids_of(indices)
        with crash_guard("reading followers"):
            found = self.backend.followers(ids, lookback)
        gap = np.array([g for _, g in found], dtype=np.float64)
        speed = self.speeds()[indices].copy()
        present = [k for k, (name, _) in enumerate(found) if name in self._index]
        if present:
            rows = np.array(present)
            speed[rows] = self.speeds()[[self._index[found[k][0]] for k in present]]
        return gap, speed

    def leader_ids(self, indices: np.ndarray) -> list[str]:
        """Id of the leader of each vehicle at ``indices`` ('' where there is none)."""
        self.leaders(indices)
        key = indices.tobytes()
        within = self._watch_positions[key]
        if within is None:
            return list(self._other_leaders(indices, key).names)
        assert self._cache.watched is not None
        names = self._cache.watched.names
        return [names[i] for i in within.tolist()]

    def _positions_in_watch(self, indices: np.ndarray) -> np.ndarray | None:
        """Where each of ``indices`` sits in the (sorted) watch set; None if one is not in it."""
        watch = self._leader_watch
        if watch.size == 0:
            return None
        within = np.minimum(np.searchsorted(watch, indices), watch.size - 1)
        return within if np.array_equal(watch[within], indices) else None

    def _other_leaders(self, indices: np.ndarray, key: bytes) -> _Leaders:
        """Leaders of vehicles not all watched, read once per step for each index set."""
        read = self._cache.others.get(key)
        if read is None:
            read = self._cache.others[key] = self._read_leaders(indices)
        return read

    def _read_watched_leaders(self) -> _Leaders:
        """Read the leaders of the watched vehicles, reusing who-leads-whom while it holds."""
        watch = self._leader_watch
        names, gaps = self._leader_columns(watch)
        layout = self._watch_map
        if layout is None or layout.names != names:
            layout = self._watch_map = self._map_leaders(watch, names)
        return self._leaders_from(layout, gaps)

    def _read_leaders(self, indices: np.ndarray) -> _Leaders:
        """Read the leaders of the vehicles at ``indices`` from SUMO."""
        names, gaps = self._leader_columns(indices)
        return self._leaders_from(self._map_leaders(indices, names), gaps)

    def _leader_columns(self, indices: np.ndarray) -> tuple[tuple[str, ...], tuple[float, ...]]:
        try:
            return self.backend.leader_columns(self.ids_of(indices), self._lookahead)
        except Exception as error:
            _READING_LEADERS.reraise(error)

    def _map_leaders(self, indices: np.ndarray, names: tuple[str, ...]) -> _LeaderMap:
        """Array indices of the leaders named ``names`` (one per vehicle at ``indices``)."""
        lookup = self._index.get
        own = indices.tolist()
        leader = [lookup(name, -1) for name in names]
        free = [row for row, found in enumerate(leader) if found < 0]
        for row in free:  # no leader, or one we do not track: free road, own speed
            leader[row] = own[row]
        return _LeaderMap(
            names=names,
            leader=np.array(leader, dtype=np.int64),
            free=np.array(free, dtype=np.int64) if free else None,
            min_gap=self._min_gap[indices],
        )

    def _leaders_from(self, layout: _LeaderMap, gaps: tuple[float, ...]) -> _Leaders:
        """Headways and leader speeds from SUMO's gaps and who leads whom."""
        # SUMO's gap leaves out the follower's standstill gap: add it back (bumper to bumper).
        headway = np.fromiter(gaps, np.float64, len(gaps)) + layout.min_gap
        if layout.free is not None:
            headway[layout.free] = math.inf
        return _Leaders(headway, self.speeds()[layout.leader], layout.names)

    def ids_of(self, indices: np.ndarray) -> tuple[str, ...]:
        """Vehicle ids at ``indices`` (memoised: groups ask for the same ids every step)."""
        if self._stale:
            self._sync()
        key = indices.tobytes()
        ids = self._ids_memo.get(key)
        if ids is None:
            names = self.vehicle_ids
            ids = self._ids_memo[key] = tuple([names[i] for i in indices.tolist()])
        return ids

    def watch_leaders(self, indices: np.ndarray) -> None:
        """Read the leaders of ``indices`` together, the first time one is asked for in a step."""
        self._leader_watch = np.unique(np.asarray(indices, dtype=np.int64))
        self._watch_positions = {}
        self._cache.watched = None
        self._watch_map = None

    def route_remaining(self, indices: np.ndarray) -> np.ndarray:
        """Edges left in each vehicle's route after its current one."""
        assert self.instance is not None
        ids = tuple(self.vehicle_ids[i] for i in indices)
        with crash_guard("reading route indices"):
            index = self.backend.route_indices(ids)
        route_length = len(self.instance.ring_edges) * self.instance.route_loops
        total = np.array([self._route_lengths.get(i, route_length) for i in ids])
        return total - index - 1

    # -- commands -------------------------------------------------------------------------
    def apply_accelerations(
        self, indices: np.ndarray, accelerations: np.ndarray, speeds: np.ndarray | None = None
    ) -> None:
        """Command vehicles at ``indices`` to reach v + a·dt by the next step (never below 0).

        ``speeds``: the vehicles' current speeds (``speeds()[indices]``) if the caller has them.
        """
        if indices.size == 1 and speeds is None:
            self._accelerate_one(indices, accelerations)
            return
        if speeds is None:
            speeds = self.speeds()[indices]
        accelerations = np.asarray(accelerations)
        # A 0-d float64 step is cheaper than a Python float, and the same number for float64
        # input; other dtypes keep NumPy's promotion with a Python float.
        step = self._step_0d if accelerations.dtype is _FLOAT64 else self.sim.step_length
        target = np.maximum(speeds + accelerations * step, _ZERO)
        try:
            self.backend.set_speeds(self.ids_of(indices), target)
        except Exception as error:
            _SETTING_SPEEDS.reraise(error)

    def _accelerate_one(self, indices: np.ndarray, accelerations: np.ndarray) -> None:
        """:meth:`apply_accelerations` for one vehicle (one AV) in Python floats: the same
        IEEE operations as the array maths, without five NumPy calls on one number."""
        accelerations = np.asarray(accelerations)
        if accelerations.dtype is not _FLOAT64:  # keep NumPy's promotion for other dtypes
            target = np.maximum(
                self.speeds()[indices] + accelerations * self.sim.step_length, _ZERO
            )
        else:
            step = self._step_0d.item()
            # max(x, 0.0) returns x for x = -0.0 or NaN, as np.maximum(x, 0.0) does
            target = max(self.speed_of(int(indices[0])) + accelerations.item() * step, 0.0)
        try:
            if isinstance(target, float):
                self.backend.set_speed(self.ids_of(indices)[0], target)
            else:
                self.backend.set_speeds(self.ids_of(indices), target)
        except Exception as error:
            _SETTING_SPEEDS.reraise(error)

    def apply_speeds(self, indices: np.ndarray, speeds: np.ndarray) -> None:
        """Command the speeds (m/s) of the vehicles at ``indices`` for the next step."""
        ids = self.ids_of(indices)
        with _SETTING_SPEEDS:
            self.backend.set_speeds(ids, np.asarray(speeds, dtype=np.float64))

    def set_max_speeds(self, indices: np.ndarray, speeds: np.ndarray) -> None:
        """Set the maximum speed (m/s) of the vehicles at ``indices``; unlike
        :meth:`apply_speeds`, SUMO's car-following model keeps driving them below it."""
        ids = self.ids_of(indices)
        with _SETTING_SPEEDS:
            self.backend.set_max_speeds(ids, np.asarray(speeds, dtype=np.float64))

    def release(self, indices: np.ndarray) -> None:
        """Give the vehicles at ``indices`` back to SUMO's car-following model."""
        ids = tuple(self.vehicle_ids[i] for i in indices)
        with crash_guard("releasing speeds"):
            self.backend.release_speeds(ids)

    def set_speed_mode(self, indices: np.ndarray, bits: int) -> None:
        """Set SUMO's speed mode for the vehicles at ``indices``."""
        ids = tuple(self.vehicle_ids[i] for i in indices)
        with crash_guard("setting speed modes"):
            self.backend.set_speed_mode(ids, bits)

    def set_lane_change_mode(self, indices: np.ndarray, bits: int) -> None:
        """Set SUMO's lane-change mode for the vehicles at ``indices`` (512: only commanded,
        safe changes)."""
        ids = tuple(self.vehicle_ids[i] for i in indices)
        with crash_guard("setting lane-change modes"):
            self.backend.set_lane_change_mode(ids, bits)

    def apply_lane_changes(
        self, indices: np.ndarray, direction: np.ndarray, duration: float | None = None
    ) -> None:
        """Move vehicles at ``indices`` one lane left (+1), right (-1) or keep (0).

        SUMO keeps trying (and then holds the lane) for ``duration`` seconds, one step if None.
        """
        assert self.instance is not None
        direction = np.asarray(direction, dtype=np.int64)
        moving = np.flatnonzero(direction != 0)
        if moving.size == 0:
            return
        chosen = indices[moving]
        target = np.clip(self.lanes()[chosen] + direction[moving], 0, self.instance.lanes - 1)
        ids = tuple(self.vehicle_ids[i] for i in chosen)
        with crash_guard("changing lanes"):
            self.backend.change_lanes(ids, target, duration or self.sim.step_length)

    def set_route(self, index: int, edges: list[str]) -> None:
        """Give the vehicle at ``index`` a new route starting at its current edge."""
        vehicle_id = self.vehicle_ids[index]
        with crash_guard("setting a route"):
            self.backend.set_route(vehicle_id, edges)
        self._route_lengths[vehicle_id] = len(edges)

    def set_color(self, indices: np.ndarray, rgba: tuple[int, int, int, int]) -> None:
        """Colour the vehicles at ``indices`` in sumo-gui."""
        with crash_guard("setting colours"):
            for i in indices.tolist():
                self.backend.set_color(self.vehicle_ids[i], rgba)

    # -- sumo-gui -------------------------------------------------------------------------
    def show_network(self, margin: float = 0.05) -> None:
        """Zoom sumo-gui's view so that the whole network is in frame, with a relative margin."""
        with crash_guard("setting the view"):
            self.backend.show_network(margin)

    def screenshot(self, path: str, width: int = -1, height: int = -1) -> None:
        """Ask sumo-gui for a PNG of its view; SUMO writes it during the next step."""
        with crash_guard("taking a screenshot"):
            self.backend.screenshot(path, width, height)
