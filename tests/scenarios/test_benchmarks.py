"""Every Flow benchmark variant under scenarios/benchmarks/ loads and has Flow's dimensions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flowsim.config import load_config
from flowsim.envs import make_env

BENCHMARKS = Path(__file__).resolve().parents[2] / "scenarios" / "benchmarks"

#: (observation, action) shapes and horizon from Flow's flow/benchmarks/README.md.
FLOW_DIMENSIONS: dict[str, tuple[tuple[int, ...] | None, tuple[int, ...], int]] = {
    "figureeight0": ((28,), (1,), 1500),
    "figureeight1": ((28,), (7,), 1500),
    "figureeight2": ((28,), (14,), 1500),
    "merge0": ((25,), (5,), 750),
    "merge1": ((65,), (13,), 750),
    "merge2": ((85,), (17,), 750),
    "grid0": ((339,), (9,), 400),
    "grid1": ((915,), (25,), 400),
    "bottleneck0": ((141,), (20,), 1000),
    "bottleneck1": ((141,), (20,), 1000),
    "bottleneck2": ((281,), (40,), 1000),
}


def test_every_benchmark_yaml_is_listed() -> None:
    shipped = {p.stem for p in BENCHMARKS.glob("*.yaml")}
    assert set(FLOW_DIMENSIONS) <= shipped


@pytest.mark.parametrize("name", sorted(FLOW_DIMENSIONS))
def test_benchmark_has_flows_dimensions(name: str) -> None:
    observation, action, horizon = FLOW_DIMENSIONS[name]
    config = load_config(BENCHMARKS / f"{name}.yaml")
    assert config.env.horizon == horizon
    env = make_env(config, overrides=["env.warmup_steps=0"])
    try:
        obs, _ = env.reset(seed=0)
        assert env.observation_space.shape == obs.shape
        if observation is not None:
            assert obs.shape == observation
        assert env.action_space.shape == action
        obs, reward, *_ = env.step(np.zeros(action, dtype=env.action_space.dtype))
        assert np.isfinite(reward) and env.observation_space.contains(obs)
    finally:
        env.close()


def test_scenarios_list_shows_types_and_benchmark_yamls() -> None:
    import os

    from flowsim.testing import run_cli

    done = run_cli("scenarios", "list", env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    assert "benchmarks/merge0.yaml" in done.stdout and "merge.yaml" in done.stdout
    assert "inflows 2100 veh/h" in done.stdout  # open networks summarise their demand
