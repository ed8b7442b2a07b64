"""Loop tasks: one AV damping the Sugiyama wave, and N AVs that see a whole loop (a ring, a
multi-lane ring or Flow's figure eight)."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from flowsim.envs.base import FlowsimEnv

_AV_COLOR = (255, 0, 0, 255)


class _RingTask(FlowsimEnv):
    """Shared set-up: the AVs (``rl`` groups), accelerations in [-max_decel, max_accel]."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Arguments as :class:`FlowsimEnv` (config, overrides, preset, render_mode)."""
        super().__init__(*args, **kwargs)
        self.num_avs = sum(g.count for g in self.config.vehicles if g.controller.type == "rl")
        if self.num_avs == 0:
            from flowsim.errors import ConfigError

            raise ConfigError(
                f"env.type {self.config.env.type} needs at least one vehicle with controller: rl; "
                "add a group such as {type: av, count: 1, controller: rl}."
            )
        self.max_speed = self.config.scenario.speed_limit
        self.max_length = float(self.config.scenario.max_length)
        env = self.config.env
        self.action_space = spaces.Box(
            low=np.full(self.num_avs, -env.max_decel, dtype=np.float32),
            high=np.full(self.num_avs, env.max_accel, dtype=np.float32),
            dtype=np.float32,
        )
        self._av_indices = np.zeros(0, dtype=np.int64)
        #: Action slot of each AV still present (AV ``k`` at reset owns slot ``k``).
        self._av_slots = np.zeros(0, dtype=np.int64)
        self._av_ids: tuple[str, ...] = ()

    def on_reset(self) -> None:
        """Find the AVs, give each its action slot and colour them."""
        self._av_indices = self.simulation.rl_indices()
        self._av_ids = self.kernel.ids_of(self._av_indices)
        self._av_slots = np.arange(self._av_indices.size)
        self.kernel.set_color(self._av_indices, _AV_COLOR)

    def on_vehicles_removed(self) -> None:
        """Re-read the AVs' indices; the AVs still present keep their action slots."""
        self._av_indices = self.simulation.rl_indices()
        slot = {av: k for k, av in enumerate(self._av_ids)}
        self._av_slots = np.array(
            [slot[av] for av in self.kernel.ids_of(self._av_indices)], dtype=np.int64
        )

    def apply_action(self, action: np.ndarray) -> None:
        """Command each AV's acceleration (m/s²) from its own slot; removed AVs are skipped."""
        self.kernel.apply_accelerations(self._av_indices, action[self._av_slots])


class WaveAttenuationEnv(_RingTask):
    """One AV on a ring of human drivers learns to dissolve the stop-and-go wave (Flow's ring).

    Observation: ``[v_av / v_max, (v_lead - v_av) / v_max, headway / L_max]`` (3 floats), where
    ``v_max`` is the speed limit and ``L_max`` the largest ring length.
    Action: the AV's acceleration in ``[-env.max_decel, env.max_accel]`` m/s².
    Reward: ``(speed_weight * mean(v) - wave_penalty * std(v)) / target_speed
    - accel_penalty * mean|a_av|`` over all vehicles' speeds ``v`` (Flow's reward is
    ``4 * mean(v) / 20 - 4 * mean|a|``, i.e. ``wave_penalty: 0``); 0 on a collision.
    Termination: a collision. Truncation: ``env.horizon`` steps after ``env.warmup_steps``.

    Example:
        >>> import gymnasium as gym, flowsim
        >>> env = gym.make("flowsim/Ring-v0", overrides=["env.warmup_steps=10"])
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape
        (3,)
        >>> env.close()
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Arguments as :class:`FlowsimEnv` (config, overrides, preset, render_mode)."""
        super().__init__(*args, **kwargs)
        self.observation_space = spaces.Box(
            low=np.array([0.0, -1.0, 0.0], dtype=np.float32),
            high=np.array([1.0, 1.0, 1.0], dtype=np.float32),
            dtype=np.float32,
        )

    def observe(self) -> np.ndarray:
        """The first AV's speed, speed difference to its leader and headway, normalised."""
        av = self._av_indices[:1]
        if av.size == 0:  # the AV was removed by a collision
            return np.zeros(3, dtype=np.float32)
        headway, leader_speed = self.kernel.leaders(av)
        speed = float(self.kernel.speeds()[av[0]])
        relative = (float(leader_speed[0]) - speed) / self.max_speed
        return np.array(
            [
                min(speed / self.max_speed, 1.0),
                max(-1.0, min(relative, 1.0)),
                min(float(headway[0]), self.max_length) / self.max_length,
            ],
            dtype=np.float32,
        )

    def step_reward(self, action: np.ndarray) -> float:
        """System speed bonus minus the wave's amplitude and the AV's acceleration effort."""
        env = self.config.env
        mean_speed, speed_std = self.simulation.speed_stats()
        if action.size == 1:  # one AV: the same number as the sum below, without two ufuncs
            effort = abs(float(action[0]))
        else:
            effort = float(np.abs(action).sum()) / max(action.size, 1)
        return (
            env.speed_weight * mean_speed / env.target_speed
            - env.wave_penalty * speed_std / env.target_speed
            - env.accel_penalty * effort
        )


class AccelEnv(_RingTask):
    """N AVs on a loop (ring, multi-lane ring, figure eight), each seeing every vehicle; reward
    for all vehicles driving near a target speed (Flow's AccelEnv: ``flowsim/FigureEight-v0``,
    ``flowsim/MultiLaneRing-v0``).

    Observation: for every vehicle in id order, ``speed / v_max`` and ``position / L``, and on
    several lanes ``lane / (lanes - 1)``: ``2 * n`` floats in [0, 1] on one lane (Flow's
    figure eight: 28 for 14 vehicles), ``3 * n`` on several.
    Action: each AV's acceleration in ``[-env.max_decel, env.max_accel]`` m/s².
    Reward: Flow's desired-velocity reward ``max(‖v*‖ - ‖v - v*‖, 0) / ‖v*‖`` with
    ``v* = env.target_speed`` for every vehicle (1 when all drive at the target); 0 on a
    collision.
    Termination: a collision. Truncation: ``env.horizon`` steps after ``env.warmup_steps``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Arguments as :class:`FlowsimEnv` (config, overrides, preset, render_mode)."""
        super().__init__(*args, **kwargs)
        self.num_vehicles = self.config.num_vehicles
        self._features = 3 if self.config.scenario.lanes > 1 else 2
        size = self._features * self.num_vehicles
        self.observation_space = spaces.Box(
            low=np.zeros(size, dtype=np.float32),
            high=np.ones(size, dtype=np.float32),
            dtype=np.float32,
        )

    def observe(self) -> np.ndarray:
        """Speeds, positions (and lanes, on several) of all vehicles, normalised to [0, 1].

        Each vehicle keeps its slot for the whole episode; a vehicle removed after a collision
        leaves zeros in its slot.
        """
        instance = self.simulation.instance
        assert instance is not None
        obs = np.zeros((self._features, self.num_vehicles), dtype=np.float32)
        slots = self._slots
        obs[0, slots] = self.kernel.speeds() / self.max_speed
        obs[1, slots] = self.kernel.positions() / instance.length
        if self._features == 3:
            obs[2, slots] = self.kernel.lanes() / (instance.lanes - 1)
        return np.clip(obs.reshape(-1), 0.0, 1.0)

    def on_reset(self) -> None:
        """Find the AVs and give every vehicle its observation slot."""
        super().on_reset()
        self._slots = np.arange(len(self.kernel.vehicle_ids))

    def on_vehicles_removed(self) -> None:
        """Re-read AV indices; vehicles still present keep their original slots."""
        super().on_vehicles_removed()
        assert self.simulation.instance is not None
        original = {v: k for k, v in enumerate(self.simulation.instance.vehicle_ids)}
        self._slots = np.array([original[v] for v in self.kernel.vehicle_ids], dtype=np.int64)

    def step_reward(self, action: np.ndarray) -> float:
        """How close all vehicles drive to the target speed, in [0, 1]."""
        speeds = self.kernel.speeds()
        target = np.full(speeds.shape, self.config.env.target_speed)
        best = np.linalg.norm(target)
        return float(max(best - np.linalg.norm(speeds - target), 0.0) / best)


#: SUMO lane-change mode for AVs: no lane changes of SUMO's own; commanded ones avoid immediate
#: collisions (bits 8-9 = 1). Mode 512 (also respect others' braking gaps) refused nearly every
#: change on a busy two-lane ring.
_COMMANDED_SAFE_LANE_CHANGES = 256


class LaneChangeAccelEnv(AccelEnv):
    """AVs on a multi-lane loop choose an acceleration and a lane change (Flow's
    LaneChangeAccelEnv, ``flowsim/LaneChangeRing-v0``).

    Observation: as :class:`AccelEnv` (speed, position and lane of every vehicle, in [0, 1]).
    Action: ``2 * n`` floats, the ``n`` AVs' accelerations in ``[-env.max_decel,
    env.max_accel]`` m/s², then their lane-change directions in ``[-1, 1]``, rounded to
    right (-1), keep (0) or left (+1). A change is ignored within ``env.lane_change_duration``
    seconds of the AV's previous one, or when there is no lane on that side; SUMO carries it
    out as soon as it causes no immediate collision (trying for that duration, then holding
    the lane), and never changes an AV's lane on its own.
    Reward: :class:`AccelEnv`'s desired-velocity reward minus ``env.lane_change_penalty`` per
    lane change started this step.
    Termination: a collision. Truncation: ``env.horizon`` steps after ``env.warmup_steps``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Arguments as :class:`FlowsimEnv` (config, overrides, preset, render_mode)."""
        super().__init__(*args, **kwargs)
        env, n = self.config.env, self.num_avs
        self.action_space = spaces.Box(
            low=np.concatenate([np.full(n, -env.max_decel), -np.ones(n)]).astype(np.float32),
            high=np.concatenate([np.full(n, env.max_accel), np.ones(n)]).astype(np.float32),
            dtype=np.float32,
        )
        self._last_change = np.full(n, -np.inf)
        self._decide = True
        self._changes = 0

    def on_reset(self) -> None:
        """Find the AVs, give them observation slots and take lane changes out of SUMO's hands."""
        super().on_reset()
        self.kernel.set_lane_change_mode(self._av_indices, _COMMANDED_SAFE_LANE_CHANGES)
        self._last_change = np.full(self.num_avs, -np.inf)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One agent step: lane changes are decided at its first SUMO step only."""
        self._decide, self._changes = True, 0
        return super().step(action)

    def apply_action(self, action: np.ndarray) -> None:
        """Command accelerations every SUMO step and lane changes once per agent step."""
        slots = self._av_slots
        self.kernel.apply_accelerations(self._av_indices, action[slots])
        if not self._decide:
            return
        self._decide = False
        direction = np.rint(action[self.num_avs + slots]).astype(np.int64)
        now = self.kernel.time
        direction[now - self._last_change[slots] < self.config.env.lane_change_duration] = 0
        lanes = self.kernel.lanes()[self._av_indices]
        top = self.simulation.instance.lanes - 1 if self.simulation.instance else 0
        direction[(lanes + direction < 0) | (lanes + direction > top)] = 0
        moving = direction != 0
        if moving.any():
            hold = max(self.config.env.lane_change_duration, self.config.sim.step_length)
            self.kernel.apply_lane_changes(self._av_indices, direction, hold)
            self._last_change[slots[moving]] = now
            self._changes = int(moving.sum())

    def step_reward(self, action: np.ndarray) -> float:
        """Desired-velocity reward minus the cost of this step's lane changes."""
        return super().step_reward(action) - self.config.env.lane_change_penalty * self._changes
