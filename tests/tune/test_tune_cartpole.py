"""Tuning PPO on CartPole with real Ray Tune trials: grid, ASHA, PBT, resume, plots, CLI."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from flowsim.config import load_config
from flowsim.tune.results import BEST_CONFIG_FILE, collect_trials
from flowsim.tune.run import run_tune

ROOT = Path(__file__).resolve().parents[2]
CARTPOLE = ROOT / "scenarios" / "tune_cartpole.yaml"

GOOD_LR, BAD_LR = 1e-3, 1e-6  # a learning rate that learns in a few iterations, one that cannot


def _config(iterations: int, tune: dict[str, Any]) -> Any:
    """tune_cartpole.yaml with ``train.iterations`` and the given tune: keys replaced."""
    tune = {"num_samples": 1, "stop": {}, **tune}
    overrides = [f"train.iterations={iterations}"]
    overrides += [f"tune.{key}={json.dumps(value)}" for key, value in tune.items()]
    return load_config(CARTPOLE, overrides)


def _iterations(run_dir: Path) -> list[int]:
    with open(run_dir / "progress.csv", newline="") as handle:
        return [int(row["iteration"]) for row in csv.DictReader(handle)]


@pytest.mark.timeout(120)
def test_grid_of_two_learning_rates_picks_the_better(local_ray, tmp_path: Path) -> None:
    config = _config(
        10,
        {
            "search": "grid",
            "search_space": {"train.lr": {"grid": [BAD_LR, GOOD_LR]}},
            "scheduler": "fifo",
            "max_concurrent_trials": 2,
        },
    )
    run = run_tune(config, out=tmp_path)
    assert not run.summary["errors"]
    assert [t.status for t in run.trials] == ["done", "done"]
    assert sorted(t.params["train.lr"] for t in run.trials) == [BAD_LR, GOOD_LR]
    assert run.best is not None and run.best.params["train.lr"] == GOOD_LR
    for trial in run.trials:  # every trial is a flowsim run directory, each iteration once
        assert _iterations(trial.run_dir) == list(range(1, 11))
        assert (trial.run_dir / "checkpoints" / "best.pt").is_file()

    # best_config.yaml trains as it is with `flowsim train`
    best = load_config(run.directory / BEST_CONFIG_FILE)
    assert best.tune is None and best.train.lr == GOOD_LR
    from flowsim.runs.training import train

    trained = train(load_config(run.directory / BEST_CONFIG_FILE, ["train.iterations=1"]), tmp_path)
    assert len(trained.rows) == 1

    summary = json.loads((run.directory / "tune_summary.json").read_text())
    assert summary["best_params"] == {"train.lr": GOOD_LR}
    assert summary["trials_per_hour"] > 0
    assert {Path(p).name for p in run.plots.values()} == {
        "parallel_coordinates.png",
        "learning_curves.png",
    }
    for path in run.plots.values():
        assert Path(path).stat().st_size > 10_000

    # `flowsim plot TUNE_DIR` draws the same pictures again, without Ray
    from flowsim.cli import main

    assert main(["plot", str(run.directory), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "parallel_coordinates.png").is_file()


@pytest.mark.timeout(120)
def test_asha_stops_the_bad_trial_early(local_ray, tmp_path: Path) -> None:
    config = _config(
        12,
        {
            "search": "grid",
            "search_space": {"train.lr": {"grid": [GOOD_LR, BAD_LR]}},
            "scheduler": {"type": "asha", "grace_period": 3, "reduction_factor": 2},
            "max_concurrent_trials": 1,  # the good trial sets the bar at every rung first
        },
    )
    run = run_tune(config, out=tmp_path, plots=False)
    assert not run.summary["errors"]
    by_lr = {t.params["train.lr"]: t for t in run.trials}
    good, bad = by_lr[GOOD_LR], by_lr[BAD_LR]
    assert good.iterations == 12 and good.status == "done"
    assert bad.iterations < good.iterations
    assert bad.status == "stopped early"
    assert run.best is good


@pytest.mark.timeout(180)
def test_pbt_exploits_a_better_trial(local_ray, tmp_path: Path) -> None:
    config = _config(
        10,
        {
            "search_space": {"train.lr": {"grid": [GOOD_LR, BAD_LR]}},
            "scheduler": {
                "type": "pbt",
                "perturbation_interval": 2,
                "quantile_fraction": 0.5,
                "resample_probability": 0.0,
            },
            "max_concurrent_trials": 2,
        },
    )
    run = run_tune(config, out=tmp_path)
    assert not run.summary["errors"]
    assert [t.status for t in run.trials] == ["done", "done"]
    exploits = [(t, e) for t in run.trials for e in t.restored_from]
    assert exploits, "no trial copied another's checkpoint"
    ids = {t.trial_id for t in run.trials}
    for trial, event in exploits:
        assert event["trial_id"] in ids and event["trial_id"] != trial.trial_id
    summary = json.loads((run.directory / "tune_summary.json").read_text())
    assert sum(t["exploits"] for t in summary["trials"]) == len(exploits)
    # Ray Tune's own record of the exploits
    assert (run.directory / "pbt_global.txt").is_file()
    # An exploited trial continues the copied run: its iterations are contiguous
    for trial, _ in exploits:
        assert _iterations(trial.run_dir) == list(range(1, trial.iterations + 1))


@pytest.mark.timeout(120)
@pytest.mark.skipif(
    __import__("importlib.util").util.find_spec("optuna") is None,
    reason="optuna is not installed (pip install 'flowsim[tune]')",
)
def test_optuna_search_runs(local_ray, tmp_path: Path) -> None:
    config = _config(
        3,
        {
            "search": {"type": "optuna", "seed": 0},
            "search_space": {"train.lr": {"loguniform": [1e-4, 1e-2]}},
            "num_samples": 3,
            "scheduler": "fifo",
            "max_concurrent_trials": 2,
        },
    )
    run = run_tune(config, out=tmp_path, plots=False)
    assert len(run.trials) == 3
    assert all(t.status == "done" for t in run.trials)
    assert len({t.params["train.lr"] for t in run.trials}) == 3
    assert all(1e-4 <= t.params["train.lr"] <= 1e-2 for t in run.trials)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_resume_continues_an_interrupted_run(tmp_path: Path) -> None:
    """SIGINT a `flowsim tune`, then `--resume`: every trial ends, each iteration once."""
    command = [sys.executable, "-m", "flowsim.cli", "tune", str(CARTPOLE), "--out", str(tmp_path)]
    command += ["--set", "train.iterations=20", "--set", "tune.scheduler=fifo", "--no-plots"]
    command += ["--set", "tune.stop={}", "--set", "tune.num_samples=2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rows = [
            len(_iterations(p.parent)) for p in tmp_path.glob("tune-*/trial-*/run/progress.csv")
        ]
        if rows and max(rows) >= 5:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert "flowsim tune --resume" in output
    (tune_dir,) = tmp_path.glob("tune-*")
    interrupted = {t.trial_id: t.iterations for t in collect_trials(tune_dir)}
    assert any(0 < n < 20 for n in interrupted.values())

    env = {**os.environ, "COLUMNS": "200"}
    resumed = subprocess.run(
        [sys.executable, "-m", "flowsim.cli", "tune", "--resume", str(tune_dir), "--no-plots"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    trials = collect_trials(tune_dir)
    assert [t.status for t in trials] == ["done", "done"]
    for trial in trials:
        assert _iterations(trial.run_dir) == list(range(1, 21))
    # at least one trial went on from its own checkpoint instead of starting over
    records = [json.loads((t.run_dir / "trial.json").read_text()) for t in trials]
    assert any(r.get("resumed_at") for r in records)
