"""TRPO: learning CartPole, determinism, checkpoint state, conjugate gradient, trust region."""

from __future__ import annotations

import copy
import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.nn.utils import parameters_to_vector

from flowsim.algos import trpo
from flowsim.config import apply_overrides, load_config
from flowsim.distributed.batch import Batch
from flowsim.runs.training import make_trainer, train

ROOT = Path(__file__).resolve().parents[2]
CARTPOLE_TRPO = ROOT / "scenarios" / "cartpole_trpo.yaml"
TIMING = {"wall_s", "steps_per_s"}


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "progress.csv") as stream:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(stream)]


@pytest.mark.slow
def test_trpo_solves_cartpole(tmp_path: Path, greedy_stop: Callable[..., Any]) -> None:
    greedy = greedy_stop(threshold=475, every=5)  # stops the run once reached
    run = train(load_config(CARTPOLE_TRPO), out=tmp_path, callback=greedy)  # <= 60 iterations
    assert greedy.mean_return >= 475, f"greedy {greedy.mean_return} after {run.trainer.iteration}"
    assert run.trainer.env_steps <= 100_000  # 60 x 1,024


def test_same_seed_gives_identical_progress(tmp_path: Path) -> None:
    config = apply_overrides(load_config(CARTPOLE_TRPO), ["train.iterations=3"])
    first = _rows(train(config, out=tmp_path / "a").directory)
    second = _rows(train(config, out=tmp_path / "b").directory)
    assert first == second and len(first) == 3
    assert all(r["line_search_failed"] in ("0.0", "1.0") for r in first)  # TRPO's own column


class _ReplayGroup:
    """A runner group that hands out one recorded batch, so two trainers see the same data."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch

    def set_weights(self, weights: dict[str, np.ndarray], version: int) -> None:
        """Ignored: the recorded batch does not depend on the weights."""

    def sample(self, num_steps: int) -> Batch:
        return self.batch


def test_state_dict_restores_the_learner_exactly() -> None:
    # The runners' env state is not part of a trainer's checkpoint, so the continuation is
    # compared on one recorded batch: the update must then match to the last bit.
    config = load_config(CARTPOLE_TRPO, ["sampler.rollout_fragment_length=256"])
    trainer, group = make_trainer(config)
    try:
        for _ in range(2):
            trainer.train_iteration()
        state = copy.deepcopy(trainer.state_dict())
        replay = _ReplayGroup(group.sample(num_steps=256))
    finally:
        group.close()
    trainer.group = replay
    expected = trainer.train_iteration()

    restored, fresh_group = make_trainer(config)
    fresh_group.close()
    restored.load_state_dict(state)
    restored.group = replay
    metrics = restored.train_iteration()
    for key in ("sample_s", "iteration_s", "steps_per_s"):
        expected.pop(key), metrics.pop(key)
    assert metrics == expected and metrics["iteration"] == 3
    for mine, theirs in zip(restored.model.parameters(), trainer.model.parameters(), strict=True):
        assert torch.equal(mine, theirs)


def test_conjugate_gradient_matches_a_direct_solve() -> None:
    rng = np.random.default_rng(0)
    factor = rng.normal(size=(6, 6))
    matrix = factor @ factor.T + 0.5 * np.eye(6)  # symmetric positive definite
    b = rng.normal(size=6)
    solution = trpo.conjugate_gradient(
        lambda v: torch.as_tensor(matrix) @ v, torch.as_tensor(b), iters=6, tolerance=1e-20
    )
    np.testing.assert_allclose(solution.numpy(), np.linalg.solve(matrix, b), rtol=1e-8)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_step_fills_the_trust_region(env_id: str) -> None:
    """The step is scaled by the KL's Hessian: its measured KL is close to, and within, max_kl
    for categorical and Gaussian policies (a wrong Fisher-vector product misses the bound)."""
    max_kl = 1e-3
    config = load_config(
        CARTPOLE_TRPO,
        [
            f"env.id={env_id}",
            "sampler.rollout_fragment_length=256",
            f"train.trpo.max_kl={max_kl}",
            "train.trpo.cg_damping=0.001",
        ],
    )
    trainer, group = make_trainer(config)
    log_std = trainer.model.log_std
    log_std_before = None if log_std is None else log_std.detach().clone()
    try:
        metrics = trainer.train_iteration()
    finally:
        group.close()
    assert metrics["line_search_failed"] == 0
    if log_std is not None:  # the Gaussian's shared log std is a policy parameter too
        assert not torch.equal(log_std.detach(), log_std_before)
    assert 0.6 * max_kl <= metrics["kl"] <= max_kl


def test_failed_line_search_restores_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    # With max_kl near zero the outcome would hang on float32 rounding (a damped quadratic
    # model meets a tiny bound exactly), so the KL the line search measures is offset instead:
    # a constant leaves its Hessian, and so the step, unchanged, but no step fits the bound.
    real_kl = trpo.mean_kl
    monkeypatch.setattr(trpo, "mean_kl", lambda old, new: real_kl(old, new) + 1.0)
    config = load_config(CARTPOLE_TRPO, ["sampler.rollout_fragment_length=256"])
    trainer, group = make_trainer(config)
    try:
        policy_before = parameters_to_vector(trainer.policy_params).detach().clone()
        value_before = parameters_to_vector(trainer.model.vf.parameters()).detach().clone()
        metrics = trainer.train_iteration()
    finally:
        group.close()
    assert metrics["line_search_failed"] == 1
    assert metrics["line_search_steps"] == config.train.trpo.backtrack_iters
    assert torch.equal(parameters_to_vector(trainer.policy_params), policy_before)
    assert not torch.equal(parameters_to_vector(trainer.model.vf.parameters()), value_before)
