"""Whole seeded episodes on the runners: :class:`EpisodeJob` in, :class:`EpisodeResult` out.

:func:`play_episode` is the one episode loop (next to :meth:`EnvRunner.sample`'s step loop):
evaluation, ES, the hierarchy's demonstrations and ``flowsim replay`` all play through it. A
job says who drives the episode:

- the runner's current policy (``actor=None``), greedy or exploring;
- that policy with its weights perturbed along a slice of a noise table the runner holds
  (:class:`Perturbation`: ES's antithetic members; only an offset, a sign and sigma travel);
- an actor that a picklable factory builds on the runner from its env (``actor=factory``):
  evaluation's baseline controllers, the hierarchy's drivers.

An actor maps ``(observation, env)`` to the env's action. One that has a
``finish_episode()`` method is asked for it once its episode ends; the answer (plain data,
such as recorded demonstrations) comes back in :attr:`EpisodeResult.actor_output`.

>>> from flowsim.config import FlowsimConfig, apply_overrides
>>> from flowsim.distributed import EpisodeJob, make_runner_group
>>> config = apply_overrides(FlowsimConfig(), ["env.warmup_steps=10", "env.horizon=50"])
>>> group = make_runner_group(config)
>>> [result.length for result in group.play([EpisodeJob(seed=1), EpisodeJob(seed=2)])]
[50, 50]
>>> group.close()
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flowsim.sim.trips import TRIP_METRICS

#: An actor: ``(observation, env) -> action``.
Actor = Callable[[np.ndarray, Any], Any]
#: Builds an actor on the runner from its env; must pickle (it travels to Ray actors).
ActorFactory = Callable[[Any], Actor]

#: Scenarios whose episodes report their ring's length (the equilibrium speed depends on it).
RING_SCENARIOS = ("ring", "multilane_ring")


@dataclass(frozen=True)
class Perturbation:
    """The runner's weights moved along a noise slice: ``w + sign * sigma * noise[offset:]``.

    ``params`` names the weights that move, in order (their values, flattened one after
    another, are the vector ``w``); the others stay. ``noise`` is the shared table as the
    learner gave it to the group (:meth:`RunnerGroup.share`): the array itself in-process, a
    reference on Ray that each runner fetches once and keeps.
    """

    noise: Any
    offset: int
    sign: int
    sigma: float
    params: tuple[str, ...]


@dataclass(frozen=True)
class EpisodeJob:
    """One whole episode to play from its reset ``seed``.

    Attributes:
        seed: the env's reset seed (the same seed gives the same episode on any runner).
        actor: builds the driver on the runner from its env; None: the runner's policy.
        explore: with the runner's policy, sample actions instead of the greedy ones.
        perturbation: with the runner's policy, play it with these weights moved.
        max_steps: stop the episode after this many steps (None: the env's own end).
        record: keep every step's observation, action and reward in the result.
    """

    seed: int
    actor: ActorFactory | None = None
    explore: bool = False
    perturbation: Perturbation | None = None
    max_steps: int | None = None
    record: bool = False

    def __post_init__(self) -> None:
        if self.actor is not None and (self.perturbation is not None or self.explore):
            raise ValueError("an actor job cannot also explore or perturb the runner's policy")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {self.max_steps}")


@dataclass
class EpisodeResult:
    """What one episode gave.

    ``metrics`` holds ``mean_speed``, ``speed_std`` (across vehicles, averaged over steps) and
    ``min_speed``, over the second half of the episode (the traffic the driver leaves behind,
    not the transient); ``collisions`` over all of it; ``episode_mean_speed``, the mean speed
    over every step (the training curves' measure); on rings ``ring_length`` (m); on a signal
    env the episode's trip metrics from its last ``info`` (``avg_delay``, ``avg_trip_time``,
    ``avg_waiting_time``, ``throughput``). Speeds are NaN for an env that reports none (a
    Gymnasium env).
    """

    seed: int
    episode_return: float
    length: int
    metrics: dict[str, float]
    #: sums of the observations the driver saw and of their squares (flattened, float64)
    obs_sum: np.ndarray
    obs_sumsq: np.ndarray
    #: the runner that played it, and its policy version then
    runner_index: int = 0
    policy_version: int = 0
    #: SUMO restarts while playing it (a crashed episode is played again from its seed)
    restarts: int = 0
    #: noise tables the runner has fetched from the object store so far
    noise_fetches: int = 0
    #: the job's position in the list given to ``play``
    job_index: int = 0
    #: with ``record``: ``obs`` (T, *obs shape), ``actions`` (T, *action shape), ``rewards`` (T,)
    steps: dict[str, np.ndarray] | None = None
    #: what the actor's ``finish_episode()`` returned
    actor_output: Any = None

    def as_dict(self) -> dict[str, float]:
        """``return``, ``length`` and the metrics in one flat dict."""
        return {"return": self.episode_return, "length": float(self.length), **self.metrics}


class PolicyActor:
    """An inference policy driving one env: greedy (mean action, argmax) or exploring."""

    def __init__(
        self,
        policy: Any,
        action_shape: tuple[int, ...],
        explore: bool = False,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.policy, self.action_shape, self.explore = policy, tuple(action_shape), explore
        self.rng = rng if rng is not None else np.random.default_rng(0)

    def __call__(self, obs: np.ndarray, _env: Any) -> Any:
        """The policy's action for ``obs`` in the env's action shape."""
        actions, _, _ = self.policy.compute_actions(np.asarray(obs)[None], self.explore, self.rng)
        return (
            np.asarray(actions[0]).reshape(self.action_shape) if self.action_shape else actions[0]
        )


class AgentsPolicyActor:
    """The runner's policies driving every agent of a multi-agent env (a
    :class:`~flowsim.envs.multiagent_adapter.MultiAgentAdapter`): each agent's observation goes
    to its policy (padded, with its action mask), one batched call per policy and step."""

    def __init__(
        self,
        adapter: Any,
        policies: dict[str, Any],
        explore: bool = False,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.adapter, self.policies, self.explore = adapter, policies, explore
        self.rng = rng if rng is not None else np.random.default_rng(0)

    def __call__(self, observations: dict[str, Any], _env: Any) -> dict[str, Any]:
        """Every live agent's action, in the env's form."""
        adapter = self.adapter
        actions: dict[str, Any] = {}
        for pid, agents in adapter.live_by_policy(observations).items():
            inputs, masks = adapter.policy_batch(agents, observations)
            chosen, _, _ = self.policies[pid].compute_actions(
                inputs, self.explore, self.rng, mask=masks
            )
            for agent, action in zip(agents, chosen, strict=True):
                actions[agent] = adapter.env_action(agent, action)
        return actions


def _trip_metrics(info: dict[str, Any]) -> dict[str, float]:
    """The trip metrics a signal env reports in an episode's last ``info`` (none elsewhere),
    and the bottleneck's ``outflow``."""
    return {key: float(info[key]) for key in (*TRIP_METRICS, "outflow") if key in info}


class TaskActor:
    """A single-agent actor (a baseline written for the Gymnasium task that a flowsim
    multi-agent env wraps: a controller driving every AV, a signal rule) driving every agent:
    it sees the task's observation and env, and its joint action is split by agent slot."""

    def __init__(self, adapter: Any, actor: Actor) -> None:
        self.adapter, self.actor = adapter, actor
        #: the wrapped actor's ``finish_episode``, if it has one
        self.finish_episode = getattr(actor, "finish_episode", None)

    def __call__(self, observations: dict[str, Any], _env: Any) -> dict[str, Any]:
        """Every live agent's entry of the actor's joint action."""
        task = self.adapter.task
        joint = np.asarray(self.actor(task.observe(), task), dtype=np.float64).reshape(-1)
        return {agent: joint[self.adapter.slot[agent]] for agent in self.adapter.agents}


def play_agents_episode(
    adapter: Any, actor: Actor, seed: int, max_steps: int | None = None, record: bool = False
) -> EpisodeResult:
    """One episode of a multi-agent env (a ``MultiAgentAdapter``) from ``seed``.

    ``actor`` maps the live agents' observations (a dict) to their actions (a dict). The
    return is the team's: every agent's rewards summed; ``length`` counts env steps and
    ``metrics["agent_steps"]`` agent decisions; ``obs_sum`` sums the policy inputs of the
    agents (one policy's layout; ES runs one shared policy). Speeds come from the agents'
    info. Raises :class:`~flowsim.errors.SimulationCrashed` if SUMO dies.
    """
    observations, _ = adapter.reset(seed=seed)
    total, collisions, steps, decisions = 0.0, 0, 0, 0
    obs_sum = obs_sumsq = np.zeros(0)
    means: list[float] = []
    stds: list[float] = []
    minima: list[float] = []
    returns: dict[str, float] = {}
    recorded: dict[str, list[Any]] = {"obs": [], "actions": [], "rewards": []}
    kernel = adapter.kernel
    info: dict[str, Any] = {}
    while adapter.agents:
        for agent in adapter.agents:
            if agent in observations:
                flat = adapter.policy_input(agent, observations[agent]).astype(np.float64)
                obs_sum = flat if decisions == 0 else obs_sum + flat
                obs_sumsq = flat**2 if decisions == 0 else obs_sumsq + flat**2
                decisions += 1
        actions = actor(observations, adapter.env)
        if record:
            recorded["obs"].append(dict(observations))
            recorded["actions"].append(dict(actions))
        next_observations, rewards, _, _, infos = adapter.step(actions)
        for agent, reward in rewards.items():
            returns[agent] = returns.get(agent, 0.0) + float(reward)
        total += float(sum(rewards.values()))
        info = next(iter(infos.values()), {})
        collisions += int(info.get("collisions", 0))
        steps += 1
        means.append(float(info.get("mean_speed", np.nan)))
        stds.append(float(info.get("speed_std", np.nan)))
        speeds = kernel.speeds() if kernel is not None else None
        minima.append(float(speeds.min()) if speeds is not None and speeds.size else np.nan)
        if record:
            recorded["rewards"].append(dict(rewards))
        observations = {**observations, **next_observations}
        if max_steps is not None and steps >= max_steps:
            break
    tail = slice(steps // 2, None)
    known = np.asarray(means)[~np.isnan(means)]
    metrics = {
        "mean_speed": float(np.mean(means[tail])) if steps else float("nan"),
        "speed_std": float(np.mean(stds[tail])) if steps else float("nan"),
        "min_speed": float(np.min(minima[tail])) if steps else float("nan"),
        "collisions": float(collisions),
        "episode_mean_speed": float(known.mean()) if known.size else float("nan"),
        "agent_steps": float(decisions),
        "agent_return_mean": float(np.mean(list(returns.values()))) if returns else float("nan"),
        **_trip_metrics(info),
    }
    kept = {key: np.asarray(value, dtype=object) for key, value in recorded.items()}
    return _episode_result(
        adapter.task,
        actor,
        seed,
        total,
        steps,
        metrics,
        obs_sum,
        obs_sumsq,
        kept if record else None,
    )


def play_episode(
    env: Any, actor: Actor, seed: int, max_steps: int | None = None, record: bool = False
) -> EpisodeResult:
    """One episode of ``actor`` on ``env`` from ``seed``: its return, length and metrics.

    Raises :class:`~flowsim.errors.SimulationCrashed` if SUMO dies; the runner restarts it and
    plays the episode again.
    """
    obs, _ = env.reset(seed=seed)
    total, collisions, steps = 0.0, 0, 0
    obs_sum = obs_sumsq = np.zeros(0)
    means: list[float] = []
    stds: list[float] = []
    minima: list[float] = []
    recorded: dict[str, list[Any]] = {"obs": [], "actions": [], "rewards": []}
    kernel = env.simulation.kernel if hasattr(env, "simulation") else None
    while True:
        flat = np.asarray(obs, dtype=np.float64).reshape(-1)
        obs_sum = flat if steps == 0 else obs_sum + flat
        obs_sumsq = flat**2 if steps == 0 else obs_sumsq + flat**2
        action = actor(obs, env)
        if record:
            recorded["obs"].append(obs)
            recorded["actions"].append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        collisions += int(info.get("collisions", 0))
        steps += 1
        means.append(float(info.get("mean_speed", np.nan)))
        stds.append(float(info.get("speed_std", np.nan)))
        speeds = kernel.speeds() if kernel is not None else None
        minima.append(float(speeds.min()) if speeds is not None and speeds.size else np.nan)
        if record:
            recorded["rewards"].append(reward)
        if terminated or truncated or (max_steps is not None and steps >= max_steps):
            break
    tail = slice(steps // 2, None)
    known = np.asarray(means)[~np.isnan(means)]
    metrics = {
        "mean_speed": float(np.mean(means[tail])),
        "speed_std": float(np.mean(stds[tail])),
        "min_speed": float(np.min(minima[tail])),
        "collisions": float(collisions),
        "episode_mean_speed": float(known.mean()) if known.size else float("nan"),
        **_trip_metrics(info),
    }
    kept = {
        "obs": np.asarray(recorded["obs"]),
        "actions": np.asarray(recorded["actions"]),
        "rewards": np.asarray(recorded["rewards"], dtype=np.float64),
    }
    return _episode_result(
        env, actor, seed, total, steps, metrics, obs_sum, obs_sumsq, kept if record else None
    )


def _episode_result(
    task: Any,
    actor: Any,
    seed: int,
    total: float,
    steps: int,
    metrics: dict[str, float],
    obs_sum: np.ndarray,
    obs_sumsq: np.ndarray,
    recorded: dict[str, np.ndarray] | None,
) -> EpisodeResult:
    """The played episode's result: the ring's length joins ``metrics`` on rings, and the
    actor's own output (``finish_episode``, if it has one) comes along."""
    instance = getattr(getattr(task, "simulation", None), "instance", None)
    if instance is not None and task.config.scenario.type in RING_SCENARIOS:
        metrics["ring_length"] = float(instance.length)
    finish = getattr(actor, "finish_episode", None)
    return EpisodeResult(
        seed=seed,
        episode_return=total,
        length=steps,
        metrics=metrics,
        obs_sum=obs_sum,
        obs_sumsq=obs_sumsq,
        steps=recorded,
        actor_output=finish() if finish is not None else None,
    )


def perturbed_weights(
    weights: dict[str, np.ndarray], perturbation: Perturbation, noise: np.ndarray
) -> dict[str, np.ndarray]:
    """``weights`` with ``perturbation.params`` moved by ``sign * sigma * noise[offset:]``."""
    base = np.concatenate(
        [np.asarray(weights[name]).ravel() for name in perturbation.params]
    ).astype(np.float32)
    eps = noise[perturbation.offset : perturbation.offset + base.size]
    moved = base + perturbation.sign * np.float32(perturbation.sigma) * eps
    out = dict(weights)
    start = 0
    for name in perturbation.params:
        shape = np.shape(weights[name])
        size = int(np.prod(shape))
        out[name] = moved[start : start + size].reshape(shape)
        start += size
    return out


def resolve(handle: Any) -> Any:
    """The value behind a :meth:`RunnerGroup.share` handle (fetched if it is a Ray reference)."""
    ray = sys.modules.get("ray")
    if ray is not None and isinstance(handle, ray.ObjectRef):
        return ray.get(handle)
    return handle


@dataclass
class NoiseCache:
    """The noise table a runner fetched, kept while the same reference comes back."""

    key: str | None = None
    table: np.ndarray | None = None
    fetches: int = field(default=0)

    def table_for(self, source: Any) -> np.ndarray:
        """The table behind ``source``: the array itself in-process, else fetched once."""
        if isinstance(source, np.ndarray):
            return source
        key = source.hex()
        if self.key != key or self.table is None:
            self.key, self.table = key, resolve(source)
            self.fetches += 1
        return self.table


def blocks(jobs: int, runners: int) -> list[range]:
    """``jobs`` split into ``runners`` contiguous blocks of near-equal size (the first ones
    larger), so neighbouring jobs (an antithetic pair) mostly play on the same runner.

    >>> blocks(9, 2)
    [range(0, 5), range(5, 9)]
    """
    size, extra = divmod(jobs, runners)
    starts = [k * size + min(k, extra) for k in range(runners + 1)]
    return [range(a, b) for a, b in itertools.pairwise(starts)]
