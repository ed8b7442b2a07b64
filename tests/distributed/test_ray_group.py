"""The Ray runner group on a local Ray instance: same rollouts, weights, faults, bad settings."""

from __future__ import annotations

import itertools
import os
import signal
import threading

import numpy as np
import pytest

from flowsim.config import FlowsimConfig, apply_overrides
from flowsim.distributed import Batch, EpisodeJob, LocalRunnerGroup, RayRunnerGroup
from flowsim.distributed.batch import EPISODE_FIELDS, STEP_FIELDS
from flowsim.errors import ConfigError
from flowsim.policies.numpy_mlp import MLPPolicy
from flowsim.policies.spec import PolicySpec

SHORT = ["env.warmup_steps=10", "env.horizon=150"]


def _config(*overrides: str) -> FlowsimConfig:
    return apply_overrides(FlowsimConfig(), [*SHORT, *overrides])


@pytest.mark.parametrize(
    ("runners", "overrides", "steps"),
    [(1, (), 300), (2, ("sim.backend=traci",), 100)],  # several local runners need TraCI
)
def test_ray_and_local_give_the_same_rollouts(
    local_ray,
    runners: int,
    overrides: tuple[str, ...],
    steps: int,
) -> None:
    config = _config(*overrides)
    local = LocalRunnerGroup(config, runners)
    try:
        expected = local.sample(num_steps=steps)
    finally:
        local.close()
    group = RayRunnerGroup(config, runners)
    try:
        got = group.sample(num_steps=steps)
        assert os.getpid() not in {m["pid"] for m in got.metrics["runners"]}
    finally:
        group.close()
    for name in (*STEP_FIELDS, "fragment_end", *EPISODE_FIELDS):  # NaN equals NaN here
        np.testing.assert_array_equal(getattr(expected, name), getattr(got, name), err_msg=name)


def test_weights_are_broadcast_with_their_version(local_ray) -> None:
    group = RayRunnerGroup(_config(), 2)
    try:
        weights = MLPPolicy(PolicySpec(obs_dim=3, act_dim=1)).initial_weights(seed=5)
        weights["pi.2.bias"] = np.array([0.5])
        group.set_weights(weights, version=7)
        batch = group.sample(num_steps=20, explore=False)
        assert batch.policy_version == 7
        # Greedy actions are the broadcast policy's output for each observation.
        reference = MLPPolicy(PolicySpec(obs_dim=3, act_dim=1))
        reference.set_weights(weights)
        expected, _, _ = reference.compute_actions(batch.obs, False, np.random.default_rng())
        assert np.allclose(batch.actions, expected, atol=1e-5)
        played = group.play([EpisodeJob(seed=1, max_steps=1), EpisodeJob(seed=2, max_steps=1)])
        assert [result.policy_version for result in played] == [7, 7]
        assert sorted(result.runner_index for result in played) == [0, 1]
        with pytest.raises(ValueError, match="refused the weights"):
            group.set_weights(
                MLPPolicy(PolicySpec(obs_dim=5, act_dim=1)).initial_weights(0), version=8
            )
    finally:
        group.close()


def _assert_streams_contiguous(batch: Batch) -> None:
    """Each env's rows are one block, and each row follows the previous one in time."""
    ended = batch.terminated | batch.truncated | batch.fragment_end
    for env in np.unique(batch.env_index):
        rows = np.flatnonzero(batch.env_index == env)
        assert np.array_equal(rows, np.arange(rows[0], rows[-1] + 1)), f"env {env} is split"
        for a, b in itertools.pairwise(rows):
            if not ended[a]:
                assert np.array_equal(batch.obs[b], batch.next_obs[a]), f"env {env} row {b}"


def test_runner_killed_mid_sampling_is_replaced_and_batch_is_full(local_ray) -> None:
    import ray

    group = RayRunnerGroup(_config(), 2)
    try:
        group.sample(num_steps=50)
        killer = threading.Timer(0.2, ray.kill, args=(group.actor(0),))
        killer.start()
        batch = group.sample(num_steps=10_000)  # runner 0 dies while sampling this
        killer.join()
        assert len(batch) == 20_000 and group.runner_restarts == 1
        _assert_streams_contiguous(batch)  # nothing counted twice, nothing out of order
        group.describe()  # waits until the replacement is placed (2 CPUs here)
        again = group.sample(num_steps=10)
        assert len(again) == 20 and set(np.unique(again.env_index)) == {0, 1}
    finally:
        group.close()


def test_runner_killed_between_plays_is_replaced_and_rejoins(local_ray) -> None:
    import ray

    group = RayRunnerGroup(_config(), 2)
    try:
        jobs = [EpisodeJob(seed=seed, max_steps=30) for seed in range(4)]
        before = group.play(jobs)
        ray.kill(group.actor(1))
        after = group.play(jobs)  # runner 1's block finds it dead and plays elsewhere
        assert [r.job_index for r in after] == [0, 1, 2, 3] and group.runner_restarts == 1
        assert [r.episode_return for r in after] == [r.episode_return for r in before]
        pids = {described["pid"] for described in group.describe()}  # waits for the new one
        assert group.runner_restarts == 1 and len(pids) >= 2
        again = group.play(jobs)
        assert {r.runner_index for r in again} == {0, 1}
    finally:
        group.close()


def test_runner_that_cannot_start_says_why(local_ray) -> None:
    from flowsim.errors import FlowsimError

    group = RayRunnerGroup(_config(), 1, PolicySpec(kind="categorical_mlp"))
    try:
        with pytest.raises(FlowsimError, match=r"could not start: .*Discrete"):
            group.sample(num_steps=10)
    finally:
        group.close()


def test_sumo_killed_inside_a_runner_is_restarted(local_ray) -> None:
    group = RayRunnerGroup(_config("sim.backend=traci"), 1)
    try:
        group.sample(num_steps=20)
        (described,) = group.describe()
        os.kill(described["sumo_pids"][0], signal.SIGKILL)
        batch = group.sample(num_steps=100)
        assert len(batch) == 100 and batch.metrics["restarts"] >= 1
        # SUMO died between calls: the episode cut by the last fragment ends in this batch's
        # statistics (its transitions were delivered with the previous batch).
        assert batch.num_episodes >= 1 and batch.episode_lengths[0] >= 20
    finally:
        group.close()


def test_played_episodes_carry_the_version_and_spread_over_runners(local_ray) -> None:
    group = RayRunnerGroup(_config(), 2)
    try:
        group.set_weights(
            MLPPolicy(PolicySpec(obs_dim=3, act_dim=1)).initial_weights(seed=1), version=3
        )
        played = group.play([EpisodeJob(seed=seed, max_steps=30) for seed in range(4)])
        seen: set[int] = set()
        for result in played:
            assert result.length == 30 and result.policy_version == 3
            seen.add(result.runner_index)
        assert seen == {0, 1}
    finally:
        group.close()


def test_more_workers_than_cpus_is_a_clear_error(local_ray) -> None:
    with pytest.raises(ConfigError, match=r"sampler.num_workers: 5 runners .* need 5 CPU"):
        RayRunnerGroup(_config(), 5)
