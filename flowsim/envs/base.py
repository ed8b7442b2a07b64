"""The base Gymnasium env: a scenario in the kernel, warm-up, horizon, collisions and info."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from flowsim.config import FlowsimConfig, apply_overrides, load_config, parse_config
from flowsim.errors import ConfigError
from flowsim.sim.simulation import Simulation


def resolve_config(
    config: FlowsimConfig | dict[str, Any] | str | Path | None,
    overrides: list[str] | None = None,
    preset: str | None = None,
) -> FlowsimConfig:
    """A validated config from a model, a mapping, a YAML path, or a named preset."""
    if config is None:
        from flowsim.envs.presets import PRESETS

        if preset is not None and preset not in PRESETS:
            raise ConfigError(f"unknown preset '{preset}'; valid: {', '.join(sorted(PRESETS))}")
        config = PRESETS[preset or "ring"]
    if isinstance(config, (str, Path)):
        return load_config(config, overrides)
    if isinstance(config, dict):
        config = parse_config(config, source="env config")
    return apply_overrides(config, overrides) if overrides else config


class FlowsimEnv(gym.Env[np.ndarray, np.ndarray]):
    """Base class of flowsim's envs: subclass it and define the task.

    A subclass sets ``observation_space`` and ``action_space`` in ``__init__`` (after calling
    ``super().__init__``) and implements :meth:`observe`, :meth:`apply_action` and
    :meth:`step_reward`. The base class owns the :class:`Simulation` (scenario, kernel and
    human drivers), seeding, warm-up, the horizon, collisions and ``info``.

    Termination: a collision when ``env.terminate_on_collision`` is set.
    Truncation: ``env.horizon`` agent steps after warm-up.
    Info: ``mean_speed``, ``speed_std`` (m/s across vehicles), ``collisions`` (this step),
    ``teleports``, ``sim_time`` (s) and ``restarts``.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium's convention
    #: Whether NaN action entries reach :meth:`apply_action` as NaN (a task that hands those
    #: vehicles to SUMO's driver, e.g. for the ``human`` baseline) instead of becoming 0.
    keeps_nan: bool = False

    def __init__(
        self,
        config: FlowsimConfig | dict[str, Any] | str | Path | None = None,
        overrides: list[str] | None = None,
        preset: str | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.config = resolve_config(config, overrides, preset)
        self.render_mode = render_mode
        self.simulation = Simulation(self.config)
        self.step_count = 0
        self._sim_seed: int | None = None

    # -- to implement in a task -----------------------------------------------------------
    def observe(self) -> np.ndarray:
        """The observation of the current state."""
        raise NotImplementedError

    def apply_action(self, action: np.ndarray) -> None:
        """Send the agent's action to the kernel (before the step)."""
        raise NotImplementedError

    def step_reward(self, action: np.ndarray) -> float:
        """The reward for the step just taken with ``action``."""
        raise NotImplementedError

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Accept a task written for the hook's old name, ``compute_reward``, with a warning."""
        super().__init_subclass__(**kwargs)
        legacy = cls.__dict__.get("compute_reward")
        if legacy is not None and "step_reward" not in cls.__dict__:
            warnings.warn(
                f"{cls.__qualname__}.compute_reward: flowsim's reward hook is now called "
                "step_reward (Stable-Baselines3 takes any env with a compute_reward method for "
                "a goal-conditioned env); rename the method.",
                DeprecationWarning,
                stacklevel=2,
            )
            cls.step_reward = legacy  # type: ignore[method-assign]

    # -- gymnasium API --------------------------------------------------------------------
    @property
    def kernel(self):
        """The simulation kernel (state reads and commands)."""
        return self.simulation.kernel

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode: new scenario instance, warm-up with humans driving, first obs."""
        if seed is None and self._sim_seed is None:
            seed = self.config.sim.seed  # the config's seed makes a run reproducible by default
        super().reset(seed=seed)
        self._sim_seed = int(self.np_random.integers(0, 2**31 - 1))
        self.simulation.reset(seed=self._sim_seed)
        assert isinstance(self.action_space, gym.spaces.Box)
        self._action_shape = self.action_space.shape
        self._action_low = self.action_space.low.astype(np.float64)
        self._action_high = self.action_space.high.astype(np.float64)
        #: bounds of a one-number action as Python floats (e.g. one AV's acceleration)
        self._scalar_bounds = (
            (self._action_low.item(), self._action_high.item())
            if self._action_low.size == 1
            else None
        )
        for _ in range(self.config.env.warmup_steps):
            self.simulation.step()
        self.on_reset()
        self.step_count = 0
        return self.observe(), self._info(collisions=0)

    def on_reset(self) -> None:
        """Hook after warm-up, before the first observation (e.g. colour AVs)."""

    def on_vehicles_removed(self) -> None:
        """Hook after vehicles left the network (kernel indices changed); re-read indices."""

    def on_vehicles_added(self) -> None:
        """Hook after vehicles entered an open network (appended to the kernel's arrays)."""

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Hold ``action`` for ``env.sims_per_step`` SUMO steps while the humans drive."""
        action = self.sanitize_action(action)
        collided = 0
        for _ in range(self.config.env.sims_per_step):
            self.apply_action(action)
            events = self.simulation.step()
            if events.removed:
                self.on_vehicles_removed()
            if events.added:
                self.on_vehicles_added()
            collided += len(events.collisions)
            if collided:
                break
        self.step_count += 1
        terminated = bool(collided and self.config.env.terminate_on_collision)
        truncated = self.step_count >= self.config.env.horizon and not terminated
        reward = 0.0 if terminated else float(self.step_reward(action))
        return self.observe(), reward, terminated, truncated, self._info(collisions=collided)

    def sanitize_action(self, action: np.ndarray) -> np.ndarray:
        """Actions outside the box are clipped to it; NaN entries become 0 (no command), or
        stay NaN where the task :attr:`keeps_nan`.

        Raises:
            ValueError: the action is not numbers of the action space's shape.
        """
        try:
            action = np.array(action, dtype=np.float64).reshape(self._action_shape)
        except (TypeError, ValueError, OverflowError) as error:
            raise ValueError(
                f"action {repr(action)[:60]}: expected numbers of shape {self._action_shape} "
                f"(action_space {self.action_space}); {error}"
            ) from None
        if self._scalar_bounds is not None:
            # One number: Python's min and max pick the same float as np.minimum and
            # np.maximum wherever there is no NaN, without four NumPy calls.
            value = action.item()
            if value != value and not self.keeps_nan:  # NaN is the only value unequal to itself
                value = 0.0
            low, high = self._scalar_bounds
            action.fill(min(max(value, low), high))  # ``action`` is this call's own copy
            return action
        is_nan = action != action
        if np.count_nonzero(is_nan) and not self.keeps_nan:  # cheaper than .any() on a tiny array
            action[is_nan] = 0.0
        # ufuncs without ``out=`` (keyword arguments cost more than the small allocation);
        # NaN stays NaN through them
        return np.minimum(np.maximum(action, self._action_low), self._action_high)

    def _info(self, collisions: int) -> dict[str, Any]:
        info: dict[str, Any] = self.simulation.metrics()
        kernel = self.simulation.kernel
        info["collisions"] = collisions
        info["teleports"] = kernel.events.teleports
        info["sim_time"] = kernel.time
        info["restarts"] = kernel.restarts
        return info

    def close(self) -> None:
        """Close SUMO."""
        self.simulation.close()
