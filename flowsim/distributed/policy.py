"""Inference copies of policies for runners: numpy forward passes, no autograd, no torch.

Trainers own the trainable (torch) networks and send their weights as a dict of numpy arrays
in the layout below; a runner rebuilds the same function in numpy (about 7 µs per observation
for a 64-64 tanh MLP, against about 42 µs for torch on one thread).

Weights layout of :class:`MLPPolicy` (``L`` hidden layers)::

    pi.{i}.weight (out, in), pi.{i}.bias (out,)   for i in 0..L   (last: the action head)
    vf.{i}.weight, vf.{i}.bias                    for i in 0..L   (last: 1 output)
    log_std (act_dim,)                            Gaussian policies only
    obs_mean, obs_std (obs_dim,)                  optional: inputs clip((obs - mean) / std, ±10)
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

#: Normalised observations are clipped to ±OBS_CLIP (the learner applies the same rule).
OBS_CLIP = 10.0


class InferencePolicy(Protocol):
    """What a runner needs from a policy."""

    def compute_actions(
        self, obs: np.ndarray, explore: bool, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(actions, log-probabilities, value estimates) for a batch of observations."""
        ...

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Replace the parameters."""
        ...


@dataclass
class PolicySpec:
    """How to build a runner's inference policy (small and picklable: sent to every actor).

    Attributes:
        kind: ``gaussian_mlp`` (continuous actions), ``categorical_mlp`` (discrete), or
            ``constant`` (always ``constant_action``; baselines, benchmarks and tests).
        hidden: hidden layer sizes of the policy and value networks.
        constant_action: the action of the ``constant`` policy.
    """

    kind: Literal["gaussian_mlp", "categorical_mlp", "constant"] = "gaussian_mlp"
    hidden: tuple[int, ...] = (64, 64)
    constant_action: float = 0.0


def _mlp(x: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    for weight, bias in layers[:-1]:
        x = np.tanh(x @ weight.T + bias)
    weight, bias = layers[-1]
    return x @ weight.T + bias


class MLPPolicy:
    """A tanh MLP policy with a separate value network, evaluated in numpy."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: tuple[int, ...] = (64, 64),
        discrete: bool = False,
        seed: int = 0,
    ) -> None:
        self.obs_dim, self.act_dim, self.hidden, self.discrete = obs_dim, act_dim, hidden, discrete
        self.set_weights(self.initial_weights(seed))

    def initial_weights(self, seed: int) -> dict[str, np.ndarray]:
        """Random weights in the documented layout (scaled like an orthogonal init)."""
        rng = np.random.default_rng(seed)
        weights: dict[str, np.ndarray] = {}
        for head, out in (("pi", self.act_dim), ("vf", 1)):
            sizes = [self.obs_dim, *self.hidden, out]
            for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
                scale = 0.01 if (i == len(sizes) - 2 and head == "pi") else 1.0
                weights[f"{head}.{i}.weight"] = rng.normal(
                    0, scale / math.sqrt(n_in), (n_out, n_in)
                )
                weights[f"{head}.{i}.bias"] = np.zeros(n_out)
        if not self.discrete:
            weights["log_std"] = np.zeros(self.act_dim)
        return weights

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load weights in the documented layout, checking every shape."""
        count = len(self.hidden) + 1
        layers = {}
        for head in ("pi", "vf"):
            try:
                layers[head] = [
                    (
                        np.asarray(weights[f"{head}.{i}.weight"], dtype=np.float64),
                        np.asarray(weights[f"{head}.{i}.bias"], dtype=np.float64),
                    )
                    for i in range(count)
                ]
            except KeyError as missing:
                raise ValueError(
                    f"policy weights lack {missing}; see flowsim.distributed.policy"
                ) from None
        if (
            layers["pi"][0][0].shape[1] != self.obs_dim
            or layers["pi"][-1][0].shape[0] != self.act_dim
        ):
            raise ValueError(
                f"policy weights map {layers['pi'][0][0].shape[1]} observations to "
                f"{layers['pi'][-1][0].shape[0]} actions; the env has {self.obs_dim} and "
                f"{self.act_dim}"
            )
        self._pi, self._vf = layers["pi"], layers["vf"]
        if "obs_mean" in weights:
            self._obs_mean = np.asarray(weights["obs_mean"], dtype=np.float64)
            self._obs_std = np.asarray(weights["obs_std"], dtype=np.float64)
        else:
            self._obs_mean = self._obs_std = None
        self._log_std = None if self.discrete else np.asarray(weights["log_std"], dtype=np.float64)
        # One block-diagonal network computes both heads: half the numpy calls per step.
        self._fused = []
        for (pi_w, pi_b), (vf_w, vf_b) in zip(self._pi, self._vf, strict=True):
            first = len(self._fused) == 0
            fused_w = np.zeros((pi_w.shape[0] + vf_w.shape[0], pi_w.shape[1] + vf_w.shape[1]))
            if first:  # both heads read the same observation
                fused_w = np.vstack([pi_w, vf_w])
            else:
                fused_w[: pi_w.shape[0], : pi_w.shape[1]] = pi_w
                fused_w[pi_w.shape[0] :, pi_w.shape[1] :] = vf_w
            self._fused.append((np.ascontiguousarray(fused_w.T), np.concatenate([pi_b, vf_b])))
        if self._log_std is not None:
            self._std = np.exp(self._log_std)
            self._logp_constant = self._log_std.sum() + 0.5 * self.act_dim * math.log(2 * math.pi)

    def compute_actions(
        self, obs: np.ndarray, explore: bool, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sampled (or greedy) actions with their log-probabilities and value estimates."""
        x = np.asarray(obs).reshape(len(obs), -1)
        if self._obs_mean is not None:
            x = np.clip((x - self._obs_mean) / self._obs_std, -OBS_CLIP, OBS_CLIP)
        for weight_t, bias in self._fused[:-1]:
            x = np.tanh(x @ weight_t + bias)
        weight_t, bias = self._fused[-1]
        out = x @ weight_t + bias
        head, values = out[:, :-1], out[:, -1]
        if self.discrete:
            shifted = head - head.max(axis=1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            if explore:
                gumbel = -np.log(-np.log(rng.random(head.shape)))
                actions = np.argmax(log_probs + gumbel, axis=1)
            else:
                actions = np.argmax(log_probs, axis=1)
            logp = log_probs[np.arange(len(actions)), actions]
            return actions, logp, values
        if explore:
            noise = rng.standard_normal(head.shape)
            actions = head + self._std * noise
            logp = -0.5 * np.einsum("ij,ij->i", noise, noise) - self._logp_constant
        else:
            actions = head
            logp = np.full(len(head), -self._logp_constant)
        return actions.astype(np.float32), logp, values


class ConstantPolicy:
    """Always the same action (log-probability and value 0): baselines and benchmarks."""

    def __init__(self, action_shape: tuple[int, ...], value: float = 0.0) -> None:
        self.action_shape, self.value = action_shape, value

    def compute_actions(
        self, obs: np.ndarray, explore: bool, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``value`` for every observation."""
        count = len(obs)
        actions = np.full((count, *self.action_shape), self.value, dtype=np.float32)
        return actions, np.zeros(count), np.zeros(count)

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """A constant policy has no weights."""


def build_policy(
    spec: PolicySpec, observation_space: Any, action_space: Any, seed: int
) -> InferencePolicy:
    """The inference policy that ``spec`` describes for the given Gymnasium spaces."""
    from gymnasium import spaces

    if spec.kind == "constant":
        return ConstantPolicy(tuple(action_space.shape or ()), spec.constant_action)
    obs_dim = int(np.prod(observation_space.shape))
    if spec.kind == "categorical_mlp":
        if not isinstance(action_space, spaces.Discrete):
            raise ValueError("categorical_mlp needs a Discrete action space")
        return MLPPolicy(obs_dim, int(action_space.n), spec.hidden, discrete=True, seed=seed)
    if not isinstance(action_space, spaces.Box):
        raise ValueError("gaussian_mlp needs a Box action space; use categorical_mlp")
    return MLPPolicy(obs_dim, int(np.prod(action_space.shape)), spec.hidden, seed=seed)
