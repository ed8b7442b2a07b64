"""Several AVs on the ring as a PettingZoo parallel env: one agent per AV (Flow's
MultiAgentWaveAttenuationPOEnv).

The env wraps a single-agent ring task (:class:`~flowsim.envs.ring.WaveAttenuationEnv` with
one observation row and one action slot per AV), so warm-up, ``env.sims_per_step``, the
horizon, collisions, action clipping and seeding are flowsim's own; this module only splits
the vectors per agent. Importing it imports PettingZoo; ``import flowsim`` does not.

Example:
    >>> from flowsim.envs.multiagent import parallel_env
    >>> env = parallel_env(overrides=["env.warmup_steps=10", "scenario.length=260"])
    >>> observations, infos = env.reset(seed=0)
    >>> env.agents
    ['av_0', 'av_1', 'av_2']
    >>> observations["av_0"].shape
    (3,)
    >>> env.close()
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from flowsim.config import FlowsimConfig
from flowsim.envs.base import resolve_config
from flowsim.envs.presets import MULTIAGENT_RING
from flowsim.envs.ring import WaveAttenuationEnv
from flowsim.errors import ConfigError

#: Bounds of one AV's observation: speed, speed difference to the leader, headway (normalised).
_OBS_LOW = np.array([0.0, -1.0, 0.0], dtype=np.float32)
_OBS_HIGH = np.array([1.0, 1.0, 1.0], dtype=np.float32)


def agent_actions(
    actions: Any, agents: Sequence[str], slots: Mapping[str, int], expected: str
) -> np.ndarray:
    """The live ``agents``' actions as one number per possible agent (``slots`` maps each to
    its index), NaN where there is none.

    The multi-agent envs' rule for an action dict (docs/envs.md, "Invalid actions"): an agent
    left out, or given None, has no action (NaN; the env says what that means); an action for
    an agent that is done is ignored; the values are sanitised later as in the single-agent env.

    Raises:
        ValueError: ``actions`` is not a mapping, names an agent that is not in ``slots``
            (not one of the env's ``possible_agents``), or gives an agent something other
            than one number (``expected`` describes the action in the message).
    """
    if not isinstance(actions, Mapping):
        raise ValueError(
            f"actions must be a dict from agent name to action, got {type(actions).__name__} "
            f"{repr(actions)[:60]}; agents: {list(agents)}"
        )
    unknown = [name for name in actions if name not in slots]
    if unknown:
        names = ", ".join(repr(name)[:40] for name in unknown[:5])
        raise ValueError(f"actions for unknown agents {names}; the agents are {list(agents)}")
    vector = np.full(len(slots), np.nan)
    for agent in agents:
        if agent in actions:
            vector[slots[agent]] = _one_number(agent, actions[agent], expected)
    return vector


def _one_number(agent: str, action: Any, expected: str) -> float:
    """``action`` as a float; a ValueError naming ``agent`` and ``expected`` if it is not one
    real number (any shape of size 1: ``2.0``, ``[2.0]``, ``np.array([[2.0]])``)."""
    problem = None
    try:
        value = np.asarray(action)
        if value.dtype.kind not in "biufO":  # text, bytes, complex, dates
            problem = f"{value.dtype} is not a real number"
        elif value.size != 1:
            problem = f"got shape {value.shape}"
        else:
            return float(value.astype(np.float64).reshape(()))
    except (TypeError, ValueError, OverflowError) as error:
        problem = str(error)
    raise ValueError(
        f"action {repr(action)[:60]} for agent {agent!r}: expected one number, {expected}; "
        f"{problem}"
    )


def _av_ids(config: FlowsimConfig) -> tuple[str, ...]:
    """The AVs' vehicle ids, as the scenario generators name them (``{group}_{number}``)."""
    return tuple(
        f"{group.type}_{number}"
        for group in config.vehicles
        if group.controller.type == "rl"
        for number in range(group.count)
    )


class _AVRowsWaveAttenuation(WaveAttenuationEnv):
    """The ring task with one observation row and one action slot per AV (slot = AV's rank in
    the config), so that removed AVs never shift the other AVs' actions or observations."""

    def __init__(self, config: FlowsimConfig) -> None:
        super().__init__(config)
        self.av_ids = _av_ids(self.config)
        self.observation_space = spaces.Box(
            low=np.tile(_OBS_LOW, (self.num_avs, 1)),
            high=np.tile(_OBS_HIGH, (self.num_avs, 1)),
            dtype=np.float32,
        )
        self.present_slots = np.arange(self.num_avs)

    def on_reset(self) -> None:
        """Find and colour the AVs, and check that their ids are the agent ids."""
        super().on_reset()
        inserted = self.kernel.ids_of(self._av_indices)
        if set(inserted) - set(self.av_ids):
            raise RuntimeError(f"AV ids {inserted} differ from the expected {self.av_ids}")
        self._find_slots()

    def on_vehicles_removed(self) -> None:
        """Re-read the AVs' indices and which slots still have a vehicle."""
        super().on_vehicles_removed()
        self._find_slots()

    def _find_slots(self) -> None:
        present = set(self.kernel.ids_of(self._av_indices))
        self.present_slots = np.array(
            [slot for slot, av in enumerate(self.av_ids) if av in present], dtype=np.int64
        )

    def apply_action(self, action: np.ndarray) -> None:
        """Command each AV still in the network with its own slot's acceleration (m/s²)."""
        self.kernel.apply_accelerations(self._av_indices, action[self.present_slots])

    def observe(self) -> np.ndarray:
        """One row per AV: speed, speed difference to the leader and headway, normalised;
        zeros for an AV removed by a collision."""
        rows = np.zeros((self.num_avs, 3), dtype=np.float32)
        avs = self._av_indices
        if avs.size == 0:
            return rows
        headway, leader_speed = self.kernel.leaders(avs)
        speed = self.kernel.speeds()[avs]
        rows[self.present_slots, 0] = np.minimum(speed / self.max_speed, 1.0)
        rows[self.present_slots, 1] = np.clip((leader_speed - speed) / self.max_speed, -1.0, 1.0)
        rows[self.present_slots, 2] = np.minimum(headway, self.max_length) / self.max_length
        return rows

    def step_reward(self, action: np.ndarray) -> float:
        """:class:`WaveAttenuationEnv`'s reward, the effort averaged over the AVs present."""
        return super().step_reward(action[self.present_slots])


class MultiAgentRingEnv(ParallelEnv[str, np.ndarray, np.ndarray]):
    """Several AVs among human drivers on a ring, each an agent, damping the stop-and-go wave
    together (Flow's MultiAgentWaveAttenuationPOEnv; PettingZoo's parallel API).

    Agents: one per vehicle of the ``rl`` groups, named by its vehicle id (``av_0``, ``av_1``
    …; ``possible_agents`` in config order).
    Observation (per agent, 3 floats): ``[v / v_max, (v_lead - v) / v_max, headway / L_max]``
    of that AV, with ``v_max`` the speed limit and ``L_max`` the largest ring length, in
    ``[0, 1] × [-1, 1] × [0, 1]`` (as :class:`~flowsim.envs.ring.WaveAttenuationEnv`).
    Action (per agent): the AV's acceleration, shape ``(1,)``, in ``[-env.max_decel,
    env.max_accel]`` m/s²; clipped to that box, NaN, None or a missing agent's action means 0
    (hold the speed); see :func:`agent_actions` for unknown agents and wrong shapes.
    Reward (shared, the same for every agent): WaveAttenuationEnv's ``(speed_weight * mean(v)
    - wave_penalty * std(v)) / target_speed - accel_penalty * mean|a|`` over all vehicles'
    speeds ``v`` and all AVs' actions ``a`` (Flow's ``4 * mean(v) / 20 - 4 * mean|a|``);
    0 on a collision.
    Termination: a collision ends the episode for every agent (``env.terminate_on_collision``,
    the default). With it off, SUMO removes the colliding vehicles (``sim.collision_action:
    remove``) and an AV removed that way terminates alone with a zero observation; the others
    drive on.
    Truncation: every agent after ``env.horizon`` steps past ``env.warmup_steps``.
    After either, ``agents`` is empty until :meth:`reset`.
    Info (per agent, the same values): ``mean_speed``, ``speed_std``, ``collisions``,
    ``teleports``, ``sim_time``, ``restarts``, as the Gymnasium envs.
    State (PettingZoo's ``state()``, ``state_space``; a centralised critic's input): every
    AV's observation row in ``possible_agents`` order (zeros for a removed AV), then the mean
    and the standard deviation of all vehicles' speeds over the speed limit, clipped to [0, 1].

    ``env.type`` (``multiagent_wave_attenuation`` in the YAML) is not read: the task is this
    class's. Only ``render_mode=None`` is
    supported; watch a run in sumo-gui with ``sim.backend=traci`` and ``sim.gui=true``.
    """

    metadata: dict[str, Any] = {  # noqa: RUF012 - PettingZoo's convention
        "name": "flowsim_multiagent_ring_v0",
        "render_modes": [],
        "is_parallelizable": True,
    }

    def __init__(
        self,
        config: FlowsimConfig | dict[str, Any] | str | Path | None = None,
        overrides: list[str] | None = None,
        render_mode: str | None = None,
    ) -> None:
        """Build from a config, a mapping or a YAML path (default: :data:`MULTIAGENT_RING`),
        with ``--set``-style ``overrides``."""
        if render_mode is not None:
            raise ConfigError(
                f"render_mode {render_mode!r} is not supported (only None); to watch the ring "
                "use overrides ['sim.backend=traci', 'sim.gui=true']."
            )
        self.render_mode = render_mode
        self.config = resolve_config(MULTIAGENT_RING if config is None else config, overrides)
        if not _av_ids(self.config):
            raise ConfigError(
                "the multi-agent ring needs at least one vehicle with controller: rl (one agent "
                "per AV); add a group such as {type: av, count: 3, controller: rl} to vehicles."
            )
        #: The single-agent ring task that runs SUMO, its vectors stacked by AV.
        self.ring = _AVRowsWaveAttenuation(self.config)
        self.possible_agents: list[str] = list(self.ring.av_ids)
        self.agents: list[str] = []
        self._slot = {agent: slot for slot, agent in enumerate(self.possible_agents)}
        env = self.config.env
        self.observation_spaces = {
            agent: spaces.Box(low=_OBS_LOW, high=_OBS_HIGH, dtype=np.float32)
            for agent in self.possible_agents
        }
        self.action_spaces = {
            agent: spaces.Box(low=-env.max_decel, high=env.max_accel, shape=(1,), dtype=np.float32)
            for agent in self.possible_agents
        }
        self._expected_action = f"the acceleration in [-{env.max_decel:g}, {env.max_accel:g}]"
        #: The global state (a centralised critic's input, :meth:`state`).
        self.state_space = spaces.Box(
            low=np.concatenate([np.tile(_OBS_LOW, len(self.possible_agents)), [0.0, 0.0]]).astype(
                np.float32
            ),
            high=np.concatenate([np.tile(_OBS_HIGH, len(self.possible_agents)), [1.0, 1.0]]).astype(
                np.float32
            ),
            dtype=np.float32,
        )
        self._rows = np.zeros((len(self.possible_agents), 3), dtype=np.float32)

    def observation_space(self, agent: str) -> spaces.Box:
        """The observation space of ``agent`` (the same object at every call)."""
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Box:
        """The action space of ``agent`` (the same object at every call)."""
        return self.action_spaces[agent]

    @property
    def kernel(self):
        """The simulation kernel (state reads, e.g. ``kernel.speeds()``)."""
        return self.ring.kernel

    def state(self) -> np.ndarray:
        """The global state: every AV's observation row (zeros for a removed AV), then the
        mean and the standard deviation of all vehicles' speeds over the speed limit."""
        speeds = self.ring.kernel.speeds()
        limit = self.ring.max_speed
        mean, std = (float(speeds.mean()), float(speeds.std())) if speeds.size else (0.0, 0.0)
        tail = np.clip(np.array([mean / limit, std / limit], dtype=np.float32), 0.0, 1.0)
        return np.concatenate([self._rows.reshape(-1), tail])

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        """Start an episode (new ring instance, warm-up); every AV present becomes an agent."""
        rows, info = self.ring.reset(seed=seed, options=options)
        self._rows = rows
        present = set(self.ring.present_slots.tolist())
        self.agents = [a for a in self.possible_agents if self._slot[a] in present]
        observations = {agent: rows[self._slot[agent]] for agent in self.agents}
        return observations, {agent: dict(info) for agent in self.agents}

    def step(
        self, actions: dict[str, np.ndarray]
    ) -> tuple[
        dict[str, np.ndarray],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        """Apply every live agent's acceleration for one agent step; results for those agents."""
        if not self.agents:
            raise RuntimeError("the episode is over (agents is empty): call reset() first")
        # NaN (no action, a missing agent's) is sanitised to 0 like any NaN
        vector = agent_actions(actions, self.agents, self._slot, self._expected_action)
        rows, reward, terminated, truncated, info = self.ring.step(vector)
        self._rows = rows
        live, present = self.agents, set(self.ring.present_slots.tolist())
        terminations = {a: terminated or self._slot[a] not in present for a in live}
        truncations = dict.fromkeys(live, truncated)
        self.agents = [a for a in live if not (terminations[a] or truncations[a])]
        return (
            {agent: rows[self._slot[agent]] for agent in live},
            dict.fromkeys(live, reward),
            terminations,
            truncations,
            {agent: dict(info) for agent in live},
        )

    def render(self) -> None:
        """Nothing to render (``render_mode`` is None); see the class docstring for sumo-gui."""
        return None

    def close(self) -> None:
        """Close SUMO; the env has no agents afterwards."""
        self.agents = []
        self.ring.close()


def parallel_env(
    config: FlowsimConfig | dict[str, Any] | str | Path | None = None,
    overrides: list[str] | None = None,
) -> MultiAgentRingEnv:
    """The multi-agent ring (PettingZoo parallel env) from a config, mapping or YAML path.

    ``config=None`` is :data:`MULTIAGENT_RING` (3 AVs among 19 IDM humans); ``overrides`` are
    ``--set``-style, e.g. ``["env.horizon=100"]``.
    """
    return MultiAgentRingEnv(config, overrides)


__all__ = ["MULTIAGENT_RING", "MultiAgentRingEnv", "agent_actions", "parallel_env"]
