"""`flowsim evaluate` on a signal env: a trained policy beside the signal baselines, each with
RESCO's trip metrics; progress.csv of a signal-env run carries the trip metrics too."""

from __future__ import annotations

import csv
import json
import math

import pytest

from flowsim.config import apply_overrides
from flowsim.envs.presets import PRESETS
from flowsim.evaluation.evaluate import applicable_baselines, evaluate
from flowsim.runs.training import Run, train
from flowsim.sim.trips import TRIP_METRICS
from flowsim.testing import run_cli, short_run

SIGNALS = ("program", "fixed_cycle", "max_pressure", "greedy")
#: The intersection for 200 s per episode (40 decisions of 5 s), no warm-up.
SHORT = ["env.horizon=40", "env.warmup_steps=0"]


@pytest.fixture(scope="module")
def intersection_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Two PPO iterations on the intersection: two 200 s episodes each."""
    overrides = short_run(horizon=40, warmup=0, fragment=80, minibatch=40)
    config = apply_overrides(PRESETS["intersection"], overrides)
    return train(config, out=tmp_path_factory.mktemp("runs"))


def test_av_baselines_on_a_signal_env_become_the_signal_baselines() -> None:
    config = PRESETS["intersection"]
    assert applicable_baselines(config, ("human", "pi_saturation")) == SIGNALS
    assert applicable_baselines(config, ("greedy",)) == ("greedy",)
    assert applicable_baselines(PRESETS["ring"], SIGNALS) == ()


def test_each_signal_baseline_reports_trip_metrics() -> None:
    config = apply_overrides(PRESETS["intersection"], SHORT)
    result = evaluate(config, None, episodes=1, baselines=("human",))
    assert tuple(result["baselines"]) == SIGNALS
    assert result["skipped_baselines"] == ["human"]
    for name, entry in result["baselines"].items():
        assert entry["throughput"] > 20, name
        for key in TRIP_METRICS:
            assert math.isfinite(entry[key]) and entry[key] >= 0, (name, key)
        assert entry["collisions"] == 0 and entry["mean_speed"] > 0


def test_progress_rows_of_a_signal_env_carry_trip_metrics(intersection_run: Run) -> None:
    with (intersection_run.directory / "progress.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    for row in rows:
        assert int(row["episodes"]) >= 1
        for key in TRIP_METRICS:
            assert math.isfinite(float(row[key])) and float(row[key]) >= 0, key


def test_evaluate_command_shows_the_policy_beside_the_signal_baselines(
    intersection_run: Run,
) -> None:
    command = ["evaluate", str(intersection_run.directory), "--episodes", "1"]
    result = run_cli(*command, "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert tuple(metrics["baselines"]) == SIGNALS
    for key in TRIP_METRICS:
        assert math.isfinite(metrics[key])  # the policy's, at the top level
        for name in SIGNALS:
            assert math.isfinite(metrics["baselines"][name][key])
    table = run_cli(*command)
    assert table.returncode == 0, table.stderr
    assert "avg_delay" in table.stdout and "max_pressure" in table.stdout


def test_tune_can_rank_signal_trials_by_avg_delay() -> None:
    from flowsim.config import parse_config
    from flowsim.errors import ConfigError
    from flowsim.tune.run import check_tune

    section = {
        "metric": "avg_delay",
        "mode": "min",
        "search_space": {"train.lr": {"loguniform": [1.0e-4, 1.0e-2]}},
    }
    tuned = parse_config({"env": {"type": "traffic_light_grid"}, "tune": section}, source="t")
    assert check_tune(PRESETS["intersection"].model_copy(update={"tune": tuned.tune}))
    ring = PRESETS["ring"].model_copy(update={"tune": tuned.tune})
    with pytest.raises(ConfigError, match="avg_delay"):
        check_tune(ring)
