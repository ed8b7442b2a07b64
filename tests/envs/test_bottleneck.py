"""The bottleneck env (Flow's DesiredVelocityEnv): spaces, speed commands reaching the AVs,
the outflow in info and evaluate, determinism, errors, one training iteration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from flowsim.envs.bottleneck import BottleneckEnv
from flowsim.errors import ConfigError
from flowsim.testing import cli_flags, run_cli, short_run

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "scenarios" / "benchmarks"
BOTTLENECK0 = BENCHMARKS / "bottleneck0.yaml"


@pytest.mark.parametrize("variant, obs, act", [("bottleneck0", 141, 20), ("bottleneck2", 281, 40)])
def test_spaces_are_flows(variant: str, obs: int, act: int) -> None:
    env = BottleneckEnv(BENCHMARKS / f"{variant}.yaml", overrides=["env.warmup_steps=0"])
    try:
        assert env.observation_space.shape == (obs,)
        assert env.action_space.shape == (act,)
        assert env.action_space.low.min() == -1.5 and env.action_space.high.max() == 1.0
        check_env(env, skip_render_check=True)
    finally:
        env.close()


def _av_speeds_on_controlled_edges(command: float, steps: int = 300) -> tuple[float, float]:
    """Mean AV speed on edges 2-4 and the highest AV speed cap after ``steps`` steps of the
    same command in every cell."""
    env = BottleneckEnv(BOTTLENECK0)
    try:
        env.reset(seed=0)
        action = np.full(env.action_space.shape, command)
        speeds = []
        for _ in range(steps):
            env.step(action)
            kernel = env.kernel
            avs = env.simulation.rl_indices()
            edges = kernel.edges()
            on = [i for i in avs.tolist() if edges[i] in ("2", "3", "4")]
            speeds.extend(kernel.speeds()[on].tolist())
        caps = [cap for cap in env._max_speed.values()]
        return float(np.mean(speeds)), max(caps)
    finally:
        env.close()


def test_speed_commands_slow_and_release_the_avs() -> None:
    slow, slow_cap = _av_speeds_on_controlled_edges(-1.5)
    fast, fast_cap = _av_speeds_on_controlled_edges(1.0)
    assert fast_cap == pytest.approx(23.0)  # AVs are held at the cap, Flow's 23 m/s
    assert slow < 2.0 < fast  # AVs in the controlled cells crawl at 0.01 m/s caps
    assert slow_cap == pytest.approx(23.0)  # ... those on edges 1 and 5 are released


def test_outflow_in_info_and_reward() -> None:
    env = BottleneckEnv(BOTTLENECK0)
    try:
        env.reset(seed=0)
        total = 0.0
        for _ in range(env.config.env.horizon):
            obs, reward, terminated, truncated, info = env.step(np.zeros(20))
            total += reward
        assert truncated and not terminated
        arrived = sum(env.simulation.arrivals[-1000:])
        assert info["outflow"] == pytest.approx(arrived * 3600 / 500)
        assert 500 < info["outflow"] < 2500
        # the reward sums 10-step outflows / 2000: about the horizon's mean outflow / 2000
        assert total == pytest.approx(1000 * info["outflow"] / 2000, rel=0.05)
        assert obs[-1] == pytest.approx(sum(env.simulation.arrivals[-20:]) * 360 / 2000)
    finally:
        env.close()


def test_same_seed_same_episode() -> None:
    runs = []
    for _ in range(2):
        env = BottleneckEnv(BOTTLENECK0, overrides=["env.warmup_steps=10"])
        rng = np.random.default_rng(7)
        try:
            obs, _ = env.reset(seed=11)
            trace = [obs]
            for _ in range(50):
                obs, reward, *_ = env.step(rng.uniform(-1.5, 1.0, 20))
                trace.extend([obs, np.array([reward])])
            runs.append(np.concatenate(trace))
        finally:
            env.close()
    np.testing.assert_array_equal(runs[0], runs[1])


def test_needs_the_bottleneck_and_avs() -> None:
    with pytest.raises(ConfigError, match=r"needs scenario\.type bottleneck, got merge"):
        BottleneckEnv(BOTTLENECK0, overrides=["scenario.type=merge"])
    with pytest.raises(ConfigError, match=r"controller: rl"):
        BottleneckEnv(BOTTLENECK0, overrides=["vehicles.1.controller=sumo"])


def test_bad_segments_exit_2_naming_the_key(tmp_path: Path) -> None:
    text = BOTTLENECK0.read_text().replace('{"2": 2, "3": 2, "4": 2}', '{"2": 2, "7": 2}')
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    result = run_cli("train", str(bad), "--set", "train.iterations=1")
    assert result.returncode == 2, result.stderr
    assert "env.controlled_segments" in result.stderr and "'7'" in result.stderr


def test_train_one_iteration_and_evaluate_report_outflow(tmp_path: Path) -> None:
    overrides = short_run(iterations=1, horizon=100, warmup=10, fragment=200, minibatch=100)
    result = run_cli("train", str(BOTTLENECK0), "--out", str(tmp_path), *cli_flags(overrides))
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    result = run_cli("evaluate", str(run_dir), "--episodes", "1", "--baselines", "", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    text = json.dumps(report)
    assert '"outflow"' in text
