"""AVs on any open network: an OpenStreetMap extract or your own SUMO files."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces

from flowsim.envs.base import FlowsimEnv
from flowsim.envs.slots import AVSlots
from flowsim.errors import ConfigError

_AV_COLOR = (255, 0, 0, 255)
#: Observed values per slot.
_PER_AV = 6


class OpenAccelEnv(FlowsimEnv):
    """The agent accelerates up to ``env.num_rl`` AVs on an open network (``env.type:
    open_accel``), Flow's merge slots generalised to any network with entering vehicles.

    AVs are the vehicles of ``rl`` groups: on an OSM extract or your own files typically a
    group claiming a share of the inserted vehicles (``share: 0.1``) or a vType of the route
    files (``vtype: NAME``). Each AV that enters waits first come, first served for a slot and
    keeps it until it leaves; AVs without a slot drive by SUMO's model.

    Observation: per slot, ``[v / s, (v_lead - v) / s, gap / d, junction / d, signal / d,
    stop]`` (``6 * num_rl`` floats, zeros for an empty slot), where ``s`` is
    ``env.target_speed``, ``d`` is ``env.view_distance`` (distances are capped at it), ``gap``
    the gap to the leader the kernel finds (``Kernel.leaders``: on networks without a main
    route, the leader on the AV's own lane; ``d`` and ``v_lead = v`` with none),
    ``junction`` the distance to the end of the AV's lane (0 inside a junction), ``signal``
    the distance to the next traffic light on its route and ``stop`` 1 where that
    light, within ``d``, shows red or yellow.
    Action: each slot's acceleration in ``[-env.max_decel, env.max_accel]`` m/s² (ignored for
    an empty slot). Inside a junction SUMO drives the AV (it clears the junction as the
    crossing traffic expects). A NaN entry hands that AV to SUMO's driver for the step: the
    ``human`` baseline of ``flowsim evaluate`` is the all-NaN action (:meth:`human_actor`).
    Reward: the network's mean speed over ``env.target_speed`` (every vehicle in it, AVs
    included; 0 when it is empty).
    Termination: a collision (with ``env.terminate_on_collision``). Truncation: ``env.horizon``
    agent steps after ``env.warmup_steps``.

    Example:
        >>> from flowsim.envs import make_env
        >>> env = make_env("scenarios/osm_av.yaml", overrides=["env.warmup_steps=60"])
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape
        (60,)
        >>> env.close()
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Arguments as :class:`FlowsimEnv` (config, overrides, preset, render_mode)."""
        super().__init__(*args, **kwargs)
        config = self.config
        if not config.scenario.open:
            raise ConfigError(
                f"env.type open_accel needs an open network that vehicles enter (osm, sumo, "
                f"merge, grid, intersection); scenario.type {config.scenario.type} is a closed "
                "loop: use env.type accel there."
            )
        if not any(g.controller.type == "rl" for g in config.vehicles):
            raise ConfigError(
                "env.type open_accel needs a vehicle group with controller: rl, e.g. vehicles: "
                "[..., {type: av, count: 0, share: 0.1, controller: rl}] (a tenth of the "
                "inserted vehicles) or {type: av, count: 0, vtype: NAME, controller: rl}."
            )
        env = config.env
        self.num_rl = env.num_rl
        self.speed_scale = env.target_speed
        self.view_distance = env.view_distance
        self.action_space = spaces.Box(
            low=np.full(self.num_rl, -env.max_decel, dtype=np.float32),
            high=np.full(self.num_rl, env.max_accel, dtype=np.float32),
            dtype=np.float32,
        )
        low = np.tile(np.array([0, -2, 0, 0, 0, 0], dtype=np.float32), self.num_rl)
        high = np.tile(np.array([2, 2, 1, 1, 1, 1], dtype=np.float32), self.num_rl)
        self.observation_space = spaces.Box(low=low, high=high, dtype=np.float32)
        self.slots = AVSlots(self.num_rl, _AV_COLOR)
        #: ids of the slotted AVs inside a junction at the last observation
        self._in_junction: set[str] = set()

    # -- slots ----------------------------------------------------------------------------
    def on_reset(self) -> None:
        """Empty the slots, then admit the AVs already in the network."""
        self.slots.reset()
        self._admit()

    def on_vehicles_added(self) -> None:
        """Queue new AVs and give free slots to the longest-waiting ones."""
        self._admit()

    def on_vehicles_removed(self) -> None:
        """Free the slots of AVs that left and refill them from the queue."""
        self._admit()

    def _admit(self) -> None:
        self.slots.admit(self.kernel, self.simulation.rl_indices())

    # -- the task -------------------------------------------------------------------------
    def sanitize_action(self, action: np.ndarray) -> np.ndarray:
        """Clipped to the box as in every env, but NaN entries stay NaN (SUMO drives them)."""
        clean = super().sanitize_action(action)
        nan = np.isnan(np.asarray(action, dtype=np.float64).reshape(clean.shape))
        clean[nan] = np.nan
        return clean

    def apply_action(self, action: np.ndarray) -> None:
        """Command each slotted AV's acceleration (m/s²); release those given NaN to SUMO."""
        slots = self.slots
        if not slots.indices.size:
            return
        accel = action[slots.slot_of]
        sumo = np.isnan(accel)
        if self._in_junction:  # SUMO drives them out of the junction, clear of crossing traffic
            ids = self.kernel.ids_of(slots.indices)
            sumo |= np.fromiter((i in self._in_junction for i in ids), bool, len(ids))
        if sumo.any():
            self.kernel.release(slots.indices[sumo])
            keep = ~sumo
            if keep.any():
                self.kernel.apply_accelerations(slots.indices[keep], accel[keep])
        else:
            self.kernel.apply_accelerations(slots.indices, accel)

    def observe(self) -> np.ndarray:
        """Speed, leader, next junction and next signal of each slotted AV, normalised."""
        av = self.slots.indices
        self._in_junction = set()
        if not av.size:
            return np.zeros(self.observation_space.shape, dtype=np.float32)
        kernel, scale, view = self.kernel, self.speed_scale, self.view_distance
        speed = kernel.speeds()[av]
        gap, lead_speed = kernel.leaders(av)
        seen = np.isfinite(gap) & (gap < view)
        gap = np.where(seen, gap, view)
        lead_speed = np.where(seen, lead_speed, speed)
        ahead = self.simulation.junctions_ahead(av)
        if ahead.in_junction.any():
            ids = self.kernel.ids_of(av)
            self._in_junction = {ids[k] for k in np.flatnonzero(ahead.in_junction).tolist()}
        to_junction, to_signal, stop = ahead.to_junction, ahead.to_signal, ahead.signal_stop
        near = to_signal < view
        rows = np.stack(
            [
                speed / scale,
                (lead_speed - speed) / scale,
                gap / view,
                np.minimum(to_junction, view) / view,
                np.where(near, to_signal, view) / view,
                np.where(near, stop, 0.0),
            ],
            axis=1,
        )
        obs = self.slots.scatter(rows, _PER_AV).reshape(-1)
        return np.clip(obs, self.observation_space.low, self.observation_space.high)

    def step_reward(self, action: np.ndarray) -> float:
        """The network's mean speed over ``env.target_speed``."""
        return self.simulation.metrics()["mean_speed"] / self.speed_scale

    def human_actor(self) -> Callable[[np.ndarray, Any], np.ndarray]:
        """The ``human`` baseline: every AV driven by SUMO's model, as the humans are."""
        release = np.full(self.action_space.shape, np.nan)
        return lambda _obs, _env: release

    def _info(self, collisions: int) -> dict[str, Any]:
        info = super()._info(collisions)
        info["controlled_avs"] = int(self.slots.indices.size)
        info["queued_avs"] = len(self.slots.queue)
        info["vehicles"] = len(self.kernel.vehicle_ids)
        return info
