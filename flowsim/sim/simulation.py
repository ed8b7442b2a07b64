"""A scenario running in the kernel with its vehicle groups driven by their controllers."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from flowsim.config import FlowsimConfig, VehicleGroup
from flowsim.controllers import Controller, FollowingState, make_controller
from flowsim.controllers.failsafe import apply_failsafes
from flowsim.controllers.routing import ContinuousRouter
from flowsim.scenarios import make_scenario
from flowsim.scenarios.base import ScenarioInstance
from flowsim.sim.kernel import Kernel, StepEvents


@dataclass
class GroupHandle:
    """A vehicle group in the running simulation: config, vehicle ids, array indices, driver."""

    config: VehicleGroup
    ids: tuple[str, ...]
    indices: np.ndarray
    controller: Controller | None

    @property
    def name(self) -> str:
        """The group's name (its SUMO vType id)."""
        return self.config.type

    @property
    def driven_by(self) -> str:
        """``sumo``, ``rl`` or the flowsim controller's registry name."""
        return self.config.controller.type


class Simulation:
    """Runs a :class:`FlowsimConfig` scenario: builds it, loads it, and drives humans each step.

    Groups whose controller is ``sumo`` are driven by SUMO's own car-following model (no Python
    cost); flowsim controllers act on all vehicles of their group in one vectorised call;
    ``rl`` groups are left to the caller (an env), or to SUMO when ``rl_as_human`` is set.

    Example:
        >>> sim = Simulation(FlowsimConfig())
        >>> sim.reset(seed=0)
        >>> for _ in range(10):
        ...     _ = sim.step()
        >>> round(sim.kernel.time, 1)
        1.1
        >>> sim.close()
    """

    def __init__(self, config: FlowsimConfig, rl_as_human: bool = False) -> None:
        self.config = config
        self.rl_as_human = rl_as_human
        self.scenario = make_scenario(config)
        self.kernel = Kernel(config.sim)
        self.instance: ScenarioInstance | None = None
        self.groups: list[GroupHandle] = []
        self.router: ContinuousRouter | None = None
        self.steps = 0
        self._reroute_every = 1
        self._rng = np.random.default_rng(config.sim.seed)
        self._metrics: dict[str, float] = {}
        self._metrics_of: np.ndarray | None = None  # the speed array _metrics was computed from

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
        return self.instance

    def _setup_groups(self) -> None:
        assert self.instance is not None
        self.groups = []
        kernel = self.kernel
        for group in self.config.vehicles:
            if group.count == 0 and not self.instance.open:
                continue
            ids = tuple(v for v in kernel.vehicle_ids if kernel.vehicle_type(v) == group.type)
            indices = kernel.index_of(ids)
            controller = None
            driver = group.controller.type
            if driver not in ("sumo", "rl"):
                controller = make_controller(driver, group.controller.params)
                controller.reset(len(ids), np.random.default_rng(self._rng.integers(2**63)))
            if controller is not None or (driver == "rl" and not self.rl_as_human):
                self.kernel.set_speed_mode(indices, group.effective_speed_mode.bits)
            self.groups.append(GroupHandle(group, ids, indices, controller))
        self._reindex()
        self.router = None
        if self.instance.open:
            return  # vehicles drive their inflow's route and leave
        self.router = ContinuousRouter(list(self.instance.ring_edges), self.instance.route_loops)
        # Check routes often enough that no vehicle can cross half a loop between checks.
        fastest = max(g.max_speed for g in self.config.vehicles) * self.config.sim.step_length
        self._reroute_every = max(1, math.floor(self.instance.length / (2 * fastest)))

    def close(self) -> None:
        """Close SUMO."""
        self.kernel.close()

    # -- stepping -------------------------------------------------------------------------
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
        headway, leader_speed = self.kernel.leaders(indices)
        return FollowingState(
            speed=self.kernel.speeds()[indices],
            leader_speed=leader_speed,
            headway=headway,
            speed_limit=self.kernel.speed_limits()[indices],
            step_length=self.config.sim.step_length,
        )

    def drive_humans(self) -> None:
        """Compute and apply the accelerations of every group with a flowsim controller."""
        for handle in self.groups:
            if handle.controller is None:
                continue
            state = self.following_state(handle.indices)
            accel = handle.controller.accelerations(state)
            accel = apply_failsafes(
                accel,
                state,
                handle.config.effective_failsafes,
                max_accel=handle.config.accel,
                max_decel=handle.config.decel,
            )
            self.kernel.apply_accelerations(handle.indices, accel)

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
        if events.changed:
            self._reindex(events.added)
        return events

    def _reindex(self, added: tuple[str, ...] = ()) -> None:
        """Recompute group indices (and controller state) after vehicles left or entered."""
        kernel = self.kernel
        present = set(kernel.vehicle_ids)
        by_type: dict[str, list[str]] = {}
        for vehicle_id in added:
            by_type.setdefault(kernel.vehicle_type(vehicle_id), []).append(vehicle_id)
        for handle in self.groups:
            keep = np.array([i in present for i in handle.ids], dtype=bool)
            if not keep.all():
                handle.ids = tuple(i for i in handle.ids if i in present)
                if handle.controller is not None:
                    handle.controller.keep_vehicles(keep)
            joined = tuple(by_type.get(handle.name, ()))
            if joined:
                handle.ids += joined
                new = kernel.index_of(joined)
                if handle.controller is not None:
                    handle.controller.add_vehicles(len(joined))
                if handle.controller is not None or (
                    handle.driven_by == "rl" and not self.rl_as_human
                ):
                    kernel.set_speed_mode(new, handle.config.effective_speed_mode.bits)
            handle.indices = kernel.index_of(handle.ids)
        followers = [g.indices for g in self.groups if g.controller is not None]
        if not self.rl_as_human:
            followers.append(self.rl_indices())
        if followers:
            self.kernel.watch_leaders(np.concatenate(followers))

    # -- metrics --------------------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        """Mean and standard deviation of speed across vehicles now (m/s)."""
        speeds = self.kernel.speeds()
        # The kernel reads a new speed array every step: an env's reward and info share one sum.
        if speeds is not self._metrics_of:
            count = speeds.size
            if count == 0:
                self._metrics = {"mean_speed": 0.0, "speed_std": 0.0}
            else:
                mean = float(speeds.sum()) / count
                variance = max(float(speeds @ speeds) / count - mean * mean, 0.0)
                self._metrics = {"mean_speed": mean, "speed_std": variance**0.5}
            self._metrics_of = speeds
        return dict(self._metrics)
