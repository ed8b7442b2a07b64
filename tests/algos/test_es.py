"""ES through `flowsim train`: learning, determinism, exact resume, the estimator, Ray runners."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flowsim.algos.es import ESTrainer, centred_ranks, es_gradient
from flowsim.config import FlowsimConfig, load_config
from flowsim.errors import ConfigError
from flowsim.runs.training import make_trainer, train

ROOT = Path(__file__).resolve().parents[2]
CARTPOLE_ES = ROOT / "scenarios" / "cartpole_es.yaml"
#: A few cheap iterations: early CartPole episodes are short.
QUICK = ["train.iterations=3", "train.es.perturbations=4"]


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "progress.csv") as stream:
        return list(csv.DictReader(stream))


def _trainer(config: FlowsimConfig) -> ESTrainer:
    trainer, _ = make_trainer(config)
    return trainer


@pytest.mark.slow
def test_es_solves_cartpole(tmp_path: Path, greedy_stop: Callable[..., Any]) -> None:
    greedy = greedy_stop(threshold=475, every=2)  # stops the run once reached
    run = train(load_config(CARTPOLE_ES), out=tmp_path, callback=greedy)  # <= 20 iterations
    assert greedy.mean_return >= 475, f"greedy {greedy.mean_return} after {run.trainer.iteration}"
    assert run.trainer.env_steps <= 320_000  # 20 x 32 x 500


def test_same_seed_gives_the_same_progress(tmp_path: Path) -> None:
    config = load_config(CARTPOLE_ES, QUICK)
    first = train(config, out=tmp_path / "a").directory
    second = train(config, out=tmp_path / "b").directory
    timing = {"wall_s", "steps_per_s"}
    strip = [{k: v for k, v in r.items() if k not in timing} for r in _rows(first)]
    again = [{k: v for k, v in r.items() if k not in timing} for r in _rows(second)]
    assert strip == again and len(strip) == 3
    assert all(math.isnan(float(r["policy_loss"])) for r in strip)
    assert all(float(r["return_mean"]) > 0 for r in strip)
    assert all(0 < float(r["update_ratio"]) < 1 for r in strip)  # ES's own column


def test_resume_from_a_state_dict_continues_exactly() -> None:
    config = load_config(CARTPOLE_ES, ["train.es.perturbations=4"])
    straight = _trainer(config)
    expected = [straight.train_iteration() for _ in range(4)]
    interrupted = _trainer(config)
    for _ in range(2):
        interrupted.train_iteration()
    state = interrupted.state_dict()
    resumed = _trainer(config)
    resumed.load_state_dict(state)
    continued = [resumed.train_iteration() for _ in range(2)]
    for got, want in zip(continued, expected[2:], strict=True):
        assert got["return_mean"] == want["return_mean"]
        assert got["env_steps"] == want["env_steps"]
        assert got["grad_norm"] == want["grad_norm"]
    np.testing.assert_array_equal(resumed.theta, straight.theta)
    assert straight.normalizer is not None and resumed.normalizer is not None
    np.testing.assert_array_equal(resumed.normalizer.mean, straight.normalizer.mean)


def test_centred_ranks_and_antithetic_gradient() -> None:
    returns = np.array([[10.0, 30.0], [20.0, 40.0]])
    np.testing.assert_allclose(centred_ranks(returns), [[-0.5, 1 / 6], [-1 / 6, 0.5]])
    # Ties share their mean rank, so every rank stays in [-0.5, 0.5] and symmetric.
    np.testing.assert_allclose(
        centred_ranks(np.array([[5.0, 5.0], [1.0, 9.0]])), [[0, 0], [-0.5, 0.5]]
    )

    noise = np.random.default_rng(0).standard_normal(100, dtype=np.float32)
    indices = np.array([0, 7, 50])
    equal = centred_ranks(np.array([[3.0, 3.0], [100.0, 100.0], [-2.0, -2.0]]))
    assert not es_gradient(equal, indices, noise, 10, 0.1).any()

    shaped = centred_ranks(np.array([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]))
    expected = sum(
        (plus - minus) * noise[i : i + 10] for (plus, minus), i in zip(shaped, indices, strict=True)
    ) / (2 * 3 * 0.1)
    np.testing.assert_allclose(es_gradient(shaped, indices, noise, 10, 0.1), expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["sampler.envs_per_worker=2"], "set sampler.envs_per_worker: 1"),
        (["train.es.noise_table_size=1000"], "raise it to at least 4610"),
    ],
)
def test_bad_es_settings_name_the_fix(overrides: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        make_trainer(load_config(CARTPOLE_ES, overrides))


def test_ray_runners_share_one_noise_table_and_match_the_local_group(
    local_ray: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    size = 1_000_000
    overrides = ["train.es.perturbations=4", f"train.es.noise_table_size={size}"]
    tables_put = []
    real_put = ray.put

    def counting_put(value, **kwargs):
        if isinstance(value, np.ndarray) and value.size == size:
            tables_put.append(value)
        return real_put(value, **kwargs)

    monkeypatch.setattr(ray, "put", counting_put)
    config = load_config(CARTPOLE_ES, [*overrides, "sampler.num_workers=2"])
    trainer, group = make_trainer(config)
    try:
        distributed = [trainer.train_iteration() for _ in range(3)]
    finally:
        group.close()
    assert len(tables_put) == 1 and isinstance(trainer.noise_ref, ray.ObjectRef)
    assert trainer.noise_fetches == {0: 1, 1: 1}  # each actor fetched the table once
    for metrics in distributed:
        assert all(math.isfinite(metrics[k]) for k in ("return_mean", "grad_norm", "sample_s"))
        assert metrics["pairs"] == 4 and metrics["noise_fetches"] == 2

    # Episode seeds come from the learner: one in-process runner gives the same numbers.
    local = _trainer(load_config(CARTPOLE_ES, overrides))
    in_process = [local.train_iteration() for _ in range(3)]
    for got, want in zip(in_process, distributed, strict=True):
        assert (got["env_steps"], got["return_mean"]) == (want["env_steps"], want["return_mean"])
    np.testing.assert_array_equal(local.theta, trainer.theta)
