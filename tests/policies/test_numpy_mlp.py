"""The runners' numpy policy: the documented weight layout, log-probabilities, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gymnasium import spaces

from flowsim.policies.numpy_mlp import MLPPolicy, build_policy
from flowsim.policies.spec import PolicySpec


def _reference(
    weights: dict[str, np.ndarray], head: str, obs: np.ndarray, layers: int
) -> np.ndarray:
    x = obs.astype(np.float64)
    for i in range(layers):
        x = x @ weights[f"{head}.{i}.weight"].T + weights[f"{head}.{i}.bias"]
        if i < layers - 1:
            x = np.tanh(x)
    return x


def test_gaussian_policy_matches_the_layout_it_documents() -> None:
    policy = MLPPolicy(PolicySpec(obs_dim=3, act_dim=2, hidden=(8, 8)))
    weights = policy.initial_weights(seed=4)
    weights["log_std"] = np.array([-0.5, 0.3])
    policy.set_weights(weights)
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    mean = _reference(weights, "pi", obs, 3)
    value = _reference(weights, "vf", obs, 3)[:, 0]
    greedy, _, values = policy.compute_actions(obs, explore=False, rng=np.random.default_rng(1))
    assert np.allclose(greedy, mean, atol=1e-6) and np.allclose(values, value)
    sampled, logp, _ = policy.compute_actions(obs, explore=True, rng=np.random.default_rng(2))
    std = np.exp(weights["log_std"])
    expected = (
        -0.5 * ((sampled - mean) / std) ** 2 - np.log(std) - 0.5 * math.log(2 * math.pi)
    ).sum(1)
    assert np.allclose(logp, expected, atol=1e-4)
    spread = policy.compute_actions(np.zeros((20000, 3)), True, np.random.default_rng(3))[0]
    assert np.allclose(spread.std(axis=0), std, rtol=0.05)


def test_categorical_policy_samples_its_distribution() -> None:
    policy = build_policy(
        PolicySpec(kind="categorical_mlp"), spaces.Box(-1, 1, (4,)), spaces.Discrete(3), seed=0
    )
    weights = policy.initial_weights(seed=0)
    weights["pi.2.weight"] = np.zeros_like(weights["pi.2.weight"])
    weights["pi.2.bias"] = np.log(np.array([0.2, 0.3, 0.5]))
    policy.set_weights(weights)
    actions, logp, _ = policy.compute_actions(np.zeros((30000, 4)), True, np.random.default_rng(0))
    frequencies = np.bincount(actions, minlength=3) / len(actions)
    assert np.allclose(frequencies, [0.2, 0.3, 0.5], atol=0.01)
    assert np.allclose(np.exp(logp), np.array([0.2, 0.3, 0.5])[actions])


def test_wrong_weights_are_refused_with_the_reason() -> None:
    policy = MLPPolicy(PolicySpec(obs_dim=3, act_dim=1))
    with pytest.raises(ValueError, match=r"lack 'vf\.0\.weight'"):
        policy.set_weights({k: v for k, v in policy.initial_weights(0).items() if "vf" not in k})
    other = MLPPolicy(PolicySpec(obs_dim=5, act_dim=1)).initial_weights(0)
    with pytest.raises(ValueError, match="5 observations to 1 actions; the env has 3"):
        policy.set_weights(other)
