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
``noise_table_size`` entries, drawn from a fixed seed) that the learner builds once and shares
with the group (:meth:`RunnerGroup.share`): on Ray it goes into the object store once and every
runner fetches it once and keeps it. Each iteration the base weights go to the runners once
(``set_weights``); an episode job then carries only its seed and its
:class:`~flowsim.distributed.Perturbation` (noise offset, sign, sigma), which the runner applies
to the weights it holds.

Every episode's reset seed is drawn by the learner and both members of a pair play the same seeds
(common random numbers: the pair differs only in its policy). So episodes do not depend on which
runner plays them: the in-process group and a Ray group of any size give the same numbers, and a
resumed run continues exactly. This is why episodes are whole seeded jobs for
:meth:`RunnerGroup.play` rather than :meth:`RunnerGroup.sample`, which continues episodes across
calls and draws its own reset seeds. A runner lost during an iteration takes its jobs with it:
the estimate uses the pairs that came back.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from flowsim.algos.common import (
    RunningMeanStd,
    episode_metrics,
    learner_state,
    load_learner_state,
)
from flowsim.config import FlowsimConfig, TrainConfig
from flowsim.distributed import EpisodeJob, EpisodeResult, Perturbation, RunnerGroup
from flowsim.distributed.play import resolve
from flowsim.errors import ConfigError, FlowsimError
from flowsim.policies.torch import ActorCritic
from flowsim.sim.trips import TRIP_METRICS

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


# -- the learner --------------------------------------------------------------------------
class ESTrainer:
    """Evolution strategies on episodes played by a runner group (which it never creates).

    Args:
        config: the experiment; ``config.train`` (with ``config.train.es``) holds the settings.
        group: the runners that play the episodes; it answers the env's spaces.
    """

    #: Columns of progress.csv beyond the shared ones.
    EXTRA_METRICS = ("perturbed_return_mean", "pairs", "grad_norm", "update_ratio", "restarts")

    def __init__(self, config: FlowsimConfig, group: RunnerGroup) -> None:
        train, es = config.train, config.train.es
        if config.sampler.envs_per_worker != 1:
            raise ConfigError(
                f"sampler.envs_per_worker: {config.sampler.envs_per_worker} with train.algo es: "
                "ES plays one episode at a time on each runner; set sampler.envs_per_worker: 1 "
                "and raise sampler.num_workers instead."
            )
        self.config, self.train, self.es, self.group = config, train, es, group
        self.set_learning_rates(train)
        torch.manual_seed(train.seed)
        obs_dim = int(np.prod(group.observation_space.shape))
        self.model = ActorCritic(group.policy_spec)  # the network the runners evaluate
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
        # Shared once (one object-store copy on Ray); read back so the learner holds that copy.
        self.noise_ref: Any = group.share(noise_table(es.noise_table_size))
        self.noise: np.ndarray = resolve(self.noise_ref)
        #: Noise tables each runner slot has fetched from the object store, as last reported.
        self.noise_fetches: dict[int, int] = {}

    # -- one iteration --------------------------------------------------------------------
    def train_iteration(self) -> dict[str, float]:
        """Evaluate the antithetic pairs, take one Adam step; return the iteration's metrics."""
        started = time.perf_counter()
        es, dim = self.es, self.theta.size
        pairs, per_member = es.perturbations, es.episodes_per_perturbation
        noise_indices = self.rng.integers(0, len(self.noise) - dim + 1, size=pairs)
        pair_seeds = self.rng.integers(0, 2**31 - 1, size=(pairs, per_member))
        eval_seeds = self.rng.integers(0, 2**31 - 1, size=es.eval_episodes)
        # Jobs: pair i's + episodes, then its - episodes (neighbours, so mostly on one runner),
        # then the unperturbed policy's episodes.
        params = tuple(name for name, _ in self.layout)
        jobs: list[EpisodeJob] = []
        for index, seeds in zip(noise_indices, pair_seeds, strict=True):
            for sign in (1, -1):
                moved = Perturbation(self.noise_ref, int(index), sign, es.sigma, params)
                jobs += [EpisodeJob(int(seed), perturbation=moved) for seed in seeds]
        jobs += [EpisodeJob(int(seed)) for seed in eval_seeds]
        self.group.set_weights(self.export_policy(), self.iteration)
        played = self.group.play(jobs, drop_lost=True)
        results = {result.job_index: result for result in played}
        for result in played:
            self.noise_fetches[result.runner_index] = result.noise_fetches
        sample_s = time.perf_counter() - started

        def member(pair: int, side: int) -> list[EpisodeResult]:
            first = (2 * pair + side) * per_member
            return [results[n] for n in range(first, first + per_member) if n in results]

        complete = [i for i in range(pairs) if all(len(member(i, s)) == per_member for s in (0, 1))]
        if not complete:
            raise FlowsimError("no antithetic pair came back from the runners this iteration.")
        returns = np.array(
            [[np.mean([r.episode_return for r in member(i, s)]) for s in (0, 1)] for i in complete]
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
            self._fold_observations(played)

        self.iteration += 1
        steps = sum(result.length for result in played)
        self.env_steps += steps
        perturbed = [r for i in complete for s in (0, 1) for r in member(i, s)]
        unperturbed = [results[n] for n in range(2 * pairs * per_member, len(jobs)) if n in results]
        shown = unperturbed if es.eval_episodes > 0 else perturbed
        shown_returns = np.array([result.episode_return for result in shown])
        speeds = np.array([result.metrics["episode_mean_speed"] for result in shown])
        trips = np.array([[r.metrics.get(k, np.nan) for k in TRIP_METRICS] for r in shown])
        wall = time.perf_counter() - started
        nan = float("nan")
        return {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "episodes": len(played),
            **episode_metrics(shown_returns, speeds, trips),
            "policy_loss": nan,
            "value_loss": nan,
            "kl": nan,
            "entropy": nan,
            "clip_frac": nan,
            "sample_s": sample_s,
            "iteration_s": wall,
            "steps_per_s": steps / wall,
            "perturbed_return_mean": float(np.mean([r.episode_return for r in perturbed])),
            "pairs": len(complete),
            "grad_norm": float(np.linalg.norm(gradient)),
            "update_ratio": update_ratio,
            "restarts": sum(result.restarts for result in played),
            "noise_fetches": sum(self.noise_fetches.values()),
        }

    def _adam_update(self, gradient: np.ndarray) -> None:
        """One Adam step on ``-gradient + weight_decay * theta`` (ascent on the return)."""
        descent = -gradient + self.es.weight_decay * self.theta
        self.adam_step += 1
        self.adam_m = ADAM_BETA1 * self.adam_m + (1 - ADAM_BETA1) * descent
        self.adam_v = ADAM_BETA2 * self.adam_v + (1 - ADAM_BETA2) * descent**2
        m_hat = self.adam_m / (1 - ADAM_BETA1**self.adam_step)
        v_hat = self.adam_v / (1 - ADAM_BETA2**self.adam_step)
        lr = self.lr
        if self.lr_schedule == "linear":
            lr *= max(1.0 - self.iteration / self.train.iterations, 0.0)
        step = lr * m_hat / (np.sqrt(v_hat) + ADAM_EPS)
        self.theta = (self.theta - step).astype(np.float32)
        self._load_theta()

    def _load_theta(self) -> None:
        """Copy ``theta`` into the policy network (same order as ``pi``'s parameters)."""
        torch.nn.utils.vector_to_parameters(torch.as_tensor(self.theta), self.model.pi.parameters())

    def _fold_observations(self, results: list[EpisodeResult]) -> None:
        """Merge the episodes' observation sums into the running mean/std (Chan et al.)."""
        assert self.normalizer is not None
        # a multi-agent episode sums every agent's observations: count its decisions
        count = sum(int(result.metrics.get("agent_steps", result.length)) for result in results)
        if count == 0:
            return
        total = sum(result.obs_sum for result in results)
        total_sq = sum(result.obs_sumsq for result in results)
        mean = total / count
        var = np.maximum(total_sq / count - mean**2, 0.0)
        self.normalizer.update_from_moments(mean, var, count)

    # -- the Trainer protocol's other half ------------------------------------------------
    def set_learning_rates(self, train: TrainConfig) -> None:
        """Adam's step size from now on: ``train.es.lr``, else ``train.lr``, with
        ``train.lr_schedule``."""
        self.lr = train.es.lr if train.es.lr is not None else train.lr
        self.lr_schedule = train.lr_schedule

    def export_policy(self) -> dict[str, np.ndarray]:
        """The current policy (and observation statistics) in the runners' numpy layout."""
        return self.model.export(self.normalizer)

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
