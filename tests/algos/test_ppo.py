"""PPO through `flowsim train`: learning, determinism, checkpoints, resume, bad input."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flowsim.config import apply_overrides, load_config
from flowsim.runs.loop import PROGRESS_COLUMNS
from flowsim.runs.training import train
from flowsim.testing import run_cli as _flowsim

ROOT = Path(__file__).resolve().parents[2]
CARTPOLE = ROOT / "scenarios" / "cartpole.yaml"


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "progress.csv") as stream:
        return list(csv.DictReader(stream))


@pytest.mark.slow
def test_ppo_solves_cartpole(tmp_path: Path, greedy_stop: Callable[..., Any]) -> None:
    greedy = greedy_stop(threshold=475, every=10)  # stops the run once reached
    run = train(load_config(CARTPOLE), out=tmp_path, callback=greedy)  # <= 200 its, 51,200 steps
    assert greedy.mean_return >= 475, f"greedy {greedy.mean_return} after {run.trainer.iteration}"
    assert run.trainer.env_steps <= 100_000


@pytest.mark.slow
def test_ppo_swings_up_pendulum(tmp_path: Path, greedy_stop: Callable[..., Any]) -> None:
    greedy = greedy_stop(threshold=-400, every=5)
    run = train(load_config(ROOT / "scenarios" / "pendulum.yaml"), out=tmp_path, callback=greedy)
    assert greedy.mean_return >= -400, f"greedy {greedy.mean_return} after {run.trainer.iteration}"
    assert run.trainer.env_steps <= 500_000


def test_run_directory_layout_and_determinism(tmp_path: Path) -> None:
    config = apply_overrides(load_config(CARTPOLE), ["train.iterations=4"])
    first = train(config, out=tmp_path / "a").directory
    second = train(config, out=tmp_path / "b").directory
    for name in ("config.yaml", "progress.csv", "summary.json"):
        assert (first / name).is_file()
    assert list((first / "tensorboard").iterdir())
    assert sorted(p.name for p in (first / "checkpoints").iterdir()) == [
        "best.pt",
        "checkpoint-000002.pt",
        "checkpoint-000003.pt",
        "checkpoint-000004.pt",
    ]
    timing = {"wall_s", "steps_per_s"}
    strip = [{k: v for k, v in r.items() if k not in timing} for r in _rows(first)]
    again = [{k: v for k, v in r.items() if k not in timing} for r in _rows(second)]
    assert strip == again and len(strip) == 4
    assert list(_rows(first)[0]) == list(PROGRESS_COLUMNS)


def test_killed_run_resumes_without_lost_or_repeated_iterations(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "flowsim.cli", "train", str(CARTPOLE),
        "--set", "train.iterations=12", "--out", str(tmp_path),
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = list(tmp_path.glob("*/checkpoints/checkpoint-*.pt"))
        if len(found) >= 3:
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    (run_dir,) = list(tmp_path.iterdir())
    assert len(_rows(run_dir)) < 12
    resumed = _flowsim("train", "--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    iterations = [int(r["iteration"]) for r in _rows(run_dir)]
    assert iterations == list(range(1, 13))


def test_resuming_a_checkpoint_twice_samples_the_same_iterations(tmp_path: Path) -> None:
    config = apply_overrides(load_config(CARTPOLE), ["train.iterations=4"])
    original = train(config, out=tmp_path / "original").directory
    timing = {"wall_s", "steps_per_s"}
    resumed_rows = []
    for name in ("a", "b"):
        copy = tmp_path / name
        shutil.copytree(original, copy)
        for late in ("checkpoint-000003.pt", "checkpoint-000004.pt"):
            (copy / "checkpoints" / late).unlink()
        train(None, resume=copy)
        rows = _rows(copy)
        assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
        resumed_rows.append([{k: v for k, v in r.items() if k not in timing} for r in rows])
    assert resumed_rows[0] == resumed_rows[1]


def test_damaged_checkpoint_falls_back_to_the_previous(tmp_path: Path) -> None:
    config = apply_overrides(load_config(CARTPOLE), ["train.iterations=3"])
    run_dir = train(config, out=tmp_path).directory
    latest = sorted((run_dir / "checkpoints").glob("checkpoint-*.pt"))[-1]
    latest.write_bytes(latest.read_bytes()[:100])  # truncated on disk
    (run_dir / "config.yaml").write_text(
        (run_dir / "config.yaml").read_text().replace("iterations: 3", "iterations: 4")
    )
    resumed = _flowsim("train", "--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert "damaged" in resumed.stderr
    assert [int(r["iteration"]) for r in _rows(run_dir)] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["train.algo=dqn"], "train.algo"),
        (["train.lr=0"], "train.lr"),
        (["train.minibatch_size=4096"], "train.minibatch_size 4096 is larger"),
    ],
)
def test_bad_training_settings_exit_2(overrides: list[str], fragment: str) -> None:
    args = [arg for override in overrides for arg in ("--set", override)]
    result = _flowsim("train", str(CARTPOLE), *args)
    assert result.returncode == 2 and fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_resume_of_a_folder_that_is_not_a_run_exits_2(tmp_path: Path) -> None:
    result = _flowsim("train", "--resume", str(tmp_path))
    assert result.returncode == 2 and "not a run directory" in result.stderr


def test_ppo_improves_the_ring_in_a_few_iterations(
    tmp_path: Path, short_run: Callable[..., list[str]]
) -> None:
    config = load_config(
        ROOT / "scenarios" / "ring.yaml",
        short_run(iterations=12, horizon=500, warmup=100, fragment=1000),
    )
    rows = train(config, out=tmp_path).rows
    returns = [r["return_mean"] for r in rows if not np.isnan(r["return_mean"])]
    assert np.mean(returns[-3:]) > np.mean(returns[:3])
