"""train.multiagent: agents onto policies, padded spaces, masks, the global state (no SUMO)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowsim.config.train import MultiAgentConfig
from flowsim.distributed.play import AgentsPolicyActor
from flowsim.envs.multiagent_adapter import MultiAgentAdapter, agent_type, assign_policies
from flowsim.errors import ConfigError
from flowsim.policies.numpy_mlp import MLPPolicy
from flowsim.policies.spec import PolicySpec

from .toy import Arrivals, Lights

AGENTS = ["center0", "center1", "east_0", "east_1", "av_0"]


def _settings(policies: object, **rest: object) -> MultiAgentConfig:
    return MultiAgentConfig.model_validate({"policies": policies, **rest})


def test_shared_per_agent_and_groups() -> None:
    assert set(assign_policies(_settings("shared"), AGENTS).values()) == {"shared"}
    assert assign_policies(_settings("per_agent"), AGENTS) == {a: a for a in AGENTS}
    groups = {
        "lights": {"agents": ["center*"]},
        "east": {"types": ["east"]},
        "cars": {"agents": ["av_?"]},
    }
    mapping = assign_policies(_settings(groups), AGENTS)
    assert mapping == {
        "center0": "lights",
        "center1": "lights",
        "east_0": "east",
        "east_1": "east",
        "av_0": "cars",
    }
    assert agent_type("east_12") == "east" and agent_type("center0") == "center0"


@pytest.mark.parametrize(
    ("policies", "message"),
    [
        (
            {"a": {"agents": ["center*", "north*"]}, "b": {"agents": ["*"]}},
            "policies.a.agents: pattern 'north*' matches no agent",
        ),
        (
            {"a": {"types": ["bus"]}, "b": {"agents": ["*"]}},
            "policies.a.types: no agent has type 'bus'",
        ),
        ({"a": {"agents": ["center*"]}}, "east_0, east_1, av_0 matched by no policy"),
        (
            {"a": {"agents": ["center*"]}, "b": {"agents": ["*0"]}},
            "'center0' is matched by both a and b",
        ),
    ],
)
def test_bad_mappings_name_the_key(policies: object, message: str) -> None:
    with pytest.raises(ConfigError, match=r"train\.multiagent\.policies") as error:
        assign_policies(_settings(policies), AGENTS)
    assert message in str(error.value)


def test_bad_policy_sections_are_refused_by_the_config() -> None:
    with pytest.raises(ValueError, match="agents"):
        _settings({"a": {}})
    with pytest.raises(ValueError, match="policy name"):
        _settings({"a/b": {"agents": ["*"]}})
    with pytest.raises(ValueError):
        _settings("everyone")


def test_heterogeneous_lights_share_a_padded_masked_policy() -> None:
    adapter = MultiAgentAdapter(Lights(), _settings("shared", agent_index_in_obs=True))
    policy = adapter.policies["shared"]
    assert policy.observation_space.shape == (5 + 3,)  # largest observation + one-hot of 3
    assert policy.action_space.n == 8 and policy.masked
    observations, _ = adapter.reset(seed=1)
    row = adapter.policy_input("light_0", observations["light_0"])
    np.testing.assert_array_equal(row[:3], observations["light_0"])
    assert row[3:5].tolist() == [0, 0] and row[5:].tolist() == [1, 0, 0]
    assert adapter.action_mask("light_0").tolist() == [True, True] + [False] * 6
    assert adapter.action_mask("light_1").sum() == 4 and adapter.action_mask("light_2").all()
    # no state(): the global state is every agent's observation, one after another
    state = adapter.state(observations)
    assert state.shape == (13,) and adapter.state_dim == 13
    np.testing.assert_array_equal(state[3:8], observations["light_1"])
    partial = adapter.state({"light_1": observations["light_1"]})
    assert partial[:3].tolist() == [0, 0, 0] and partial[8:].tolist() == [0] * 5


def test_one_policy_cannot_drive_box_and_discrete_agents() -> None:
    class Mixed(Lights):
        def action_space(self, agent: str):  # type: ignore[override]
            from gymnasium import spaces

            return spaces.Box(-1, 1, (1,)) if agent == "light_0" else super().action_space(agent)

    with pytest.raises(ConfigError, match="Box and Discrete"):
        MultiAgentAdapter(Mixed(), _settings("shared"))
    per_agent = MultiAgentAdapter(Mixed(), _settings("per_agent"))
    assert not any(p.masked for p in per_agent.policies.values())


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.1, 50.0), explore=st.booleans())
def test_masked_policies_never_choose_an_invalid_phase(
    seed: int, scale: float, explore: bool
) -> None:
    """Random networks with large logits, greedy and sampled: every phase the toy env is given
    is one the light has (the env asserts it); with -inf logits, not by clipping."""
    env = Lights(horizon=5)
    adapter = MultiAgentAdapter(env, _settings("shared"))
    spaces_ = adapter.policies["shared"]
    spec = PolicySpec.for_spaces(spaces_.observation_space, spaces_.action_space, (8,))
    policy = MLPPolicy(spec, seed=seed % 1000)
    weights = policy.initial_weights(seed % 1000)
    weights = {k: v * scale for k, v in weights.items()}
    policy.set_weights(weights)
    actor = AgentsPolicyActor(adapter, {"shared": policy}, explore, np.random.default_rng(seed))
    observations, _ = adapter.reset(seed=seed)
    while adapter.agents:
        actions = actor(observations, env)
        assert all(0 <= actions[a] < env.phases[a] for a in actions)
        observations, *_ = adapter.step(actions)


def test_agents_that_come_and_go_have_their_own_streams() -> None:
    """An agent appearing mid-batch opens a stream; one that leaves ends its stream (cut off:
    truncated, bootstrapped; the last one terminated); each stream is contiguous."""
    from flowsim.config import apply_overrides, load_config
    from flowsim.distributed.runner import EnvRunner
    from flowsim.testing import ROOT

    config = load_config(ROOT / "scenarios" / "multiagent_ring.yaml", ["env.warmup_steps=10"])
    runner = EnvRunner(apply_overrides(config, ["env.horizon=5"]), seed=3)
    runner.envs[0].close()
    runner.envs = [MultiAgentAdapter(Arrivals(), config.train.multiagent)]
    runner._obs = [None]
    batch = runner.sample(num_steps=7)  # env steps 0..6: av_0..av_3 enter at 0, 2, 4, 6
    slots = batch.env_index.tolist()
    assert sorted(set(slots)) == [0, 1, 2, 3]
    assert slots == sorted(slots)  # every stream contiguous
    lengths = {s: slots.count(s) for s in set(slots)}
    assert lengths == {0: 3, 1: 3, 2: 3, 3: 1}
    ends = {
        s: (bool(batch.terminated[i]), bool(batch.truncated[i]), bool(batch.fragment_end[i]))
        for i, s in enumerate(slots)
    }
    assert ends[0] == (False, True, False) and ends[1] == (False, True, False)  # left: cut off
    assert ends[2] == (False, True, False) and ends[3] == (False, False, True)  # fragment cut
    assert batch.metrics["env_steps"] == 7 and len(batch) == 10
    assert batch.obs[slots.index(3)][:2].tolist() == [6.0, 3.0]  # seen from when it entered
    more = runner.sample(num_steps=4)  # av_3 goes on, then leaves terminated; episode ends
    last = more.env_index == 3
    assert more.terminated[last].tolist() == [False, True]  # t = 7, 8: then it is gone
    assert (more.env_index == 0).sum() == 2  # the next episode's av_0, a new stream
    assert more.num_episodes == 1 and more.episode_returns[0] == 12.0  # 12 agent-steps of 1
    runner.close()
