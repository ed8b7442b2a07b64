"""Deterministic evaluation, `flowsim evaluate` and `flowsim bench train` on the real ring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flowsim.config import apply_overrides, load_config
from flowsim.distributed import EpisodeJob, make_runner_group
from flowsim.distributed.play import Actor
from flowsim.errors import ConfigError
from flowsim.evaluation.evaluate import controller_actor, episode_stats, evaluate, evaluate_run
from flowsim.runs.training import train
from flowsim.testing import run_cli as _flowsim
from flowsim.testing import short_run

ROOT = Path(__file__).resolve().parents[2]
RING = ROOT / "scenarios" / "ring.yaml"
#: A short ring run: in-process sampler, short episodes, two PPO iterations.
TINY = short_run()


def test_pi_saturation_dissolves_the_wave_that_humans_form() -> None:
    results = evaluate(load_config(RING), None, episodes=1, seed=7)
    human, pi = results["baselines"]["human"], results["baselines"]["pi_saturation"]
    assert human["speed_std"] > 1.0 and human["min_speed"] < 0.5  # stop-and-go
    assert pi["speed_std"] < 0.5 and pi["speed_ratio"] > human["speed_ratio"] + 0.1
    assert human["equilibrium_speed"] == pytest.approx(pi["equilibrium_speed"])
    assert human["collisions"] == pi["collisions"] == 0


def test_same_seed_same_episode() -> None:
    config = apply_overrides(load_config(RING), ["env.horizon=300"])
    group = make_runner_group(config, num_workers=0)

    def actor(env: object) -> Actor:
        return controller_actor(config.vehicles[0].controller, config)

    try:
        played = group.play([EpisodeJob(seed, actor=actor) for seed in (3, 3, 4)])
    finally:
        group.close()
    first, second, other = (episode_stats(result, config) for result in played)
    assert first == second
    assert first != other


def test_evaluate_command_compares_the_policy_with_baselines(tmp_path: Path) -> None:
    run = train(apply_overrides(load_config(RING), TINY), out=tmp_path)
    result = _flowsim(
        "evaluate", str(run.directory), "--episodes", "2", "--json", "--set", "env.horizon=200"
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    for key in ("mean_return", "mean_speed", "speed_std", "equilibrium_speed", "collisions"):
        assert np.isfinite(metrics[key])
        for baseline in ("human", "pi_saturation"):
            assert np.isfinite(metrics["baselines"][baseline][key])
    assert metrics["seeds"] == [1000, 1001]
    table = _flowsim("evaluate", str(run.directory), "--episodes", "1", "--baselines", "")
    assert table.returncode == 0, table.stderr
    assert "policy" in table.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["evaluate", "scenarios"], "not a run directory"),
        (["evaluate", "scenarios", "--episodes", "0"], "--episodes 0"),
        (["bench", "train", "--config", "scenarios/ring.yaml", "--algos", "dqn"], "--algos dqn"),
    ],
)
def test_bad_input_exits_2(args: list[str], fragment: str) -> None:
    result = _flowsim(*args)
    assert result.returncode == 2
    assert fragment in result.stderr and "Traceback" not in result.stderr


def test_bench_train_reports_target_figures_and_writes_json(tmp_path: Path) -> None:
    command = ["bench", "train", "--config", str(RING), "--algos", "ppo", "--json"]
    command += ["--eval-every", "1", "--episodes", "1", "--final-episodes", "1"]
    command += ["--out", str(tmp_path / "runs"), "--results", str(tmp_path / "results")]
    for override in TINY:
        command += ["--set", override]
    result = _flowsim(*command)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    ppo = figures["algos"]["ppo"]
    assert ppo["iterations"] == 2 and ppo["env_steps"] == 400
    assert [point["iteration"] for point in ppo["curve"]] == [1, 2]
    assert set(figures["baselines"]) == {"human", "pi_saturation"}
    for key in ("speed_ratio", "speed_std", "mean_return"):
        assert np.isfinite(ppo["final"][key])
    assert ppo["reaches_target"] in (True, False)
    written = list((tmp_path / "results").glob("train-ring-*.json"))
    assert len(written) == 1 and json.loads(written[0].read_text())["algos"]["ppo"]


def test_signal_control_is_compared_with_the_signal_baselines_not_av_baselines() -> None:
    from flowsim.envs.presets import PRESETS

    config = apply_overrides(PRESETS["intersection"], ["env.horizon=60"])
    result = evaluate(config, None, episodes=1, baselines=("human", "pi_saturation"))
    assert list(result["baselines"]) == ["program", "fixed_cycle", "max_pressure", "greedy"]
    assert result["skipped_baselines"] == ["human", "pi_saturation"]
    for entry in result["baselines"].values():
        assert entry["collisions"] == 0 and entry["mean_speed"] > 0


def test_gymnasium_runs_have_no_traffic_baselines() -> None:
    from flowsim.evaluation.evaluate import applicable_baselines

    config = load_config(ROOT / "scenarios" / "cartpole.yaml")
    assert applicable_baselines(config, ("human", "pi_saturation", "fixed_cycle")) == ()


def test_an_unknown_baseline_names_the_flag_and_the_choices() -> None:
    with pytest.raises(ConfigError, match="--baselines: unknown baseline") as refused:
        evaluate(load_config(RING), None, episodes=1, baselines=("human", "pi_saturaton"))
    assert "pi_saturaton" in str(refused.value) and "follower_stopper" in str(refused.value)


def test_a_run_without_checkpoints_is_a_clear_error(tmp_path: Path) -> None:
    """`flowsim evaluate` of a run that has not finished an iteration says so (not `--resume`)."""
    (tmp_path / "config.yaml").write_text(RING.read_text())
    with pytest.raises(ConfigError, match=r"has no checkpoints .*flowsim train --resume"):
        evaluate_run(tmp_path)
    with pytest.raises(ConfigError, match="not a run directory"):
        evaluate_run(tmp_path / "elsewhere")


def test_a_negative_seed_names_the_flag() -> None:
    with pytest.raises(ConfigError, match="--seed -1: give an episode seed of 0 or more"):
        evaluate(load_config(RING), None, episodes=1, seed=-1)
