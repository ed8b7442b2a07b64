"""Flow's merge task: AVs on a highway damp the stop-and-go waves an on-ramp starts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces

from flowsim.envs.base import FlowsimEnv
from flowsim.envs.slots import AVSlots
from flowsim.errors import ConfigError

_AV_COLOR = (255, 0, 0, 255)
#: Observed values per controlled AV.
_PER_AV = 5
#: Headway (s) under which an AV is penalised, and the penalty's weight (Flow's t_min, eta2).
_MIN_TIME_HEADWAY = 1.0
_HEADWAY_WEIGHT = 0.1


class MergeEnv(FlowsimEnv):
    """AVs entering a highway with an on-ramp learn to absorb the waves the merge starts
    (Flow's ``WaveAttenuationMergePOEnv``, ``flowsim/Merge-v0``).

    AVs (``rl`` groups) arrive on inflows. The agent controls up to ``env.num_rl`` of them at a
    time: each new AV waits in a first-come-first-served queue for a free slot and keeps its
    slot until it leaves; AVs without a slot drive by SUMO's model.

    Observation: per slot, ``[v / v_max, (v_lead - v) / v_max, gap_lead / L, (v - v_follow) /
    v_max, gap_follow / L]`` (``5 * num_rl`` floats, zeros for an empty slot), where ``v_max`` is
    the speed limit and ``L`` the highway's length; with no leader (follower) the gap is ``L``
    and its speed ``v_max`` (0).
    Action: each slot's acceleration in ``[-env.max_decel, env.max_accel]`` m/s² (ignored for
    an empty slot). A NaN entry hands that slot's AV to SUMO's driver for the step, as the
    humans drive: the ``human`` baseline of ``flowsim evaluate`` is the all-NaN action
    (:meth:`human_actor`).
    Reward: Flow's desired-velocity reward over all vehicles (``max(‖v*‖ - ‖v - v*‖, 0) /
    ‖v*‖`` with ``v* = env.target_speed``) plus ``0.1 * sum min((h - 1) / 1, 0)`` over the
    controlled AVs' time headways ``h`` (s), floored at 0; 0 on a collision.
    Termination: a collision (with ``env.terminate_on_collision``). Truncation: ``env.horizon``
    agent steps after ``env.warmup_steps``.

    Example:
        >>> import gymnasium as gym, flowsim
        >>> env = gym.make("flowsim/Merge-v0")
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape
        (25,)
        >>> env.close()
    """

    keeps_nan = True  # NaN: SUMO drives that AV

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Arguments as :class:`FlowsimEnv` (config, overrides, preset, render_mode)."""
        super().__init__(*args, **kwargs)
        if self.config.scenario.type != "merge":
            raise ConfigError(
                f"env.type merge needs scenario.type merge, got {self.config.scenario.type}."
            )
        if not any(g.controller.type == "rl" for g in self.config.vehicles):
            raise ConfigError(
                "env.type merge needs a vehicle group with controller: rl entering on an inflow, "
                "e.g. vehicles: [{type: av, count: 0, controller: rl}] and inflows: "
                "[{edge: inflow_highway, vehicle: av, rate: 200}]."
            )
        env = self.config.env
        self.num_rl = env.num_rl
        self.max_speed = self.config.scenario.speed_limit
        merge = self.config.scenario.merge
        self.max_length = merge.inflow_length + merge.pre_merge_length + merge.post_merge_length
        self.action_space = spaces.Box(
            low=np.full(self.num_rl, -env.max_decel, dtype=np.float32),
            high=np.full(self.num_rl, env.max_accel, dtype=np.float32),
            dtype=np.float32,
        )
        low = np.tile(np.array([0, -1, 0, -1, 0], dtype=np.float32), self.num_rl)
        self.observation_space = spaces.Box(
            low=low, high=np.ones(_PER_AV * self.num_rl, dtype=np.float32), dtype=np.float32
        )
        self._slots = AVSlots(self.num_rl, _AV_COLOR)

    # -- the first-come-first-served slots ----------------------------------------------
    def on_reset(self) -> None:
        """Empty the slots and queue, then admit the AVs already in the network."""
        self._slots.reset()
        self._admit()

    def on_vehicles_added(self) -> None:
        """Queue new AVs and give free slots to the longest-waiting ones."""
        self._admit()

    def on_vehicles_removed(self) -> None:
        """Free the slots of AVs that left and refill them from the queue."""
        self._admit()

    def _admit(self) -> None:
        self._slots.admit(self.kernel, self.simulation.rl_indices())

    # -- the task ------------------------------------------------------------------------
    def apply_action(self, action: np.ndarray) -> None:
        """Command each slotted AV's acceleration (m/s²); release those given NaN to SUMO."""
        slots = self._slots
        if not slots.indices.size:
            return
        accel = action[slots.slot_of]
        sumo = np.isnan(accel)
        if sumo.any():
            self.kernel.release(slots.indices[sumo])
            keep = ~sumo
            if keep.any():
                self.kernel.apply_accelerations(slots.indices[keep], accel[keep])
        else:
            self.kernel.apply_accelerations(slots.indices, accel)

    def observe(self) -> np.ndarray:
        """Speed, leader and follower of each slotted AV, normalised."""
        obs = np.zeros((self.num_rl, _PER_AV), dtype=np.float32)
        av = self._slots.indices
        if av.size:
            kernel, v_max, length = self.kernel, self.max_speed, self.max_length
            speed = kernel.speeds()[av]
            lead_gap, lead_speed = kernel.leaders(av)
            no_leader = ~np.isfinite(lead_gap)
            lead_speed = np.where(no_leader, v_max, lead_speed)
            lead_gap = np.where(no_leader, length, lead_gap)
            follow_gap, follow_speed = kernel.followers(av, lookback=length)
            no_follower = ~np.isfinite(follow_gap)
            follow_speed = np.where(no_follower, 0.0, follow_speed)
            follow_gap = np.where(no_follower, length, follow_gap)
            rows = np.stack(
                [
                    speed / v_max,
                    (lead_speed - speed) / v_max,
                    lead_gap / length,
                    (speed - follow_speed) / v_max,
                    follow_gap / length,
                ],
                axis=1,
            )
            obs = self._slots.scatter(rows, _PER_AV)
        return np.clip(obs.reshape(-1), self.observation_space.low, self.observation_space.high)

    def step_reward(self, action: np.ndarray) -> float:
        """Desired-velocity reward plus the AVs' short-headway penalty, floored at 0."""
        speeds = self.kernel.speeds()
        if speeds.size == 0:
            return 0.0
        target = self.config.env.target_speed
        best = target * np.sqrt(speeds.size)
        desired = max(best - float(np.linalg.norm(speeds - target)), 0.0) / best
        penalty = 0.0
        av = self._slots.indices
        if av.size:
            gap, _ = self.kernel.leaders(av)
            speed = speeds[av]
            moving = np.isfinite(gap) & (speed > 0)
            if moving.any():
                headway = np.maximum(gap[moving] / speed[moving], 0.0)
                shortfall = (headway - _MIN_TIME_HEADWAY) / _MIN_TIME_HEADWAY
                penalty = float(np.minimum(shortfall, 0.0).sum())
        return max(desired + _HEADWAY_WEIGHT * penalty, 0.0)

    def human_actor(self) -> Callable[[np.ndarray, Any], np.ndarray]:
        """The ``human`` baseline: every AV driven by SUMO's model, as the humans are."""
        release = np.full(self.action_space.shape, np.nan)
        return lambda _obs, _env: release

    def _info(self, collisions: int) -> dict[str, Any]:
        info = super()._info(collisions)
        info["controlled_avs"] = int(self._slots.indices.size)
        info["queued_avs"] = len(self._slots.queue)
        info["vehicles"] = len(self.kernel.vehicle_ids)
        return info
