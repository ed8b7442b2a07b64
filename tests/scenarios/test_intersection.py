"""The single signalised intersection: network, built-in demand, traffic through it, errors."""

from __future__ import annotations

import doctest
import importlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from flowsim.config import FlowsimConfig, load_config, parse_config
from flowsim.errors import ConfigError
from flowsim.evaluation.simulate import simulate
from flowsim.scenarios import SCENARIOS, make_scenario
from flowsim.scenarios.intersection import IntersectionScenario, reachable_edges
from flowsim.scenarios.open import net_edges
from flowsim.testing import run_cli

SCENARIOS_DIR = Path(__file__).resolve().parents[2] / "scenarios"
HUMANS = [{"type": "human", "count": 0, "controller": "sumo"}]


def _config(**intersection: object) -> FlowsimConfig:
    return parse_config(
        {
            "scenario": {"type": "intersection", "intersection": intersection},
            "vehicles": HUMANS,
            "sim": {"step_length": 1.0},
        }
    )


def test_registered() -> None:
    assert SCENARIOS["intersection"] is IntersectionScenario


def test_network_has_four_arms_a_light_and_no_u_turns() -> None:
    config = _config(lanes=2)
    instance = make_scenario(config).instance(np.random.default_rng(0))
    edges = net_edges(instance.net_file)
    arms = ("north", "south", "east", "west")
    assert set(edges) == {f"{a}_{d}" for a in arms for d in ("in", "out")}
    assert all(lanes == 2 for _, lanes in edges.values())
    assert instance.traffic_lights == ("center",)
    assert instance.open and instance.ring_edges == ("west_in", "east_out")
    centre = next(
        n for n in ET.parse(instance.net_file).getroot().iter("junction") if n.get("id") == "center"
    )
    assert centre.get("type") == "traffic_light"
    for arm in arms:  # left, straight and right, never back
        reachable = reachable_edges(instance.net_file, f"{arm}_in")
        assert reachable == {f"{arm}_in", *(f"{a}_out" for a in arms if a != arm)}


@pytest.mark.parametrize(("program", "tls_type"), [("fixed", "static"), ("actuated", "actuated")])
def test_signal_programme_follows_the_config(program: str, tls_type: str) -> None:
    config = parse_config(
        {
            "scenario": {
                "type": "intersection",
                "signals": {"program": program, "green": 20, "yellow": 4},
            },
            "vehicles": HUMANS,
        }
    )
    net_file = make_scenario(config).network()
    logic = next(ET.parse(net_file).getroot().iter("tlLogic"))
    assert logic.get("type") == tls_type
    durations = {p.get("state"): float(p.get("duration", "0")) for p in logic.iter("phase")}
    assert {d for s, d in durations.items() if "y" in s} == {4.0}
    assert {d for s, d in durations.items() if "y" not in s} == {20.0}


def test_demand_is_split_over_turns() -> None:
    config = _config(
        demand={"north": 400.0, "south": 0.0, "east": 0.0, "west": 0.0},
        turns={"left": 1.0, "straight": 2.0, "right": 1.0},
    )
    inflows = make_scenario(config).builtin_inflows()
    assert {(i.edge, i.to, i.rate) for i in inflows} == {
        ("north_in", "east_out", 100.0),  # southbound: left is east
        ("north_in", "south_out", 200.0),
        ("north_in", "west_out", 100.0),
    }


def test_vehicles_enter_turn_and_leave() -> None:
    config = _config(
        demand={"north": 600.0, "south": 600.0, "east": 600.0, "west": 600.0},
        turns={"left": 1.0, "straight": 1.0, "right": 1.0},
    )
    summary = simulate(config, steps=300)
    assert summary["entered"] > 100
    assert summary["arrived"] > 50
    assert summary["collisions"] == 0 and summary["teleports"] == 0


def test_shipped_yaml_runs_in_simulate() -> None:
    done = run_cli("simulate", "scenarios/intersection.yaml", "--steps", "200", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["arrived"] > 0 and summary["run_mean_speed"] > 0


def test_unreachable_exit_is_a_config_error() -> None:
    config = parse_config(
        {
            "scenario": {"type": "intersection"},
            "vehicles": HUMANS,
            "inflows": [{"edge": "north_in", "to": "north_out", "vehicle": "human", "rate": 100}],
        }
    )
    with pytest.raises(ConfigError, match=r"inflows\[0\]\.to: 'north_out' cannot be reached"):
        make_scenario(config).instance(np.random.default_rng(0))


@pytest.mark.parametrize(
    ("inflow", "named"),
    [
        ({"edge": "nowhere", "vehicle": "human", "rate": 100}, ["inflows[0].edge", "nowhere"]),
        ({"edge": "north_in", "vehicle": "human", "rate": -5}, ["inflows[0]", "rate -5"]),
    ],
)
def test_bad_inflow_exits_with_code_2(tmp_path: Path, inflow: dict, named: list[str]) -> None:
    config = load_config(SCENARIOS_DIR / "intersection.yaml").model_dump(mode="json")
    config["inflows"] = [inflow]
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(config))
    done = run_cli("simulate", str(path), "--steps", "10", "--json")
    assert done.returncode == 2, done.stderr
    assert all(part in done.stderr for part in named), done.stderr


@pytest.mark.parametrize("module", ["flowsim.scenarios.intersection"])
def test_docstring_examples_run(module: str) -> None:
    found = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert found.attempted > 0 and found.failed == 0
