"""play(jobs): whole seeded episodes on the runners, the same in-process and on Ray."""

from __future__ import annotations

import numpy as np
import pytest

from flowsim.config import FlowsimConfig, apply_overrides
from flowsim.distributed import (
    EpisodeJob,
    EpisodeResult,
    LocalRunnerGroup,
    Perturbation,
    RayRunnerGroup,
    RunnerGroup,
    make_runner_group,
)
from flowsim.distributed.play import blocks, perturbed_weights
from flowsim.evaluation.evaluate import BaselineActor
from flowsim.policies.numpy_mlp import MLPPolicy
from flowsim.policies.spec import PolicySpec

SHORT = ["env.warmup_steps=10", "env.horizon=60"]


def _config(*overrides: str) -> FlowsimConfig:
    return apply_overrides(FlowsimConfig(), [*SHORT, *overrides])


def _jobs(noise: object) -> list[EpisodeJob]:
    params = ("pi.0.weight", "pi.0.bias")
    return [
        EpisodeJob(seed=5),
        EpisodeJob(seed=6, record=True),
        EpisodeJob(seed=5, explore=True, max_steps=20),
        EpisodeJob(seed=7, actor=BaselineActor("pi_saturation")),
        EpisodeJob(seed=5, perturbation=Perturbation(noise, 3, 1, 0.5, params)),
        EpisodeJob(seed=5, perturbation=Perturbation(noise, 3, -1, 0.5, params)),
    ]


def _assert_same(expected: list[EpisodeResult], got: list[EpisodeResult]) -> None:
    assert [r.job_index for r in got] == [r.job_index for r in expected] == list(range(6))
    for want, have in zip(expected, got, strict=True):
        assert (have.seed, have.length, have.episode_return) == (
            want.seed,
            want.length,
            want.episode_return,
        )
        assert have.metrics == want.metrics
        assert np.array_equal(have.obs_sum, want.obs_sum)
        assert (have.steps is None) == (want.steps is None)
        if want.steps is not None:
            for name, array in want.steps.items():
                assert np.array_equal(have.steps[name], array), name


def test_both_groups_satisfy_the_protocol_and_play_the_same_episodes(local_ray) -> None:
    config = _config()
    weights = MLPPolicy(PolicySpec(obs_dim=3, act_dim=1)).initial_weights(seed=4)
    noise = np.random.default_rng(0).standard_normal(10_000, dtype=np.float32)
    local = make_runner_group(config)
    try:
        assert isinstance(local, LocalRunnerGroup) and isinstance(local, RunnerGroup)
        local.set_weights(weights, version=2)
        expected = local.play(_jobs(local.share(noise)))
        spaces = (local.observation_space, local.action_space, local.policy_spec)
    finally:
        local.close()
    group = make_runner_group(config, num_workers=1)
    try:
        assert isinstance(group, RayRunnerGroup) and isinstance(group, RunnerGroup)
        assert (group.observation_space, group.action_space, group.policy_spec) == spaces
        group.set_weights(weights, version=2)
        got = group.play(_jobs(group.share(noise)))
        assert got[-1].noise_fetches == 1 and expected[-1].noise_fetches == 0
    finally:
        group.close()
    _assert_same(expected, got)
    assert all(r.policy_version == 2 for r in got)
    plus, minus, greedy = expected[4], expected[5], expected[0]
    assert len({plus.episode_return, minus.episode_return, greedy.episode_return}) == 3
    assert expected[2].length == 20 and expected[1].steps["actions"].shape == (60, 1)


def test_a_lost_runner_jobs_are_replayed_or_dropped(local_ray) -> None:
    import ray

    jobs = [EpisodeJob(seed=seed, max_steps=20) for seed in range(4)]
    group = RayRunnerGroup(_config(), 2)
    try:
        expected = group.play(jobs)
        ray.kill(group.actor(0))
        dropped = group.play(jobs, drop_lost=True)  # runner 0's block (jobs 0, 1) is left out
        assert [r.job_index for r in dropped] == [2, 3] and group.runner_restarts == 1
        assert [r.episode_return for r in dropped] == [r.episode_return for r in expected[2:]]
        again = group.play(jobs, drop_lost=True)  # waits for the replacement started above
        assert [r.job_index for r in again] == [0, 1, 2, 3] and group.runner_restarts == 1
        ray.kill(group.actor(1))
        replayed = group.play(jobs)  # runner 1's block is played again by runner 0
        assert [r.episode_return for r in replayed] == [r.episode_return for r in expected]
        reasons = group.drain_replacements()
        assert group.runner_restarts == 2 and [r.split(":")[0] for r in reasons] == [
            "runner 0",
            "runner 1",
        ]
    finally:
        group.close()


def test_jobs_split_into_contiguous_blocks_and_perturb_only_the_named_weights() -> None:
    assert blocks(9, 2) == [range(0, 5), range(5, 9)]
    assert blocks(2, 3) == [range(0, 1), range(1, 2), range(2, 2)]
    weights = {"a": np.ones((2, 2)), "b": np.zeros(3), "c": np.full(1, 7.0)}
    noise = np.arange(20, dtype=np.float32)
    moved = perturbed_weights(weights, Perturbation(noise, 2, -1, 0.5, ("a", "b")), noise)
    assert np.allclose(moved["a"].ravel(), 1 - 0.5 * np.arange(2, 6))
    assert np.allclose(moved["b"], -0.5 * np.arange(6, 9)) and moved["c"] is weights["c"]
    with pytest.raises(ValueError, match="cannot also"):
        EpisodeJob(seed=1, actor=BaselineActor("human"), explore=True)
    with pytest.raises(ValueError, match="at least 1"):
        EpisodeJob(seed=1, max_steps=0)
