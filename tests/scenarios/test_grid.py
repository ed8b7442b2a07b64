"""Flow's traffic-light grid: layout, default exits, traffic through it, benchmarks, errors."""

from __future__ import annotations

import doctest
import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from flowsim.config import FlowsimConfig, load_config, parse_config
from flowsim.errors import ConfigError
from flowsim.evaluation.simulate import simulate
from flowsim.scenarios import SCENARIOS, make_scenario
from flowsim.scenarios.grid import GridScenario, entry_edges
from flowsim.scenarios.open import net_edges
from flowsim.testing import run_cli

SCENARIOS_DIR = Path(__file__).resolve().parents[2] / "scenarios"
HUMANS = [{"type": "human", "count": 0, "controller": "sumo"}]


def _config(rows: int, columns: int, inflows: list[dict] | None = None) -> FlowsimConfig:
    return parse_config(
        {
            "scenario": {"type": "grid", "grid": {"rows": rows, "columns": columns}},
            "vehicles": HUMANS,
            "inflows": inflows or [],
            "sim": {"step_length": 1.0},
        }
    )


def test_registered() -> None:
    assert SCENARIOS["grid"] is GridScenario


@pytest.mark.parametrize(("rows", "columns"), [(1, 1), (2, 3), (3, 3)])
def test_network_has_rows_times_columns_lights(rows: int, columns: int) -> None:
    instance = make_scenario(_config(rows, columns)).instance(np.random.default_rng(0))
    assert instance.traffic_lights == tuple(f"center{k}" for k in range(rows * columns))
    edges = net_edges(instance.net_file)
    # Each row and column is a line of (intersections + 1) edges, driven both ways.
    assert len(edges) == 2 * rows * (columns + 1) + 2 * columns * (rows + 1)
    assert len(entry_edges(rows, columns)) == 2 * (rows + columns)
    assert set(entry_edges(rows, columns)) <= set(edges)
    # Positions run along row 0, west to east: about (columns + 1) edges of 300 m.
    assert instance.ring_edges[0] == "west0_center0"
    assert instance.ring_edges[-1] == f"center{columns - 1}_east0"
    assert instance.length == pytest.approx(300 * (columns + 1), rel=0.01)


def test_default_exits_are_straight_across() -> None:
    exits = make_scenario(_config(2, 3)).default_exits()
    assert exits["west1_center3"] == "center5_east1"
    assert exits["east0_center2"] == "center0_west0"
    assert exits["south2_center2"] == "center5_north2"
    assert exits["north0_center3"] == "center0_south0"
    assert exits["center0_center1"] == "center2_east0"  # from inside a line: the same exit


def test_turning_off_the_line_is_a_config_error() -> None:
    inflows = [{"edge": "west0_center0", "to": "center0_center2", "vehicle": "human", "rate": 60}]
    scenario = make_scenario(_config(2, 2, inflows))
    with pytest.raises(ConfigError, match=r"inflows\[0\]\.to: 'center0_center2' cannot be reached"):
        scenario.instance(np.random.default_rng(0))


def test_vehicles_enter_and_leave_grid0() -> None:
    config = load_config(SCENARIOS_DIR / "grid.yaml")
    summary = simulate(config, steps=300)
    assert summary["entered"] > 250  # 12 edges x 300 veh/h for 300 s
    assert summary["arrived"] > 100  # 1200 m straight across at up to 30 m/s
    assert summary["collisions"] == 0 and summary["teleports"] == 0
    assert summary["mean_travel_time_s"] > 1200 / 30  # slower than free flow: red lights


@pytest.mark.parametrize(("name", "signals"), [("grid0", 9), ("grid1", 25)])
def test_flow_benchmark_variants(name: str, signals: int) -> None:
    config = load_config(SCENARIOS_DIR / "benchmarks" / f"{name}.yaml")
    side = int(signals**0.5)
    assert (config.scenario.grid.rows, config.scenario.grid.columns) == (side, side)
    assert (config.env.horizon, config.sim.step_length) == (400, 1.0)
    assert {i.edge for i in config.inflows} == set(entry_edges(side, side))
    assert {i.rate for i in config.inflows} == {300.0}
    instance = make_scenario(config).instance(np.random.default_rng(0))
    assert len(instance.traffic_lights) == signals


def test_grid_yaml_is_the_grid0_benchmark() -> None:
    shipped = load_config(SCENARIOS_DIR / "grid.yaml")
    benchmark = load_config(SCENARIOS_DIR / "benchmarks" / "grid0.yaml")
    for section in ("scenario", "vehicles", "inflows", "sim"):
        assert getattr(shipped, section) == getattr(benchmark, section), section
    # the task differs: sumo-rl's signal env here, Flow's centralised grid env in grid0
    assert shipped.env.type == "traffic_light_grid"
    assert benchmark.env.type == "flow_traffic_light_grid"


def test_simulate_cli_reports_on_grid() -> None:
    done = run_cli("simulate", "scenarios/benchmarks/grid0.yaml", "--steps", "200", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["arrived"] > 0 and summary["run_mean_speed"] > 0
    # Flow's delay metric: each second adds the mean slowdown below the 35 m/s limit, in [0, 1]
    assert -200 < summary["flow_delay"] < 0
    slowdown = 1 - summary["run_mean_speed"] / 35.0
    assert summary["flow_delay"] == pytest.approx(-200 * slowdown, rel=0.1)


def _write(tmp_path: Path, data: dict) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"scenario.grid.rows": 0}, ["scenario.grid.rows"]),
        ({"inflows.0.edge": "nowhere"}, ["inflows[0].edge", "nowhere"]),
        ({"inflows.0.rate": -300}, ["inflows[0]", "rate -300"]),
    ],
)
def test_bad_input_exits_with_code_2(tmp_path: Path, change: dict, named: list[str]) -> None:
    data = load_config(SCENARIOS_DIR / "grid.yaml").model_dump(mode="json")
    for dotted, value in change.items():
        *parents, last = dotted.split(".")
        node = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value
    done = run_cli("simulate", _write(tmp_path, data), "--steps", "10", "--json")
    assert done.returncode == 2, done.stderr
    assert all(part in done.stderr for part in named), done.stderr


@pytest.mark.parametrize("module", ["flowsim.scenarios.grid"])
def test_docstring_examples_run(module: str) -> None:
    found = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert found.attempted > 0 and found.failed == 0
