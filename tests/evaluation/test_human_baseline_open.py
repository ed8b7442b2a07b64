"""The ``human`` baseline of ``flowsim evaluate`` on the merge and the bottleneck: the AVs are
handed to SUMO's driver (an all-NaN action), so the baseline plays the all-human episode of
the same seed (``flowsim bench suite flow``'s ``human_figures``), while a policy's actions
still drive the AVs.

libsumo runs one simulation per process: every test closes its env before the next starts one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flowsim.bench.suite_flow import AllHumanEnv, episode_figure, human_config, human_figures
from flowsim.config import FlowsimConfig, load_config
from flowsim.distributed.play import EpisodeResult, play_episode
from flowsim.envs import make_env
from flowsim.evaluation.evaluate import BaselineActor, evaluate
from flowsim.testing import cli_flags, run_cli, short_run

BENCHMARKS = Path(__file__).resolve().parents[2] / "scenarios" / "benchmarks"
SEED = 3
#: row -> (Flow's metric, overrides giving a short episode in which AVs are controlled)
ROWS = {
    "merge0": ("speed", ["env.horizon=150"]),
    "bottleneck0": ("outflow", ["env.horizon=250", "env.outflow_window=60"]),
}


def _row(row: str) -> tuple[str, FlowsimConfig]:
    metric, overrides = ROWS[row]
    return metric, load_config(BENCHMARKS / f"{row}.yaml", overrides)


def _play(config: FlowsimConfig, action: str) -> tuple[EpisodeResult, int]:
    """One episode of ``config``'s own env from :data:`SEED`: the ``human`` baseline's actor or
    a constant full-brake policy (``low``); with the most AVs the agent held at once."""
    env = make_env(config)
    held = [0]
    try:
        human = BaselineActor("human")(env)
        low = env.action_space.low.astype(np.float64)

        def act(obs: np.ndarray, env: object) -> np.ndarray:
            held[0] = max(held[0], env.unwrapped.simulation.rl_indices().size)
            return human(obs, env) if action == "human" else low

        return play_episode(env, act, SEED), held[0]
    finally:
        env.close()


@pytest.mark.parametrize("row", list(ROWS))
def test_human_baseline_plays_the_all_human_episode(row: str) -> None:
    metric, config = _row(row)
    (all_human,) = human_figures(config, metric, 1, SEED)
    played, avs = _play(config, "human")
    assert avs > 0  # AVs were in the network, handed to SUMO
    assert episode_figure(metric, config, played) == all_human
    # the whole trajectory, not only the figure: the speeds of every step match
    env = AllHumanEnv(human_config(config))
    try:
        humans = play_episode(env, lambda _obs, _env: np.zeros(0), SEED)
    finally:
        env.close()
    assert played.metrics["episode_mean_speed"] == humans.metrics["episode_mean_speed"]
    assert played.metrics["min_speed"] == humans.metrics["min_speed"]


@pytest.mark.parametrize("row", list(ROWS))
def test_policy_actions_still_drive_the_avs(row: str) -> None:
    _, config = _row(row)
    human, _ = _play(config, "human")
    braking, avs = _play(config, "low")
    assert avs > 0
    # full braking (merge: -1.5 m/s², bottleneck: max speed -1.5 m/s per step) slows traffic
    assert braking.metrics["episode_mean_speed"] < human.metrics["episode_mean_speed"] - 0.1


def test_bottleneck_evaluate_reports_the_all_human_outflow() -> None:
    metric, config = _row("bottleneck0")
    report = evaluate(config, episodes=1, seed=SEED, baselines=("human",))
    (all_human,) = human_figures(config, metric, 1, SEED)
    assert report["baselines"]["human"]["outflow"] == all_human > 0


def test_merge_run_evaluates_against_the_human_baseline(tmp_path: Path) -> None:
    overrides = short_run(iterations=1, horizon=60, warmup=0, fragment=120, minibatch=60)
    merge0 = BENCHMARKS / "merge0.yaml"
    done = run_cli("train", str(merge0), "--out", str(tmp_path), *cli_flags(overrides))
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    done = run_cli("evaluate", str(run), "--episodes", "1", "--baselines", "human", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["baselines"]["human"]["mean_speed"] > 0
    assert "skipped_baselines" not in report
