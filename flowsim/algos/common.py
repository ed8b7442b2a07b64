"""Pieces every trainer shares: the torch actor-critic, observation statistics, GAE."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from flowsim.distributed import PolicySpec
from flowsim.distributed.batch import Batch
from flowsim.distributed.policy import OBS_CLIP
from flowsim.errors import ConfigError


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


def episode_metrics(returns: np.ndarray, mean_speeds: np.ndarray) -> dict[str, float]:
    """``return_mean/min/max`` and ``mean_speed`` of finished episodes (NaN when there are none).

    Episodes without a speed (a Gymnasium env) are left out of ``mean_speed``.
    """
    nan = float("nan")
    returns = np.asarray(returns, dtype=np.float64)
    speeds = np.asarray(mean_speeds, dtype=np.float64)
    speeds = speeds[~np.isnan(speeds)]
    return {
        "return_mean": float(returns.mean()) if len(returns) else nan,
        "return_min": float(returns.min()) if len(returns) else nan,
        "return_max": float(returns.max()) if len(returns) else nan,
        "mean_speed": float(speeds.mean()) if len(speeds) else nan,
    }


def estimate_advantages(
    batch: Batch,
    model: ActorCritic,
    normalizer: RunningMeanStd | None,
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(obs, values, advantages, returns)`` of a batch, then fold its observations into
    ``normalizer``.

    ``obs`` are normalised with the statistics the batch was sampled with; the normaliser is
    updated only after GAE, so values and advantages agree with the sampling policy.
    """
    obs = prepare_obs(batch.obs, normalizer)
    next_obs = prepare_obs(batch.next_obs, normalizer)
    with torch.no_grad():
        values = model.value(torch.as_tensor(obs)).numpy()
        next_values = model.value(torch.as_tensor(next_obs)).numpy()
    advantages, returns = gae(batch, values, next_values, gamma, lam)
    if normalizer is not None:
        normalizer.update(batch.obs.reshape(len(batch), -1))
    return obs, values, advantages, returns


def learner_state(trainer: Any) -> dict[str, Any]:
    """What every trainer checkpoints: network, normaliser, counters and random streams."""
    return {
        "model": trainer.model.state_dict(),
        "normalizer": trainer.normalizer.state_dict() if trainer.normalizer else None,
        "iteration": trainer.iteration,
        "env_steps": trainer.env_steps,
        "rng": trainer.rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
    }


def load_learner_state(trainer: Any, state: dict[str, Any]) -> None:
    """Restore what :func:`learner_state` saved into ``trainer``."""
    trainer.model.load_state_dict(state["model"])
    if trainer.normalizer is not None and state["normalizer"] is not None:
        trainer.normalizer.load_state_dict(state["normalizer"])
    trainer.iteration = int(state["iteration"])
    trainer.env_steps = int(state["env_steps"])
    trainer.rng.bit_generator.state = state["rng"]
    torch.set_rng_state(state["torch_rng"])


def _mlp(sizes: list[int], last_gain: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        linear = nn.Linear(n_in, n_out)
        last = i == len(sizes) - 2
        nn.init.orthogonal_(linear.weight, gain=last_gain if last else math.sqrt(2))
        nn.init.zeros_(linear.bias)
        layers += [linear] if last else [linear, nn.Tanh()]
    return nn.Sequential(*layers)


class MultiCategorical(torch.distributions.Distribution):
    """Independent categoricals, one per dimension of a ``MultiDiscrete`` action.

    ``logits`` holds the logits of every dimension one after another (``nvec[0]`` of the first,
    then ``nvec[1]``, ...); an action is one index per dimension. Its log-probability and
    entropy are the sums over dimensions, and so is the KL between two of them.
    """

    arg_constraints: ClassVar[dict[str, Any]] = {}

    def __init__(self, logits: torch.Tensor, nvec: Sequence[int]) -> None:
        self.nvec = tuple(int(n) for n in nvec)
        self.dimensions = [
            torch.distributions.Categorical(logits=part)
            for part in torch.split(logits, self.nvec, dim=-1)
        ]
        super().__init__(
            batch_shape=logits.shape[:-1], event_shape=(len(self.nvec),), validate_args=False
        )

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Joint log-probability of ``value`` (indices, last axis: dimensions)."""
        value = value.long()
        return torch.stack(
            [dist.log_prob(value[..., i]) for i, dist in enumerate(self.dimensions)], -1
        ).sum(-1)

    def entropy(self) -> torch.Tensor:
        """Joint entropy: the sum of the dimensions' entropies."""
        return torch.stack([dist.entropy() for dist in self.dimensions], -1).sum(-1)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> torch.Tensor:
        """One index per dimension, drawn independently."""
        return torch.stack([dist.sample(sample_shape) for dist in self.dimensions], -1)

    @property
    def mode(self) -> torch.Tensor:
        """The most likely index of every dimension (the greedy action)."""
        return torch.stack([dist.probs.argmax(-1) for dist in self.dimensions], -1)


@torch.distributions.kl.register_kl(MultiCategorical, MultiCategorical)
def _kl_multi_categorical(p: MultiCategorical, q: MultiCategorical) -> torch.Tensor:
    """KL(p || q) of independent dimensions: the sum of the dimensions' KLs."""
    return torch.stack(
        [
            torch.distributions.kl_divergence(p_dim, q_dim)
            for p_dim, q_dim in zip(p.dimensions, q.dimensions, strict=True)
        ],
        -1,
    ).sum(-1)


class ActorCritic(nn.Module):
    """Separate tanh MLPs for the policy and the value function.

    The policy is a Gaussian with a state-independent log std (``Box`` actions), a categorical
    (``discrete``: ``Discrete(act_dim)``), or independent categoricals, one per dimension
    (``nvec``: ``MultiDiscrete(nvec)``, ``act_dim == sum(nvec)``). Categorical actions in a
    batch are the env's (index + ``action_start``); :meth:`log_prob` takes the start off.
    Build one for an env's spaces with :func:`actor_critic_for`.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: tuple[int, ...],
        discrete: bool,
        init_log_std: float = 0.0,
        nvec: Sequence[int] | None = None,
        action_start: Sequence[int] | int = 0,
    ) -> None:
        super().__init__()
        self.nvec = tuple(int(n) for n in nvec) if nvec is not None else None
        if self.nvec is not None and sum(self.nvec) != act_dim:
            raise ValueError(f"nvec {list(self.nvec)} does not sum to act_dim {act_dim}")
        self.discrete = discrete or self.nvec is not None
        # A plain tensor, not a buffer: checkpoints keep the layout they had without it.
        self.action_start = torch.as_tensor(action_start, dtype=torch.long).reshape(-1)
        self.pi = _mlp([obs_dim, *hidden, act_dim], last_gain=0.01)
        self.vf = _mlp([obs_dim, *hidden, 1], last_gain=1.0)
        self.log_std = (
            None if self.discrete else nn.Parameter(torch.full((act_dim,), float(init_log_std)))
        )

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        """The action distribution at ``obs``."""
        head = self.pi(obs)
        if self.nvec is not None:
            return MultiCategorical(head, self.nvec)
        if self.discrete:
            return torch.distributions.Categorical(logits=head)
        assert self.log_std is not None
        return torch.distributions.Normal(head, self.log_std.exp())

    def log_prob(
        self, dist: torch.distributions.Distribution, actions: torch.Tensor
    ) -> torch.Tensor:
        """Log-probability of a batch of env ``actions`` (summed over action dimensions)."""
        if self.nvec is not None:
            return dist.log_prob(actions.long().reshape(len(actions), -1) - self.action_start)
        if self.discrete:
            return dist.log_prob(actions.long().reshape(-1) - self.action_start)
        return dist.log_prob(actions).sum(-1)

    def entropy(self, dist: torch.distributions.Distribution) -> torch.Tensor:
        """Entropy per sample (summed over action dimensions)."""
        return dist.entropy() if self.discrete else dist.entropy().sum(-1)

    def action_tensor(self, actions: np.ndarray) -> torch.Tensor:
        """A batch's actions as the tensor :meth:`log_prob` takes (indices for categoricals)."""
        return torch.as_tensor(actions.astype(np.int64) if self.discrete else actions)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """State values, shape (n,)."""
        return self.vf(obs).squeeze(-1)

    def export(self, normalizer: RunningMeanStd | None) -> dict[str, np.ndarray]:
        """Weights in the runners' numpy layout (see ``flowsim.distributed.policy``)."""
        weights: dict[str, np.ndarray] = {}
        for head in ("pi", "vf"):
            linears = [m for m in getattr(self, head) if isinstance(m, nn.Linear)]
            for i, linear in enumerate(linears):
                weights[f"{head}.{i}.weight"] = linear.weight.detach().numpy().astype(np.float64)
                weights[f"{head}.{i}.bias"] = linear.bias.detach().numpy().astype(np.float64)
        if self.log_std is not None:
            weights["log_std"] = self.log_std.detach().numpy().astype(np.float64)
        if normalizer is not None:
            weights["obs_mean"], weights["obs_std"] = normalizer.mean.copy(), normalizer.std
        return weights


def check_action_space(action_space: Any) -> None:
    """Refuse, naming what is supported, an action space flowsim's trainers cannot act in."""
    if isinstance(action_space, spaces.Box | spaces.Discrete | spaces.MultiDiscrete):
        return
    raise ConfigError(
        f"action space {action_space}: flowsim's trainers act in Box, Discrete and "
        "MultiDiscrete spaces only; wrap the env to flatten its actions into one of those."
    )


def actor_critic_for(
    observation_space: Any,
    action_space: Any,
    hidden: tuple[int, ...],
    init_log_std: float = 0.0,
) -> ActorCritic:
    """The :class:`ActorCritic` for an env's spaces (what :func:`policy_spec_for` matches)."""
    check_action_space(action_space)
    obs_dim = int(np.prod(observation_space.shape))
    hidden = tuple(hidden)
    if isinstance(action_space, spaces.MultiDiscrete):
        nvec = [int(n) for n in action_space.nvec.reshape(-1)]
        start = [int(s) for s in action_space.start.reshape(-1)]
        return ActorCritic(obs_dim, sum(nvec), hidden, True, nvec=nvec, action_start=start)
    if isinstance(action_space, spaces.Discrete):
        start = int(action_space.start)
        return ActorCritic(obs_dim, int(action_space.n), hidden, True, action_start=start)
    act_dim = int(np.prod(action_space.shape))
    return ActorCritic(obs_dim, act_dim, hidden, False, init_log_std)


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


def policy_spec_for(action_space: Any, hidden: tuple[int, ...]) -> PolicySpec:
    """The runners' inference policy matching the learners' :class:`ActorCritic`."""
    check_action_space(action_space)
    if isinstance(action_space, spaces.MultiDiscrete):
        nvec = tuple(int(n) for n in action_space.nvec.reshape(-1))
        return PolicySpec(kind="multi_categorical_mlp", hidden=tuple(hidden), nvec=nvec)
    kind = "categorical_mlp" if isinstance(action_space, spaces.Discrete) else "gaussian_mlp"
    return PolicySpec(kind=kind, hidden=tuple(hidden))
