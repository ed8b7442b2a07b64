"""EnvRunner: one process's envs and inference policy; it samples fragments and plays episodes.

The same class runs in-process (:class:`~flowsim.distributed.local.LocalRunnerGroup`) and as a
Ray actor (:class:`~flowsim.distributed.ray_group.RayRunnerGroup`), so both paths give the
same rollouts and episodes for the same seeds.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from flowsim.config import FlowsimConfig
from flowsim.config.paths import reroot_missing
from flowsim.distributed.batch import STEP_FIELDS, Batch, MultiBatch
from flowsim.distributed.play import (
    Actor,
    AgentsPolicyActor,
    EpisodeJob,
    EpisodeResult,
    NoiseCache,
    PolicyActor,
    TaskActor,
    perturbed_weights,
    play_agents_episode,
    play_episode,
)
from flowsim.errors import SimulationCrashed
from flowsim.policies.numpy_mlp import build_policy
from flowsim.policies.spec import PolicySpec
from flowsim.sim.trips import TRIP_METRICS

logger = logging.getLogger(__name__)

#: Attempts to bring a crashed simulation back before the runner gives up.
MAX_CONSECUTIVE_RESTARTS = 3
#: Seeds of replacement runners move by this much per generation, so a replacement does not
#: replay the episodes its predecessor already delivered.
GENERATION_SEED_STRIDE = 100_003


def runner_seed(base_seed: int, runner_index: int, generation: int = 0) -> int:
    """Seed of runner ``runner_index``: ``base_seed + runner_index`` (plus a generation shift)."""
    return base_seed + runner_index + GENERATION_SEED_STRIDE * generation


def env_seed(runner_seed: int, env_number: int) -> int:
    """Seed of env ``env_number`` in a runner seeded ``runner_seed`` (independent streams)."""
    return int(np.random.SeedSequence([runner_seed, env_number]).generate_state(1)[0] >> 1)


#: The trip metrics of an episode whose env reports none.
_NO_TRIPS = (math.nan,) * len(TRIP_METRICS)


@dataclass
class _EpisodeTally:
    """Running statistics of one env's current episode."""

    ret: float = 0.0
    length: int = 0
    speed_sum: float = 0.0
    collisions: int = 0
    #: the trip metrics a signal env reports at the episode's last step (TRIP_METRICS order)
    trips: tuple[float, ...] = _NO_TRIPS

    def add(self, reward: float, info: dict[str, Any]) -> None:
        self.ret += reward
        self.length += 1
        self.speed_sum += float(info.get("mean_speed", 0.0))
        self.collisions += int(info.get("collisions", 0))
        if "avg_delay" in info:
            self.trips = tuple(float(info[key]) for key in TRIP_METRICS)


@dataclass
class _Stream:
    """One env's (or, multi-agent, one agent's) transitions in the current sample call."""

    obs: list[np.ndarray]
    actions: list[np.ndarray]
    rewards: list[float]
    terminated: list[bool]
    truncated: list[bool]
    logp: list[float]
    values: list[float]
    next_obs: list[np.ndarray]
    action_mask: list[np.ndarray] = field(default_factory=list)
    state: list[np.ndarray] = field(default_factory=list)
    next_state: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def empty(cls) -> _Stream:
        return cls([], [], [], [], [], [], [], [])

    @property
    def open(self) -> bool:
        """Whether its last step did not end the episode."""
        return bool(self.rewards) and not (self.terminated[-1] or self.truncated[-1])


class EnvRunner:
    """Owns ``sampler.envs_per_worker`` envs and an inference copy of the policy.

    Args:
        config: the experiment; the envs are built from it.
        runner_index: this runner's index in its group (names it in metrics).
        seed: the runner's seed (a group passes ``base_seed + runner_index``); it seeds the
            envs' first resets and the exploration noise.
        policy_spec: how to build the inference policy (default: the network the trainers
            learn for the env's action space, with ``train.hidden`` layers).
        policy_seed: seed of the policy's initial weights; a group gives every runner the same
            one, so all runners start from the same policy (default: ``seed``).

    Episodes continue across :meth:`sample` calls. If SUMO crashes in an episode, the runner
    ends that episode as truncated, restarts the simulation, counts the restart and goes on, so
    a batch always has the requested size. :meth:`play` plays whole seeded episodes on the
    first env; sampling then goes on with a fresh episode from where its seeds were.

    A multi-agent (PettingZoo) env is stepped through the same loop: its agents map onto
    ``train.multiagent``'s policies (:class:`~flowsim.envs.multiagent_adapter.MultiAgentAdapter`),
    each policy is evaluated once per step on all its live agents, and each agent's trajectory
    is its own stream of the batch (``env_index``: runner, env and agent slot), ended by the
    agent's own ``terminated`` / ``truncated``; an agent that appears opens a new stream. With
    one policy :meth:`sample` returns a :class:`Batch`, with several a :class:`MultiBatch`;
    ``num_steps`` then counts env steps (one transition per live agent each).
    """

    def __init__(
        self,
        config: FlowsimConfig,
        runner_index: int = 0,
        seed: int = 0,
        policy_spec: PolicySpec | None = None,
        policy_seed: int | None = None,
    ) -> None:
        from flowsim.envs import make_env
        from flowsim.envs.registry import MULTIAGENT_TYPES

        _limit_threads()
        config = _files_on_this_node(config, runner_index)
        self.config = config
        self.runner_index = runner_index
        self.seed = seed
        self.multiagent = config.env.type in MULTIAGENT_TYPES
        if self.multiagent:
            from flowsim.envs.make import make_multiagent_env

            self.envs = [make_multiagent_env(config) for _ in range(config.sampler.envs_per_worker)]
            spaces = {
                pid: (policy.observation_space, policy.action_space)
                for pid, policy in self.envs[0].policies.items()
            }
        else:
            self.envs = [make_env(config) for _ in range(config.sampler.envs_per_worker)]
            spaces = {"default": (self.envs[0].observation_space, self.envs[0].action_space)}
        central = self.multiagent and config.train.multiagent.critic == "central"
        self.policy_specs: dict[str, PolicySpec] = {}
        self.policies: dict[str, Any] = {}
        for pid, (observation_space, action_space) in spaces.items():
            spec = policy_spec or PolicySpec.for_spaces(
                observation_space,
                action_space,
                tuple(config.train.hidden),
                init_log_std=config.train.init_log_std,
            )
            # completed from the env, so group.policy_spec always has the network's sizes
            spec = spec.fit(observation_space, action_space)
            if central and spec.kind != "constant":
                spec = replace(spec, critic_dim=self.envs[0].state_dim)
            self.policy_specs[pid] = spec
            self.policies[pid] = build_policy(
                spec,
                observation_space,
                action_space,
                seed if policy_seed is None else policy_seed,
            )
        first_policy = next(iter(self.policy_specs))
        self._spaces = {pid: (*spaces[pid], self.policy_specs[pid]) for pid in spaces}
        #: the (first) policy: the only one of a single-agent env or a shared policy
        self.policy_spec = self.policy_specs[first_policy]
        self.policy = self.policies[first_policy]
        self.rng = np.random.default_rng(seed)
        self.policy_version = 0
        self._weights: dict[str, np.ndarray] | None = None
        self._noise = NoiseCache()
        self._perturbed = False  # the policy holds perturbed weights (during play)
        self.restarts = 0
        self._obs: list[np.ndarray | None] = [None] * len(self.envs)
        self._tallies = [_EpisodeTally() for _ in self.envs]
        self._seeded = [False] * len(self.envs)
        logger.info(
            "runner %d: %d env(s), seed %d, pid %d on %s (Ray node %s)",
            runner_index,
            len(self.envs),
            seed,
            os.getpid(),
            socket.gethostname(),
            _ray_node(),
        )

    # -- weights and spaces ---------------------------------------------------------------
    def set_weights(self, weights: dict[str, Any], version: int) -> None:
        """Load new policy weights; later batches carry ``version``. With several policies
        (multi-agent), ``weights`` maps each policy id to its weights."""
        if len(self.policies) > 1:
            missing = [pid for pid in self.policies if pid not in weights]
            if missing:
                raise ValueError(
                    f"no weights for policies {missing}; give every policy of "
                    f"{list(self.policies)} its weights (a dict by policy id)"
                )
            for pid, policy in self.policies.items():
                policy.set_weights(weights[pid])
        else:
            self.policy.set_weights(weights)
        self._weights = weights
        self.policy_version = version

    def spaces(self) -> tuple[Any, Any, PolicySpec]:
        """The env's observation and action spaces, and the policy spec built for them (a
        multi-agent env's: its first policy's, padded)."""
        return next(iter(self._spaces.values()))

    def policy_spaces(self) -> dict[str, tuple[Any, Any, PolicySpec]]:
        """Each policy id's (observation space, action space, spec): ``default`` for a
        single-agent env, ``train.multiagent``'s policies for a multi-agent one."""
        return dict(self._spaces)

    def describe(self) -> dict[str, Any]:
        """Where this runner lives: index, process, host and node."""
        return {
            "runner_index": self.runner_index,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "node": _ray_node(),
            "sumo_pids": [
                env.kernel.backend.process.pid
                for env in self.envs
                if getattr(getattr(env, "kernel", None), "backend", None) is not None
                and getattr(env.kernel.backend, "process", None) is not None
            ],
        }

    def ping(self) -> int:
        """Answer (used to tell when a new actor is placed and ready)."""
        return self.runner_index

    # -- sampling -------------------------------------------------------------------------
    def _reset(self, index: int) -> np.ndarray:
        env = self.envs[index]
        # The first reset of each env is seeded from the runner; later ones continue its stream.
        seed = None if self._seeded[index] else env_seed(self.seed, index)
        self._seeded[index] = True
        self._obs[index] = None  # if every attempt fails, the next call starts with a reset
        for attempt in range(MAX_CONSECUTIVE_RESTARTS + 1):
            try:
                obs, _ = env.reset(seed=seed)
                break
            except SimulationCrashed as crash:
                self.restarts += 1
                if attempt == MAX_CONSECUTIVE_RESTARTS:
                    raise SimulationCrashed(
                        f"runner {self.runner_index} env {index}: SUMO could not be restarted, "
                        f"{attempt + 1} attempts in a row failed ({crash})"
                    ) from None
        self._tallies[index] = _EpisodeTally()
        self._obs[index] = obs
        return obs

    def _count_crash(self, k: int, crashes: list[int], crash: SimulationCrashed) -> None:
        """Count a step of env ``k`` that SUMO crashed in (a restart follows); too many in a
        row without a successful step raise."""
        crashes[k] += 1
        if crashes[k] > MAX_CONSECUTIVE_RESTARTS:
            raise SimulationCrashed(
                f"runner {self.runner_index} env {k}: SUMO crashed {crashes[k]} times "
                f"in a row without a successful step ({crash})"
            ) from None
        logger.warning("runner %d env %d: %s; restarting SUMO", self.runner_index, k, crash)
        self.restarts += 1

    def sample(
        self, num_steps: int | None = None, num_episodes: int | None = None, explore: bool = True
    ) -> Batch | MultiBatch:
        """Step the envs for ``num_steps`` transitions in all, or until ``num_episodes`` end.

        Envs step in lockstep with one batched policy call per step; each env's transitions
        are contiguous in the batch.
        """
        if (num_steps is None) == (num_episodes is None):
            raise ValueError("give exactly one of num_steps or num_episodes")
        if (num_steps if num_steps is not None else num_episodes) < 1:  # type: ignore[operator]
            raise ValueError(
                f"num_steps / num_episodes must be at least 1, got {num_steps or num_episodes}"
            )
        if self.multiagent:
            return self._sample_agents(num_steps, num_episodes, explore)
        count = len(self.envs)
        if num_steps is not None:
            quota = [num_steps // count + (k < num_steps % count) for k in range(count)]
        else:
            quota = [np.iinfo(np.int64).max] * count
        streams = [_Stream.empty() for _ in range(count)]
        episodes: list[tuple[float, int, float, int]] = []
        started = time.perf_counter()
        sim_s = inference_s = 0.0
        restarts_before = self.restarts
        crashes = [0] * count
        for k in range(count):
            if self._obs[k] is None:
                tick = time.perf_counter()
                self._reset(k)
                sim_s += time.perf_counter() - tick
        while True:
            active = [k for k in range(count) if len(streams[k].rewards) < quota[k]]
            if not active or (num_episodes is not None and len(episodes) >= num_episodes):
                break
            tick = time.perf_counter()
            if len(active) == 1:  # a view: np.stack costs more than the forward's first layer
                obs_batch = np.asarray(self._obs[active[0]])[np.newaxis]
            else:
                obs_batch = np.stack([self._obs[k] for k in active])
            actions, logp, values = self.policy.compute_actions(obs_batch, explore, self.rng)
            # Python floats of the whole batch at once, not one numpy scalar per env
            logp, values = logp.tolist(), values.tolist()
            inference_s += time.perf_counter() - tick
            for row, k in enumerate(active):
                env, stream, obs = self.envs[k], streams[k], self._obs[k]
                tick = time.perf_counter()
                try:
                    next_obs, reward, terminated, truncated, info = env.step(actions[row])
                except SimulationCrashed as crash:
                    # The step never happened: end the episode at its last recorded step.
                    self._count_crash(k, crashes, crash)
                    if stream.truncated and not stream.terminated[-1]:
                        stream.truncated[-1] = True
                    tally = self._tallies[k]
                    if tally.length:
                        episodes.append(_finished(tally))
                    self._reset(k)
                    sim_s += time.perf_counter() - tick
                    continue
                sim_s += time.perf_counter() - tick
                crashes[k] = 0
                stream.obs.append(obs)
                stream.actions.append(actions[row])
                stream.rewards.append(reward)
                stream.terminated.append(terminated)
                stream.truncated.append(truncated)
                stream.logp.append(logp[row])
                stream.values.append(values[row])
                stream.next_obs.append(next_obs)
                tally = self._tallies[k]
                tally.add(reward, info)
                if terminated or truncated:
                    episodes.append(_finished(tally))
                    if num_episodes is not None and len(episodes) >= num_episodes:
                        self._obs[k] = None  # reset at the start of the next call
                        break
                    tick = time.perf_counter()
                    self._reset(k)
                    sim_s += time.perf_counter() - tick
                else:
                    self._obs[k] = next_obs
        wall = time.perf_counter() - started
        return self._assemble(streams, episodes, wall, sim_s, inference_s, restarts_before)

    def _assemble(
        self,
        streams: list[_Stream],
        episodes: list[tuple[float, int, float, int]],
        wall: float,
        sim_s: float,
        inference_s: float,
        restarts_before: int,
    ) -> Batch:
        first = self.envs[0]
        keyed = [
            (self.runner_index * len(self.envs) + k, stream) for k, stream in enumerate(streams)
        ]
        arrays = _stream_arrays(
            keyed, first.observation_space.shape, first.action_space.shape, first.action_space.dtype
        )
        total = int(arrays["rewards"].shape[0])
        metrics = self._metrics(total, len(episodes), wall, sim_s, inference_s, restarts_before)
        return Batch(
            **arrays,
            **_episode_arrays(episodes),
            policy_version=self.policy_version,
            metrics=metrics,
        )

    # -- multi-agent sampling -------------------------------------------------------------
    def _sample_agents(
        self, num_steps: int | None, num_episodes: int | None, explore: bool
    ) -> Batch | MultiBatch:
        """:meth:`sample` on multi-agent envs: env steps in lockstep, one policy call per
        policy and step; a stream per (env, agent)."""
        count = len(self.envs)
        if num_steps is not None:
            quota = [num_steps // count + (k < num_steps % count) for k in range(count)]
        else:
            quota = [np.iinfo(np.int64).max] * count
        done = [0] * count
        central = self.config.train.multiagent.critic == "central"
        streams: dict[tuple[int, str], _Stream] = {}
        episodes: list[tuple[float, int, float, int]] = []
        started = time.perf_counter()
        sim_s = inference_s = 0.0
        restarts_before = self.restarts
        crashes = [0] * count
        for k in range(count):
            if self._obs[k] is None:
                tick = time.perf_counter()
                self._reset(k)
                sim_s += time.perf_counter() - tick
        while True:
            active = [k for k in range(count) if done[k] < quota[k]]
            if not active or (num_episodes is not None and len(episodes) >= num_episodes):
                break
            tick = time.perf_counter()
            states = {k: self.envs[k].state(self._obs[k]) for k in active} if central else {}
            members: dict[str, list[tuple[int, list[str]]]] = {}
            for k in active:
                for pid, agents in self.envs[k].live_by_policy(self._obs[k]).items():
                    members.setdefault(pid, []).append((k, agents))
            decided: dict[tuple[int, str], tuple[Any, ...]] = {}
            for pid in self.policies:  # policy order, then env, then agent: reproducible draws
                groups = members.get(pid)
                if not groups:
                    continue
                rows = [(k, agent) for k, agents in groups for agent in agents]
                parts = [self.envs[k].policy_batch(agents, self._obs[k]) for k, agents in groups]
                inputs = np.concatenate([part[0] for part in parts])
                masks = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
                critic = np.stack([states[k] for k, _ in rows]) if central else None
                actions, logp, values = self.policies[pid].compute_actions(
                    inputs, explore, self.rng, mask=masks, critic_obs=critic
                )
                for row, key in enumerate(rows):
                    mask = None if masks is None else masks[row]
                    decided[key] = (inputs[row], actions[row], logp[row], values[row], mask)
            inference_s += time.perf_counter() - tick
            for k in active:
                env = self.envs[k]
                acting = [agent for agent in env.agents if (k, agent) in decided]
                tick = time.perf_counter()
                try:
                    next_obs, rewards, terms, truncs, infos = env.step(
                        {agent: env.env_action(agent, decided[(k, agent)][1]) for agent in acting}
                    )
                except SimulationCrashed as crash:
                    # The step never happened: every agent's stream ends at its last step.
                    self._count_crash(k, crashes, crash)
                    for (env_number, _), stream in streams.items():
                        if env_number == k and stream.open:
                            stream.truncated[-1] = True
                    if self._tallies[k].length:
                        episodes.append(_finished(self._tallies[k]))
                    self._reset(k)
                    sim_s += time.perf_counter() - tick
                    continue
                sim_s += time.perf_counter() - tick
                crashes[k] = 0
                done[k] += 1
                live = set(env.agents)
                state_after = env.state({**self._obs[k], **next_obs}) if central else None
                for agent in acting:
                    obs_row, action, logp, value, mask = decided[(k, agent)]
                    terminated = bool(terms.get(agent, False))
                    # an agent that is gone without ending its episode is cut off: bootstrap
                    truncated = bool(truncs.get(agent, False)) or (
                        not terminated and agent not in live
                    )
                    stream = streams.setdefault((k, agent), _Stream.empty())
                    stream.obs.append(obs_row)
                    stream.actions.append(action)
                    stream.rewards.append(float(rewards.get(agent, 0.0)))
                    stream.terminated.append(terminated)
                    stream.truncated.append(truncated)
                    stream.logp.append(float(logp))
                    stream.values.append(float(value))
                    stream.next_obs.append(
                        env.policy_input(agent, next_obs.get(agent, self._obs[k][agent]))
                    )
                    if mask is not None:
                        stream.action_mask.append(mask)
                    if central:
                        stream.state.append(states[k])
                        stream.next_state.append(state_after)
                info = next(iter(infos.values()), {})
                self._tallies[k].add(float(sum(rewards.values())), info)
                if not live:  # every agent is done: the team's episode is over
                    episodes.append(_finished(self._tallies[k]))
                    if num_episodes is not None and len(episodes) >= num_episodes:
                        self._obs[k] = None
                        break
                    tick = time.perf_counter()
                    self._reset(k)
                    sim_s += time.perf_counter() - tick
                else:
                    merged = {**self._obs[k], **next_obs}
                    self._obs[k] = {agent: merged[agent] for agent in env.agents if agent in merged}
        wall = time.perf_counter() - started
        return self._assemble_agents(
            streams, episodes, sum(done), wall, sim_s, inference_s, restarts_before
        )

    def _assemble_agents(
        self,
        streams: dict[tuple[int, str], _Stream],
        episodes: list[tuple[float, int, float, int]],
        env_steps: int,
        wall: float,
        sim_s: float,
        inference_s: float,
        restarts_before: int,
    ) -> Batch | MultiBatch:
        adapter = self.envs[0]
        agents = len(adapter.possible_agents)
        batches: dict[str, Batch] = {}
        for pid, policy in adapter.policies.items():
            keyed = sorted(
                (
                    ((self.runner_index * len(self.envs) + k) * agents + adapter.slot[agent]),
                    stream,
                )
                for (k, agent), stream in streams.items()
                if adapter.policy_of[agent] == pid
            )
            arrays = _stream_arrays(
                keyed,
                policy.observation_space.shape,
                policy.action_space.shape or (),
                policy.action_space.dtype,
            )
            if policy.masked:
                width = int(policy.action_space.n)  # type: ignore[attr-defined]
                arrays["action_mask"] = _stacked([s.action_mask for _, s in keyed], (width,), bool)
            if self.config.train.multiagent.critic == "central":
                for name in ("state", "next_state"):
                    arrays[name] = _stacked(
                        [getattr(s, name) for _, s in keyed], (adapter.state_dim,), np.float32
                    )
            batches[pid] = Batch(**arrays, policy_version=self.policy_version)
        total = sum(len(batch) for batch in batches.values())
        metrics = self._metrics(total, len(episodes), wall, sim_s, inference_s, restarts_before)
        metrics["env_steps"] = env_steps
        team = _episode_arrays(episodes)
        if len(batches) == 1:
            (batch,) = batches.values()
            for name, values in team.items():
                setattr(batch, name, values)
            batch.metrics = metrics
            return batch
        return MultiBatch(batches, **team, policy_version=self.policy_version, metrics=metrics)

    def _metrics(
        self,
        total: int,
        episodes: int,
        wall: float,
        sim_s: float,
        inference_s: float,
        restarts_before: int,
    ) -> dict[str, Any]:
        return {
            "runner_index": self.runner_index,
            "steps": total,
            "episodes": episodes,
            "restarts": self.restarts - restarts_before,
            "wall_s": wall,
            "sim_s": sim_s,
            "inference_s": inference_s,
            "steps_per_s": total / wall if wall > 0 else 0.0,
            "node": _ray_node(),
            "pid": os.getpid(),
        }

    # -- whole episodes -------------------------------------------------------------------
    def play(self, jobs: Sequence[EpisodeJob]) -> list[EpisodeResult]:
        """Play each job's whole episode on the first env, in order.

        An episode that SUMO crashes in is played again from its seed once the simulation
        restarts. Sampling afterwards starts a fresh episode and keeps its own seed stream, as
        if the jobs had not been played.
        """
        env = self.envs[0]
        unwrapped = env if self.multiagent else env.unwrapped
        stream = copy.deepcopy(unwrapped.np_random) if self._seeded[0] else None
        try:
            return [self._play_one(env, job) for job in jobs]
        finally:
            self._unperturb()
            if stream is not None:
                unwrapped.np_random = stream
            self._obs[0] = None

    def _play_one(self, env: Any, job: EpisodeJob) -> EpisodeResult:
        restarts = 0
        for attempt in range(MAX_CONSECUTIVE_RESTARTS + 1):
            try:
                play = play_agents_episode if self.multiagent else play_episode
                result = play(env, self._actor(env, job), job.seed, job.max_steps, job.record)
                break
            except SimulationCrashed as crash:
                self.restarts += 1
                restarts += 1
                if attempt == MAX_CONSECUTIVE_RESTARTS:
                    raise SimulationCrashed(
                        f"runner {self.runner_index}: SUMO crashed {attempt + 1} times in a row "
                        f"in the episode of seed {job.seed} ({crash})"
                    ) from None
                logger.warning(
                    "runner %d: %s; restarting SUMO and the episode of seed %d",
                    self.runner_index,
                    crash,
                    job.seed,
                )
        result.runner_index = self.runner_index
        result.policy_version = self.policy_version
        result.restarts = restarts
        result.noise_fetches = self._noise.fetches
        return result

    def _actor(self, env: Any, job: EpisodeJob) -> Actor:
        """The job's driver: built by its factory, or this runner's (perturbed) policy."""
        if job.actor is not None:
            if not self.multiagent:
                return job.actor(env)
            # a baseline written for the single-agent task drives every agent through it
            return job.actor(env.env) if env.task is None else TaskActor(env, job.actor(env.task))
        if job.perturbation is not None:
            if self._weights is None:
                raise ValueError("a perturbation moves the runner's weights: set_weights first")
            noise = self._noise.table_for(job.perturbation.noise)
            self.policy.set_weights(perturbed_weights(self._weights, job.perturbation, noise))
            self._perturbed = True
        else:
            self._unperturb()
        if self.multiagent:
            return AgentsPolicyActor(env, self.policies, job.explore, self.rng)
        return PolicyActor(self.policy, env.action_space.shape or (), job.explore, self.rng)

    def _unperturb(self) -> None:
        """Back to the weights the runner was given, after a perturbed episode."""
        if self._perturbed and self._weights is not None:
            self.policy.set_weights(self._weights)
        self._perturbed = False

    def close(self) -> None:
        """Close every env (and its SUMO)."""
        for env in self.envs:
            env.close()


#: The step arrays a runner fills: the batch's step fields plus the fragment-cut marks.
_ARRAYS = (*STEP_FIELDS, "fragment_end")


def _stream_arrays(
    keyed: list[tuple[int, _Stream]],
    obs_shape: tuple[int, ...],
    action_shape: tuple[int, ...],
    action_dtype: Any,
) -> dict[str, np.ndarray]:
    """The batch's step arrays from ``(global stream id, stream)`` pairs, one stream after
    another; a stream's last step is a fragment cut unless its episode ended there."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in _ARRAYS}
    for stream_id, stream in keyed:
        steps = len(stream.rewards)
        if steps == 0:
            continue
        parts["obs"].append(np.asarray(stream.obs, dtype=np.float32).reshape(steps, *obs_shape))
        parts["next_obs"].append(
            np.asarray(stream.next_obs, dtype=np.float32).reshape(steps, *obs_shape)
        )
        parts["actions"].append(np.asarray(stream.actions).reshape(steps, *action_shape))
        parts["rewards"].append(np.asarray(stream.rewards, dtype=np.float32))
        parts["terminated"].append(np.asarray(stream.terminated, dtype=bool))
        parts["truncated"].append(np.asarray(stream.truncated, dtype=bool))
        parts["logp"].append(np.asarray(stream.logp, dtype=np.float32))
        parts["values"].append(np.asarray(stream.values, dtype=np.float32))
        parts["env_index"].append(np.full(steps, stream_id, dtype=np.int64))
        cut = np.zeros(steps, dtype=bool)
        cut[-1] = not (stream.terminated[-1] or stream.truncated[-1])
        parts["fragment_end"].append(cut)
    if action_dtype is None:  # a space without one (Tuple, Dict)
        action_dtype = np.float32
    return {
        name: np.concatenate(chunks)
        if chunks
        else _empty(name, obs_shape, action_shape, action_dtype)
        for name, chunks in parts.items()
    }


def _stacked(rows: list[list[np.ndarray]], shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Per-stream lists of per-step rows as one (steps, *shape) array."""
    flat = [row for stream in rows for row in stream]
    if not flat:
        return np.zeros((0, *shape), dtype=dtype)
    return np.asarray(flat, dtype=dtype).reshape(len(flat), *shape)


def _episode_arrays(episodes: list[_Finished]) -> dict[str, np.ndarray]:
    """The batch's episode fields from finished tallies."""
    columns = list(zip(*episodes, strict=True)) if episodes else [(), (), (), (), ()]
    returns, lengths, speeds, collisions, trips = columns
    return {
        "episode_returns": np.asarray(returns, dtype=np.float64),
        "episode_lengths": np.asarray(lengths, dtype=np.int64),
        "episode_mean_speeds": np.asarray(speeds, dtype=np.float64),
        "episode_collisions": np.asarray(collisions, dtype=np.int64),
        "episode_trips": np.asarray(trips, dtype=np.float64).reshape(-1, len(TRIP_METRICS)),
    }


#: A finished episode: return, length, mean speed, collisions, trip metrics.
_Finished = tuple[float, int, float, int, tuple[float, ...]]


def _finished(tally: _EpisodeTally) -> _Finished:
    mean_speed = tally.speed_sum / tally.length if tally.length else 0.0
    return (tally.ret, tally.length, mean_speed, tally.collisions, tally.trips)


def _empty(
    name: str, obs_shape: tuple[int, ...], action_shape: tuple[int, ...], action_dtype: Any
) -> np.ndarray:
    """A zero-step array of field ``name`` (actions in the space's dtype: ints for choices)."""
    shapes = {"obs": obs_shape, "next_obs": obs_shape, "actions": action_shape}
    dtypes = {
        "terminated": bool,
        "truncated": bool,
        "fragment_end": bool,
        "env_index": np.int64,
        "actions": action_dtype,
    }
    return np.zeros((0, *shapes.get(name, ())), dtype=dtypes.get(name, np.float32))


def _limit_threads() -> None:
    """One thread for numeric libraries: a runner owns one core."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _files_on_this_node(config: FlowsimConfig, runner_index: int) -> FlowsimConfig:
    """``config`` with the files it names found in this node's copy of the job's working dir.

    The driver resolved the YAML's paths inside its own copy of a Ray job's working dir; on
    another node (another Ray temp dir, no shared filesystem) that copy is absent, and Ray
    unpacked the same package under this node's temp dir, as this process's working dir (or
    Tune's original one, before a trial moves into its own folder). Paths that exist are kept,
    so a config on one machine is used as it is.
    """
    working_dir = Path(os.environ.get("TUNE_ORIG_WORKING_DIR") or os.getcwd())
    config, moved = reroot_missing(config, working_dir)
    for key, path in moved.items():
        logger.info("runner %d: %s found in this node's working dir: %s", runner_index, key, path)
    return config


def _ray_node() -> str | None:
    """The Ray node this process runs on (first 12 hex digits of its id), or None outside Ray."""
    import sys

    if "ray" not in sys.modules:
        return None
    import ray

    if not ray.is_initialized():
        return None
    try:
        return ray.get_runtime_context().get_node_id()[:12]
    except Exception:
        return None
