"""RESCO's maps (``scenarios/resco/``) and ``flowsim bench resco``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowsim import testing
from flowsim.bench.resco import PUBLISHED, RESCO_AGENTS, RESCO_MAPS, baseline_episode
from flowsim.cli import main
from flowsim.config import load_config

RESCO_YAMLS = Path(__file__).resolve().parents[2] / "scenarios" / "resco"

#: A few hundred simulated seconds: 20 decisions (200 s; 100 s on arterial4x4).
SHORT = ["env.horizon=20"]

needs_sumo_rl = testing.needs_sumo_rl()


def test_a_yaml_for_every_map() -> None:
    assert sorted(path.stem for path in RESCO_YAMLS.glob("*.yaml")) == sorted(RESCO_MAPS)


def test_published_figures_name_known_maps_and_rules() -> None:
    assert {name for name, _ in PUBLISHED} == set(RESCO_MAPS)
    assert {baseline for _, baseline in PUBLISHED} == set(RESCO_AGENTS)
    assert PUBLISHED[("cologne1", "program")].mean == 56.61
    assert PUBLISHED[("cologne1", "greedy")].mean == 27.81  # RESCO's MAXWAVE
    assert PUBLISHED[("cologne1", "max_pressure")].mean == 65.85
    assert PUBLISHED[("ingolstadt7", "program")].mean == 91.31


@needs_sumo_rl
@pytest.mark.parametrize("map_name", RESCO_MAPS)
def test_every_map_runs_a_short_baseline_episode(map_name: str) -> None:
    config = load_config(RESCO_YAMLS / f"{map_name}.yaml", SHORT)
    assert config.scenario.sumo.resco == map_name
    decision = 5 if map_name == "arterial4x4" else 10
    assert config.env.sims_per_step * config.sim.step_length == decision
    metrics = baseline_episode(config, "max_pressure", seed=0)
    assert metrics["avg_delay"] >= 0 and metrics["throughput"] >= 0
    assert metrics["never_inserted"] >= 0


@needs_sumo_rl
def test_bench_resco_on_one_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["bench", "resco", "--maps", "cologne1", "--baselines", "program,greedy"]
        + [f"--set={override}" for override in SHORT]
        + ["--results", str(tmp_path), "--json"]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["benchmark"] == "resco" and result["maps"] == ["cologne1"]
    rows = {row["baseline"]: row for row in result["rows"]}
    assert set(rows) == {"program", "greedy"}
    assert rows["greedy"]["resco_agent"] == "MAXWAVE"
    assert rows["program"]["resco_avg_delay"] == 56.61
    for row in rows.values():
        assert row["avg_delay"] >= 0 and len(row["avg_delay_per_episode"]) == 1
        # cologne1's demand is trips: RESCO's script left out vehicles that never entered
        if row["never_inserted"] == 0:
            assert row["avg_delay_as_resco"] == pytest.approx(row["avg_delay"])
        expected = (row["avg_delay_as_resco"] - row["resco_avg_delay"]) / row["resco_avg_delay"]
        assert row["difference"] == pytest.approx(expected)
    assert Path(result["written_to"]).is_file()


def test_bench_resco_refuses_an_unknown_map(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "resco", "--maps", "cologne2"]) == 2
    assert "cologne1" in capsys.readouterr().err
