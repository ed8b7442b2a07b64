"""The learning maths every trainer shares: observation statistics, GAE, learner state.

The network itself (``ActorCritic``) lives in :mod:`flowsim.policies.torch`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
import torch

from flowsim.distributed.batch import Batch
from flowsim.policies.spec import OBS_CLIP
from flowsim.policies.torch import ActorCritic
from flowsim.sim.trips import TRIP_METRICS

#: Torch threads of a learner's update (:func:`learner_threads`).
LEARNER_THREADS = 1


@contextmanager
def learner_threads(threads: int = LEARNER_THREADS) -> Iterator[None]:
    """Torch computes on ``threads`` threads inside the block; the caller's count comes back
    after it.

    A learner's networks are small (64-64 MLPs on minibatches of a few thousand rows): on two
    cores a second thread gained little even on a quiet machine, and beside the runners, Ray's
    processes or another job its OpenMP threads wait for each other, which made a PPO update of
    24,000 steps take 5-30 s instead of 1 s (BENCHMARKS.md, "The hot path"). Results depend on
    the thread count in the last bit of float32, so one count also makes a run's numbers the
    same on every machine.
    """
    before = torch.get_num_threads()
    if before != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if before != threads:
            torch.set_num_threads(before)


class RunningMeanStd:
    """Running mean and variance of observations (Chan et al.'s parallel update)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.mean = np.zeros(shape)
        self.var = np.ones(shape)
        self.count = 1e-4

    def update(self, values: np.ndarray) -> None:
        """Fold a batch of observations (first axis: samples) into the statistics."""
        self.update_from_moments(values.mean(axis=0), values.var(axis=0), values.shape[0])

    def update_from_moments(self, batch_mean: np.ndarray, batch_var: np.ndarray, n: int) -> None:
        """Fold in ``n`` samples known only by their mean and variance."""
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * n / total
        self.var = (
            self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        ) / total
        self.count = total

    @property
    def std(self) -> np.ndarray:
        """Standard deviation, floored so that constant inputs do not divide by zero."""
        return np.sqrt(self.var) + 1e-8

    def normalize(self, values: np.ndarray) -> np.ndarray:
        """Normalised, clipped values (the same rule the runners' policies apply)."""
        return np.clip((values - self.mean) / self.std, -OBS_CLIP, OBS_CLIP)

    def state_dict(self) -> dict[str, np.ndarray | float]:
        """Statistics for a checkpoint."""
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict[str, np.ndarray | float]) -> None:
        """Restore statistics from a checkpoint."""
        self.mean, self.var, self.count = state["mean"], state["var"], float(state["count"])


def prepare_obs(obs: np.ndarray, normalizer: RunningMeanStd | None) -> np.ndarray:
    """A batch of observations flattened, normalised (when a normaliser is given), float32."""
    flat = obs.reshape(len(obs), -1).astype(np.float64)
    normalized = normalizer.normalize(flat) if normalizer is not None else flat
    return normalized.astype(np.float32)


def episode_metrics(
    returns: np.ndarray, mean_speeds: np.ndarray, trips: np.ndarray | None = None
) -> dict[str, float]:
    """``return_mean/min/max`` and ``mean_speed`` of finished episodes (NaN when there are none),
    and with ``trips`` (episodes x :data:`~flowsim.sim.trips.TRIP_METRICS`) the mean of each
    trip metric over the episodes that report it (left out where none does: progress.csv
    shows NaN there, and other envs' metrics stay as they were).

    Episodes without a speed (a Gymnasium env) are left out of ``mean_speed``.
    """
    nan = float("nan")
    returns = np.asarray(returns, dtype=np.float64)
    speeds = np.asarray(mean_speeds, dtype=np.float64)
    speeds = speeds[~np.isnan(speeds)]
    metrics = {
        "return_mean": float(returns.mean()) if len(returns) else nan,
        "return_min": float(returns.min()) if len(returns) else nan,
        "return_max": float(returns.max()) if len(returns) else nan,
        "mean_speed": float(speeds.mean()) if len(speeds) else nan,
    }
    if trips is not None:
        trips = np.asarray(trips, dtype=np.float64).reshape(-1, len(TRIP_METRICS))
        for key, column in zip(TRIP_METRICS, trips.T, strict=True):
            known = column[~np.isnan(column)]
            if len(known):
                metrics[key] = float(known.mean())
    return metrics


class Estimates(NamedTuple):
    """What a learner needs from a batch: its inputs, values, advantages and value targets."""

    #: the policy's inputs (normalised observations), float32 (T, obs_dim)
    obs: np.ndarray
    #: the value network's inputs: ``obs``, or a central critic's normalised global states
    critic_obs: np.ndarray
    values: np.ndarray
    advantages: np.ndarray
    returns: np.ndarray


def estimate_advantages(
    batch: Batch,
    model: ActorCritic,
    normalizer: RunningMeanStd | None,
    gamma: float,
    lam: float,
    critic_normalizer: RunningMeanStd | None = None,
) -> Estimates:
    """Inputs, values, advantages and returns of a batch, then fold its observations into
    ``normalizer`` (and its global states into ``critic_normalizer``).

    A central critic (``model.spec.critic_dim``: MAPPO) values the batch's ``state`` and
    bootstraps from its ``next_state``; otherwise the value reads the observations.
    Inputs are normalised with the statistics the batch was sampled with; the normalisers are
    updated only after GAE, so values and advantages agree with the sampling policy.
    """
    obs = prepare_obs(batch.obs, normalizer)
    if model.spec.critic_dim is not None:
        if batch.state is None or batch.next_state is None:
            raise ValueError("a central critic needs batches with the global state")
        critic_obs = prepare_obs(batch.state, critic_normalizer)
        next_critic_obs = prepare_obs(batch.next_state, critic_normalizer)
    else:
        critic_obs = obs
        next_critic_obs = prepare_obs(batch.next_obs, normalizer)
    with torch.no_grad():
        values = model.value(torch.as_tensor(critic_obs)).numpy()
        next_values = model.value(torch.as_tensor(next_critic_obs)).numpy()
    advantages, returns = gae(batch, values, next_values, gamma, lam)
    if normalizer is not None:
        normalizer.update(batch.obs.reshape(len(batch), -1))
    if critic_normalizer is not None and batch.state is not None:
        critic_normalizer.update(batch.state.reshape(len(batch), -1))
    return Estimates(obs, critic_obs, values, advantages, returns)


def action_masks(batch: Batch) -> torch.Tensor | None:
    """The batch's action masks as a bool tensor (None when it carries none)."""
    return None if batch.action_mask is None else torch.as_tensor(batch.action_mask, dtype=bool)


def critic_normalizer_for(model: ActorCritic, normalize: bool) -> RunningMeanStd | None:
    """The running statistics of a central critic's input (None without one, or unnormalised)."""
    dim = model.spec.critic_dim
    return RunningMeanStd((dim,)) if normalize and dim is not None else None


def batch_env_steps(batch: Any) -> int:
    """Env steps a batch took (a multi-agent step gives one transition per live agent)."""
    return int(batch.metrics.get("env_steps", len(batch)))


def iteration_row(
    trainer: Any,
    batch: Any,
    losses: dict[str, float],
    sample_s: float,
    wall: float,
) -> dict[str, float]:
    """A trainer's row for one iteration: counters, the batch's episode figures, ``losses``,
    and the iteration's timing (``steps_per_s`` counts the batch's transitions)."""
    return {
        "iteration": trainer.iteration,
        "env_steps": trainer.env_steps,
        "episodes": batch.num_episodes,
        "restarts": batch.metrics.get("restarts", 0),
        **episode_metrics(batch.episode_returns, batch.episode_mean_speeds, batch.episode_trips),
        **losses,
        "sample_s": sample_s,
        "iteration_s": wall,
        "steps_per_s": len(batch) / wall,
    }


def learner_state(trainer: Any) -> dict[str, Any]:
    """What every trainer checkpoints: network, normaliser, counters and random streams."""
    state = {
        "model": trainer.model.state_dict(),
        "normalizer": trainer.normalizer.state_dict() if trainer.normalizer else None,
        "iteration": trainer.iteration,
        "env_steps": trainer.env_steps,
        "rng": trainer.rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
    }
    critic = getattr(trainer, "critic_normalizer", None)
    if critic is not None:  # a central critic's (MAPPO); absent otherwise
        state["critic_normalizer"] = critic.state_dict()
    return state


def load_learner_state(trainer: Any, state: dict[str, Any]) -> None:
    """Restore what :func:`learner_state` saved into ``trainer``."""
    trainer.model.load_state_dict(state["model"])
    if trainer.normalizer is not None and state["normalizer"] is not None:
        trainer.normalizer.load_state_dict(state["normalizer"])
    critic = getattr(trainer, "critic_normalizer", None)
    if critic is not None and state.get("critic_normalizer") is not None:
        critic.load_state_dict(state["critic_normalizer"])
    trainer.iteration = int(state["iteration"])
    trainer.env_steps = int(state["env_steps"])
    trainer.rng.bit_generator.state = state["rng"]
    torch.set_rng_state(state["torch_rng"])


def gae(
    batch: Batch, values: np.ndarray, next_values: np.ndarray, gamma: float, lam: float
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimates and value targets for a batch.

    A terminated step has no future; a truncated step (time limit, crash) or the last step of a
    fragment bootstraps from the value of its ``next_obs``. Streams of different envs are
    contiguous, so one backward pass that restarts at every cut handles them all.
    """
    steps = len(batch)
    advantages = np.zeros(steps, dtype=np.float64)
    boundary = batch.terminated | batch.truncated | batch.fragment_end
    boundary[-1:] = True
    boundary[:-1] |= batch.env_index[1:] != batch.env_index[:-1]
    bootstrap = np.where(batch.terminated, 0.0, next_values)
    deltas = batch.rewards + gamma * bootstrap - values
    last = 0.0
    for t in range(steps - 1, -1, -1):
        last = deltas[t] + (0.0 if boundary[t] else gamma * lam * last)
        advantages[t] = last
    return advantages, advantages + values
