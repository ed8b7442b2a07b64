"""A scenario running in the kernel with its vehicle groups driven by their controllers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from flowsim.config import FlowsimConfig, VehicleGroup
from flowsim.controllers import Controller, FollowingState, make_controller
from flowsim.controllers.failsafe import apply_failsafes
from flowsim.controllers.routing import ContinuousRouter
from flowsim.errors import ConfigError
from flowsim.scenarios import make_scenario
from flowsim.scenarios.base import ScenarioInstance
from flowsim.sim.kernel import Kernel, StepEvents, crash_guard


@dataclass
class GroupHandle:
    """A vehicle group in the running simulation: config, vehicle ids, array indices, driver.

    ``ids`` and ``indices`` are up to date when the handle is taken from
    :attr:`Simulation.groups` (or :meth:`Simulation.group`) after the last step.
    """

    config: VehicleGroup
    ids: tuple[str, ...]
    indices: np.ndarray
    controller: Controller | None

    @property
    def name(self) -> str:
        """The group's name (the SUMO vType id of the vehicles it places or inserts)."""
        return self.config.type

    @property
    def driven_by(self) -> str:
        """``sumo``, ``rl`` or the flowsim controller's registry name."""
        return self.config.controller.type


class JunctionsAhead(NamedTuple):
    """What lies ahead of some vehicles (one entry each), from
    :meth:`Simulation.junctions_ahead`."""

    #: distance to the end of the vehicle's lane, where the next junction starts (m; 0 inside)
    to_junction: np.ndarray
    #: whether the vehicle is inside a junction now
    in_junction: np.ndarray
    #: distance to the next traffic light on the vehicle's route (m; inf where none is ahead)
    to_signal: np.ndarray
    #: 1.0 where that light shows red or yellow, else 0.0
    signal_stop: np.ndarray


class VehicleClaims:
    """Which group drives a vehicle that enters: the one matching rule for every network.

    A vehicle of vType ``T`` belongs to, in this order:

    1. the group with ``vtype: T``;
    2. else a ``share:`` group, by one uniform draw per vehicle from the episode's seeded RNG
       (group ``k`` takes draws in ``[s_1 + ... + s_{k-1}, s_1 + ... + s_k)``);
    3. else the plain group (no ``vtype``, no ``share``) named ``T``: the vehicles flowsim
       places or inserts for that group;
    4. else none: SUMO drives it and no group tracks it.

    Example:
        >>> groups = [VehicleGroup(type="av", count=0, share=0.5), VehicleGroup(type="h", count=0)]
        >>> claims = VehicleClaims(groups, np.random.default_rng(0))
        >>> [claims.claim("h") for _ in range(4)]
        [1, 0, 0, 0]
    """

    def __init__(self, groups: list[VehicleGroup], rng: np.random.Generator | None) -> None:
        self._by_vtype = {g.vtype: k for k, g in enumerate(groups) if g.vtype is not None}
        self._by_name = {g.type: k for k, g in enumerate(groups) if not g.claims}
        sharing = [k for k, g in enumerate(groups) if g.share is not None]
        bounds = np.cumsum([groups[k].share for k in sharing]).tolist()
        self._shares = list(zip(bounds, sharing, strict=True))
        self._rng = rng

    def claim(self, vehicle_type: str) -> int | None:
        """Position in ``groups`` of the group that drives a new vehicle of ``vehicle_type``."""
        group = self._by_vtype.get(vehicle_type)
        if group is not None:
            return group
        if self._shares:
            assert self._rng is not None
            draw = self._rng.random()
            for bound, group in self._shares:
                if draw < bound:
                    return group
        return self._by_name.get(vehicle_type)


def check_claims(config: FlowsimConfig) -> None:
    """Refuse ``vtype`` / ``share`` groups where they cannot work (ConfigError naming the key):
    on a closed network, a vType claimed twice, or shares adding up to more than 1."""
    claimed: dict[str, int] = {}
    total = 0.0
    for index, group in enumerate(config.vehicles):
        key = f"vehicles[{index}].{'vtype' if group.vtype is not None else 'share'}"
        if group.claims and not config.scenario.open:
            raise ConfigError(
                f"{key}: scenario.type {config.scenario.type} is a closed loop whose vehicles "
                "are all placed by the groups' count; vtype and share claim vehicles entering "
                "an open network (osm, sumo, merge, grid, intersection). Use count instead."
            )
        if group.vtype is not None:
            if group.vtype in claimed:
                raise ConfigError(
                    f"{key}: vType '{group.vtype}' is already claimed by "
                    f"vehicles[{claimed[group.vtype]}]; one group drives a vType."
                )
            claimed[group.vtype] = index
        if group.share is not None:
            total += group.share
            if total > 1 + 1e-9:
                raise ConfigError(
                    f"{key}: the groups' shares add up to {total:g}, more than all vehicles; "
                    "make them sum to at most 1."
                )


def _rgba(color: str) -> tuple[int, int, int, int]:
    parts = [int(part) for part in color.split(",")]
    return (parts[0], parts[1], parts[2], parts[3] if len(parts) == 4 else 255)


class Simulation:
    """Runs a :class:`FlowsimConfig` scenario: builds it, loads it, and drives humans each step.

    Groups whose controller is ``sumo`` are driven by SUMO's own car-following model (no Python
    cost); flowsim controllers act on all vehicles of their group in one vectorised call;
    ``rl`` groups are left to the caller (an env), or to SUMO when ``rl_as_human`` is set.

    Example:
        >>> sim = Simulation(FlowsimConfig())
        >>> _ = sim.reset(seed=0)
        >>> for _ in range(10):
        ...     _ = sim.step()
        >>> round(sim.kernel.time, 1)
        1.1
        >>> sim.close()
    """

    def __init__(self, config: FlowsimConfig, rl_as_human: bool = False) -> None:
        check_claims(config)
        self.config = config
        self.rl_as_human = rl_as_human
        self.scenario = make_scenario(config)
        self.kernel = Kernel(config.sim)
        self.instance: ScenarioInstance | None = None
        self._groups: list[GroupHandle] = []
        #: vehicles that entered since the groups were last brought up to date, by group
        self._joined: dict[int, list[str]] = {}
        #: True when vehicles entered or left since then (see :attr:`groups`)
        self._stale = False
        #: True when nothing needs the groups at every step: no group with a flowsim
        #: controller, an ``rl`` group driven by the env, or a colour to give entering vehicles
        self._lazy = False
        self.router: ContinuousRouter | None = None
        self.steps = 0
        self._reroute_every = 1
        self._rng = np.random.default_rng(config.sim.seed)
        self._step_length = config.sim.step_length
        self._speed_stats = (0.0, 0.0)
        self._stats_of: np.ndarray | None = None  # the speed array _speed_stats came from
        #: vehicles that reached their exit in each step since the reset (open networks)
        self.arrivals: list[int] = []
        self._claims = VehicleClaims([], None)
        self._vtypes_checked = False

    # -- life cycle -----------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> ScenarioInstance:
        """Start a new episode: new scenario instance (e.g. ring length), vehicles inserted."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        sumo_seed = int(self._rng.integers(0, 2**31 - 1))
        self.instance = self.scenario.instance(self._rng)
        self.kernel.load(self.instance, sumo_seed)
        self._setup_groups()
        self.steps = 0
        self.arrivals = []
        return self.instance

    def _setup_groups(self) -> None:
        assert self.instance is not None
        instance, kernel = self.instance, self.kernel
        configs = [g for g in self.config.vehicles if g.count > 0 or instance.open]
        if not self._vtypes_checked:
            self._check_vtypes(configs)
        # Only share groups draw: other configs keep the seeded stream they always had.
        shares = any(g.share is not None for g in configs)
        rng = np.random.default_rng(self._rng.integers(2**63)) if shares else None
        self._claims = VehicleClaims(configs, rng)
        members: list[list[str]] = [[] for _ in configs]
        for vehicle_id in kernel.vehicle_ids:
            group = self._claims.claim(kernel.vehicle_type(vehicle_id))
            if group is not None:
                members[group].append(vehicle_id)
        self._groups = []
        self._joined = {}
        for group, ids in zip(configs, members, strict=True):
            indices = kernel.index_of(tuple(ids))
            controller = None
            driver = group.controller.type
            if driver not in ("sumo", "rl"):
                controller = make_controller(driver, group.controller.params)
                controller.reset(len(ids), np.random.default_rng(self._rng.integers(2**63)))
            handle = GroupHandle(group, tuple(ids), indices, controller)
            self._take_over(handle, indices)
            self._groups.append(handle)
        self._reindex()
        self._lazy = instance.open and not any(map(self._takes_over, self._groups))
        self.router = None
        if instance.open:
            return  # vehicles drive their inflow's route and leave
        self.router = ContinuousRouter(list(instance.ring_edges), instance.route_loops)
        # Check routes often enough that no vehicle can cross half a loop between checks.
        fastest = max(g.max_speed for g in self.config.vehicles) * self.config.sim.step_length
        self._reroute_every = max(1, math.floor(instance.length / (2 * fastest)))

    def _check_vtypes(self, groups: list[VehicleGroup]) -> None:
        """A ``vtype`` that the loaded route files do not define is a ConfigError naming it."""
        wanted = [g for g in groups if g.vtype is not None]
        if wanted:
            with crash_guard("listing vTypes"):
                known = set(self.kernel.backend.api.vehicletype.getIDList())
            defined = sorted(t for t in known if not t.startswith("DEFAULT_"))
            for group in wanted:
                if group.vtype not in known:
                    index = self.config.vehicles.index(group)
                    raise ConfigError(
                        f"vehicles[{index}].vtype: '{group.vtype}' is not a vType of the route "
                        f"files; they define: {', '.join(defined) or 'none'}. Fix the name or "
                        "use share: to claim a fraction of all vehicles."
                    )
        self._vtypes_checked = True

    def _drives(self, handle: GroupHandle) -> bool:
        """Whether flowsim or the env (not SUMO) drives ``handle``'s vehicles."""
        return handle.controller is not None or (handle.driven_by == "rl" and not self.rl_as_human)

    def _takes_over(self, handle: GroupHandle) -> bool:
        """Whether vehicles joining ``handle`` need a command (speed mode or colour) at once."""
        group = handle.config
        return self._drives(handle) or (group.claims and group.color is not None)

    def _take_over(self, handle: GroupHandle, indices: np.ndarray) -> None:
        """Set the speed mode (and colour) of vehicles that ``handle``'s driver now controls."""
        if indices.size == 0:
            return
        group = handle.config
        if self._drives(handle):
            self.kernel.set_speed_mode(indices, group.effective_speed_mode.bits)
        if group.claims and group.color is not None:
            self.kernel.set_color(indices, _rgba(group.color))  # their vType has its own colour

    def close(self) -> None:
        """Close SUMO."""
        self.kernel.close()

    # -- stepping -------------------------------------------------------------------------
    @property
    def groups(self) -> list[GroupHandle]:
        """The running groups, in the config's order, their ids and indices up to date."""
        if self._stale:
            self._reindex()
        return self._groups

    def group(self, name: str) -> GroupHandle:
        """The running group called ``name``."""
        for handle in self.groups:
            if handle.name == name:
                return handle
        raise KeyError(f"no vehicle group '{name}'; groups: {[g.name for g in self.groups]}")

    def rl_indices(self) -> np.ndarray:
        """Array indices of all vehicles driven by the learning agent, groups in order."""
        parts = [g.indices for g in self.groups if g.driven_by == "rl"]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def following_state(self, indices: np.ndarray) -> FollowingState:
        """What a longitudinal controller sees of the vehicles at ``indices`` this step."""
        kernel = self.kernel
        headway, leader_speed = kernel.leaders(indices)
        return FollowingState(
            speed=kernel.speeds()[indices],
            leader_speed=leader_speed,
            headway=headway,
            speed_limit=kernel.speed_limits()[indices],
            step_length=self._step_length,
        )

    def drive_humans(self) -> None:
        """Compute and apply the accelerations of every group with a flowsim controller."""
        for handle in self._groups:  # no group with a controller is brought up to date lazily
            controller = handle.controller
            if controller is None:
                continue
            group = handle.config
            state = self.following_state(handle.indices)
            accel = apply_failsafes(
                controller.accelerations(state),
                state,
                group.effective_failsafes,
                max_accel=group.accel,
                max_decel=group.decel,
            )
            self.kernel.apply_accelerations(handle.indices, accel, state.speed)

    def _reroute(self) -> None:
        assert self.router is not None
        every = np.arange(len(self.kernel.vehicle_ids))
        remaining = self.kernel.route_remaining(every)
        for index, route in self.router.new_routes(self.kernel.edges(), remaining).items():
            self.kernel.set_route(index, route)

    def step(self) -> StepEvents:
        """Drive the humans, keep routes going, and advance SUMO by one step."""
        self.drive_humans()
        if self.router is not None and self.steps % self._reroute_every == 0:
            self._reroute()
        self.steps += 1
        events = self.kernel.step()
        self.arrivals.append(events.arrived)
        if events.changed:
            self._claim(events.added)
            if not self._lazy:
                self._reindex()
        return events

    def _claim(self, added: tuple[str, ...]) -> None:
        """Note the group of each vehicle that entered (claims draw in order of entry); the
        groups follow in :meth:`_reindex`, at once or, when :attr:`_lazy`, when next read."""
        kernel, joined = self.kernel, self._joined
        for vehicle_id in added:
            group = self._claims.claim(kernel.vehicle_type(vehicle_id))
            if group is not None:
                joined.setdefault(group, []).append(vehicle_id)
        self._stale = True

    def _reindex(self) -> None:
        """Recompute group indices (and controller state) after vehicles left or entered."""
        kernel = self.kernel
        present = set(kernel.vehicle_ids)
        joined, self._joined = self._joined, {}
        self._stale = False
        for position, handle in enumerate(self._groups):
            keep = np.array([i in present for i in handle.ids], dtype=bool)
            if not keep.all():
                handle.ids = tuple(i for i in handle.ids if i in present)
                if handle.controller is not None:
                    handle.controller.keep_vehicles(keep)
            # (lazily, vehicles that entered and left since the last read never join)
            entered = tuple([i for i in joined.get(position, ()) if i in present])
            if entered:
                handle.ids += entered
                if handle.controller is not None:
                    handle.controller.add_vehicles(len(entered))
                self._take_over(handle, kernel.index_of(entered))
            handle.indices = kernel.index_of(handle.ids)
        followers = [g.indices for g in self._groups if g.controller is not None]
        if not self.rl_as_human:
            followers.append(self.rl_indices())
        if followers:
            self.kernel.watch_leaders(np.concatenate(followers))

    def junctions_ahead(self, indices: np.ndarray) -> JunctionsAhead:
        """What lies ahead of the vehicles at ``indices``: the next junction and traffic light.

        Read from SUMO on demand (a few calls per vehicle): ask only for the vehicles you need.
        """
        count = indices.size
        to_junction = np.zeros(count)
        inside = np.zeros(count, dtype=bool)
        to_signal = np.full(count, math.inf)
        stop = np.zeros(count)
        api = self.kernel.backend.api
        lane_of, position_of = api.vehicle.getLaneID, api.vehicle.getLanePosition
        lane_length, next_signals = api.lane.getLength, api.vehicle.getNextTLS
        with crash_guard("reading distances to junctions"):
            for row, vehicle_id in enumerate(self.kernel.ids_of(indices)):
                lane = lane_of(vehicle_id)
                if lane.startswith(":"):  # a lane inside a junction
                    inside[row] = True
                elif lane:
                    to_junction[row] = max(lane_length(lane) - position_of(vehicle_id), 0.0)
                signals = next_signals(vehicle_id)
                if signals:
                    _, _, distance, state = signals[0]
                    to_signal[row] = max(distance, 0.0)
                    stop[row] = float(state in "rRyYu")
        return JunctionsAhead(to_junction, inside, to_signal, stop)

    # -- metrics --------------------------------------------------------------------------
    def outflow(self, window_s: float) -> float:
        """Vehicles per hour that reached their exit over the last ``window_s`` seconds (Flow's
        ``get_outflow_rate``: over the steps taken so far when fewer; 0 before the first)."""
        steps = max(1, round(window_s / self.config.sim.step_length))
        recent = self.arrivals[-steps:]
        if not recent:
            return 0.0
        return 3600.0 * sum(recent) / (len(recent) * self.config.sim.step_length)

    def metrics(self) -> dict[str, float]:
        """Mean and standard deviation of speed across vehicles now (m/s)."""
        mean, std = self.speed_stats()
        return {"mean_speed": mean, "speed_std": std}

    def speed_stats(self) -> tuple[float, float]:
        """(mean, standard deviation) of speed across vehicles now (m/s): :meth:`metrics`
        without building a dict, for a reward computed every step."""
        speeds = self.kernel.speeds()
        # The kernel reads a new speed array every step: an env's reward and info share one sum.
        if speeds is not self._stats_of:
            count = speeds.size
            if count == 0:
                self._speed_stats = (0.0, 0.0)
            else:
                # np.add.reduce and ndarray.dot: the same sums as .sum() and @, minus a wrapper
                mean = float(np.add.reduce(speeds)) / count
                variance = max(float(speeds.dot(speeds)) / count - mean * mean, 0.0)
                self._speed_stats = (mean, variance**0.5)
            self._stats_of = speeds
        return self._speed_stats
