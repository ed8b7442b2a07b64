"""``flowsim bench suite resco``: one short one-light map end to end through the CLI (JSON and
PNG, best.pt by the lowest avg_delay), kept on a second call; bad rows refused."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from flowsim import testing
from flowsim.bench.suite import parse_rows
from flowsim.bench.suite_resco import RESCO_BASELINES, RESCO_BEST, RESCO_SUITE
from flowsim.cli import main
from flowsim.runs.loop import best_figure, is_better
from flowsim.testing import ROOT

RESCO = ROOT / "scenarios" / "resco"
#: 300 s hours (30 decisions of 10 s), one in-process runner, an evaluation every iteration.
SETTINGS = (
    "sampler.num_workers=0 env.horizon=30 sampler.rollout_fragment_length=30 "
    "train.eval_every=1 train.eval_episodes=1 train.minibatch_size=30"
)
SHORT = [arg for item in SETTINGS.split() for arg in ("--set", item)]
BUDGET_MIN = 0.05  # 3 s of training
COMMAND = [
    "bench", "suite", "resco", "--budget-min", str(BUDGET_MIN), "--episodes", "2",
    "--folder", str(RESCO), *SHORT,
]  # fmt: skip

pytestmark = testing.needs_sumo_rl()


def _run(tmp: Path, rows: str = "cologne1") -> tuple[int, str]:
    """``flowsim bench suite resco --rows ROWS`` into ``tmp``: exit code and printed table."""
    places = ["--out", str(tmp / "runs"), "--results", str(tmp / "results")]
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setenv("COLUMNS", "200")  # one line per map
        code = main([*COMMAND, "--rows", rows, *places])
    return code, printed.getvalue()


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One short cologne1 row (the command exited 0): its folder and printed table."""
    tmp = tmp_path_factory.mktemp("suite-resco")
    code, printed = _run(tmp)
    assert code == 0, printed
    return tmp, printed


def test_a_map_runs_end_to_end(suite_run: tuple[Path, str]) -> None:
    tmp, printed = suite_run
    assert "cologne1" in printed and "26.05 IDQN" in printed  # RESCO's best learner beside
    (written,) = (tmp / "results").glob("suite-resco-*.json")
    assert written.with_suffix(".png").stat().st_size > 10_000  # the picture beside it
    (row,) = json.loads(written.read_text())["rows"]
    assert row["complete"] and row["row"] == "cologne1" and row["agents"] == "single"
    for name in (*RESCO_BASELINES, "final", "best"):
        assert len(row[name]["episodes"]) == 2 and 0 < row[name]["mean"] < 300  # s
    # the same seeds: a rule's and a policy's figures are of the same two hours
    assert row["max_pressure"]["seed"] == 1000 and row["seeds"] == [1000, 1001]
    training = row["training"]
    assert training["wall_s"] >= BUDGET_MIN * 60 and training["iterations"] >= 1
    assert training["episodes"] == training["env_steps"] // 30
    compared = row["comparison"]
    policy = row["best"]["mean"]
    assert compared["beats_max_pressure"] == (policy <= row["max_pressure"]["mean"])
    assert compared["beats_resco_best"] == (policy <= 26.05)


def test_best_pt_is_the_lowest_avg_delay(suite_run: tuple[Path, str]) -> None:
    tmp = suite_run[0]
    (run_dir,) = (tmp / "runs" / "cologne1").iterdir()
    with open(run_dir / "progress.csv", newline="") as stream:
        evaluated = {
            int(r["iteration"]): float(r["eval_avg_delay"]) for r in csv.DictReader(stream)
        }
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["best"] == min(evaluated.values())
    assert evaluated[summary["best_iteration"]] == summary["best"]
    rows = [{"eval_avg_delay": 30.0}, {"eval_avg_delay": 20.0}, {"eval_avg_delay": 25.0}]
    assert best_figure(rows, "eval_avg_delay") == 20.0  # a delay: the lowest
    assert best_figure([{"eval_outflow": 1.0}, {"eval_outflow": 2.0}], "eval_outflow") == 2.0
    assert is_better(19.0, 20.0, "eval_avg_delay") and not is_better(21.0, 20.0, "eval_avg_delay")
    assert is_better(21.0, 20.0, "return_mean")


def test_a_complete_map_is_not_redone(suite_run: tuple[Path, str], tmp_path: Path) -> None:
    tmp = Path(shutil.copytree(suite_run[0], tmp_path / "again"))
    state = tmp / "results" / "suite-resco" / "cologne1.json"
    before = state.read_text()
    code, printed = _run(tmp)
    assert code == 0 and "cologne1" in printed
    assert len(list((tmp / "runs" / "cologne1").iterdir())) == 1 and state.read_text() == before


def test_bad_rows_exit_2_naming_the_valid_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = _run(tmp_path, rows="cologne2")
    assert code == 2
    error = capsys.readouterr().err
    assert "cologne2" in error and "ingolstadt21" in error
    assert parse_rows(RESCO_SUITE, "cologne8,grid4x4") == ("grid4x4", "cologne8")  # table order
    assert parse_rows(RESCO_SUITE, "all") == (*RESCO_BEST, "flowgrid") and len(RESCO_BEST) == 8
