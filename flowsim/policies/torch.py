"""The learners' forward: a :class:`~flowsim.policies.spec.PolicySpec` as a torch module.

:class:`ActorCritic` is the trainable network; :meth:`ActorCritic.export` writes its weights
in the spec's parameter layout, the one :class:`~flowsim.policies.numpy_mlp.MLPPolicy` loads
on the runners.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from flowsim.policies.spec import (
    CRITIC_MEAN,
    CRITIC_STD,
    HEADS,
    LOG_STD,
    OBS_MEAN,
    OBS_STD,
    OUTPUT_GAIN,
    PolicySpec,
)

#: The hidden layers' nonlinearity of each ``PolicySpec.activation``.
_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh}


class ObservationStatistics(Protocol):
    """An observation normaliser's statistics (the learners' running mean and std)."""

    mean: np.ndarray

    @property
    def std(self) -> np.ndarray:
        """Standard deviation per observation component."""
        ...


def _mlp(sizes: list[int], last_gain: float, activation: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        linear = nn.Linear(n_in, n_out)
        last = i == len(sizes) - 2
        nn.init.orthogonal_(linear.weight, gain=last_gain if last else math.sqrt(2))
        nn.init.zeros_(linear.bias)
        layers += [linear] if last else [linear, activation()]
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
    """The spec's policy and value networks (separate MLPs) as a trainable torch module.

    The policy is a Gaussian with a state-independent log std (``gaussian_mlp``: ``Box``
    actions), a categorical (``categorical_mlp``: ``Discrete``), or independent categoricals,
    one per dimension (``multi_categorical_mlp``: ``MultiDiscrete(nvec)``). Categorical
    actions in a batch are the env's (index + ``action_start``); :meth:`log_prob` takes the
    start off. Build the spec for an env with :meth:`PolicySpec.for_spaces`.

    The state dict holds ``pi.{k}``/``vf.{k}`` (``k`` counts the activations too) and, for a
    Gaussian, ``log_std``; :meth:`export` renames them to the spec's layout.
    """

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__()
        shapes = spec.parameter_shapes()  # refuses a spec without sizes
        self.spec = spec
        self.nvec = spec.nvec if spec.kind == "multi_categorical_mlp" else None
        self.discrete = spec.discrete
        # A plain tensor, not a buffer: checkpoints keep the layout they had without it.
        self.action_start = torch.as_tensor(spec.action_start or 0, dtype=torch.long).reshape(-1)
        activation = _ACTIVATIONS[spec.activation]
        # Creation order (pi, vf, log_std) fixes the draws from torch's generator.
        self.pi = _mlp(spec.layer_sizes("pi"), OUTPUT_GAIN["pi"], activation)
        self.vf = _mlp(spec.layer_sizes("vf"), OUTPUT_GAIN["vf"], activation)
        self.log_std = (
            None
            if self.discrete
            else nn.Parameter(torch.full(shapes[LOG_STD], float(spec.init_log_std)))
        )

    def distribution(
        self, obs: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.distributions.Distribution:
        """The action distribution at ``obs``; a categorical's choices where ``mask`` (bool,
        per observation and choice) is False get the lowest float as logit: probability 0,
        exactly as the runners' -inf (and no NaN in the gradients)."""
        head = self.pi(obs)
        if mask is not None and self.discrete:
            head = head.masked_fill(~mask.reshape(head.shape), torch.finfo(head.dtype).min)
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
        """State values, shape (n,), from the observations (or, for a central critic,
        ``spec.critic_dim``, from the global states)."""
        return self.vf(obs).squeeze(-1)

    def export(
        self,
        normalizer: ObservationStatistics | None = None,
        critic_normalizer: ObservationStatistics | None = None,
    ) -> dict[str, np.ndarray]:
        """Weights in the spec's parameter layout (float64), the runners' numpy policy's input;
        with a normaliser (and a central critic's), its mean and std too."""
        weights: dict[str, np.ndarray] = {}
        for head in HEADS:
            linears = [m for m in getattr(self, head) if isinstance(m, nn.Linear)]
            names = self.spec.layer_names(head)
            for linear, (weight, bias) in zip(linears, names, strict=True):
                weights[weight] = linear.weight.detach().numpy().astype(np.float64)
                weights[bias] = linear.bias.detach().numpy().astype(np.float64)
        if self.log_std is not None:
            weights[LOG_STD] = self.log_std.detach().numpy().astype(np.float64)
        if normalizer is not None:
            weights[OBS_MEAN], weights[OBS_STD] = normalizer.mean.copy(), normalizer.std
        if critic_normalizer is not None:
            weights[CRITIC_MEAN] = critic_normalizer.mean.copy()
            weights[CRITIC_STD] = critic_normalizer.std
        return weights
