"""``flowsim bench suite flow``: one short row end to end through the CLI, kept on a second
call, resumed after an interruption in training; bad rows refused; Flow's grid measure."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from flowsim.bench.suite import parse_rows, policy_figures, run_row
from flowsim.bench.suite_flow import FLOW_SUITE, FLOW_TABLE, flow_delay, human_figures
from flowsim.cli import main
from flowsim.config import apply_overrides, load_config
from flowsim.errors import ConfigError
from flowsim.evaluation.simulate import simulate
from flowsim.runs.events import read_events
from flowsim.sim.simulation import Simulation
from flowsim.testing import ROOT

BENCHMARKS = ROOT / "scenarios" / "benchmarks"
#: 100-step episodes, one in-process runner, an evaluation every other iteration: seconds.
SHORT = [
    "--set", "sampler.num_workers=0",
    "--set", "env.horizon=100",
    "--set", "sampler.rollout_fragment_length=100",
    "--set", "train.eval_every=2",
    "--set", "train.eval_episodes=1",
]  # fmt: skip
BUDGET_MIN = 0.04  # 2.4 s of training
#: SHORT as ``run_row``'s overrides.
OVERRIDES = SHORT[1::2]


def _suite(tmp: Path, *extra: str) -> tuple[int, str]:
    """``flowsim bench suite flow --rows figureeight0`` into ``tmp``: exit code and stdout."""
    argv = ["bench", "suite", "flow", "--rows", "figureeight0", "--budget-min", str(BUDGET_MIN)]
    argv += ["--episodes", "2", "--folder", str(BENCHMARKS), "--out", str(tmp / "runs")]
    argv += ["--results", str(tmp / "results"), *SHORT, *extra]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLUMNS", "160")  # the whole table on one line per row
        code = main(argv)
    return code, stdout.getvalue()


def _runs(tmp: Path) -> list[Path]:
    return sorted((tmp / "runs" / "figureeight0").iterdir())


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    """One short figureeight0 row: its folder, exit code and printed table."""
    tmp = tmp_path_factory.mktemp("suite")
    code, printed = _suite(tmp)
    return tmp, code, printed


def test_a_row_runs_end_to_end(suite_run: tuple[Path, int, str]) -> None:
    tmp, code, printed = suite_run
    assert code == 0
    assert "figureeight0" in printed and "8.26 TRPO" in printed  # Flow's figures beside ours
    (written,) = (tmp / "results").glob("suite-flow-*.json")
    assert written.with_suffix(".png").stat().st_size > 10_000  # the picture beside it
    result = json.loads(written.read_text())
    (row,) = result["rows"]
    assert row["complete"] and row["row"] == "figureeight0" and row["metric"] == "speed"
    for entry in (row["human"], row["final"], row["best"]):
        assert len(entry["episodes"]) == 2 and 0 < entry["mean"] < 30  # m/s
    # The wall-time budget ended the training, at the first iteration past it.
    training = row["training"]
    assert training["wall_s"] >= BUDGET_MIN * 60 and 1 <= training["iterations"] < 1000
    (run_dir,) = _runs(tmp)
    assert "eval_mean_speed" in (run_dir / "progress.csv").read_text().splitlines()[0]
    assert row["best"]["iteration"] == training["best_iteration"]
    assert json.loads((tmp / "results" / "suite-flow" / "figureeight0.json").read_text()) == row


def test_a_complete_row_is_not_redone(suite_run: tuple[Path, int, str], tmp_path: Path) -> None:
    tmp = Path(shutil.copytree(suite_run[0], tmp_path / "again"))
    state = tmp / "results" / "suite-flow" / "figureeight0.json"
    before = state.read_text()
    code, printed = _suite(tmp)
    assert code == 0 and "figureeight0" in printed
    assert len(_runs(tmp)) == 1 and state.read_text() == before  # nothing trained or measured


def test_a_row_interrupted_in_training_resumes_its_run(
    suite_run: tuple[Path, int, str], tmp_path: Path
) -> None:
    tmp = Path(shutil.copytree(suite_run[0], tmp_path / "interrupted"))
    state_path = tmp / "results" / "suite-flow" / "figureeight0.json"
    state = json.loads(state_path.read_text())
    trained = state["training"]["iterations"]
    for key in ("complete", "final", "best", "comparison", "training", "run_dir"):
        state.pop(key)  # as written before training ended
    state_path.write_text(json.dumps(state))
    (run_dir,) = _runs(tmp)
    (run_dir / "summary.json").unlink()  # train() had not returned
    code, _ = _suite(tmp)
    assert code == 0 and _runs(tmp) == [run_dir]
    assert [e["kind"] for e in read_events(run_dir)] == ["resumed"]
    after = json.loads(state_path.read_text())
    assert after["complete"] and after["human"] == state["human"]  # kept, not measured again
    assert after["training"]["iterations"] > trained  # went on from its checkpoint


def test_bad_rows_exit_2_naming_the_valid_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = _suite(tmp_path, "--rows", "figureeight9")
    assert code == 2
    error = capsys.readouterr().err
    assert "figureeight9" in error and "bottleneck2" in error
    code, _ = _suite(tmp_path, "--seed", "-1")
    assert code == 2 and "--seed -1" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # refused before any row ran
    with pytest.raises(ConfigError, match="merge7"):
        parse_rows(FLOW_SUITE, "merge0,merge7")
    assert parse_rows(FLOW_SUITE, "merge1,figureeight0") == (
        "figureeight0",
        "merge1",
    )  # table order
    assert parse_rows(FLOW_SUITE, "all") == tuple(FLOW_TABLE) and len(FLOW_TABLE) == 11


def test_the_grid_measure_is_flows_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flow's min_delay_unscaled summed over the run, as `flowsim simulate` computes it step
    by step (from the seed the humans' env gave its simulation), equals the suite's figure
    from the run's mean speed."""
    config = load_config(BENCHMARKS / "grid0.yaml", ["env.horizon=60"])
    given: list[int | None] = []
    reset = Simulation.reset

    def recording(self: Simulation, seed: int | None = None) -> object:
        given.append(seed)
        return reset(self, seed=seed)

    monkeypatch.setattr(Simulation, "reset", recording)
    (figure,) = human_figures(config, "delay", episodes=1, seed=3)
    monkeypatch.undo()
    stepwise = simulate(apply_overrides(config, [f"sim.seed={given[-1]}"]), 60)
    assert figure == pytest.approx(-stepwise["flow_delay"], rel=1e-9)
    assert flow_delay(config, 60.0, config.scenario.speed_limit) == 0.0  # free flow: no delay


def test_a_state_write_killed_midway_keeps_the_previous_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row's state file is replaced whole: a suite killed while writing it (after the
    human baseline) leaves the previous state, not a truncated file that loses the row."""
    state_path = tmp_path / "results" / "suite-flow" / "figureeight0.json"
    state_path.parent.mkdir(parents=True)
    before = {"row": "figureeight0", "complete": False, "overrides": OVERRIDES}
    state_path.write_text(json.dumps(before))
    write_text = Path.write_text

    def killed_midway(self: Path, text: str, *args: object, **kwargs: object) -> int:
        if not self.name.startswith(state_path.name):
            return write_text(self, text, *args, **kwargs)
        write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        run_row(
            FLOW_SUITE,
            "figureeight0",
            folder=BENCHMARKS,
            budget_min=BUDGET_MIN,
            episodes=1,
            seed=1000,
            out=tmp_path / "runs",
            results=tmp_path / "results",
            overrides=OVERRIDES,
        )
    monkeypatch.undo()
    assert json.loads(state_path.read_text()) == before
    assert [p.name for p in state_path.parent.iterdir()] == [state_path.name]  # no staging left


def _row(tmp: Path, overrides: list[str], report: object = None) -> dict[str, object]:
    """``run_row`` of figureeight0 into ``tmp`` with ``overrides``, one episode."""
    return run_row(
        FLOW_SUITE,
        "figureeight0",
        folder=BENCHMARKS,
        budget_min=BUDGET_MIN,
        episodes=1,
        seed=1000,
        out=tmp / "runs",
        results=tmp / "results",
        overrides=overrides,
        **({"report": report} if report is not None else {}),
    )


def test_a_row_is_continued_only_with_the_set_it_started_with(tmp_path: Path) -> None:
    """An unfinished row under another --set is refused before anything runs (its baselines
    and run hold the first settings); a complete one is kept and says so."""
    state_path = tmp_path / "results" / "suite-flow" / "figureeight0.json"
    state_path.parent.mkdir(parents=True)
    started = {"row": "figureeight0", "complete": False, "overrides": OVERRIDES}
    state_path.write_text(json.dumps(started))
    changed = [*OVERRIDES, "env.horizon=50"]
    with pytest.raises(ConfigError, match="--fresh") as refused:
        _row(tmp_path, changed)
    assert "env.horizon=50" in str(refused.value)
    assert not (tmp_path / "runs").exists()  # nothing trained
    complete = {**started, "complete": True, "budget_min": BUDGET_MIN, "episodes": 1}
    state_path.write_text(json.dumps(complete))
    said: list[str] = []
    assert _row(tmp_path, changed, said.append) == complete
    assert len(said) == 1 and "--fresh" in said[0]
    said.clear()
    assert _row(tmp_path, OVERRIDES, said.append) == complete and not said


def test_a_best_checkpoint_that_is_the_final_one_is_not_played_again(
    suite_run: tuple[Path, int, str], tmp_path: Path
) -> None:
    (run_dir,) = _runs(suite_run[0])
    run_dir = Path(shutil.copytree(run_dir, tmp_path / "run"))
    (latest,) = sorted((run_dir / "checkpoints").glob("checkpoint-*.pt"))[-1:]
    shutil.copy(latest, run_dir / "checkpoints" / "best.pt")  # best.pt: the final iteration
    scored = []

    def score(config: object, result: object) -> float:
        scored.append(result)
        return 1.0

    figures = policy_figures(run_dir, 2, 1000, score)
    assert len(scored) == 2 and figures["best"] == figures["final"]
