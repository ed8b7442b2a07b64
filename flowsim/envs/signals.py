"""Traffic-signal control: an agent picks the green phase of every traffic light it controls
(sumo-rl's observation and rewards on any network with traffic lights: Flow's grid, a single
intersection, an OpenStreetMap area, your own SUMO files or RESCO's maps)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from flowsim.config import FlowsimConfig
from flowsim.envs.base import FlowsimEnv
from flowsim.errors import ConfigError
from flowsim.scenarios.open import OpenScenario
from flowsim.sim.signals import SignalLayout, Signals, signal_layout
from flowsim.sim.trips import TripMeter

#: sumo-rl scales the waiting-time reward by this (s), so rewards are of order one.
WAITING_TIME_SCALE = 100.0


class TrafficLightGridEnv(FlowsimEnv):
    """One agent sets the green phase of every traffic light it controls, on any network with
    traffic lights (Flow's traffic-light grid, a single intersection, an OSM area, your own
    SUMO files, RESCO's maps), with sumo-rl's observation.

    Signals are the lights named in ``env.signals`` (in that order), or every traffic light of
    the network sorted by id; the others keep running their programme. Each keeps the distinct
    green phases of its own programme in the files, so lights with different numbers of
    phases each get their own action size. Vehicles are driven by SUMO; ``env.warmup_steps``
    run the programmes before the agent takes the lights over.

    Observation: per signal, ``[one-hot of its green phase, min-green passed (0/1), density
    of each incoming lane, queue of each incoming lane]``, densities and queues being vehicles
    and halted vehicles over the lane's jam capacity (length / (vehicle length + min gap)), all
    in [0, 1]. Each signal's block is zero-padded to the largest block, and the blocks are
    concatenated in signal order: a float32 vector of ``signals x block``.
    Action: the green phase each signal should show: ``Discrete(n)`` when one signal is
    controlled, ``MultiDiscrete([n_1, ..., n_k])`` otherwise. A switch shows a yellow for
    ``env.yellow_time`` seconds first (every link losing its green), then the programme's
    all-red phase for its duration where the programme has one; a request is ignored until
    the current green has lasted ``env.yellow_time + all-red + env.min_green`` seconds.
    Out-of-range phases are clipped; NaN keeps the current phase. Each action is held for
    ``env.sims_per_step`` SUMO steps.
    Reward: summed over signals, per ``env.signal_reward``: ``diff_waiting_time`` (sumo-rl's
    default: the drop in the summed waiting time of the vehicles on the incoming lanes since
    the last step, / 100 s), ``queue`` (minus the halted vehicles on the incoming lanes),
    ``pressure`` (minus vehicles on incoming lanes minus vehicles on outgoing lanes) or
    ``average_speed`` (sumo-rl's: the mean over the vehicles on the incoming lanes of their
    speed over the speed they are allowed there; 1 with no vehicle).
    Termination: never, unless a collision happens with ``env.terminate_on_collision``.
    Truncation: ``env.horizon`` agent steps after warm-up.
    Info: the base env's, plus ``queue`` (halted vehicles on all incoming lanes),
    ``waiting_time`` (s, summed on all incoming lanes), ``arrived`` (vehicles that reached
    their exit during the step) and ``vehicles`` (in the network now); at the episode's last
    step also RESCO's trip metrics of the whole episode (``avg_delay``, ``avg_trip_time``,
    ``avg_waiting_time``, ``throughput``: :class:`~flowsim.sim.trips.TripMeter`).

    Example:
        >>> import gymnasium as gym, flowsim
        >>> env = gym.make("flowsim/Intersection-v0")
        >>> obs, info = env.reset(seed=0)
        >>> env.action_space, obs.shape
        (Discrete(2), (19,))
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
            preset = "grid"
        super().__init__(config, overrides, preset, render_mode)
        self.layout: list[SignalLayout] = self._controlled_layout()
        self.num_greens = np.array([len(s.greens) for s in self.layout], dtype=np.int64)
        self.num_lanes = np.array([len(s.incoming) for s in self.layout], dtype=np.int64)
        #: observation floats per signal (the largest signal's; smaller ones are zero-padded)
        self.block = int((self.num_greens + 1 + 2 * self.num_lanes).max())
        count = len(self.layout)
        self.observation_space = spaces.Box(0.0, 1.0, (count * self.block,), dtype=np.float32)
        self.action_space: spaces.Space[Any] = (
            spaces.Discrete(int(self.num_greens[0]))
            if count == 1
            else spaces.MultiDiscrete(self.num_greens)
        )
        # Where each part of a signal's block sits in the observation vector.
        self._block_start = np.arange(count) * self.block
        self._flag_at = self._block_start + self.num_greens
        lane_at = [
            start + greens + 1 + np.arange(lanes)
            for start, greens, lanes in zip(
                self._block_start, self.num_greens, self.num_lanes, strict=True
            )
        ]
        self._density_at = np.concatenate(lane_at)
        self._queue_at = np.concatenate(
            [at + lanes for at, lanes in zip(lane_at, self.num_lanes, strict=True)]
        )
        #: the highest green phase of each signal, and of the only signal (sanitize_action)
        self._last_green = self.num_greens - 1
        self._only_last_green = int(self._last_green[0]) if count == 1 else -1
        spacing = min(g.length + g.min_gap for g in self.config.vehicles)
        env = self.config.env
        self.signals = Signals(
            self.kernel, env.yellow_time, env.min_green, spacing, ids=self.signal_ids
        )
        #: RESCO's trip metrics, read once at the end of each episode
        self.trips = TripMeter(self.kernel)
        #: the last step's reward of each signal (the multi-agent env hands them out)
        self.signal_rewards = np.zeros(count)
        self._last_waiting = np.zeros(count)
        self._new_action = False
        self._arrived = 0

    def _controlled_layout(self) -> list[SignalLayout]:
        """The controlled lights as the network file describes them, in ``env.signals``' order
        (or sorted by id, every light of the network)."""
        config = self.config
        scenario = self.simulation.scenario
        where = f"the {config.scenario.type} network of {config.name}"
        layout = signal_layout(scenario.network()) if isinstance(scenario, OpenScenario) else []
        if not layout:
            raise ConfigError(
                f"env.type {config.env.type} controls traffic lights, but {where} has none; "
                "give a network with traffic lights (scenario.type grid, intersection, an osm "
                "area with signals, or scenario.type sumo with your own files)."
            )
        wanted = list(dict.fromkeys(config.env.signals))
        if not wanted:
            return layout
        by_id = {signal.tls_id: signal for signal in layout}
        unknown = [tls for tls in wanted if tls not in by_id]
        if unknown:
            raise ConfigError(
                f"env.signals: {', '.join(map(repr, unknown))} not among the traffic lights of "
                f"{where}; choose from {', '.join(by_id)} (or leave env.signals empty for all)."
            )
        return [by_id[tls] for tls in wanted]

    @property
    def signal_ids(self) -> tuple[str, ...]:
        """The traffic-light ids, in observation and action order."""
        return tuple(s.tls_id for s in self.layout)

    # -- episode --------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode: new demand, warm-up under SUMO's programme, then take the lights."""
        if seed is None and self._sim_seed is None:
            seed = self.config.sim.seed
        gym.Env.reset(self, seed=seed)  # the base's reset expects a Box action space
        self._sim_seed = int(self.np_random.integers(0, 2**31 - 1))
        self.simulation.reset(seed=self._sim_seed)
        for _ in range(self.config.env.warmup_steps):
            self.simulation.step()
        self.on_reset()
        self.step_count = 0
        return self.observe(), self._signal_info(self._info(collisions=0))

    def on_reset(self) -> None:
        """Take the lights over from SUMO and check them against the network file."""
        self.signals.bind()
        signals = self.signals
        counts = zip(signals.num_greens.tolist(), signals.num_incoming.tolist(), strict=True)
        found = [(tls, *count) for tls, count in zip(signals.ids, counts, strict=True)]
        expected = [(s.tls_id, len(s.greens), len(s.incoming)) for s in self.layout]
        if found != expected:
            raise ConfigError(
                f"the running network's traffic lights (id, greens, incoming lanes) {found} "
                f"differ from its file's {expected}; an additional file may replace their "
                "programmes: keep the number of green phases."
            )
        self._last_waiting = self.signals.waiting_times()
        self.signal_rewards = np.zeros(len(self.layout))
        self._arrived = 0

    def on_vehicles_removed(self) -> None:
        """Count the vehicles that reached their exit (not those removed by a collision)."""
        events = self.kernel.events
        collided = set(events.collisions)
        self._arrived += sum(1 for v in events.removed if v not in collided)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Ask for the green phases in ``action`` and simulate ``env.sims_per_step`` steps."""
        self._arrived = 0
        observation, reward, terminated, truncated, info = super().step(action)
        info = self._signal_info(info)
        if terminated or truncated:
            info.update(self.trips.measure())
        return observation, reward, terminated, truncated, info

    def _signal_info(self, info: dict[str, Any]) -> dict[str, Any]:
        info["queue"] = float(self.signals.queues().sum())
        info["waiting_time"] = float(self.signals.waiting_times().sum())
        info["arrived"] = self._arrived
        info["vehicles"] = len(self.kernel.vehicle_ids)
        return info

    # -- the task -------------------------------------------------------------------------
    def sanitize_action(self, action: Any) -> np.ndarray:
        """One green phase per signal: rounded and clipped to its phases; NaN keeps the
        current phase.

        Raises:
            ValueError: the action is not one number per signal.
        """
        # What action spaces sample (an integer; an integer array of one entry per signal)
        # skips the float path: no rounding or NaN to handle, the same phases.
        if self._only_last_green >= 0 and (type(action) is int or isinstance(action, np.integer)):
            self._new_action = True
            return np.array([min(max(int(action), 0), self._only_last_green)], dtype=np.int64)
        if (
            isinstance(action, np.ndarray)
            and action.dtype.kind == "i"
            and action.shape == self._last_green.shape
        ):
            self._new_action = True
            return np.minimum(np.maximum(action, 0), self._last_green).astype(np.int64)
        try:
            phases = np.array(action, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError, OverflowError) as error:
            raise ValueError(
                f"action {repr(action)[:60]}: expected {len(self.layout)} green phase "
                f"number(s), one per signal {list(self.signal_ids)}; {error}"
            ) from None
        if phases.size != len(self.layout):
            raise ValueError(
                f"expected {len(self.layout)} green phase(s), one per signal "
                f"{list(self.signal_ids)}; got {phases.size}"
            )
        keep = phases != phases  # NaN
        if keep.any():
            phases[keep] = self.signals.phase[keep]
        self._new_action = True
        return np.clip(np.rint(phases), 0, self.num_greens - 1).astype(np.int64)

    def apply_action(self, action: np.ndarray) -> None:
        """End finished yellows; on the first SUMO step of an agent step, request the greens."""
        self.signals.tick()
        if self._new_action:
            self.signals.set_greens(action)
            self._new_action = False

    def observe(self) -> np.ndarray:
        """Each signal's phase one-hot, min-green flag, lane densities and queues, padded."""
        signals = self.signals
        observation = np.zeros(self.observation_space.shape, dtype=np.float32)
        observation[self._block_start + signals.phase] = 1.0
        observation[self._flag_at] = signals.min_green_passed()
        observation[self._density_at] = signals.incoming_densities()
        observation[self._queue_at] = signals.incoming_queues()
        return observation

    def step_reward(self, action: np.ndarray) -> float:
        """The sum over signals of ``env.signal_reward`` (see the class docstring)."""
        kind = self.config.env.signal_reward
        if kind == "diff_waiting_time":
            waiting = self.signals.waiting_times()
            self.signal_rewards = (self._last_waiting - waiting) / WAITING_TIME_SCALE
            self._last_waiting = waiting
        elif kind == "queue":
            self.signal_rewards = -self.signals.queues()
        elif kind == "average_speed":
            self.signal_rewards = self.signals.average_speeds()
        else:
            self.signal_rewards = -self.signals.pressures()
        return float(self.signal_rewards.sum())


__all__ = ["TrafficLightGridEnv"]
