"""EnvRunner and the in-process group: the rollout contract, crashes and weights."""

from __future__ import annotations

import numpy as np
import pytest

from flowsim.config import FlowsimConfig, apply_overrides
from flowsim.distributed import Batch, EnvRunner, EpisodeJob, LocalRunnerGroup
from flowsim.policies.numpy_mlp import MLPPolicy
from flowsim.policies.spec import PolicySpec

SHORT = ["env.warmup_steps=10", "env.horizon=150"]


@pytest.fixture
def runner():
    runner = EnvRunner(apply_overrides(FlowsimConfig(), SHORT), runner_index=0, seed=3)
    yield runner
    runner.close()


def test_batch_has_the_requested_size_and_shapes(runner: EnvRunner) -> None:
    batch = runner.sample(num_steps=400)
    assert len(batch) == 400
    assert batch.obs.shape == batch.next_obs.shape == (400, 3)
    assert batch.actions.shape == (400, 1)
    for name in ("rewards", "logp", "values", "terminated", "truncated", "env_index"):
        assert getattr(batch, name).shape == (400,)
    # 400 steps of 150-step episodes: two ended by the time limit, the third goes on.
    assert batch.truncated.sum() == 2 and batch.num_episodes == 2
    assert list(batch.episode_lengths) == [150, 150]
    assert batch.fragment_end[-1] and not batch.fragment_end[:-1].any()
    assert np.isclose(batch.episode_returns[0], batch.rewards[:150].sum(), rtol=1e-5)
    assert batch.metrics["steps"] == 400 and batch.metrics["steps_per_s"] > 0
    # Within an episode, each observation is the previous step's next observation.
    assert np.array_equal(batch.obs[1:150], batch.next_obs[:149])


def test_episodes_continue_across_calls(runner: EnvRunner) -> None:
    first = runner.sample(num_steps=100)
    second = runner.sample(num_steps=100)
    assert np.array_equal(second.obs[0], first.next_obs[-1])
    third = runner.sample(num_episodes=1)
    assert third.num_episodes == 1 and len(third) == 100  # the rest of the 150-step episode


def test_weights_change_actions_and_version(runner: EnvRunner) -> None:
    greedy = runner.sample(num_steps=5, explore=False)
    policy = MLPPolicy(PolicySpec(obs_dim=3, act_dim=1), seed=1)
    weights = policy.initial_weights(seed=9)
    weights["pi.2.bias"] = np.array([0.7])
    runner.set_weights(weights, version=4)
    after = runner.sample(num_steps=5, explore=False)
    assert after.policy_version == 4 and greedy.policy_version == 0
    assert not np.allclose(greedy.actions, after.actions)


def test_crashed_simulation_is_restarted_and_batch_stays_full(runner: EnvRunner) -> None:
    import libsumo

    runner.sample(num_steps=20)
    kernel = runner.envs[0].kernel
    real_step = kernel.backend.step
    calls = {"n": 0}

    def dies_once() -> None:
        calls["n"] += 1
        if calls["n"] == 30:
            raise libsumo.FatalTraCIError("injected: simulation died")
        real_step()

    kernel.backend.step = dies_once
    batch = runner.sample(num_steps=100)
    assert len(batch) == 100
    assert batch.metrics["restarts"] == 1
    assert batch.truncated[28] and batch.num_episodes == 1  # the crashed episode ended there
    assert batch.episode_lengths[0] == 20 + 29  # 20 steps in the first call, 29 before the crash


def test_play_runs_seeded_episodes_on_the_runner(runner: EnvRunner) -> None:
    first, again, short = runner.play(
        [EpisodeJob(seed=4), EpisodeJob(seed=4, record=True), EpisodeJob(seed=5, max_steps=20)]
    )
    assert (first.runner_index, runner.seed) == (0, 3)
    assert first.length == again.length == 150 and short.length == 20
    assert first.episode_return == again.episode_return and first.metrics == again.metrics
    assert again.steps is not None and again.steps["obs"].shape == (150, 3)
    assert np.isclose(again.steps["rewards"].sum(), again.episode_return)
    assert np.allclose(again.obs_sum, again.steps["obs"].sum(axis=0))
    assert first.steps is None and first.metrics["ring_length"] > 0


def test_sampling_after_play_continues_its_own_seed_stream() -> None:
    config = apply_overrides(FlowsimConfig(), [*SHORT, "sim.backend=traci"])
    plain, interrupted = EnvRunner(config, seed=3), EnvRunner(config, seed=3)
    try:
        expected = [plain.sample(num_steps=150, explore=False) for _ in range(3)]
        got = [interrupted.sample(num_steps=150, explore=False)]
        interrupted.play([EpisodeJob(seed=11, max_steps=5)])
        got.append(interrupted.sample(num_steps=150, explore=False))
    finally:
        plain.close()
        interrupted.close()
    assert np.array_equal(got[0].obs, expected[0].obs)
    # The episode the play cut short is gone; the next one has the seed it would have had,
    # not one drawn after the played episode's seed.
    assert np.array_equal(got[1].obs, expected[2].obs)


def test_local_group_merges_runners_in_order() -> None:
    config = apply_overrides(FlowsimConfig(), [*SHORT, "sim.backend=traci"])
    group = LocalRunnerGroup(config, num_runners=2)
    try:
        batch = group.sample(num_steps=50)
        assert len(batch) == 100
        assert list(np.unique(batch.env_index)) == [0, 1]
        assert not np.array_equal(batch.obs[:50], batch.obs[50:])  # seeds differ by runner
        assert len(batch.metrics["runners"]) == 2
    finally:
        group.close()


def test_several_local_libsumo_runners_are_refused() -> None:
    with pytest.raises(Exception, match=r"sim\.backend: traci"):
        LocalRunnerGroup(FlowsimConfig(), num_runners=2)


def test_constant_policy_and_empty_concat() -> None:
    runner = EnvRunner(
        apply_overrides(FlowsimConfig(), SHORT), policy_spec=PolicySpec(kind="constant")
    )
    try:
        batch = runner.sample(num_steps=10)
        assert np.all(batch.actions == 0.0) and np.all(batch.logp == 0.0)
    finally:
        runner.close()
    with pytest.raises(ValueError, match="at least one"):
        Batch.concat([])


def test_sample_sizes_are_validated(runner: EnvRunner) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        runner.sample(num_steps=0)
    with pytest.raises(ValueError, match="exactly one"):
        runner.sample(num_steps=5, num_episodes=1)


def test_sumo_crashing_on_every_step_gives_up(runner: EnvRunner) -> None:
    import libsumo

    from flowsim.errors import SimulationCrashed

    runner.sample(num_steps=5)

    def always_dies() -> None:
        raise libsumo.FatalTraCIError("injected: simulation died")

    runner.envs[0].kernel.backend.step = always_dies
    with pytest.raises(SimulationCrashed, match="in a row"):
        runner.sample(num_steps=50)


def test_num_episodes_is_exact_with_several_envs() -> None:
    config = apply_overrides(
        FlowsimConfig(), [*SHORT, "sim.backend=traci", "sampler.envs_per_worker=2"]
    )
    runner = EnvRunner(config)
    try:
        batch = runner.sample(num_episodes=1)
        assert batch.num_episodes == 1
        assert sorted(np.unique(batch.env_index)) == [0, 1]
        following = runner.sample(num_steps=10)
        assert len(following) == 10
    finally:
        runner.close()
