"""`flowsim scenarios build`: SUMO files that run in plain sumo, their summary, bad input."""

from __future__ import annotations

import doctest
import importlib.util
import json
import math
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from flowsim.config import load_config
from flowsim.errors import ConfigError
from flowsim.evaluation.simulate import simulate
from flowsim.scenarios import build as build_module
from flowsim.scenarios import sumo_binary
from flowsim.scenarios.build import build_scenario
from flowsim.sim.simulation import Simulation
from flowsim.testing import run_cli as flowsim

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
SUMMARY_KEYS = {
    "edges", "lanes", "junctions", "traffic_lights", "total_length_m", "loop_length_m",
    "net_file", "route_file", "sumocfg", "vehicles", "seed", "sumo_seed", "step_length",
}  # fmt: skip


def run_sumo(sumocfg: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Plain sumo on a built ``.sumocfg`` for 10 s, from an unrelated working folder."""
    return subprocess.run(
        [sumo_binary("sumo"), "-c", sumocfg, "--end", "10", "--no-step-log", "true"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_builds_the_ring_and_sumo_runs_it(tmp_path: Path) -> None:
    out = tmp_path / "ring files"
    result = flowsim(
        "scenarios", "build", "scenarios/ring.yaml", "--out", str(out), "--json",
        "--set", "sim.step_length=0.5",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert set(summary) >= SUMMARY_KEYS
    assert (summary["edges"], summary["lanes"], summary["traffic_lights"]) == (4, 4, 0)
    assert summary["total_length_m"] == pytest.approx(230.0, abs=0.1)
    assert summary["vehicles"] == 22 and summary["step_length"] == 0.5
    for key, suffix in (("net_file", ".net.xml"), ("route_file", ".rou.xml"), ("sumocfg", "")):
        path = Path(summary[key])
        assert path.parent == out and path.is_file() and path.name.endswith(suffix)
    config = ET.parse(summary["sumocfg"]).getroot()
    assert config.find("time/step-length").get("value") == "0.5"
    assert config.find("input/net-file").get("value") == "ring.net.xml"  # relative: movable
    sumo = run_sumo(summary["sumocfg"], cwd=tmp_path)
    assert sumo.returncode == 0, sumo.stderr


@pytest.mark.parametrize(
    ("yaml_name", "edges", "lanes", "total_length", "loop_length"),
    [
        ("multilane_ring.yaml", 4, 8, 2 * 460.0, 460.0),
        ("figure_eight.yaml", 6, 6, 4 * 30 + 3 * math.pi * 30, 421.94),
    ],
)
def test_other_scenarios_build_and_run(
    tmp_path: Path, yaml_name: str, edges: int, lanes: int, total_length: float, loop_length: float
) -> None:
    config = load_config(SCENARIOS / yaml_name)
    summary = build_scenario(config, tmp_path / "out")
    assert (summary["edges"], summary["lanes"], summary["traffic_lights"]) == (edges, lanes, 0)
    assert summary["total_length_m"] == pytest.approx(total_length, abs=0.1)
    assert summary["loop_length_m"] == pytest.approx(loop_length, abs=0.1)
    assert summary["vehicles"] == config.num_vehicles
    assert Path(summary["sumocfg"]).name == f"{config.name}.sumocfg"
    sumo = run_sumo(summary["sumocfg"], cwd=tmp_path)
    assert sumo.returncode == 0, sumo.stderr


def test_seed_draws_the_episode_that_simulation_reset_draws(tmp_path: Path) -> None:
    config = load_config(
        SCENARIOS / "ring.yaml", ["scenario.length=[220, 270]", "sim.backend=traci"]
    )
    first = build_scenario(config, tmp_path / "a", seed=7)
    again = build_scenario(config, tmp_path / "b", seed=7)
    other = build_scenario(config, tmp_path / "c", seed=8)
    routes = [Path(s["route_file"]).read_text() for s in (first, again, other)]
    assert routes[0] == routes[1] != routes[2]
    assert first["sumo_seed"] == again["sumo_seed"] != other["sumo_seed"]
    simulation = Simulation(config)
    try:
        instance = simulation.reset(seed=7)
        assert instance.route_file.read_text() == routes[0]
        assert instance.length == pytest.approx(first["loop_length_m"])
    finally:
        simulation.close()
    sumocfg = ET.parse(first["sumocfg"]).getroot()
    assert sumocfg.find("random_number/seed").get("value") == str(first["sumo_seed"])


def test_additional_files_are_copied_and_referenced(tmp_path: Path) -> None:
    extra = tmp_path / "detectors.add.xml"
    extra.write_text(
        '<additional>\n  <inductionLoop id="loop0" lane="bottom_0" pos="10" period="5" '
        'file="loop0.xml"/>\n</additional>\n'
    )
    config = load_config(SCENARIOS / "ring.yaml", [f"sim.additional_files=['{extra}']"])
    summary = build_scenario(config, tmp_path / "out")
    assert summary["additional_files"] == [str(tmp_path / "out" / "detectors.add.xml")]
    sumocfg = ET.parse(summary["sumocfg"]).getroot()
    assert sumocfg.find("input/additional-files").get("value") == "detectors.add.xml"
    sumo = run_sumo(summary["sumocfg"], cwd=tmp_path)
    assert sumo.returncode == 0, sumo.stderr


def test_bad_input_exits_2_with_the_fix(tmp_path: Path) -> None:
    a_file = tmp_path / "afile"
    a_file.write_text("")
    ring = "scenarios/ring.yaml"
    cases = [
        (("--out", str(a_file)), "is a file"),
        (("--out", str(tmp_path / "x"), "--set", "scenario.lenght=300"), "did you mean 'length'"),
        (("--out", str(tmp_path / "x"), "--seed", "-3"), "--seed -3"),
        ((), "--out"),
    ]
    for extra, fragment in cases:
        result = flowsim("scenarios", "build", ring, *extra)
        assert result.returncode == 2, (extra, result.stderr)
        assert fragment in result.stderr and "Traceback" not in result.stderr
    gym = flowsim("scenarios", "build", "scenarios/cartpole.yaml", "--out", str(tmp_path / "g"))
    assert gym.returncode == 2 and "no network to build" in gym.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "g").exists()


def test_out_folder_errors_in_the_library(tmp_path: Path) -> None:
    a_file = tmp_path / "afile"
    a_file.write_text("")
    config = load_config(SCENARIOS / "ring.yaml")
    with pytest.raises(ConfigError, match="is a file"):
        build_scenario(config, a_file)
    with pytest.raises(ConfigError, match="cannot create"):
        build_scenario(config, a_file / "inside")


def test_list_subcommand_and_bare_scenarios_agree(tmp_path: Path) -> None:
    bare = flowsim("scenarios")
    listed = flowsim("scenarios", "list")
    assert bare.returncode == listed.returncode == 0
    assert bare.stdout == listed.stdout and "ring.yaml" in listed.stdout
    (tmp_path / "mine.yaml").write_text("name: mine\n")
    elsewhere = flowsim("scenarios", "--folder", str(tmp_path), "list")
    assert elsewhere.returncode == 0 and "mine.yaml" in elsewhere.stdout
    after = flowsim("scenarios", "list", "--folder", str(tmp_path))
    assert after.returncode == 0 and "mine.yaml" in after.stdout


def test_docstring_example_runs() -> None:
    assert doctest.testmod(build_module).failed == 0


SUMO_YAMLS = sorted(
    str(path.relative_to(SCENARIOS))
    for path in SCENARIOS.rglob("*.yaml")
    if "env:\n  type: gym" not in path.read_text() and "tune:" not in path.read_text()
)


@pytest.mark.parametrize("name", SUMO_YAMLS)
def test_every_shipped_yaml_builds_and_simulates(name: str, tmp_path: Path) -> None:
    if "resco:" in (SCENARIOS / name).read_text() and importlib.util.find_spec("sumo_rl") is None:
        pytest.skip("RESCO's maps come from the sumo-rl package: pip install 'flowsim[resco]'")
    config = load_config(SCENARIOS / name)
    summary = build_scenario(config, tmp_path)
    assert summary["edges"] > 0 and summary["total_length_m"] > 0
    if config.scenario.open:
        assert "route_length_m" in summary and "loop_length_m" not in summary
    else:
        assert summary["loop_length_m"] > 0
    result = simulate(config, steps=100)
    assert result["steps"] == 100 and result["collisions"] == 0
