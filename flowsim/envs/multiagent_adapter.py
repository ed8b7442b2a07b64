"""A PettingZoo parallel env as flowsim's policies see it: agents mapped onto policies, each
policy with one observation and action space (padded, masked), and the global state.

The env's own per-agent spaces stay the truth: a light with ``Discrete(2)`` keeps it. A policy
that drives agents with different spaces sees:

- observations flattened and zero-padded to the largest of its agents' (plus, with
  ``train.multiagent.agent_index_in_obs``, the agent's one-hot index among its agents);
- for ``Discrete`` actions, ``Discrete(max n)`` and, per agent, an action mask that is False
  for the choices the agent does not have, so the policy can never pick them (the logits are
  masked, nothing is clipped); ``Box`` actions of one shape (bounds: the union);
  ``MultiDiscrete`` actions only when all its agents have the same space.

The global state (for a centralised critic) is the env's ``state()`` when it has a
``state_space``, else every possible agent's padded observation one after another (zeros for
an agent that is not live).

>>> from flowsim.envs.multiagent import parallel_env
>>> from flowsim.config.train import MultiAgentConfig
>>> adapter = MultiAgentAdapter(parallel_env(overrides=["env.warmup_steps=10"]),
...                             MultiAgentConfig())
>>> adapter.policy_ids, adapter.policies["shared"].observation_space.shape
(['shared'], (3,))
>>> adapter.close()
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from flowsim.config.train import MultiAgentConfig
from flowsim.errors import ConfigError

__all__ = ["MultiAgentAdapter", "PolicySpaces", "agent_type", "assign_policies"]

#: The one policy of ``train.multiagent.policies: shared``.
SHARED = "shared"
_KEY = "train.multiagent.policies"


def agent_type(agent: str) -> str:
    """An agent's type: its id without a trailing ``_<number>`` (``av_0`` -> ``av``).

    >>> agent_type("av_12"), agent_type("center0")
    ('av', 'center0')
    """
    match = re.fullmatch(r"(.+)_\d+", agent)
    return match.group(1) if match else agent


def assign_policies(settings: MultiAgentConfig, agents: Sequence[str]) -> dict[str, str]:
    """Each agent's policy id under ``settings.policies``, in ``agents`` order.

    Raises:
        ConfigError: a pattern or type matches no agent, an agent is matched by no group, or
            by two (each message names the key and the agents).
    """
    policies = settings.policies
    if policies == SHARED:
        return dict.fromkeys(agents, SHARED)
    if policies == "per_agent":
        return {agent: agent for agent in agents}
    assert isinstance(policies, dict)
    shown = ", ".join(list(agents)[:12]) + (" ..." if len(agents) > 12 else "")
    owner: dict[str, str] = {}
    for name, group in policies.items():
        for pattern in group.agents:
            if not fnmatch.filter(agents, pattern):
                raise ConfigError(
                    f"{_KEY}.{name}.agents: pattern {pattern!r} matches no agent; the agents "
                    f"are {shown}."
                )
        types = {agent_type(agent) for agent in agents}
        for kind in group.types:
            if kind not in types:
                raise ConfigError(
                    f"{_KEY}.{name}.types: no agent has type {kind!r}; the types are "
                    f"{', '.join(sorted(types))}."
                )
        for agent in agents:
            hit = any(fnmatch.fnmatchcase(agent, p) for p in group.agents)
            if hit or agent_type(agent) in group.types:
                if agent in owner:
                    raise ConfigError(
                        f"{_KEY}: agent {agent!r} is matched by both {owner[agent]} and {name}; "
                        "each agent needs exactly one policy: narrow one of the patterns."
                    )
                owner[agent] = name
    unmatched = [agent for agent in agents if agent not in owner]
    if unmatched:
        raise ConfigError(
            f"{_KEY}: agent(s) {', '.join(unmatched[:12])} matched by no policy; add a pattern "
            f"(e.g. '*') or a type to one of {', '.join(policies)}."
        )
    return {agent: owner[agent] for agent in agents}


@dataclass(frozen=True)
class PolicySpaces:
    """What one policy sees: its agents (in env order) and its padded spaces.

    Attributes:
        agents: the possible agents it drives.
        observation_space: flat ``Box`` (padded; the index one-hot appended when asked).
        action_space: ``Discrete(max n)``, a ``Box`` or a ``MultiDiscrete``.
        masked: whether its agents' choices differ, so batches carry action masks.
    """

    agents: tuple[str, ...]
    observation_space: spaces.Box
    action_space: spaces.Space
    masked: bool


class MultiAgentAdapter:
    """Wraps a PettingZoo parallel env for flowsim's runners (see the module docstring).

    Args:
        env: the parallel env (``possible_agents``, per-agent spaces, ``reset``/``step``).
        settings: ``train.multiagent``: the agent -> policy mapping, the agent index, the critic.

    Raises:
        ConfigError: the mapping is bad (:func:`assign_policies`), or one policy drives agents
            whose action spaces cannot share a head (Box and Discrete, Box shapes differ).
    """

    def __init__(self, env: Any, settings: MultiAgentConfig) -> None:
        self.env = env
        self.settings = settings
        self.possible_agents: list[str] = list(env.possible_agents)
        self.slot = {agent: i for i, agent in enumerate(self.possible_agents)}
        self.policy_of = assign_policies(settings, self.possible_agents)
        self.policy_ids: list[str] = list(dict.fromkeys(self.policy_of.values()))
        self.policies = {pid: self._spaces(pid) for pid in self.policy_ids}
        self._obs_sizes = {
            agent: math.prod(env.observation_space(agent).shape or (1,))
            for agent in self.possible_agents
        }
        self._index = {
            agent: spaces_.agents.index(agent)
            for spaces_ in self.policies.values()
            for agent in spaces_.agents
        }
        self._masks = {agent: self._mask(agent) for agent in self.possible_agents}
        state_space = getattr(env, "state_space", None)
        self.has_state = state_space is not None
        if self.has_state:
            self.state_dim = math.prod(state_space.shape)
        else:
            self.state_dim = sum(self._obs_sizes.values())

    # -- spaces ---------------------------------------------------------------------------
    def _spaces(self, pid: str) -> PolicySpaces:
        agents = tuple(a for a in self.possible_agents if self.policy_of[a] == pid)
        obs_spaces = [self.env.observation_space(a) for a in agents]
        size = max(math.prod(s.shape or (1,)) for s in obs_spaces)
        low = np.zeros(size, dtype=np.float32)
        high = np.zeros(size, dtype=np.float32)
        for space in obs_spaces:
            flat = math.prod(space.shape or (1,))
            low[:flat] = np.minimum(low[:flat], np.asarray(space.low, np.float32).reshape(-1))
            high[:flat] = np.maximum(high[:flat], np.asarray(space.high, np.float32).reshape(-1))
        if self.settings.agent_index_in_obs:
            low = np.concatenate([low, np.zeros(len(agents), np.float32)])
            high = np.concatenate([high, np.ones(len(agents), np.float32)])
        observation = spaces.Box(low, high, dtype=np.float32)
        action_spaces = [self.env.action_space(a) for a in agents]
        action, masked = self._action_space(pid, agents, action_spaces)
        return PolicySpaces(agents, observation, action, masked)

    @staticmethod
    def _action_space(
        pid: str, agents: tuple[str, ...], action_spaces: list[spaces.Space]
    ) -> tuple[spaces.Space, bool]:
        first = action_spaces[0]
        kinds = {type(space).__name__ for space in action_spaces}
        where = f"{_KEY} (policy {pid!r}, agents {', '.join(agents[:6])})"
        if len(kinds) > 1:
            raise ConfigError(
                f"{where}: one policy cannot drive agents with {' and '.join(sorted(kinds))} "
                "actions; give them separate policies (named groups or per_agent)."
            )
        if isinstance(first, spaces.Discrete):
            if any(int(space.start) != 0 for space in action_spaces):
                raise ConfigError(f"{where}: Discrete spaces with a start other than 0.")
            choices = [int(space.n) for space in action_spaces]
            return spaces.Discrete(max(choices)), len(set(choices)) > 1
        if isinstance(first, spaces.Box):
            shapes = {space.shape for space in action_spaces}
            if len(shapes) > 1:
                raise ConfigError(
                    f"{where}: Box actions of shapes {sorted(shapes)}; one policy needs one "
                    "shape: give them separate policies."
                )
            low = np.min([space.low for space in action_spaces], axis=0)
            high = np.max([space.high for space in action_spaces], axis=0)
            return spaces.Box(low, high, dtype=first.dtype), False
        if all(space == first for space in action_spaces):
            return first, False
        raise ConfigError(
            f"{where}: {type(first).__name__} actions that differ between agents; give them "
            "separate policies."
        )

    def _mask(self, agent: str) -> np.ndarray | None:
        """Valid choices of ``agent`` in its policy's ``Discrete(max n)`` (None: no mask)."""
        policy = self.policies[self.policy_of[agent]]
        if not policy.masked:
            return None
        width = int(policy.action_space.n)  # type: ignore[attr-defined]
        return np.arange(width) < int(self.env.action_space(agent).n)

    def action_mask(self, agent: str) -> np.ndarray | None:
        """The mask of ``agent``'s choices (True: valid), or None if its policy needs none."""
        return self._masks[agent]

    # -- observations, actions, state -----------------------------------------------------
    def policy_input(self, agent: str, observation: Any) -> np.ndarray:
        """``agent``'s observation as its policy's input: flat, padded, index appended."""
        policy = self.policies[self.policy_of[agent]]
        row = np.zeros(policy.observation_space.shape, dtype=np.float32)
        flat = np.asarray(observation, dtype=np.float32).reshape(-1)
        row[: flat.size] = flat
        if self.settings.agent_index_in_obs:
            row[len(row) - len(policy.agents) + self._index[agent]] = 1.0
        return row

    def live_by_policy(self, observations: Mapping[str, Any]) -> dict[str, list[str]]:
        """The live agents that have an observation, by policy id (each in env order)."""
        groups: dict[str, list[str]] = {}
        for agent in self.env.agents:
            if agent in observations:
                groups.setdefault(self.policy_of[agent], []).append(agent)
        return groups

    def policy_batch(
        self, agents: Sequence[str], observations: Mapping[str, Any]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The policy inputs of ``agents`` (all of one policy) stacked, and their action masks
        stacked (None when the policy needs none)."""
        inputs = np.stack([self.policy_input(agent, observations[agent]) for agent in agents])
        if self._masks[agents[0]] is None:
            return inputs, None
        return inputs, np.stack([self._masks[agent] for agent in agents])

    def env_action(self, agent: str, action: Any) -> Any:
        """A policy's action for ``agent`` in the env's form (a Discrete choice as an int)."""
        space = self.env.action_space(agent)
        if isinstance(space, spaces.Discrete):
            choice = int(np.asarray(action).reshape(()))
            if not 0 <= choice < int(space.n):  # a mask makes this impossible
                raise ValueError(f"agent {agent!r} got choice {choice} outside {space}")
            return choice
        return np.asarray(action).reshape(space.shape)

    def state(self, observations: Mapping[str, Any]) -> np.ndarray:
        """The global state: the env's ``state()``, or every possible agent's observation
        (zero-padded to its size, zeros when the agent is not live) one after another."""
        if self.has_state:
            return np.asarray(self.env.state(), dtype=np.float32).reshape(-1)
        parts = []
        for agent in self.possible_agents:
            size = self._obs_sizes[agent]
            if agent in observations:
                parts.append(np.asarray(observations[agent], dtype=np.float32).reshape(-1))
            else:
                parts.append(np.zeros(size, dtype=np.float32))
        return np.concatenate(parts)

    # -- the env --------------------------------------------------------------------------
    @property
    def agents(self) -> list[str]:
        """The live agents."""
        return list(self.env.agents)

    @property
    def kernel(self) -> Any:
        """The simulation kernel of a flowsim env (None for others)."""
        return getattr(self.env, "kernel", None)

    @property
    def task(self) -> Any:
        """The single-agent Gymnasium task a flowsim multi-agent env wraps (its action vector
        holds one entry per possible agent, in ``possible_agents`` order), or None."""
        return getattr(self.env, "ring", None) or getattr(self.env, "task", None)

    @property
    def np_random(self) -> np.random.Generator | None:
        """The random stream of the env's resets (of the Gymnasium task a flowsim env wraps)."""
        return getattr(self.task or self.env, "np_random", None)

    @np_random.setter
    def np_random(self, stream: np.random.Generator) -> None:
        (self.task or self.env).np_random = stream

    def reset(self, seed: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Reset the env: observations and infos of the live agents."""
        return self.env.reset(seed=seed)

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        """Step the env with ``actions`` (env form); PettingZoo's five dicts."""
        return self.env.step(actions)

    def close(self) -> None:
        """Close the env."""
        self.env.close()
