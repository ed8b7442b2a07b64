"""The one sampler on real multi-agent SUMO envs: streams per agent, team episodes, MAPPO's
global state, action masks on a real signal env, in-process and Ray alike, SUMO restarts and
runner replacement."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from gymnasium import spaces

from flowsim.bench.faults import kill_process
from flowsim.config import FlowsimConfig, load_config
from flowsim.distributed import make_runner_group
from flowsim.distributed.batch import MultiBatch
from flowsim.distributed.runner import EnvRunner
from flowsim.envs.multiagent_adapter import MultiAgentAdapter
from flowsim.testing import ROOT

RING = ROOT / "scenarios" / "multiagent_ring.yaml"


def _ring(*overrides: str) -> FlowsimConfig:
    return load_config(RING, ["env.warmup_steps=20", "env.horizon=40", *overrides])


def test_shared_policy_streams_per_agent_and_team_episodes() -> None:
    group = make_runner_group(_ring())
    try:
        batch = group.sample(num_steps=60)  # env steps: one episode of 40 and 20 more
    finally:
        group.close()
    assert len(batch) == 180 and batch.metrics["env_steps"] == 60
    assert batch.env_index.tolist() == [0] * 60 + [1] * 60 + [2] * 60  # contiguous streams
    assert batch.obs.shape == (180, 3) and batch.state is None and batch.action_mask is None
    for agent in range(3):
        rows = slice(60 * agent, 60 * agent + 60)
        assert batch.truncated[rows].nonzero()[0].tolist() == [39]
        assert batch.fragment_end[rows].nonzero()[0].tolist() == [59]
    # the team's return: every agent's rewards summed over the episode (the ring's reward is
    # shared, so three times one agent's)
    (team,) = batch.episode_returns
    np.testing.assert_allclose(team, batch.rewards.reshape(3, 60)[:, :40].sum(), rtol=1e-5)
    np.testing.assert_allclose(batch.rewards[:60], batch.rewards[60:120])
    assert batch.episode_lengths.tolist() == [40]


def test_mappo_batches_carry_the_envs_global_state() -> None:
    group = make_runner_group(_ring("train.multiagent.critic=central"))
    try:
        assert group.policy_spec.critic_dim == 11  # 3 AV rows + mean and std of the speeds
        batch = group.sample(num_steps=30)
    finally:
        group.close()
    assert batch.state.shape == (90, 11) and batch.next_state.shape == (90, 11)
    by_agent = batch.state.reshape(3, 30, 11)
    assert (by_agent == by_agent[0]).all()  # one global state per env step, every agent
    for agent in range(3):  # the state holds every AV's observation at that step
        np.testing.assert_array_equal(
            by_agent[0][:, 3 * agent : 3 * agent + 3], batch.obs[30 * agent : 30 * agent + 30]
        )
    np.testing.assert_array_equal(batch.next_state[:29], batch.state[1:30])
    assert np.isfinite(batch.values).all()  # the runners' central critic valued the states


def test_per_agent_policies_give_a_multibatch_and_weights_per_policy() -> None:
    config = _ring(
        "train.multiagent.policies=per_agent", "train.multiagent.agent_index_in_obs=true"
    )
    group = make_runner_group(config)
    try:
        assert list(group.policy_spaces) == ["av_0", "av_1", "av_2"]
        batch = group.sample(num_steps=20)
        assert isinstance(batch, MultiBatch) and len(batch) == 60
        assert all(len(batch[pid]) == 20 for pid in group.policy_spaces)
        assert batch["av_1"].obs.shape == (20, 4) and (batch["av_1"].obs[:, 3] == 1).all()
        with pytest.raises(ValueError, match=r"no weights for policies \['av_1', 'av_2'\]"):
            group.set_weights({"av_0": {}}, 1)  # every policy needs its weights
    finally:
        group.close()


class _NarrowedLights:
    """Flow's grid with light center0 given only its first phase: a heterogeneous set of
    Discrete spaces on a real SUMO env."""

    def __init__(self, config: FlowsimConfig) -> None:
        from flowsim.envs.multiagent_signals import parallel_env

        self.env = parallel_env(config)
        self.env.action_spaces["center0"] = spaces.Discrete(1)

    def __getattr__(self, name: str):
        return getattr(self.env, name)


def test_masks_on_a_real_signal_env_never_pick_a_missing_phase() -> None:
    config = load_config(
        ROOT / "scenarios" / "multiagent_grid.yaml",
        ["sampler.num_workers=0", "env.horizon=30", "train.minibatch_size=64"],
    )
    runner = EnvRunner(config, seed=5)
    try:
        runner.envs[0].close()
        adapter = MultiAgentAdapter(_NarrowedLights(config), config.train.multiagent)
        runner.envs = [adapter]
        assert adapter.policies["shared"].masked
        batch = runner.sample(num_steps=60)
        center0 = batch.env_index == adapter.slot["center0"]
        assert batch.action_mask.shape == (540, 2)
        assert (batch.action_mask[center0] == [True, False]).all()
        assert (batch.actions[center0] == 0).all()  # 60 explored decisions, never phase 1
        others = batch.actions[~center0]
        assert set(others.tolist()) == {0, 1}  # the others do use both phases
        played = runner.play([__import__("flowsim").distributed.EpisodeJob(seed=2, explore=True)])
        assert played[0].length == 30 and played[0].metrics["agent_steps"] == 270
    finally:
        runner.close()


@pytest.mark.slow
def test_ray_and_in_process_sample_the_same_and_a_lost_runner_is_replaced() -> None:
    import ray

    config = _ring("sampler.num_workers=1")
    local = make_runner_group(config, num_workers=0)
    try:
        expected = local.sample(num_steps=50)
    finally:
        local.close()
    group = make_runner_group(config)
    try:
        got = group.sample(num_steps=50)
        np.testing.assert_array_equal(got.obs, expected.obs)
        np.testing.assert_array_equal(got.actions, expected.actions)
        np.testing.assert_array_equal(got.env_index, expected.env_index)
        ray.kill(group.actor(0), no_restart=True)
        again = group.sample(num_steps=50)
        assert len(again) == 150 and group.runner_restarts == 1
    finally:
        group.close()


def test_sumo_killed_mid_episode_ends_every_agents_stream_and_goes_on() -> None:
    group = make_runner_group(_ring("sim.backend=traci", "env.horizon=200"))
    try:
        group.sample(num_steps=10)
        (described,) = group.describe()
        assert all(kill_process(pid) for pid in described["sumo_pids"])
        batch = group.sample(num_steps=30)
    finally:
        group.close()
    assert batch.metrics["restarts"] >= 1 and batch.metrics["env_steps"] == 30
    streams = batch.env_index.reshape(3, -1)  # each agent: a fresh stream after the restart
    assert (streams == np.arange(3)[:, None]).all()
    # the crashed episode (10 steps, delivered in the first batch ending as fragment cuts) is
    # counted as the team's episode; the new one goes on
    assert batch.episode_lengths.tolist() == [10]
    assert not batch.truncated.any() and batch.fragment_end.sum() == 3


def test_resco_cologne8_lights_with_2_3_and_4_phases_share_one_masked_policy() -> None:
    """A real heterogeneous network: every decision of the shared policy (exploring, from its
    first random weights) is a phase the light has, and the masks say which."""
    if importlib.util.find_spec("sumo_rl") is None:
        pytest.skip("RESCO's maps come with the flowsim[resco] extra: pip install flowsim[resco]")
    config = load_config(
        ROOT / "scenarios" / "resco" / "cologne8.yaml",
        ["sampler.num_workers=0", "env.horizon=15", "train.minibatch_size=16"],
    )
    runner = EnvRunner(config, seed=11)
    try:
        adapter = runner.envs[0]
        phases = {a: int(adapter.env.action_space(a).n) for a in adapter.possible_agents}
        assert sorted(set(phases.values())) == [2, 3, 4]
        assert runner.policy_spec.act_dim == 4 and adapter.policies["shared"].masked
        batch = runner.sample(num_steps=15)
    finally:
        runner.close()
    assert len(batch) == 15 * len(phases)
    for agent, n in phases.items():
        rows = batch.env_index == adapter.slot[agent]
        assert (batch.actions[rows] < n).all()
        assert (batch.action_mask[rows].sum(axis=1) == n).all()


@pytest.mark.slow
def test_per_agent_mappo_trains_on_two_ray_runners_through_a_lost_runner() -> None:
    """Several policies on Ray: the spaces asked of a runner, every policy's weights broadcast,
    MultiBatches of two runners merged, one learner per policy; a runner killed between two
    iterations is replaced and the next batch is full."""
    import ray

    from flowsim.algos.build import build_trainer
    from flowsim.algos.multiagent import MultiPolicyTrainer

    config = _ring(
        "sampler.num_workers=2",
        "sampler.rollout_fragment_length=30",
        "train.minibatch_size=16",
        "train.epochs=1",
        "train.multiagent.policies={front: {agents: [av_0]}, back: {agents: ['av_[12]']}}",
        "train.multiagent.critic=central",
    )
    group = make_runner_group(config)
    try:
        trainer = build_trainer(config, group)
        assert isinstance(trainer, MultiPolicyTrainer)
        assert list(trainer.learners) == ["front", "back"]
        first = trainer.train_iteration()
        assert first["env_steps"] == 60 and first["steps_per_s"] > 0
        ray.kill(group.actor(1), no_restart=True)
        second = trainer.train_iteration()
        assert second["env_steps"] == 120 and group.runner_restarts == 1
        assert np.isfinite(second["front/value_loss"]) and np.isfinite(second["back/value_loss"])
        exported = trainer.export_policy()
        assert exported["front"]["vf.0.weight"].shape[1] == 11
    finally:
        group.close()
