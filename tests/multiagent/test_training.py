"""`flowsim train` on multi-agent envs: IPPO (shared), per-agent policies, MAPPO, ES; resume;
checkpoints holding every policy; settings an algorithm does not support exit 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from flowsim.config import load_config
from flowsim.runs.checkpoints import read_checkpoint
from flowsim.runs.training import train
from flowsim.testing import ROOT, cli_flags, run_cli, short_run

RING = ROOT / "scenarios" / "multiagent_ring.yaml"


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "progress.csv") as stream:
        return list(csv.DictReader(stream))


def test_train_per_agent_mappo_from_the_cli_then_resume(tmp_path: Path) -> None:
    overrides = short_run(
        "train.multiagent.policies=per_agent",
        "train.multiagent.critic=central",
        iterations=2,
        horizon=30,
        warmup=20,
        fragment=40,
        minibatch=32,
        epochs=2,
    )
    first = run_cli("train", str(RING), *cli_flags(overrides), "--out", str(tmp_path))
    assert first.returncode == 0, first.stderr
    (run_dir,) = tmp_path.iterdir()
    resumed = run_cli("train", "--resume", str(run_dir), "--set", "train.iterations=3")
    assert resumed.returncode == 0, resumed.stderr
    rows = _rows(run_dir)
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3]
    assert [int(r["env_steps"]) for r in rows] == [40, 80, 120]  # env steps, 3 AVs each
    assert np.isfinite(float(rows[-1]["value_loss"]))
    state = read_checkpoint(sorted((run_dir / "checkpoints").glob("checkpoint-*.pt"))[-1])
    assert sorted(state["policy"]) == ["av_0", "av_1", "av_2"]  # every policy's weights
    assert sorted(state["trainer"]["policies"]) == ["av_0", "av_1", "av_2"]
    weights = state["policy"]["av_0"]
    assert weights["vf.0.weight"].shape == (64, 11)  # the critic reads the global state
    assert weights["pi.0.weight"].shape == (64, 3) and "critic_mean" in weights
    # evaluate plays the policies through the runners and the baselines through the ring task
    evaluated = run_cli("evaluate", str(run_dir), "--episodes", "1", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    figures = json.loads(evaluated.stdout)
    assert sorted(figures["baselines"]) == ["human", "pi_saturation"]
    assert np.isfinite(figures["mean_return"]) and figures["speed_ratio"] > 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["train.multiagent.policies={cars: {agents: ['bus_*']}, rest: {agents: ['*']}}"],
            "train.multiagent.policies.cars.agents: pattern 'bus_*' matches no agent",
        ),
        (
            ["train.multiagent.policies={front: {agents: [av_0]}}"],
            "agent(s) av_1, av_2 matched by no policy",
        ),
        (
            ["train.algo=es", "train.multiagent.policies=per_agent"],
            "train.algo es with 3 policies (train.multiagent.policies)",
        ),
        (
            ["train.algo=es", "train.multiagent.critic=central"],
            "train.algo es with train.multiagent.critic: central",
        ),
    ],
)
def test_bad_multiagent_settings_exit_2_naming_the_key(
    overrides: list[str], message: str, tmp_path: Path
) -> None:
    short = short_run(*overrides, iterations=1, horizon=10, warmup=5, fragment=20, minibatch=16)
    result = run_cli("train", str(RING), *cli_flags(short), "--out", str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_multiagent_settings_on_a_single_agent_env_are_refused(tmp_path: Path) -> None:
    from flowsim.errors import ConfigError

    config = load_config(
        ROOT / "scenarios" / "ring.yaml",
        short_run("train.multiagent.critic=central", iterations=1, horizon=10, warmup=5),
    )
    with pytest.raises(ConfigError, match=r"train\.multiagent applies to multi-agent envs"):
        train(config, out=tmp_path)


def test_es_trains_a_shared_policy_on_the_team_reward(tmp_path: Path) -> None:
    config = load_config(
        RING,
        short_run(
            "train.algo=es",
            "train.es.perturbations=2",
            "train.es.eval_episodes=1",
            iterations=2,
            horizon=20,
            warmup=10,
            fragment=None,
            minibatch=None,
        ),
    )
    run = train(config, out=tmp_path)
    assert [row["iteration"] for row in run.rows] == [1, 2]
    assert run.rows[-1]["env_steps"] == 2 * 5 * 20  # 5 episodes of 20 env steps
    assert np.isfinite(run.rows[-1]["return_mean"])


def test_shared_policy_ppo_learns_on_the_multiagent_ring(tmp_path: Path) -> None:
    """IPPO with one policy for the three AVs: within 9,000 AV decisions (3,000 env steps)
    the team's return rises by a margin and the ring moves faster (the AVs stop braking at
    random: the accel penalty falls and the wave they made with it). About 70 s alone on
    2 cores."""
    config = load_config(
        RING,
        short_run(
            "train.lr=0.003",
            iterations=6,
            horizon=100,
            warmup=100,
            fragment=500,
            minibatch=256,
            epochs=5,
        ),
    )
    rows = train(config, out=tmp_path).rows
    assert rows[-1]["env_steps"] == 3000
    returns = [r["return_mean"] for r in rows]
    assert np.isfinite(returns).all()  # 5 team episodes of 100 steps per iteration
    assert np.mean(returns[-2:]) > returns[0] + RETURN_GAIN  # measured: -102.8 -> about -25
    assert np.mean([r["mean_speed"] for r in rows[-2:]]) > rows[0]["mean_speed"] + 0.5


#: Team return gain (last 2 iterations over the first) the learning test asks for.
RETURN_GAIN = 40.0
