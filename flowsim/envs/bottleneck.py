"""Flow's bottleneck task: AVs given a speed per road segment and lane keep the lane drop
from losing capacity (Flow's ``DesiredVelocityEnv``, the CoRL 2018 benchmarks bottleneck0-2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces

from flowsim.envs.base import FlowsimEnv
from flowsim.errors import ConfigError
from flowsim.scenarios.bottleneck import BOTTLENECK_EDGES, bottleneck_lanes

#: Normalisers of Flow's observation: vehicles per segment and lane, speed (m/s), outflow (veh/h).
_COUNT_NORM = 20.0
_SPEED_NORM = 50.0
_OUTFLOW_NORM = 2000.0
#: The observation's outflow term counts arrivals over this many SUMO steps (Flow: 20).
_OBS_OUTFLOW_STEPS = 20
#: The lowest maximum speed an AV can be commanded (m/s), as Flow (0 would stop it for good).
_MIN_MAX_SPEED = 0.01


class _Cells:
    """Equal segments of some edges, split by lane: ``index(edges, lanes, positions)`` gives
    each vehicle's cell (segment-major, then lane, edges in road order; Flow's layout) or -1
    for vehicles on another edge or inside a junction."""

    def __init__(
        self,
        segments: dict[str, int],
        lanes: dict[str, int],
        offsets: dict[str, float],
        lengths: dict[str, float],
    ) -> None:
        self.edges = [e for e in BOTTLENECK_EDGES if e in segments]
        self.base: dict[str, int] = {}
        size = 0
        for edge in self.edges:
            self.base[edge] = size
            size += segments[edge] * lanes[edge]
        self.size = size
        self.segments, self.lanes = segments, lanes
        self.offsets, self.lengths = offsets, lengths

    def index(self, edges: list[str], lanes: np.ndarray, positions: np.ndarray) -> np.ndarray:
        cells = np.full(len(edges), -1, dtype=np.int64)
        for k, edge in enumerate(edges):
            base = self.base.get(edge)
            if base is None:
                continue
            along = (positions[k] - self.offsets[edge]) / self.lengths[edge]
            count = self.segments[edge]
            segment = min(max(int(along * count), 0), count - 1) if np.isfinite(along) else 0
            cells[k] = base + segment * self.lanes[edge] + int(lanes[k])
        return cells


class BottleneckEnv(FlowsimEnv):
    """AVs in Flow's lane-drop bottleneck (4N -> 2N -> N lanes) take a speed command per
    segment and lane to keep the merges from losing capacity (``flowsim/Bottleneck-v0``).

    AVs (``rl`` groups) enter on inflows with the humans and are driven by SUMO's model below a
    maximum speed that the agent moves.

    Observation: for each ``env.observed_segments`` cell (an equal segment of an edge, one per
    lane; edges ``1`` to ``5`` in order, segments then lanes), four blocks of one value per
    cell: humans / 20, AVs / 20, the humans' mean speed / 50 and the AVs' mean speed / 50 (0 in
    an empty cell), then the outflow of the last 20 steps / 2000 veh/h (Flow: 141 values for
    N = 1, 281 for N = 2). Values are at least 0 and unbounded above.
    Action: one value per ``env.controlled_segments`` cell (Flow: 20 for N = 1), in
    ``[env.speed_step_low, env.speed_step_high]`` (Flow: [-1.5, 1]): each AV in that cell has
    its maximum speed moved by that much, kept in ``[0.01, env.max_speed]``; AVs outside the
    controlled edges get ``env.max_speed``. A NaN entry hands that cell's AVs to SUMO's driver
    at their vType's ``max_speed``, as the humans drive; an all-NaN action hands every AV to
    it, those off the controlled edges too: the ``human`` baseline of ``flowsim evaluate``
    (:meth:`human_actor`).
    Reward: the outflow over the last ``env.reward_window`` s / (2000 veh/h · N).
    Termination: a collision (with ``env.terminate_on_collision``). Truncation: ``env.horizon``
    agent steps after ``env.warmup_steps``.
    Info adds ``outflow``: vehicles per hour that left over the last ``env.outflow_window`` s
    (Flow's benchmark metric) and ``vehicles`` in the network.

    Example:
        >>> import gymnasium as gym, flowsim
        >>> env = gym.make("flowsim/Bottleneck-v0")
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape, env.action_space.shape
        ((141,), (20,))
        >>> env.close()
    """

    keeps_nan = True  # NaN: SUMO drives the AVs of that cell

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Arguments as :class:`FlowsimEnv` (config, overrides, preset, render_mode)."""
        super().__init__(*args, **kwargs)
        scenario = self.config.scenario
        if scenario.type != "bottleneck":
            raise ConfigError(
                f"env.type bottleneck needs scenario.type bottleneck, got {scenario.type}."
            )
        if not any(g.controller.type == "rl" for g in self.config.vehicles):
            raise ConfigError(
                "env.type bottleneck needs a vehicle group with controller: rl entering on an "
                "inflow, e.g. vehicles: [{type: av, count: 0, controller: rl}] and inflows: "
                "[{edge: '1', vehicle: av, rate: 190}]."
            )
        env = self.config.env
        self.scaling = scenario.bottleneck.scaling
        self.lanes = bottleneck_lanes(self.scaling)
        self._controlled_spec = dict(env.controlled_segments)
        self._observed_spec = dict(env.observed_segments)
        self._controlled: _Cells | None = None
        self._observed: _Cells | None = None
        n_action = sum(n * self.lanes[e] for e, n in self._controlled_spec.items())
        n_cells = sum(n * self.lanes[e] for e, n in self._observed_spec.items())
        self.action_space = spaces.Box(
            low=np.full(n_action, env.speed_step_low, dtype=np.float32),
            high=np.full(n_action, env.speed_step_high, dtype=np.float32),
            dtype=np.float32,
        )
        self.observation_space = spaces.Box(
            low=np.zeros(4 * n_cells + 1, dtype=np.float32),
            high=np.full(4 * n_cells + 1, np.inf, dtype=np.float32),
            dtype=np.float32,
        )
        self._n_cells = n_cells
        #: each AV's current maximum speed (m/s), by id
        self._max_speed: dict[str, float] = {}
        #: each AV vType's own maximum speed (m/s), which SUMO drives a released AV below
        self._own_max_speed = {
            g.type: g.max_speed for g in self.config.vehicles if g.controller.type == "rl"
        }
        self._av_types = set(self._own_max_speed)

    def on_reset(self) -> None:
        """Lay out the cells on this episode's network; forget the AVs' speed caps."""
        instance = self.simulation.instance
        assert instance is not None
        from flowsim.scenarios.open import net_edges

        lengths = {e: length for e, (length, _) in net_edges(instance.net_file).items()}
        offsets = instance.edge_offsets
        self._controlled = _Cells(self._controlled_spec, self.lanes, offsets, lengths)
        self._observed = _Cells(self._observed_spec, self.lanes, offsets, lengths)
        self._max_speed = {}

    def _is_av(self) -> np.ndarray:
        kernel = self.kernel
        return np.fromiter(
            (kernel.vehicle_type(v) in self._av_types for v in kernel.vehicle_ids),
            dtype=bool,
            count=len(kernel.vehicle_ids),
        )

    # -- the task ------------------------------------------------------------------------
    def apply_action(self, action: np.ndarray) -> None:
        """Move each AV's maximum speed by its cell's command (``env.max_speed`` off the
        controlled edges); AVs in a NaN cell (every AV, for an all-NaN action) drive below
        their vType's own maximum speed."""
        avs = self.simulation.rl_indices()
        if avs.size == 0 or self._controlled is None:
            return
        kernel, cap = self.kernel, self.config.env.max_speed
        released = np.isnan(action)
        if released.all():
            self._release_all(avs)
            return
        edges = kernel.edges()
        av_edges = [edges[i] for i in avs.tolist()]
        cells = self._controlled.index(av_edges, kernel.lanes()[avs], kernel.positions()[avs])
        ids = kernel.ids_of(avs)
        caps = np.empty(avs.size)
        held: dict[str, float] = {}
        for k, vehicle_id in enumerate(ids):
            cell = cells[k]
            if cell < 0:
                caps[k] = held[vehicle_id] = cap
            elif released[cell]:
                caps[k] = self._own_max_speed[kernel.vehicle_type(vehicle_id)]
            else:
                current = self._max_speed.get(vehicle_id, cap)
                capped = min(max(current + float(action[cell]), _MIN_MAX_SPEED), cap)
                caps[k] = held[vehicle_id] = capped
        self._max_speed = held
        kernel.set_max_speeds(avs, caps)

    def _release_all(self, avs: np.ndarray) -> None:
        """Give every AV that a command capped its vType's maximum speed back; the others
        are left untouched, so SUMO drives them exactly as it drives the humans."""
        if self._max_speed:
            kernel = self.kernel
            ids = kernel.ids_of(avs)
            capped = np.fromiter((v in self._max_speed for v in ids), bool, len(ids))
            if capped.any():
                own = [
                    self._own_max_speed[kernel.vehicle_type(v)] for v in kernel.ids_of(avs[capped])
                ]
                kernel.set_max_speeds(avs[capped], np.array(own))
            self._max_speed = {}

    def observe(self) -> np.ndarray:
        """Humans and AVs per cell and their mean speeds, normalised, then the outflow."""
        obs = np.zeros(4 * self._n_cells + 1, dtype=np.float32)
        kernel = self.kernel
        if self._observed is not None and kernel.vehicle_ids:
            cells = self._observed.index(kernel.edges(), kernel.lanes(), kernel.positions())
            seen = cells >= 0
            is_av = self._is_av()[seen]
            cells, speeds = cells[seen], kernel.speeds()[seen]
            n = self._n_cells
            for block, mask in ((0, ~is_av), (1, is_av)):
                count = np.bincount(cells[mask], minlength=n)
                total = np.bincount(cells[mask], weights=speeds[mask], minlength=n)
                mean = np.divide(total, count, out=np.zeros(n), where=count > 0)
                obs[block * n : (block + 1) * n] = count / _COUNT_NORM
                obs[(block + 2) * n : (block + 3) * n] = mean / _SPEED_NORM
        step = self.config.sim.step_length
        obs[-1] = self.simulation.outflow(_OBS_OUTFLOW_STEPS * step) / _OUTFLOW_NORM
        return obs

    def step_reward(self, action: np.ndarray) -> float:
        """Outflow over the last ``env.reward_window`` s, per 2000 veh/h and unit of scaling."""
        outflow = self.simulation.outflow(self.config.env.reward_window)
        return outflow / (_OUTFLOW_NORM * self.scaling)

    def human_actor(self) -> Callable[[np.ndarray, Any], np.ndarray]:
        """The ``human`` baseline: every AV driven by SUMO's model, as the humans are."""
        release = np.full(self.action_space.shape, np.nan)
        return lambda _obs, _env: release

    def _info(self, collisions: int) -> dict[str, Any]:
        info = super()._info(collisions)
        info["outflow"] = self.simulation.outflow(self.config.env.outflow_window)
        info["vehicles"] = len(self.kernel.vehicle_ids)
        return info
