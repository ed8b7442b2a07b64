"""Inference copies of policies for runners: numpy forward passes, no autograd, no torch.

Trainers own the trainable (torch) networks and send their weights as a dict of numpy arrays
in the layout below; a runner rebuilds the same function in numpy (about 7 µs per observation
for a 64-64 tanh MLP, against about 42 µs for torch on one thread).

Weights layout of :class:`MLPPolicy` (``L`` hidden layers)::

    pi.{i}.weight (out, in), pi.{i}.bias (out,)   for i in 0..L   (last: the action head)
    vf.{i}.weight, vf.{i}.bias                    for i in 0..L   (last: 1 output)
    log_std (act_dim,)                            Gaussian policies only
    obs_mean, obs_std (obs_dim,)                  optional: inputs clip((obs - mean) / std, ±10)

The action head has ``act_dim`` outputs: the Gaussian's mean, one logit per choice of a
``Discrete(n)`` space (``act_dim = n``), or, for ``MultiDiscrete(nvec)``, the logits of every
dimension one after another (``act_dim = sum(nvec)``; dimension ``i`` reads its ``nvec[i]``
logits after those of dimensions ``0..i-1``). Categorical actions are the chosen indices plus
the space's ``start``.
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
        kind: ``gaussian_mlp`` (a ``Box`` action), ``categorical_mlp`` (``Discrete``),
            ``multi_categorical_mlp`` (``MultiDiscrete``: one independent categorical per
            dimension), or ``constant`` (always ``constant_action``; baselines, benchmarks
            and tests).
        hidden: hidden layer sizes of the policy and value networks.
        constant_action: the action of the ``constant`` policy.
        nvec: choices per dimension of a ``multi_categorical_mlp`` (the space's ``nvec``,
            flattened); a runner whose env has another ``nvec`` refuses the spec.
    """

    kind: Literal["gaussian_mlp", "categorical_mlp", "multi_categorical_mlp", "constant"] = (
        "gaussian_mlp"
    )
    hidden: tuple[int, ...] = (64, 64)
    constant_action: float = 0.0
    nvec: tuple[int, ...] = ()


def _mlp(x: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    for weight, bias in layers[:-1]:
        x = np.tanh(x @ weight.T + bias)
    weight, bias = layers[-1]
    return x @ weight.T + bias


class MLPPolicy:
    """A tanh MLP policy with a separate value network, evaluated in numpy.

    Args:
        obs_dim: length of the flattened observation.
        act_dim: outputs of the action head (see the module docstring).
        hidden: hidden layer sizes.
        discrete: categorical actions: one ``Discrete(act_dim)`` choice per observation, or,
            with ``nvec``, one choice per dimension.
        seed: seed of the initial weights.
        nvec: choices per dimension of a ``MultiDiscrete`` action (``sum(nvec) == act_dim``);
            implies ``discrete``.
        action_start: added to the chosen indices (the space's ``start``; scalar or per
            dimension).
        action_shape: shape of one categorical action (default: ``()`` for ``Discrete``,
            ``(len(nvec),)`` for ``MultiDiscrete``).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: tuple[int, ...] = (64, 64),
        discrete: bool = False,
        seed: int = 0,
        nvec: tuple[int, ...] | None = None,
        action_start: np.ndarray | int = 0,
        action_shape: tuple[int, ...] | None = None,
    ) -> None:
        discrete = discrete or nvec is not None
        self.obs_dim, self.act_dim, self.hidden, self.discrete = obs_dim, act_dim, hidden, discrete
        self.nvec = tuple(int(n) for n in nvec) if nvec is not None else None
        if discrete:
            choices = self.nvec if self.nvec is not None else (act_dim,)
            if sum(choices) != act_dim or min(choices) < 1:
                raise ValueError(
                    f"nvec {list(choices)} does not split an action head of {act_dim} outputs "
                    "into dimensions of at least one choice each"
                )
            if action_shape is None:
                action_shape = () if self.nvec is None else (len(choices),)
            # Logits sit in a (dimensions, most choices) table; missing choices stay -inf.
            self._choice_mask = np.arange(max(choices)) < np.array(choices)[:, None]
            self._action_start = np.broadcast_to(
                np.asarray(action_start, dtype=np.int64).reshape(-1), (len(choices),)
            ).copy()
            self.action_shape = tuple(action_shape)
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
            actions, logp = self._categorical(head, explore, rng)
            return actions, logp, values
        if explore:
            noise = rng.standard_normal(head.shape)
            actions = head + self._std * noise
            logp = -0.5 * np.einsum("ij,ij->i", noise, noise) - self._logp_constant
        else:
            actions = head
            logp = np.full(len(head), -self._logp_constant)
        return actions.astype(np.float32), logp, values

    def _categorical(
        self, head: np.ndarray, explore: bool, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Choices (sampled by Gumbel-max, or the most likely) of every dimension, plus the
        space's start, and their joint log-probability (the sum over dimensions)."""
        mask = self._choice_mask
        logits = np.full((len(head), *mask.shape), -np.inf)
        logits[:, mask] = head
        shifted = logits - logits.max(axis=2, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))
        scores = log_probs
        if explore:
            scores = log_probs.copy()
            scores[:, mask] += -np.log(-np.log(rng.random(head.shape)))
        choices = np.argmax(scores, axis=2)
        logp = np.take_along_axis(log_probs, choices[:, :, None], axis=2).sum(axis=(1, 2))
        actions = (choices + self._action_start).reshape(len(head), *self.action_shape)
        return actions, logp


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
            raise ValueError(f"categorical_mlp needs a Discrete action space, not {action_space}")
        return MLPPolicy(
            obs_dim,
            int(action_space.n),
            spec.hidden,
            discrete=True,
            seed=seed,
            action_start=int(action_space.start),
        )
    if spec.kind == "multi_categorical_mlp":
        if not isinstance(action_space, spaces.MultiDiscrete):
            raise ValueError(
                f"multi_categorical_mlp needs a MultiDiscrete action space, not {action_space}"
            )
        nvec = tuple(int(n) for n in action_space.nvec.reshape(-1))
        if spec.nvec and tuple(spec.nvec) != nvec:
            raise ValueError(
                f"the policy has {list(spec.nvec)} choices per action dimension; the env's "
                f"MultiDiscrete has {list(nvec)}"
            )
        return MLPPolicy(
            obs_dim,
            sum(nvec),
            spec.hidden,
            seed=seed,
            nvec=nvec,
            action_start=action_space.start.reshape(-1),
            action_shape=tuple(action_space.shape),
        )
    if not isinstance(action_space, spaces.Box):
        raise ValueError(
            f"gaussian_mlp needs a Box action space, not {action_space}; use categorical_mlp "
            "(Discrete) or multi_categorical_mlp (MultiDiscrete)"
        )
    return MLPPolicy(obs_dim, int(np.prod(action_space.shape)), spec.hidden, seed=seed)
