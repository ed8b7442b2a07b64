"""PolicySpec: built from an env's spaces, completed by a runner, refusing what cannot act."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces

from flowsim.errors import ConfigError
from flowsim.policies.numpy_mlp import ConstantPolicy, MLPPolicy, build_policy
from flowsim.policies.spec import PolicySpec
from flowsim.policies.torch import ActorCritic

BOX = spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)


def test_for_spaces_reads_every_action_kind() -> None:
    box = PolicySpec.for_spaces(spaces.Box(0, 1, (2, 3)), spaces.Box(-1, 1, (2, 2)), [8])
    assert (box.kind, box.obs_dim, box.act_dim, box.hidden) == ("gaussian_mlp", 6, 4, (8,))
    assert box.action_shape == (2, 2) and not box.discrete
    discrete = PolicySpec.for_spaces(BOX, spaces.Discrete(3, start=2), (8,))
    assert (discrete.kind, discrete.act_dim, discrete.action_start) == ("categorical_mlp", 3, (2,))
    assert discrete.choices == (3,) and discrete.action_shape == ()
    multi = PolicySpec.for_spaces(
        BOX, spaces.MultiDiscrete([[2, 3], [4, 1]], start=[[1, 0], [0, 5]])
    )
    assert multi.kind == "multi_categorical_mlp" and multi.nvec == (2, 3, 4, 1)
    assert multi.act_dim == 10 and multi.action_start == (1, 0, 0, 5)
    assert multi.action_shape == (2, 2) and multi.hidden == (64, 64)


@pytest.mark.parametrize(
    "action_space", [spaces.MultiBinary(3), spaces.Tuple([spaces.Discrete(2)])], ids=str
)
def test_unsupported_action_spaces_are_refused_with_what_is_supported(
    action_space: spaces.Space[Any],
) -> None:
    with pytest.raises(ConfigError) as refused:
        PolicySpec.for_spaces(BOX, action_space, (8,))
    assert str(refused.value) == (
        f"action space {action_space}: flowsim's trainers act in Box, Discrete and "
        "MultiDiscrete spaces only; wrap the env to flatten its actions into one of those."
    )


def test_a_runner_completes_a_spec_from_its_env() -> None:
    fitted = PolicySpec(kind="categorical_mlp", hidden=(8,)).fit(BOX, spaces.Discrete(3, start=1))
    assert fitted == PolicySpec.for_spaces(BOX, spaces.Discrete(3, start=1), (8,))
    policy = build_policy(PolicySpec(kind="gaussian_mlp"), BOX, spaces.Box(-1, 1, (2,)), seed=0)
    assert isinstance(policy, MLPPolicy) and policy.spec.act_dim == 2
    constant = build_policy(PolicySpec(kind="constant", constant_action=1.5), BOX, BOX, seed=0)
    assert isinstance(constant, ConstantPolicy)
    actions, logp, values = constant.compute_actions(np.zeros((3, 4)), True, None)  # type: ignore[arg-type]
    assert (
        actions.shape == (3, 4) and np.all(actions == 1.5) and not logp.any() and not values.any()
    )


@pytest.mark.parametrize(
    ("spec", "action_space", "message"),
    [
        (PolicySpec(kind="categorical_mlp"), BOX, "categorical_mlp needs a Discrete action space"),
        (
            PolicySpec(kind="multi_categorical_mlp"),
            spaces.Discrete(2),
            "multi_categorical_mlp needs a MultiDiscrete action space",
        ),
        (
            PolicySpec(kind="gaussian_mlp"),
            spaces.Discrete(2),
            r"gaussian_mlp needs a Box action space, not Discrete\(2\); use categorical_mlp "
            r"\(Discrete\) or multi_categorical_mlp \(MultiDiscrete\)",
        ),
        (
            PolicySpec(kind="multi_categorical_mlp", nvec=(2, 3)),
            spaces.MultiDiscrete([2, 2]),
            r"the policy has \[2, 3\] choices per action dimension; the env's MultiDiscrete "
            r"has \[2, 2\]",
        ),
        (PolicySpec(obs_dim=5), spaces.Box(-1, 1, (2,)), "obs_dim 5; the env's spaces give 4"),
    ],
)
def test_a_spec_the_env_contradicts_is_refused(
    spec: PolicySpec, action_space: spaces.Space[Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        spec.fit(BOX, action_space)


def test_a_spec_without_sizes_builds_no_network() -> None:
    for build in (MLPPolicy, ActorCritic):
        with pytest.raises(ValueError, match=r"spec.fit\(observation_space, action_space\)"):
            build(PolicySpec(kind="categorical_mlp"))


def test_nvec_must_split_the_action_head() -> None:
    with pytest.raises(ValueError, match="does not split an action head of 6 outputs"):
        PolicySpec(kind="multi_categorical_mlp", nvec=(2, 3), act_dim=6)
    with pytest.raises(ValueError, match="dimensions of at least one choice each"):
        PolicySpec(kind="multi_categorical_mlp", nvec=(2, 0))


def test_specs_are_values_that_travel() -> None:
    spec = PolicySpec.for_spaces(BOX, spaces.MultiDiscrete([2, 3]), [16, 16])
    assert spec.hidden == (16, 16)
    assert pickle.loads(pickle.dumps(spec)) == spec and hash(spec) == hash(
        pickle.loads(pickle.dumps(spec))
    )
    with pytest.raises(AttributeError):
        spec.hidden = (8,)  # type: ignore[misc]


def test_numpy_weights_of_another_shape_are_refused() -> None:
    policy = MLPPolicy(PolicySpec(obs_dim=3, act_dim=1, hidden=(8,)))
    other = MLPPolicy(PolicySpec(obs_dim=3, act_dim=1, hidden=(4,))).initial_weights(0)
    with pytest.raises(ValueError, match=r"pi\.0\.weight has shape \(4, 3\); the spec"):
        policy.set_weights(other)
    weights = policy.initial_weights(0)
    del weights["log_std"]
    with pytest.raises(ValueError, match="lack 'log_std'"):
        policy.set_weights(weights)
