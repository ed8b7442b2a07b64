"""``flowsim bench suite resco --rows flowgrid``: Flow's 3 x 3 grid with one agent per light,
end to end through the CLI (its JSON, '—' where RESCO has no figure, the goal against SUMO's
actuated programme and max-pressure on the same seeds); the programme SUMO runs is actuated."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import traci.constants as tc

from flowsim.bench.suite import parse_rows
from flowsim.bench.suite_resco import FLOW_GRID, RESCO_BASELINES, RESCO_BEST, RESCO_SUITE
from flowsim.cli import main
from flowsim.config import load_config
from flowsim.evaluation.simulate import SignalDriver
from flowsim.sim.simulation import Simulation
from flowsim.testing import ROOT

#: 60 s episodes (60 decisions of 1 s), one in-process runner, an evaluation every iteration.
SETTINGS = (
    "sampler.num_workers=0 env.horizon=60 sampler.rollout_fragment_length=60 "
    "train.eval_every=1 train.eval_episodes=1 train.epochs=2"
)
BUDGET_MIN = 0.05  # 3 s of training


@pytest.fixture(scope="module")
def flowgrid_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One short flowgrid row (the command exited 0): its folder and printed table."""
    tmp = tmp_path_factory.mktemp("suite-flowgrid")
    argv = ["bench", "suite", "resco", "--rows", FLOW_GRID, "--budget-min", str(BUDGET_MIN)]
    argv += ["--episodes", "2", "--folder", str(ROOT / "scenarios" / "resco")]
    argv += ["--out", str(tmp / "runs"), "--results", str(tmp / "results")]
    argv += [arg for item in SETTINGS.split() for arg in ("--set", item)]
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setenv("COLUMNS", "200")  # one line per row
        code = main(argv)
    assert code == 0, printed.getvalue()
    return tmp, printed.getvalue()


def test_flowgrid_runs_end_to_end(flowgrid_run: tuple[Path, str]) -> None:
    tmp, printed = flowgrid_run
    (line,) = [text for text in printed.splitlines() if text.startswith(f"│ {FLOW_GRID}")]
    assert "—" in line and "to program" in line  # against the actuated programme, not RESCO
    (written,) = (tmp / "results").glob("suite-resco-*.json")
    assert written.with_suffix(".png").stat().st_size > 10_000
    (row,) = json.loads(written.read_text())["rows"]
    assert row["complete"] and row["row"] == FLOW_GRID and row["metric"] == "avg_delay"
    assert row["resco"]["best_learner"] is None and row["agents"] == "one per light, shared policy"
    assert row["program"]["program"] == "actuated"  # scenario.signals.program of the YAML
    for name in (*RESCO_BASELINES, "final", "best"):
        assert len(row[name]["episodes"]) == 2 and 0 < row[name]["mean"] < 60  # s
    for name in RESCO_BASELINES:  # every rule on the policy's seeds
        assert row[name]["seed"] == 1000
    assert row["seeds"] == [1000, 1001]
    assert len(set(row["program"]["episodes"])) == 2  # random arrivals: each seed another episode
    assert row["training"]["env_steps"] >= 60 and row["training"]["episodes"] >= 1
    compared, policy = row["comparison"], row["best"]["mean"]
    assert compared["to_resco_best"] is None and compared["beats_resco_best"] is None
    assert compared["beats_program"] == (policy <= row["program"]["mean"])
    assert compared["beats_max_pressure"] == (policy <= row["max_pressure"]["mean"])
    assert compared["goal_met"] == (compared["beats_program"] and compared["beats_max_pressure"])
    state = tmp / "results" / "suite-resco" / f"{FLOW_GRID}.json"
    assert json.loads(state.read_text()) == row
    (run_dir,) = (tmp / "runs" / FLOW_GRID).iterdir()
    assert "eval_avg_delay" in (run_dir / "progress.csv").read_text().splitlines()[0]


def test_the_program_baseline_is_sumos_actuated_programme() -> None:
    config = load_config(ROOT / "scenarios" / "multiagent_grid.yaml", ["env.horizon=5"])
    simulation = Simulation(config, rl_as_human=True)
    driver = SignalDriver(config, simulation.kernel, "program")
    try:
        simulation.reset(seed=0)
        driver.bind()
        for _ in range(5):
            driver.before_step()
            simulation.step()
        api = simulation.kernel.backend.api
        lights = api.trafficlight.getIDList()
        running = {
            logic.type
            for tls in lights
            for logic in api.trafficlight.getAllProgramLogics(tls)
            if logic.programID == api.trafficlight.getProgram(tls)
        }
    finally:
        simulation.close()
    assert len(lights) == 9 and running == {tc.TRAFFICLIGHT_TYPE_ACTUATED}


def test_flowgrid_is_a_row_after_rescos_maps() -> None:
    assert parse_rows(RESCO_SUITE, "all") == (*RESCO_BEST, FLOW_GRID)
    assert parse_rows(RESCO_SUITE, f"{FLOW_GRID},cologne8") == ("cologne8", FLOW_GRID)
    assert RESCO_SUITE.row_file(FLOW_GRID, Path("scenarios/resco")) == Path(
        "scenarios/multiagent_grid.yaml"
    )
