"""The runners' numpy forward and the learners' torch forward are one network.

Both are built from the same :class:`PolicySpec`; loading the torch module's export into the
numpy policy must give the same action heads, values, greedy actions and log-probabilities,
for every action kind, with and without an observation normaliser.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces

from flowsim.algos.common import RunningMeanStd, prepare_obs
from flowsim.policies.numpy_mlp import MLPPolicy, build_policy
from flowsim.policies.spec import LOG_STD, PolicySpec
from flowsim.policies.torch import ActorCritic

OBSERVATIONS = spaces.Box(-np.inf, np.inf, (2, 3), dtype=np.float32)
ACTIONS = {
    "box": spaces.Box(-1.0, 1.0, (3,), dtype=np.float32),
    "box_2d": spaces.Box(-1.0, 1.0, (2, 2), dtype=np.float32),
    "discrete": spaces.Discrete(5, start=-2),
    "multi_discrete": spaces.MultiDiscrete([[2, 3], [4, 1]], start=[[0, 1], [-1, 0]]),
}
#: float32 torch against float64 numpy.
ATOL = 1e-5


def _random_model(action_space: spaces.Space[Any], seed: int) -> ActorCritic:
    """An ActorCritic with every parameter random (not the near-uniform initial head)."""
    torch.manual_seed(seed)
    spec = PolicySpec.for_spaces(OBSERVATIONS, action_space, (16, 8), init_log_std=-0.3)
    model = ActorCritic(spec)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.7)
    return model


def _normalizer(seed: int) -> RunningMeanStd:
    """Statistics of a skewed sample, so that some inputs are clipped."""
    normalizer = RunningMeanStd((6,))
    rng = np.random.default_rng(seed)
    normalizer.update(rng.normal(2.0, 0.1, (50, 6)))
    return normalizer


@pytest.mark.parametrize("normalized", [False, True], ids=["raw", "normalized"])
@pytest.mark.parametrize("kind", list(ACTIONS))
def test_numpy_and_torch_forwards_agree(kind: str, normalized: bool) -> None:
    action_space = ACTIONS[kind]
    model = _random_model(action_space, seed=3)
    normalizer = _normalizer(seed=4) if normalized else None
    policy = build_policy(model.spec, OBSERVATIONS, action_space, seed=0)
    policy.set_weights(model.export(normalizer))
    obs = np.random.default_rng(5).normal(0.0, 3.0, (64, 2, 3)).astype(np.float32)
    inputs = torch.as_tensor(prepare_obs(obs, normalizer))
    if normalized:  # the normaliser clips some inputs: the clip rule is part of the forward
        assert np.abs(inputs.numpy()).max() == model.spec.obs_clip

    head, values = policy.forward(obs)
    with torch.no_grad():
        torch_head, torch_values = model.pi(inputs).numpy(), model.value(inputs).numpy()
        dist = model.distribution(inputs)
    np.testing.assert_allclose(head, torch_head, atol=ATOL)
    np.testing.assert_allclose(values, torch_values, atol=ATOL)

    greedy, greedy_logp, greedy_values = policy.compute_actions(obs, False, None)  # type: ignore[arg-type]
    np.testing.assert_allclose(greedy_values, torch_values, atol=ATOL)
    if model.discrete:
        mode = (dist.mode + model.action_start).numpy()
        np.testing.assert_array_equal(greedy.reshape(mode.shape), mode)
        assert all(action_space.contains(action) for action in greedy)
    else:
        np.testing.assert_allclose(greedy, dist.mean.numpy(), atol=ATOL)
    torch_greedy_logp = model.log_prob(dist, model.action_tensor(greedy)).detach().numpy()
    np.testing.assert_allclose(greedy_logp, torch_greedy_logp, atol=ATOL)

    sampled, logp, _ = policy.compute_actions(obs, True, np.random.default_rng(6))
    torch_logp = model.log_prob(dist, model.action_tensor(sampled)).detach().numpy()
    np.testing.assert_allclose(logp, torch_logp, atol=1e-4)


@pytest.mark.parametrize("kind", list(ACTIONS))
def test_torch_export_is_the_spec_layout(kind: str) -> None:
    model = _random_model(ACTIONS[kind], seed=0)
    exported = model.export(None)
    shapes = model.spec.parameter_shapes()
    assert list(exported) == list(shapes)
    assert {name: array.shape for name, array in exported.items()} == shapes
    assert all(array.dtype == np.float64 for array in exported.values())
    assert (LOG_STD in shapes) == (kind.startswith("box"))
    with_stats = model.export(_normalizer(seed=1))
    assert list(with_stats) == [*shapes, "obs_mean", "obs_std"]


@pytest.mark.parametrize("kind", list(ACTIONS))
def test_numpy_initial_weights_are_the_spec_layout(kind: str) -> None:
    spec = PolicySpec.for_spaces(OBSERVATIONS, ACTIONS[kind], (16, 8))
    weights = MLPPolicy(spec).initial_weights(seed=0)
    assert {name: array.shape for name, array in weights.items()} == spec.parameter_shapes()


def test_both_forwards_use_the_specs_log_std_init() -> None:
    spec = PolicySpec.for_spaces(OBSERVATIONS, ACTIONS["box"], (4,), init_log_std=-0.5)
    assert torch.equal(ActorCritic(spec).log_std.detach(), torch.full((3,), -0.5))  # type: ignore[union-attr]
    assert np.array_equal(MLPPolicy(spec).initial_weights(0)[LOG_STD], np.full(3, -0.5))


@pytest.mark.parametrize("kind", ["discrete", "multi_discrete"])
def test_masked_forwards_agree_and_never_choose_a_masked_choice(kind: str) -> None:
    """Action masks (multi-agent lights with fewer phases): numpy's -inf and torch's lowest
    float give the same log-probabilities; greedy and sampled choices are always allowed."""
    action_space = ACTIONS[kind]
    model = _random_model(action_space, seed=7)
    policy = build_policy(model.spec, OBSERVATIONS, action_space, seed=0)
    policy.set_weights(model.export(None))
    rng = np.random.default_rng(8)
    obs = rng.normal(0.0, 3.0, (256, 2, 3)).astype(np.float32)
    choices = model.spec.choices
    mask = rng.random((256, model.spec.act_dim)) < 0.5
    start = 0
    for n in choices:  # every dimension keeps at least one allowed choice
        mask[np.arange(256), start + rng.integers(0, n, 256)] = True
        start += n
    inputs = torch.as_tensor(prepare_obs(obs, None))
    mask_t = torch.as_tensor(mask)
    with torch.no_grad():
        dist = model.distribution(inputs, mask_t)
    offsets = np.cumsum((0, *choices[:-1]))
    for explore, seed in ((False, None), (True, 9)):
        generator = np.random.default_rng(seed) if seed is not None else None
        actions, logp, _ = policy.compute_actions(obs, explore, generator, mask=mask)  # type: ignore[arg-type]
        indices = (actions.reshape(256, -1) - model.action_start.numpy()) + offsets
        assert mask[np.arange(256)[:, None], indices].all()
        torch_logp = model.log_prob(dist, model.action_tensor(actions)).numpy()
        np.testing.assert_allclose(logp, torch_logp, atol=1e-4)
        assert np.isfinite(logp).all()
    entropy = model.entropy(dist)
    assert torch.isfinite(entropy).all()


def test_a_mask_without_a_valid_choice_is_refused() -> None:
    model = _random_model(ACTIONS["discrete"], seed=1)
    policy = build_policy(model.spec, OBSERVATIONS, ACTIONS["discrete"], seed=0)
    with pytest.raises(ValueError, match="no valid choice"):
        policy.compute_actions(
            np.zeros((1, 2, 3)),
            False,
            None,
            mask=np.zeros((1, 5), dtype=bool),  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("normalized", [False, True], ids=["raw", "normalized"])
def test_central_critic_forwards_agree(normalized: bool) -> None:
    """MAPPO: the value network reads the global state (critic_dim inputs) in both forwards."""
    from dataclasses import replace

    torch.manual_seed(2)
    spec = replace(PolicySpec.for_spaces(OBSERVATIONS, ACTIONS["discrete"], (16, 8)), critic_dim=11)
    model = ActorCritic(spec)
    assert model.vf[0].in_features == 11 and model.pi[0].in_features == 6
    normalizer = _normalizer(seed=4) if normalized else None
    critic_normalizer = RunningMeanStd((11,))
    critic_normalizer.update(np.random.default_rng(3).normal(1.0, 0.5, (40, 11)))
    policy = build_policy(spec, OBSERVATIONS, ACTIONS["discrete"], seed=0)
    policy.set_weights(model.export(normalizer, critic_normalizer if normalized else None))
    rng = np.random.default_rng(5)
    obs = rng.normal(0.0, 3.0, (32, 2, 3)).astype(np.float32)
    state = rng.normal(1.0, 1.0, (32, 11)).astype(np.float32)
    head, values = policy.forward(obs, state)
    with torch.no_grad():
        torch_head = model.pi(torch.as_tensor(prepare_obs(obs, normalizer))).numpy()
        critic_in = prepare_obs(state, critic_normalizer if normalized else None)
        torch_values = model.value(torch.as_tensor(critic_in)).numpy()
    np.testing.assert_allclose(head, torch_head, atol=ATOL)
    np.testing.assert_allclose(values, torch_values, atol=ATOL)
    assert np.isnan(policy.forward(obs)[1]).all()  # no state given: no value
