"""Small PettingZoo parallel envs in plain Python, for the multi-agent sampler's edge cases
(the real SUMO envs are tested beside them)."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv


class Lights(ParallelEnv):
    """Three "lights" with 2, 4 and 8 phases and observations of 3, 5 and 5 numbers; an agent
    earns 1 when it picks the phase its observation's first entry points at."""

    metadata = {"name": "toy_lights_v0"}  # noqa: RUF012

    def __init__(self, horizon: int = 10) -> None:
        self.possible_agents = ["light_0", "light_1", "light_2"]
        self.phases = {"light_0": 2, "light_1": 4, "light_2": 8}
        sizes = {"light_0": 3, "light_1": 5, "light_2": 5}
        self.observation_spaces = {a: spaces.Box(0.0, 1.0, (sizes[a],)) for a in sizes}
        self.action_spaces = {a: spaces.Discrete(n) for a, n in self.phases.items()}
        self.horizon, self.agents, self.t = horizon, [], 0
        self.rng = np.random.default_rng(0)

    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self.action_spaces[agent]

    def _observe(self) -> dict[str, np.ndarray]:
        return {
            a: self.rng.random(self.observation_spaces[a].shape).astype(np.float32)
            for a in self.agents
        }

    def reset(self, seed: int | None = None, options: Any = None) -> tuple[dict, dict]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.agents, self.t = list(self.possible_agents), 0
        self.last = self._observe()
        return self.last, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        for agent, action in actions.items():
            assert 0 <= int(action) < self.phases[agent], (agent, action)
        rewards = {
            a: float(int(actions[a]) == int(self.last[a][0] * self.phases[a])) for a in self.agents
        }
        self.t += 1
        done = self.t >= self.horizon
        live = list(self.agents)
        self.last = self._observe()
        self.agents = [] if done else live
        return (
            self.last,
            rewards,
            dict.fromkeys(live, False),
            dict.fromkeys(live, done),
            {a: {"mean_speed": 1.0} for a in live},
        )

    def close(self) -> None:
        self.agents = []


class Arrivals(ParallelEnv):
    """AVs that come and go: ``av_k`` enters at step ``2k`` and stays ``stay`` steps (the last
    ends terminated, the others leave without ending: cut off); observation [t, k], one
    acceleration each; reward 1 per step per agent."""

    metadata = {"name": "toy_arrivals_v0"}  # noqa: RUF012

    def __init__(self, count: int = 4, stay: int = 3, horizon: int = 12) -> None:
        self.possible_agents = [f"av_{k}" for k in range(count)]
        self.stay, self.horizon = stay, horizon
        self.agents: list[str] = []
        self.t = 0

    def observation_space(self, agent: str) -> spaces.Box:
        return spaces.Box(-np.inf, np.inf, (3,), dtype=np.float32)

    def action_space(self, agent: str) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)

    def _live(self) -> list[str]:
        return [
            a for k, a in enumerate(self.possible_agents) if 2 * k <= self.t < 2 * k + self.stay
        ]

    def _obs(self, agent: str) -> np.ndarray:
        return np.array([self.t, self.possible_agents.index(agent), 0.0], dtype=np.float32)

    def reset(self, seed: int | None = None, options: Any = None) -> tuple[dict, dict]:
        self.t = 0
        self.agents = self._live()
        return {a: self._obs(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        live = list(self.agents)
        assert set(actions) == set(live), (actions, live)
        self.t += 1
        over = self.t >= self.horizon
        self.agents = [] if over else self._live()
        last = self.possible_agents[-1]
        terminated = {a: a == last and a not in self.agents for a in live}
        observations = {a: self._obs(a) for a in dict.fromkeys([*live, *self.agents])}
        return (
            observations,
            dict.fromkeys(live, 1.0),
            terminated,
            {a: over and not terminated[a] for a in live},
            {a: {} for a in live},
        )

    def close(self) -> None:
        self.agents = []
