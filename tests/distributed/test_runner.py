"""EnvRunner and the in-process group: the rollout contract, crashes and weights."""

from __future__ import annotations

import numpy as np
import pytest

from flowsim.config import FlowsimConfig, apply_overrides
from flowsim.distributed import Batch, EnvRunner, LocalRunnerGroup, MLPPolicy, PolicySpec

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
    policy = MLPPolicy(3, 1, seed=1)
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


def test_evaluate_runs_a_function_on_the_runner(runner: EnvRunner) -> None:
    assert runner.evaluate(lambda r: (r.runner_index, r.seed)) == (0, 3)


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
