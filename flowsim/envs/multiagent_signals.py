"""Traffic-signal control as a PettingZoo parallel env: one agent per traffic light.

The env wraps the single-agent task (:class:`~flowsim.envs.signals.TrafficLightGridEnv`), so
warm-up, yellow and min-green rules, ``env.sims_per_step``, the horizon and seeding are
flowsim's own; this module only splits its observation, action and reward per signal.
Importing it imports PettingZoo; ``import flowsim`` does not.

Example:
    >>> from flowsim.envs.multiagent_signals import parallel_env
    >>> env = parallel_env(overrides=["env.horizon=20"])
    >>> observations, infos = env.reset(seed=0)
    >>> env.agents[:3], observations["center0"].shape
    (['center0', 'center1', 'center2'], (11,))
    >>> env.close()
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from flowsim.config import FlowsimConfig
from flowsim.envs.multiagent import agent_actions
from flowsim.envs.signals import TrafficLightGridEnv
from flowsim.errors import ConfigError


class MultiAgentTrafficLightEnv(ParallelEnv[str, np.ndarray, np.int64]):
    """Every controlled traffic light of a network (Flow's grid, an intersection, an OSM area,
    your own SUMO files, RESCO's maps) is an agent choosing its own green phase (PettingZoo's
    parallel API).

    Agents: one per traffic light in ``env.signals`` (in that order), or per traffic light of
    the network, sorted; named by its SUMO id (``center0`` … on the grid).
    Observation (per agent): that signal's block of
    :class:`~flowsim.envs.signals.TrafficLightGridEnv`'s observation: ``[one-hot green phase,
    min-green passed, incoming lane densities, incoming lane queues]``, zero-padded to the
    largest signal's size, float32 in [0, 1].
    Action (per agent): ``Discrete(n_i)``, the green phase the signal should show, ``n_i``
    its own programme's number of greens (a switch shows ``env.yellow_time`` s of yellow
    first, then the programme's all-red where it has one; ignored until the green has lasted
    ``env.yellow_time + all-red + env.min_green`` s). Rounded and clipped to the signal's
    green phases; NaN, None or a missing agent's action keeps its phase; see
    :func:`~flowsim.envs.multiagent.agent_actions` for unknown agents and wrong shapes.
    Reward (per agent): that signal's own ``env.signal_reward`` (the drop in waiting time on
    its incoming lanes / 100 s, minus its queue, minus its pressure, or its average speed).
    Termination: never, unless a collision happens with ``env.terminate_on_collision`` (every
    agent then ends). Truncation: every agent after ``env.horizon`` steps past warm-up.
    After either, ``agents`` is empty until :meth:`reset`.
    Info (per agent, the same values): the single-agent env's (``queue``, ``waiting_time``,
    ``arrived``, ``vehicles``, ``mean_speed`` …, totals over the network).

    ``env.type`` (``multiagent_traffic_light_grid`` in the YAML) is not read: the task is this
    class's. Only ``render_mode=None`` is supported; watch a run in sumo-gui with
    ``sim.backend=traci`` and ``sim.gui=true``.
    """

    metadata: dict[str, Any] = {  # noqa: RUF012 - PettingZoo's convention
        "name": "flowsim_multiagent_traffic_light_grid_v0",
        "render_modes": [],
        "is_parallelizable": True,
    }

    def __init__(
        self,
        config: FlowsimConfig | dict[str, Any] | str | Path | None = None,
        overrides: list[str] | None = None,
        preset: str | None = None,
        render_mode: str | None = None,
    ) -> None:
        """Build from a config, a mapping, a YAML path or a preset (default: Flow's grid0),
        with ``--set``-style ``overrides``."""
        if render_mode is not None:
            raise ConfigError(
                f"render_mode {render_mode!r} is not supported (only None); to watch the "
                "signals use overrides ['sim.backend=traci', 'sim.gui=true']."
            )
        self.render_mode = render_mode
        #: The single-agent task that runs SUMO, its vectors split by signal.
        self.task = TrafficLightGridEnv(config, overrides, preset)
        self.config = self.task.config
        self.possible_agents: list[str] = list(self.task.signal_ids)
        self.agents: list[str] = []
        self._slot = {agent: slot for slot, agent in enumerate(self.possible_agents)}
        block = self.task.block
        self.observation_spaces = {
            agent: spaces.Box(0.0, 1.0, (block,), dtype=np.float32)
            for agent in self.possible_agents
        }
        self.action_spaces = {
            agent: spaces.Discrete(int(n))
            for agent, n in zip(self.possible_agents, self.task.num_greens, strict=True)
        }

    def observation_space(self, agent: str) -> spaces.Box:
        """The observation space of ``agent`` (the same object at every call)."""
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        """The action space of ``agent`` (the same object at every call)."""
        return self.action_spaces[agent]

    @property
    def kernel(self):
        """The simulation kernel (state reads)."""
        return self.task.kernel

    def _split(self, vector: np.ndarray) -> dict[str, np.ndarray]:
        rows = vector.reshape(len(self.possible_agents), self.task.block)
        return {agent: rows[self._slot[agent]] for agent in self.agents}

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        """Start an episode (new demand, warm-up); every traffic light becomes an agent."""
        vector, info = self.task.reset(seed=seed, options=options)
        self.agents = list(self.possible_agents)
        return self._split(vector), {agent: dict(info) for agent in self.agents}

    def step(
        self, actions: dict[str, Any]
    ) -> tuple[
        dict[str, np.ndarray],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        """Apply every agent's green phase for one agent step; results for those agents."""
        if not self.agents:
            raise RuntimeError("the episode is over (agents is empty): call reset() first")
        # NaN (no action, a missing agent's) keeps the current phase, like any NaN
        phases = agent_actions(actions, self.agents, self._slot, "a green phase index")
        vector, _, terminated, truncated, info = self.task.step(phases)
        live = self.agents
        observations = self._split(vector)
        rewards = {agent: float(self.task.signal_rewards[self._slot[agent]]) for agent in live}
        self.agents = [] if terminated or truncated else live
        return (
            observations,
            rewards,
            dict.fromkeys(live, terminated),
            dict.fromkeys(live, truncated),
            {agent: dict(info) for agent in live},
        )

    def render(self) -> None:
        """Nothing to render (``render_mode`` is None); see the class docstring for sumo-gui."""
        return None

    def close(self) -> None:
        """Close SUMO; the env has no agents afterwards."""
        self.agents = []
        self.task.close()


def parallel_env(
    config: FlowsimConfig | dict[str, Any] | str | Path | None = None,
    overrides: list[str] | None = None,
    preset: str | None = None,
) -> MultiAgentTrafficLightEnv:
    """The multi-agent signal controller (PettingZoo parallel env) from a config, mapping,
    YAML path or preset (``grid`` or ``intersection``; default ``grid``, Flow's grid0);
    ``overrides`` are ``--set``-style, e.g. ``["env.horizon=100"]``."""
    return MultiAgentTrafficLightEnv(config, overrides, preset)


__all__ = ["MultiAgentTrafficLightEnv", "parallel_env"]
