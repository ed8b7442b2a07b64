"""Flow's centralised traffic-light grid (``env.type: flow_traffic_light_grid``): the task of
Flow's grid0/grid1 benchmarks (``TrafficLightGridBenchmarkEnv`` on ``TrafficLightGridPOEnv``,
flow/envs/traffic_light_grid.py in flow-project/flow), on flowsim's kernel and signal plumbing.

One agent decides, every step, which lights switch between their two greens (``GrGr`` and
``rGrG`` on Flow's grid). It sees the nearest vehicles on every light's incoming edges and the
density and mean speed of every edge, and is rewarded for speeds near a desired velocity.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from flowsim.config import FlowsimConfig
from flowsim.envs.base import FlowsimEnv
from flowsim.errors import ConfigError
from flowsim.scenarios.open import OpenScenario, edge_speeds
from flowsim.sim.kernel import crash_guard
from flowsim.sim.signals import SignalLayout, Signals, signal_layout

#: Flow's vehicle length in the edge density (``5 * vehicles / edge length``), m.
FLOW_VEHICLE_LENGTH = 5.0
#: Flow's epsilon in the desired-velocity reward and the delay (float32's).
_EPS = float(np.finfo(np.float32).eps)

_READING_POSITIONS = crash_guard("reading lane positions")


def _natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that puts ``center2`` before ``center10`` (Flow numbers its lights)."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _edge_of(lane: str) -> str:
    """The edge of a lane id (``west0_center0_0`` -> ``west0_center0``)."""
    return lane.rsplit("_", 1)[0]


def _edge_lengths(net_file: Path) -> dict[str, float]:
    """Length (m) of lane 0 of every normal (not internal) edge of ``net_file``, in file order."""
    lengths: dict[str, float] = {}
    for edge in ET.parse(net_file).getroot().iter("edge"):
        if edge.get("function") == "internal":
            continue
        lane = edge.find("lane")
        if lane is not None:
            lengths[edge.get("id", "")] = float(lane.get("length", "0"))
    return lengths


class FlowGridEnv(FlowsimEnv):
    """Flow's centralised traffic-light grid benchmark env (grid0 / grid1).

    Every traffic light of the network is controlled; each must have exactly two green phases
    (Flow's ``GrGr`` and ``rGrG``). Lights are in natural id order (``center0``,
    ``center1``, ..., ``center10``), as Flow numbers them; vehicles are driven by SUMO.

    Observation: a float32 vector, Flow's ``TrafficLightGridPOEnv`` layout, with L lights,
    M incoming edges per light (the largest light's; fewer are zero-padded), k =
    ``env.num_observed`` and E the network's edges (grid0: L = 9, M = 4, k = 2, E = 48: 339
    values; grid1: 915)::

        [speed / v_max       (L*M*k)   the k vehicles nearest each light on each incoming
         distance / l_max    (L*M*k)   edge (nearest first; 0 where fewer): speed over the
         edge number / (E-1) (L*M*k)   top speed limit, distance to the light over the
                                        longest edge, the edge's index in the network's list
         density             (E)       5 m x vehicles / edge length, per edge
         mean speed / v_max  (E)       per edge, 0 when empty
         yellow clock        (L)       seconds into the last yellow, up to env.yellow_time
                                        (Flow's last_change; 0 before the first switch)
         direction           (L)       the green shown or switched to (0: GrGr, 1: rGrG)
         yellow              (L)]      1 while the light shows its yellow

    every entry in [0, 1] except the yellow clock, in [0, env.yellow_time].
    Action: ``Box(-1, 1, (L,))``: a value above 0 asks light i to switch to its other green,
    through a yellow of ``env.yellow_time`` seconds (every link losing its green turns
    yellow); requests while a light shows its yellow, and in the step its yellow ends, are
    ignored (Flow's rule); there is no other minimum green. A request is made on the first
    SUMO step of an agent step. NaN asks nothing.
    Reward: ``env.reward``: ``desired_velocity`` (Flow's ``rewards.desired_velocity`` over all
    vehicles: ``max(|v*| - |v - v*|, 0) / |v*|`` with norms over the vehicles and v* =
    ``env.target_speed``; 0 with no vehicle) or ``delay`` (Flow's evaluation reward, minus
    ``rewards.min_delay_unscaled``: dt times the mean over vehicles of (v_top - v) / v_top).
    Termination: a collision, with ``env.terminate_on_collision``.
    Truncation: ``env.horizon`` agent steps after warm-up.
    Info: the base env's.

    Example:
        >>> env = FlowGridEnv()  # Flow's grid0
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape, env.action_space.shape
        ((339,), (9,))
        >>> env.close()
    """

    def __init__(
        self,
        config: FlowsimConfig | dict[str, Any] | str | Path | None = None,
        overrides: list[str] | None = None,
        preset: str | None = None,
        render_mode: str | None = None,
    ) -> None:
        """Arguments as :class:`FlowsimEnv`; with neither config nor preset, Flow's grid0."""
        if config is None and preset is None:
            from flowsim.envs.presets import PRESETS

            grid = dict(PRESETS["grid"])
            grid["env"] = {"type": "flow_traffic_light_grid", "horizon": 400, "warmup_steps": 0}
            config = grid
        super().__init__(config, overrides, preset, render_mode)
        env = self.config.env
        scenario = self.simulation.scenario
        where = f"the {self.config.scenario.type} network of {self.config.name}"
        layout = signal_layout(scenario.network()) if isinstance(scenario, OpenScenario) else []
        if not layout:
            raise ConfigError(
                f"env.type {env.type} switches traffic lights, but {where} has none; give a "
                "network with traffic lights (scenario.type grid, as Flow's benchmark)."
            )
        odd = [s for s in layout if len(s.greens) != 2]
        if odd:
            raise ConfigError(
                f"env.type {env.type} switches each light between two greens (Flow's GrGr and "
                f"rGrG), but {where} has light {odd[0].tls_id!r} with {len(odd[0].greens)} "
                f"({', '.join(odd[0].greens)}); use env.type traffic_light_grid there."
            )
        self.layout: list[SignalLayout] = sorted(layout, key=lambda s: _natural_key(s.tls_id))
        net_file = scenario.network()
        lengths = _edge_lengths(net_file)
        speeds = edge_speeds(net_file)
        #: the network's edges (internal ones excluded), in the observation's order
        self.edge_ids: tuple[str, ...] = tuple(lengths)
        self._edge_index = {edge: k for k, edge in enumerate(self.edge_ids)}
        self._edge_length = np.array(list(lengths.values()))
        self.top_speed = max(speeds[edge] for edge in self.edge_ids)
        self.longest_edge = float(self._edge_length.max())
        incoming = [list(dict.fromkeys(map(_edge_of, s.incoming))) for s in self.layout]
        lights = len(self.layout)
        per_light = max(len(edges) for edges in incoming)
        observed = env.num_observed
        num_edges = len(self.edge_ids)
        #: observation slots of the first observed vehicle of each edge (-1: no light's)
        self._slot = np.full(num_edges, -1, dtype=np.int64)
        for light, edges in enumerate(incoming):
            for j, edge in enumerate(edges):
                self._slot[self._edge_index[edge]] = (light * per_light + j) * observed
        vehicles = lights * per_light * observed
        size = 3 * vehicles + 2 * num_edges + 3 * lights
        self._observation = np.zeros(size, dtype=np.float32)
        # Views of the observation's parts, in Flow's order, filled in place at every step.
        parts = np.split(
            self._observation, np.cumsum([vehicles] * 3 + [num_edges] * 2 + [lights] * 2)
        )
        (self._speed, self._distance, self._number, self._density, self._mean_speed) = parts[:5]
        self._clock, self._direction, self._yellow = parts[5:]
        high = np.ones(size, dtype=np.float32)
        clock_at = 3 * vehicles + 2 * num_edges
        high[clock_at : clock_at + lights] = env.yellow_time  # the yellow clock, in seconds
        self.observation_space = spaces.Box(np.zeros(size, np.float32), high, dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (lights,), dtype=np.float32)
        self._number_scale = 1.0 / max(num_edges - 1, 1)
        self._density_scale = FLOW_VEHICLE_LENGTH / self._edge_length
        self._per_top_speed = 1.0 / self.top_speed
        self._per_longest_edge = 1.0 / self.longest_edge
        self._observed = observed
        self._step_length = float(self.config.sim.step_length)
        # Requests at the step a yellow ends are ignored, as Flow's: one SUMO step of "green".
        self.signals = Signals(self.kernel, env.yellow_time, self._step_length, ids=self.signal_ids)
        #: per light: whether it has switched since the episode began (Flow's clock is 0 before)
        self._switched = np.zeros(lights, dtype=bool)
        self._new_action = False

    @property
    def signal_ids(self) -> tuple[str, ...]:
        """The traffic-light ids, in observation and action order."""
        return tuple(s.tls_id for s in self.layout)

    # -- episode --------------------------------------------------------------------------
    def on_reset(self) -> None:
        """Take the lights over from SUMO's programme (after warm-up)."""
        signals = self.signals
        signals.bind()
        # Flow lets a light switch from the first step: no hold before its first switch (a
        # light taken over in its yellow finishes it first).
        signals.changed_at[~signals.is_yellow] = -np.inf
        self._switched[:] = False

    # -- the task -------------------------------------------------------------------------
    def sanitize_action(self, action: Any) -> np.ndarray:
        """The base env's clipped action (NaN: 0, no request), marked as new."""
        action = super().sanitize_action(action)
        self._new_action = True
        return action

    def apply_action(self, action: np.ndarray) -> None:
        """End finished yellows; on the first SUMO step of an agent step, ask the lights whose
        action is above 0 to switch (refused during their yellow)."""
        signals = self.signals
        signals.tick()
        if not self._new_action:
            return
        self._new_action = False
        request = action > 0.0
        if request.any():
            phase = signals.phase
            signals.set_greens(np.where(request, 1 - phase, phase))
            self._switched |= signals.changed_at == self.kernel.time

    def observe(self) -> np.ndarray:
        """Flow's observation (see the class docstring)."""
        observation = self._observation
        observation.fill(0.0)
        kernel = self.kernel
        count = len(kernel.vehicle_ids)
        if count:
            self._observe_vehicles(count)
        signals = self.signals
        switched = self._switched
        if switched.any():  # Flow's clock: 0 until a light's first switch
            since = kernel.time - signals.changed_at[switched] - self._step_length
            self._clock[switched] = np.minimum(np.maximum(since, 0.0), signals.yellow_time)
        self._direction[:] = signals.phase
        self._yellow[:] = signals.is_yellow
        return observation.copy()

    def _observe_vehicles(self, count: int) -> None:
        """The vehicle and edge entries of the observation, from the kernel's bulk reads."""
        kernel = self.kernel
        speeds = kernel.speeds()
        lookup = self._edge_index.get
        edge = np.fromiter((lookup(e, -1) for e in kernel.edges()), np.int64, count)
        with _READING_POSITIONS:
            along = kernel.backend.lane_positions(kernel.vehicle_ids)
        on_edge = edge >= 0  # vehicles inside a junction are on no edge
        if not on_edge.all():
            edge, speeds, along = edge[on_edge], speeds[on_edge], along[on_edge]
        if edge.size == 0:
            return
        num_edges = self._edge_length.size
        vehicles = np.bincount(edge, minlength=num_edges)
        speed_sum = np.bincount(edge, weights=speeds, minlength=num_edges)
        per_top = self._per_top_speed
        np.minimum(vehicles * self._density_scale, 1.0, out=self._density)
        mean_speed = speed_sum * per_top / np.maximum(vehicles, 1)
        np.minimum(mean_speed, 1.0, out=self._mean_speed)
        # The k nearest vehicles of each incoming edge: sorted by edge, then distance.
        distance = self._edge_length[edge] - along
        order = np.lexsort((distance, edge))
        edge = edge[order]
        rank = np.arange(edge.size) - np.searchsorted(edge, edge)
        base = self._slot[edge]
        shown = (rank < self._observed) & (base >= 0)
        slot = base[shown] + rank[shown]
        chosen = order[shown]
        self._speed[slot] = np.minimum(speeds[chosen] * per_top, 1.0)
        near = distance[chosen] * self._per_longest_edge
        self._distance[slot] = np.minimum(np.maximum(near, 0.0), 1.0)
        self._number[slot] = edge[shown] * self._number_scale

    def step_reward(self, action: np.ndarray) -> float:
        """``env.reward``: Flow's desired velocity, or minus its delay (class docstring)."""
        speeds = self.kernel.speeds()
        count = speeds.size
        if count == 0:
            return 0.0
        if self.config.env.reward == "delay":
            top = self.top_speed
            moving = speeds[speeds >= -1e-6]
            slowdown = float(np.add.reduce((top - moving) / top))
            return -self._step_length * slowdown / (count + _EPS)
        return desired_velocity(speeds, self.config.env.target_speed)


def desired_velocity(speeds: np.ndarray, target: float) -> float:
    """Flow's ``rewards.desired_velocity`` of vehicles at ``speeds`` (m/s) for the desired
    velocity ``target``: 1 when all drive at ``target``, 0 when the speeds are as far from it
    as a standstill of all (or further), 0 with no vehicle.

    >>> round(desired_velocity(np.array([50.0, 50.0]), 50.0), 6)
    1.0
    >>> desired_velocity(np.zeros(3), 50.0)
    0.0
    """
    count = speeds.size
    if count == 0:
        return 0.0
    max_cost = target * count**0.5
    gap = speeds - target
    cost = float(gap.dot(gap)) ** 0.5
    return max(max_cost - cost, 0.0) / (max_cost + _EPS)


__all__ = ["FLOW_VEHICLE_LENGTH", "FlowGridEnv", "desired_velocity"]
