"""The sampler's hot path gives the values of the plain formulas, bit for bit (issue 21).

The runner's forward and its per-step bookkeeping were made cheaper; these tests hold them to
a straightforward reference written here: numpy's np.clip, einsum and np.stack for the
policy, and a hand-written loop over one env for the runner's batch.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from flowsim.algos.common import learner_threads
from flowsim.bench.sampler import SEED_SETTING, sampler_setting
from flowsim.config import FlowsimConfig, apply_overrides, load_config
from flowsim.distributed import EnvRunner
from flowsim.distributed.runner import env_seed
from flowsim.policies.numpy_mlp import MLPPolicy
from flowsim.policies.spec import LOG_STD, OBS_MEAN, OBS_STD, PolicySpec

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def _reference_actions(
    policy: MLPPolicy, weights: dict[str, np.ndarray], obs: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A Gaussian policy's explored actions, log-probabilities and values, as plainly written
    over the policy's fused (block-diagonal) layers."""
    x = np.asarray(obs).reshape(len(obs), -1)
    if OBS_MEAN in weights:
        clip = policy.spec.obs_clip
        x = np.clip((x - weights[OBS_MEAN]) / weights[OBS_STD], -clip, clip)
    layers = policy._fused
    for weight_t, bias in layers[:-1]:
        x = np.tanh(x @ weight_t + bias)
    out = x @ layers[-1][0] + layers[-1][1]
    head, values = out[:, :-1], out[:, -1]
    noise = rng.standard_normal(head.shape)
    log_std = weights[LOG_STD]
    actions = head + np.exp(log_std) * noise
    constant = log_std.sum() + 0.5 * len(log_std) * math.log(2 * math.pi)
    logp = -0.5 * np.einsum("ij,ij->i", noise, noise) - constant
    return actions.astype(np.float32), logp, values


@pytest.mark.parametrize("act_dim", [1, 2])
@pytest.mark.parametrize("normalized", [False, True])
@pytest.mark.parametrize("rows", [1, 5])
def test_forward_matches_the_plain_formulas(act_dim: int, normalized: bool, rows: int) -> None:
    spec = PolicySpec(kind="gaussian_mlp", hidden=(16, 16), obs_dim=3, act_dim=act_dim)
    policy = MLPPolicy(spec, seed=4)
    weights = policy.initial_weights(4)
    if normalized:
        weights[OBS_MEAN], weights[OBS_STD] = np.array([0.5, -1.0, 2.0]), np.array([0.1, 3.0, 1.0])
    policy.set_weights(weights)
    draws = np.random.default_rng(0)
    ours, theirs = np.random.default_rng(9), np.random.default_rng(9)
    for _ in range(20):
        obs = (draws.normal(size=(rows, 3)) * 4).astype(np.float32)  # some beyond the clip
        got = policy.compute_actions(obs, True, ours)
        want = _reference_actions(policy, weights, obs, theirs)
        for name, a, b in zip(("actions", "logp", "values"), got, want, strict=True):
            assert a.dtype == b.dtype, name
            assert np.array_equal(a, b), name


def test_normalization_keeps_nan_and_clips() -> None:
    spec = PolicySpec(kind="gaussian_mlp", hidden=(4,), obs_dim=2, act_dim=1)
    policy = MLPPolicy(spec)
    weights = policy.initial_weights(0)
    weights[OBS_MEAN], weights[OBS_STD] = np.zeros(2), np.ones(2)
    policy.set_weights(weights)
    head, values = policy.forward(np.array([[np.nan, 1e9]]))
    assert np.isnan(head).all() and np.isnan(values).all()  # NaN is not clipped away
    wide, _ = policy.forward(np.array([[0.0, 1e9]]))
    clipped, _ = policy.forward(np.array([[0.0, spec.obs_clip]]))
    assert np.array_equal(wide, clipped)


@pytest.fixture(scope="module")
def ring() -> FlowsimConfig:
    return apply_overrides(
        FlowsimConfig(),
        ["env.warmup_steps=5", "env.horizon=60", "vehicles.0.controller=sumo"],
    )


def test_runner_batch_is_the_plain_loop_over_its_env(ring: FlowsimConfig) -> None:
    """One env: the batch is what stepping the env by hand with the same policy and noise
    gives, across an episode end and a fragment cut."""
    runner = EnvRunner(ring, runner_index=0, seed=5)
    try:
        batch = runner.sample(num_steps=100)
        env, policy = runner.envs[0], runner.policy
        rng = np.random.default_rng(5)  # the runner's exploration stream
        obs, _ = env.reset(seed=env_seed(5, 0))
        rows: dict[str, list] = {k: [] for k in ("obs", "actions", "logp", "values", "rewards")}
        truncated_at = []
        for t in range(100):
            actions, logp, values = policy.compute_actions(np.stack([obs]), True, rng)
            next_obs, reward, terminated, truncated, _ = env.step(actions[0])
            for name, value in zip(
                rows, (obs, actions[0], logp[0], values[0], reward), strict=True
            ):
                rows[name].append(value)
            if terminated or truncated:
                truncated_at.append(t)
                next_obs, _ = env.reset()
            obs = next_obs
    finally:
        runner.close()
    assert truncated_at == [59]
    assert np.flatnonzero(batch.truncated).tolist() == [59]
    assert batch.fragment_end[-1]
    assert np.array_equal(batch.obs, np.asarray(rows["obs"], dtype=np.float32))
    assert np.array_equal(batch.actions, np.asarray(rows["actions"]))
    assert np.array_equal(batch.logp, np.asarray(rows["logp"], dtype=np.float32))
    assert np.array_equal(batch.values, np.asarray(rows["values"], dtype=np.float32))
    assert np.array_equal(batch.rewards, np.asarray(rows["rewards"], dtype=np.float32))


def test_learner_threads_restore_the_callers_count() -> None:
    before = torch.get_num_threads()
    wanted = 2 if before == 1 else 1
    with learner_threads(wanted):
        assert torch.get_num_threads() == wanted
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), learner_threads(wanted):
        raise RuntimeError("an update that fails")
    assert torch.get_num_threads() == before


def test_bench_sampler_setting_is_the_seeds_whatever_the_yaml() -> None:
    yaml_only = sampler_setting(load_config(SCENARIOS / "ring.yaml"))
    assert not yaml_only["seed_setting"] and yaml_only["action_interval_s"] == 0.5
    seed = sampler_setting(load_config(SCENARIOS / "ring.yaml", list(SEED_SETTING)))
    assert seed == {
        "seed_setting": True,
        "action_interval_s": 0.1,
        "step_length_s": 0.1,
        "sims_per_step": 1,
        "trajectory_steps": 3000,
        "warmup_steps": 750,
    }
    # a --set after the seed's setting wins, and the result says it is not the seed's
    shorter = load_config(SCENARIOS / "ring.yaml", [*SEED_SETTING, "env.horizon=100"])
    assert sampler_setting(shorter)["trajectory_steps"] == 100
    assert not sampler_setting(shorter)["seed_setting"]
