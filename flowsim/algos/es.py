"""Evolution strategies (Salimans et al. 2017), reading top to bottom.

One iteration: draw ``train.es.perturbations`` noise indices -> the runners play each antithetic
pair ``theta + sigma * eps`` and ``theta - sigma * eps`` with the greedy policy for
``episodes_per_perturbation`` whole episodes -> centred ranks of the returns -> the gradient
estimate -> one Adam step with weight decay.

The estimate is the paper's antithetic form, on returns shaped into centred ranks ``u`` (ranks
over all ``2 n`` returns of the iteration, scaled to [-0.5, 0.5], ties sharing their mean rank)::

    g = 1 / (2 n sigma) * sum_i (u+_i - u-_i) eps_i        (n pairs)

Adam (step size ``train.es.lr``, else ``train.lr``; constant or linear to 0 by
``train.lr_schedule``) then descends along ``-g + weight_decay * theta``. (The reference
implementation, openai/evolution-strategies-starter, leaves out the ``1 / sigma``; under Adam
that only changes how strongly the decay term weighs against ``g``.)

Only the policy network ``pi`` evolves; the value network of :class:`ActorCritic` is exported
unchanged so the runners' weights stay valid. ``eps`` is a slice of a noise table (float32,
``noise_table_size`` entries, drawn from a fixed seed) that the learner builds once. With a Ray
group the table goes into the object store once and every runner fetches it once and keeps it;
the learner sends only noise indices, episode seeds and the flat base parameters.

Every episode's reset seed is drawn by the learner and both members of a pair play the same seeds
(common random numbers: the pair differs only in its policy). So rollouts do not depend on which
runner plays them: the in-process group and a Ray group of any size give the same numbers, and a
resumed run continues exactly. This is why episodes are played by the short loop in
:func:`play_share` rather than :meth:`EnvRunner.sample`, which continues episodes across calls
and draws its own reset seeds.
"""

from __future__ import annotations

import functools
import sys
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from flowsim.algos.common import (
    RunningMeanStd,
    actor_critic_for,
    episode_metrics,
    learner_state,
    load_learner_state,
)
from flowsim.config import FlowsimConfig
from flowsim.distributed.group import RayRunnerGroup
from flowsim.distributed.runner import MAX_CONSECUTIVE_RESTARTS, EnvRunner
from flowsim.errors import ConfigError, FlowsimError, SimulationCrashed

#: Seed of the shared noise table: the learner and every runner index the same table.
NOISE_TABLE_SEED = 123
ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 0.9, 0.999, 1e-8


def noise_table(size: int) -> np.ndarray:
    """The shared table of ``size`` standard normal float32 values (always the same)."""
    return np.random.default_rng(NOISE_TABLE_SEED).standard_normal(size, dtype=np.float32)


def centred_ranks(returns: np.ndarray) -> np.ndarray:
    """Ranks of ``returns`` over all entries, scaled to [-0.5, 0.5]; ties share their mean rank.

    >>> centred_ranks(np.array([[3.0, 1.0], [2.0, 2.0]]))
    array([[ 0.5, -0.5],
           [ 0. ,  0. ]])
    """
    flat = returns.ravel()
    _, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts  # rank of the first entry of each distinct value
    ranks = (first + (counts - 1) / 2.0)[inverse.ravel()]
    return (ranks / max(flat.size - 1, 1) - 0.5).reshape(returns.shape)


def es_gradient(
    shaped: np.ndarray, noise_indices: np.ndarray, noise: np.ndarray, dim: int, sigma: float
) -> np.ndarray:
    """``sum_i (u+_i - u-_i) eps_i / (2 n sigma)`` for ``shaped`` of shape (n, 2): [u+, u-]."""
    pairs = len(shaped)
    gradient = np.zeros(dim)
    for (plus, minus), index in zip(shaped, noise_indices, strict=True):
        if plus != minus:
            gradient += (plus - minus) * noise[index : index + dim]
    return gradient / (2 * pairs * sigma)


# -- what the runners do ------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """A policy for a runner to play: ``theta + sign * sigma * noise[index : index + dim]``.

    ``sign`` is +1 or -1 for a member of an antithetic pair, 0 for the unperturbed policy (whose
    ``noise_index`` is unused); ``seeds`` holds one reset seed per episode.
    """

    noise_index: int
    sign: int
    seeds: tuple[int, ...]


@dataclass
class JobResult:
    """The episodes of one job: returns, steps, mean speeds and observation moments."""

    returns: list[float] = field(default_factory=list)
    mean_speeds: list[float] = field(default_factory=list)  # nan where info has no mean_speed
    steps: int = 0
    restarts: int = 0
    obs_sum: np.ndarray | float = 0.0
    obs_sumsq: np.ndarray | float = 0.0


@dataclass
class Task:
    """One iteration's work: each runner plays ``shares[runner_index]`` (job number, job).

    ``params`` is ``(theta, fixed weights)`` and ``noise`` the table; with a Ray group both are
    ObjectRefs, so each is stored once and not copied into every task.
    """

    shares: list[list[tuple[int, Job]]]
    params: Any
    noise: Any
    layout: list[tuple[str, tuple[int, ...]]]
    sigma: float
    version: int


@dataclass
class ShareResult:
    """A runner's results by job number, and how often it has fetched a noise table so far."""

    runner_index: int
    results: dict[int, JobResult]
    noise_fetches: int


@dataclass
class _CachedNoise:
    key: str
    table: np.ndarray
    fetches: int


#: The noise table each runner fetched from the object store, held as long as the runner lives.
_NOISE_CACHE: weakref.WeakKeyDictionary[EnvRunner, _CachedNoise] = weakref.WeakKeyDictionary()


def _resolve(value: Any) -> Any:
    """``value`` itself, or the object behind it when it is a Ray ObjectRef."""
    ray = sys.modules.get("ray")
    if ray is not None and isinstance(value, ray.ObjectRef):
        return ray.get(value)
    return value


def _noise_of(runner: EnvRunner, source: Any) -> np.ndarray:
    """The noise table: the learner's array in-process, else fetched once per runner."""
    if isinstance(source, np.ndarray):
        return source
    cached = _NOISE_CACHE.get(runner)
    if cached is None or cached.key != source.hex():
        fetches = cached.fetches if cached is not None else 0
        cached = _CachedNoise(source.hex(), _resolve(source), fetches + 1)
        _NOISE_CACHE[runner] = cached
    return cached.table


def play_share(task: Task, runner: EnvRunner) -> ShareResult:
    """Play this runner's share of ``task`` (runs on the runner: in-process or on its actor)."""
    share = task.shares[runner.runner_index] if runner.runner_index < len(task.shares) else []
    theta, fixed = _resolve(task.params)
    noise = _noise_of(runner, task.noise) if any(job.sign for _, job in share) else None
    results: dict[int, JobResult] = {}
    for number, job in share:
        params = theta
        if job.sign != 0:
            assert noise is not None
            eps = noise[job.noise_index : job.noise_index + theta.size]
            params = theta + job.sign * np.float32(task.sigma) * eps
        weights = dict(fixed)
        offset = 0
        for name, shape in task.layout:
            size = int(np.prod(shape))
            weights[name] = params[offset : offset + size].reshape(shape)
            offset += size
        runner.set_weights(weights, task.version)
        results[number] = _play(runner, job.seeds)
    cached = _NOISE_CACHE.get(runner)
    return ShareResult(runner.runner_index, results, cached.fetches if cached else 0)


def _play(runner: EnvRunner, seeds: tuple[int, ...]) -> JobResult:
    """Whole greedy episodes of the runner's policy from the given reset seeds.

    An episode that SUMO crashes in is played again from its seed once the simulation restarts
    (its steps still count).
    """
    result = JobResult()
    for seed in seeds:
        for attempt in range(MAX_CONSECUTIVE_RESTARTS + 1):
            try:
                episode_return, mean_speed = _episode(runner, seed, result)
                break
            except SimulationCrashed as crash:
                runner.restarts += 1
                result.restarts += 1
                if attempt == MAX_CONSECUTIVE_RESTARTS:
                    raise SimulationCrashed(
                        f"runner {runner.runner_index}: SUMO crashed {attempt + 1} times in a "
                        f"row in an ES episode ({crash})"
                    ) from None
        result.returns.append(episode_return)
        result.mean_speeds.append(mean_speed)
    return result


def _episode(runner: EnvRunner, seed: int, result: JobResult) -> tuple[float, float]:
    """One episode to the env's own end; adds steps and observation moments to ``result``."""
    env = runner.envs[0]
    obs, _ = env.reset(seed=seed)
    episode_return, speed_sum, speed_steps = 0.0, 0.0, 0
    while True:
        flat = np.asarray(obs, dtype=np.float64).reshape(-1)
        result.obs_sum = result.obs_sum + flat
        result.obs_sumsq = result.obs_sumsq + flat**2
        actions, _, _ = runner.policy.compute_actions(flat[None], False, runner.rng)
        obs, reward, terminated, truncated, info = env.step(actions[0])
        result.steps += 1
        episode_return += float(reward)
        if "mean_speed" in info:
            speed_sum += float(info["mean_speed"])
            speed_steps += 1
        if terminated or truncated:
            return episode_return, speed_sum / speed_steps if speed_steps else float("nan")


# -- the learner --------------------------------------------------------------------------
class ESTrainer:
    """Evolution strategies on episodes played by a runner group (which it never creates).

    Args:
        config: the experiment; ``config.train`` (with ``config.train.es``) holds the settings.
        group: a runner group built with :func:`policy_spec_for` for these spaces.
        observation_space, action_space: the env's spaces.
    """

    #: Columns of progress.csv beyond the shared ones.
    EXTRA_METRICS = ("perturbed_return_mean", "pairs", "grad_norm", "update_ratio", "restarts")

    def __init__(
        self, config: FlowsimConfig, group: Any, observation_space: Any, action_space: Any
    ) -> None:
        train, es = config.train, config.train.es
        if config.sampler.envs_per_worker != 1:
            raise ConfigError(
                f"sampler.envs_per_worker: {config.sampler.envs_per_worker} with train.algo es: "
                "ES plays one episode at a time on each runner; set sampler.envs_per_worker: 1 "
                "and raise sampler.num_workers instead."
            )
        self.config, self.train, self.es, self.group = config, train, es, group
        torch.manual_seed(train.seed)
        obs_dim = int(np.prod(observation_space.shape))
        self.model = actor_critic_for(
            observation_space, action_space, tuple(train.hidden), train.init_log_std
        )
        self.normalizer = RunningMeanStd((obs_dim,)) if train.normalize_obs else None
        exported = self.model.export(None)
        self.layout = [(name, w.shape) for name, w in exported.items() if name.startswith("pi.")]
        self.theta = np.concatenate([exported[name].ravel() for name, _ in self.layout])
        self.theta = self.theta.astype(np.float32)
        if es.noise_table_size < self.theta.size:
            raise ConfigError(
                f"train.es.noise_table_size {es.noise_table_size} is smaller than the policy's "
                f"{self.theta.size} parameters; raise it to at least {self.theta.size} (better "
                "100 times that), or lower train.hidden."
            )
        self.adam_m = np.zeros(self.theta.size)
        self.adam_v = np.zeros(self.theta.size)
        self.adam_step = 0
        self.rng = np.random.default_rng(train.seed)
        self.iteration = 0
        self.env_steps = 0
        self.noise = noise_table(es.noise_table_size)
        self.noise_ref: Any = None
        if isinstance(group, RayRunnerGroup):
            import ray

            self.noise_ref = ray.put(self.noise)  # once; runners fetch it by reference
            self.noise = ray.get(self.noise_ref)  # read the stored copy: one table per node
        #: Noise tables each runner slot has fetched from the object store, as last reported.
        self.noise_fetches: dict[int, int] = {}

    # -- one iteration --------------------------------------------------------------------
    def train_iteration(self) -> dict[str, float]:
        """Evaluate the antithetic pairs, take one Adam step; return the iteration's metrics."""
        started = time.perf_counter()
        es, dim = self.es, self.theta.size
        pairs = es.perturbations
        noise_indices = self.rng.integers(0, len(self.noise) - dim + 1, size=pairs)
        pair_seeds = self.rng.integers(0, 2**31 - 1, size=(pairs, es.episodes_per_perturbation))
        eval_seeds = self.rng.integers(0, 2**31 - 1, size=es.eval_episodes)
        jobs: list[Job] = []
        for index, seeds in zip(noise_indices, pair_seeds, strict=True):
            episode_seeds = tuple(int(seed) for seed in seeds)
            jobs += [Job(int(index), 1, episode_seeds), Job(int(index), -1, episode_seeds)]
        jobs += [Job(-1, 0, (int(seed),)) for seed in eval_seeds]
        results = self._play(jobs, pairs)
        sample_s = time.perf_counter() - started

        complete = [i for i in range(pairs) if 2 * i in results and 2 * i + 1 in results]
        if not complete:
            raise FlowsimError("no antithetic pair came back from the runners this iteration.")
        returns = np.array(
            [[np.mean(results[2 * i + s].returns) for s in (0, 1)] for i in complete]
        )
        gradient = es_gradient(
            centred_ranks(returns), noise_indices[complete], self.noise, dim, es.sigma
        )
        previous = self.theta.copy()
        self._adam_update(gradient)
        update_ratio = float(
            np.linalg.norm(self.theta - previous) / (np.linalg.norm(previous) + 1e-12)
        )
        if self.normalizer is not None:  # after the update: these episodes used the old stats
            self._fold_observations(list(results.values()))

        self.iteration += 1
        steps = sum(result.steps for result in results.values())
        self.env_steps += steps
        perturbed = [results[2 * i + s] for i in complete for s in (0, 1)]
        unperturbed = [results[n] for n in range(2 * pairs, len(jobs)) if n in results]
        shown = unperturbed if es.eval_episodes > 0 else perturbed
        shown_returns = np.array([r for result in shown for r in result.returns])
        speeds = np.array([s for result in shown for s in result.mean_speeds])
        wall = time.perf_counter() - started
        nan = float("nan")
        return {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "episodes": sum(len(result.returns) for result in results.values()),
            **episode_metrics(shown_returns, speeds),
            "policy_loss": nan,
            "value_loss": nan,
            "kl": nan,
            "entropy": nan,
            "clip_frac": nan,
            "sample_s": sample_s,
            "iteration_s": wall,
            "steps_per_s": steps / wall,
            "perturbed_return_mean": float(np.mean([r for p in perturbed for r in p.returns])),
            "pairs": len(complete),
            "grad_norm": float(np.linalg.norm(gradient)),
            "update_ratio": update_ratio,
            "restarts": sum(result.restarts for result in results.values()),
            "noise_fetches": sum(self.noise_fetches.values()),
        }

    def _play(self, jobs: list[Job], pairs: int) -> dict[int, JobResult]:
        """Play ``jobs`` on the group's runners; results by job number.

        Work goes round-robin in units (a pair, or one unperturbed episode), so both members of
        a pair play on the same runner. A runner the group could not reach returns nothing; its
        pairs are left out of this iteration's estimate.
        """
        count = self.group.num_runners
        units = [[2 * i, 2 * i + 1] for i in range(pairs)]
        units += [[n] for n in range(2 * pairs, len(jobs))]
        shares: list[list[tuple[int, Job]]] = [[] for _ in range(count)]
        for u, unit in enumerate(units):
            shares[u % count] += [(n, jobs[n]) for n in unit]
        fixed = {
            name: value
            for name, value in self.model.export(self.normalizer).items()
            if not name.startswith("pi.")
        }
        task = Task(
            shares=shares,
            params=self._store((self.theta, fixed)),
            noise=self.noise_ref if self.noise_ref is not None else self.noise,
            layout=self.layout,
            sigma=self.es.sigma,
            version=self.iteration,
        )
        results: dict[int, JobResult] = {}
        for share in self.group.evaluate(functools.partial(play_share, task)):
            results.update(share.results)
            self.noise_fetches[share.runner_index] = share.noise_fetches
        return dict(sorted(results.items()))  # job order, whichever runner played a job

    def _store(self, value: Any) -> Any:
        """``value`` in Ray's object store (once for all runners) with a Ray group, else as is."""
        if self.noise_ref is None:
            return value
        import ray

        return ray.put(value)

    def _adam_update(self, gradient: np.ndarray) -> None:
        """One Adam step on ``-gradient + weight_decay * theta`` (ascent on the return)."""
        descent = -gradient + self.es.weight_decay * self.theta
        self.adam_step += 1
        self.adam_m = ADAM_BETA1 * self.adam_m + (1 - ADAM_BETA1) * descent
        self.adam_v = ADAM_BETA2 * self.adam_v + (1 - ADAM_BETA2) * descent**2
        m_hat = self.adam_m / (1 - ADAM_BETA1**self.adam_step)
        v_hat = self.adam_v / (1 - ADAM_BETA2**self.adam_step)
        lr = self.es.lr if self.es.lr is not None else self.train.lr
        if self.train.lr_schedule == "linear":
            lr *= max(1.0 - self.iteration / self.train.iterations, 0.0)
        step = lr * m_hat / (np.sqrt(v_hat) + ADAM_EPS)
        self.theta = (self.theta - step).astype(np.float32)
        self._load_theta()

    def _load_theta(self) -> None:
        """Copy ``theta`` into the policy network (same order as ``pi``'s parameters)."""
        torch.nn.utils.vector_to_parameters(torch.as_tensor(self.theta), self.model.pi.parameters())

    def _fold_observations(self, results: list[JobResult]) -> None:
        """Merge the runners' observation sums into the running mean/std (Chan et al.)."""
        assert self.normalizer is not None
        count = sum(result.steps for result in results)
        if count == 0:
            return
        total = sum(np.asarray(result.obs_sum) for result in results)
        total_sq = sum(np.asarray(result.obs_sumsq) for result in results)
        mean = total / count
        var = np.maximum(total_sq / count - mean**2, 0.0)
        self.normalizer.update_from_moments(mean, var, count)

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this trainer is."""
        return {
            **learner_state(self),
            "theta": self.theta.copy(),
            "adam": {"m": self.adam_m.copy(), "v": self.adam_v.copy(), "step": self.adam_step},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a trainer saved by :meth:`state_dict`."""
        load_learner_state(self, state)
        self.theta = np.asarray(state["theta"], dtype=np.float32).copy()
        self._load_theta()
        self.adam_m = np.asarray(state["adam"]["m"], dtype=np.float64).copy()
        self.adam_v = np.asarray(state["adam"]["v"], dtype=np.float64).copy()
        self.adam_step = int(state["adam"]["step"])
