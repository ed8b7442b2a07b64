"""scenario.type sumo: your own .sumocfg or network and routes, used as they are, and bad input.

The files are the tests' own (``conftest.py``: a 2 x 2 signalised grid made by netgenerate,
routes of every kind, a ``.sumocfg`` whose window starts at 100 s).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from flowsim.config import RESCO_MAPS, load_config
from flowsim.errors import ConfigError
from flowsim.scenarios import SCENARIOS, make_scenario, sumo_binary
from flowsim.scenarios import sumo as sumo_module
from flowsim.scenarios.sumo import SumoScenario, resco_config, resolve_files
from flowsim.testing import run_cli as flowsim

OwnYaml = Callable[..., Path]


def _relative(path: Path, start: Path) -> str:
    return os.path.relpath(path, start)


# -- files and time window ----------------------------------------------------------------------
def test_a_sumocfg_names_files_relative_to_itself_and_sets_the_window(sumo_files, own_yaml) -> None:
    yaml_path = own_yaml(f"config: {_relative(sumo_files.sumocfg, own_yaml('x: 1').parent)}")
    files = resolve_files(load_config(yaml_path).scenario.sumo)
    assert files.net_file == sumo_files.net_file.resolve()
    assert files.route_files == (sumo_files.route_file.resolve(),)
    assert (files.begin, files.end) == (sumo_files.begin, sumo_files.end)
    assert files.key == "scenario.sumo.config"


def test_the_yaml_window_overrides_the_sumocfg(sumo_files, own_yaml) -> None:
    config = load_config(own_yaml(f"config: {sumo_files.sumocfg}, begin: 200, end: 300"))
    files = resolve_files(config.scenario.sumo)
    assert (files.begin, files.end) == (200.0, 300.0)


def test_net_file_and_route_files_resolve_relative_to_the_yaml(sumo_files, own_yaml) -> None:
    folder = own_yaml("x: 1").parent
    net = _relative(sumo_files.net_file, folder)
    routes = _relative(sumo_files.route_file, folder)
    config = load_config(own_yaml(f"net_file: {net}, route_files: [{routes}]"))
    files = resolve_files(config.scenario.sumo)
    assert files.net_file == sumo_files.net_file.resolve()
    assert files.route_files == (sumo_files.route_file.resolve(),)
    assert (files.begin, files.end) == (0.0, None)


def test_the_instance_is_open_with_the_files_and_their_window(sumo_files, own_yaml) -> None:
    config = load_config(own_yaml(f"config: {sumo_files.sumocfg}"))
    scenario = make_scenario(config)
    assert isinstance(scenario, SumoScenario) and SCENARIOS["sumo"] is SumoScenario
    assert config.scenario.open
    instance = scenario.instance(np.random.default_rng(0))
    assert instance.open and instance.vehicles == ()
    assert instance.net_file == sumo_files.net_file.resolve()  # used as it is: no netconvert
    assert instance.all_route_files[1:] == (sumo_files.route_file.resolve(),)
    assert instance.traffic_lights == sumo_files.traffic_lights
    assert (instance.begin, instance.end) == (sumo_files.begin, sumo_files.end)


def test_a_signal_env_runs_from_begin_with_the_files_vehicles(sumo_files, own_yaml) -> None:
    from flowsim.envs.make import make_env

    env = make_env(load_config(own_yaml(f"config: {sumo_files.sumocfg}")))
    try:
        env.reset(seed=0)
        kernel = env.unwrapped.kernel
        assert sumo_files.begin <= kernel.time < sumo_files.begin + 30
        seen: set[str] = set()
        truncated = False
        steps = 0
        while not truncated:
            _, reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert np.isfinite(reward) and not terminated
            seen |= {kernel.vehicle_type(i) for i in kernel.vehicle_ids}
            steps += 1
        assert steps == 20 and info["sim_time"] > sumo_files.begin + 20
        assert seen <= {"car", "bus"} and "car" in seen  # the files' own vTypes
    finally:
        env.close()


# -- through the CLI ----------------------------------------------------------------------------
def test_flowsim_simulate_runs_your_own_files(sumo_files, own_yaml) -> None:
    result = flowsim(
        "simulate", str(own_yaml(f"config: {sumo_files.sumocfg}")), "--steps", "120", "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["entered"] > 10 and summary["arrived"] > 0 and summary["collisions"] == 0


def test_scenarios_build_writes_files_that_sumo_runs_alone(sumo_files, own_yaml, tmp_path) -> None:
    out = tmp_path / "built"
    yaml_path = own_yaml(f"config: {sumo_files.sumocfg}, end: 400")
    result = flowsim("scenarios", "build", str(yaml_path), "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["traffic_lights"] == 4 and summary["scenario"] == "sumo"
    assert (summary["begin"], summary["end"]) == (sumo_files.begin, 400.0)
    assert summary["route_flows"] == 2 and summary["route_trips"] == 1
    assert summary["sources"]["net_file"] == str(sumo_files.net_file.resolve())
    assert [Path(p).name for p in summary["route_files"]] == ["own_files.rou.xml", "grid.rou.xml"]
    assert all(Path(p).parent == out for p in summary["route_files"])
    alone = subprocess.run(
        [
            sumo_binary("sumo"),
            "-c",
            summary["sumocfg"],
            "--no-step-log",
            "--tripinfo-output",
            str(out / "trips.xml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert alone.returncode == 0, alone.stderr
    assert "<tripinfo " in (out / "trips.xml").read_text()


def test_bad_files_exit_2_naming_the_key_without_a_traceback(
    sumo_files, own_yaml, tmp_path
) -> None:
    routes = tmp_path / "other.rou.xml"
    routes.write_text('<routes><trip id="t" from="nowhere" to="A0B0" depart="0"/></routes>')
    yaml_path = own_yaml(f"net_file: {sumo_files.net_file}, route_files: [{routes}]")
    result = flowsim("simulate", str(yaml_path), "--steps", "5")
    assert result.returncode == 2
    assert "scenario.sumo.route_files" in result.stderr and "'nowhere'" in result.stderr
    assert "Traceback" not in result.stderr


# -- bad input ----------------------------------------------------------------------------------
def _files_error(config_yaml: Path) -> str:
    """The ConfigError message of loading the config and resolving its files."""
    with pytest.raises(ConfigError) as caught:
        config = load_config(config_yaml)
        make_scenario(config).instance(np.random.default_rng(0))
    return str(caught.value)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_missing_file_is_named_by_its_key(own_yaml, tmp_path) -> None:
    message = _files_error(own_yaml(f"config: {tmp_path / 'absent.sumocfg'}"))
    assert "scenario.sumo.config" in message and "file not found" in message
    message = _files_error(own_yaml(f"net_file: {tmp_path}/absent.net.xml"))
    assert "scenario.sumo.net_file" in message and "file not found" in message


def test_an_unreadable_file_is_named_by_its_key(own_yaml, tmp_path) -> None:
    net = _write(tmp_path / "locked.net.xml", "<net/>")
    net.chmod(0)
    try:
        with net.open("rb"):
            unreadable = False
    except PermissionError:
        unreadable = True
    if not unreadable:  # root reads every file: a file whose reads fail stands in
        net = Path("/proc/self/mem")
        if not net.is_file():
            pytest.skip("no file here that this user cannot read")
    message = _files_error(own_yaml(f"net_file: {net}"))
    assert "scenario.sumo.net_file" in message and "cannot read" in message


@pytest.mark.parametrize(
    ("named", "problem"),
    [
        ('<net-file value="gone.net.xml"/><route-files value="grid.rou.xml"/>', "gone.net.xml"),
        (
            '<net-file value="grid.net.xml"/><route-files value="grid.rou.xml, gone.rou.xml"/>',
            "gone.rou.xml",
        ),
        (
            '<net-file value="grid.net.xml"/><additional-files value="gone.add.xml"/>',
            "gone.add.xml",
        ),
        ('<net-file value="."/>', "is a folder"),
        ('<route-files value="grid.rou.xml"/>', "names no net-file"),
    ],
)
def test_a_sumocfg_naming_files_that_do_not_exist(sumo_files, own_yaml, named, problem) -> None:
    config = _write(
        sumo_files.folder / f"bad-{abs(hash(named))}.sumocfg",
        f"<configuration><input>{named}</input></configuration>",
    )
    message = _files_error(own_yaml(f"config: {config}"))
    assert "scenario.sumo.config" in message and problem in message and config.name in message


@pytest.mark.parametrize("kind", ["net", "routes", "sumocfg"])
def test_malformed_or_truncated_xml(sumo_files, own_yaml, tmp_path, kind) -> None:
    net, routes = sumo_files.net_file, sumo_files.route_file
    if kind == "net":
        text = net.read_text()
        net = _write(tmp_path / "cut.net.xml", text[: len(text) // 2])
    elif kind == "routes":
        text = routes.read_text()
        routes = _write(tmp_path / "cut.rou.xml", text[: len(text) // 2])
    else:
        config = _write(tmp_path / "cut.sumocfg", "<configuration><input><net-file value=")
        message = _files_error(own_yaml(f"config: {config}"))
        assert "scenario.sumo.config" in message and "not well-formed XML" in message
        return
    message = _files_error(own_yaml(f"net_file: {net}, route_files: [{routes}]"))
    key = "scenario.sumo.net_file" if kind == "net" else "scenario.sumo.route_files"
    assert key in message and "not well-formed XML" in message and "cut short" in message


def test_files_of_the_wrong_kind(sumo_files, own_yaml) -> None:
    message = _files_error(own_yaml(f"net_file: {sumo_files.route_file}"))
    assert "scenario.sumo.net_file" in message and "<routes> root element, not <net>" in message
    message = _files_error(own_yaml(f"config: {sumo_files.net_file}"))
    assert "scenario.sumo.config" in message and "not <configuration>" in message


def test_a_compressed_network_is_refused_with_the_fix(sumo_files, own_yaml, tmp_path) -> None:
    packed = tmp_path / "grid.net.xml.gz"
    packed.write_bytes(gzip.compress(sumo_files.net_file.read_bytes()))
    message = _files_error(own_yaml(f"net_file: {packed}"))
    assert "scenario.sumo.net_file" in message and "gunzip" in message


@pytest.mark.parametrize(
    ("element", "edge"),
    [
        ('<route id="r" edges="left0A0 A0B0 B0exit"/>', "B0exit"),
        ('<vehicle id="v" depart="0"><route edges="ghost A0B0"/></vehicle>', "ghost"),
        ('<trip id="t" from="left0A0" to="nowhere" depart="0"/>', "nowhere"),
        ('<flow id="f" from="elsewhere" to="A0B0" begin="0" end="9" period="3"/>', "elsewhere"),
        ('<trip id="t" from="left0A0" to="B0right0" via="detour" depart="0"/>', "detour"),
    ],
)
def test_a_route_using_an_edge_the_network_lacks(
    sumo_files, own_yaml, tmp_path, element, edge
) -> None:
    routes = _write(tmp_path / "wrong.rou.xml", f"<routes>\n  {element}\n</routes>\n")
    message = _files_error(own_yaml(f"net_file: {sumo_files.net_file}, route_files: [{routes}]"))
    assert "scenario.sumo.route_files" in message and f"'{edge}'" in message
    assert "wrong.rou.xml" in message and "line 2" in message and "grid.net.xml" in message


def test_a_route_file_out_of_departure_order(sumo_files, own_yaml, tmp_path) -> None:
    routes = _write(
        tmp_path / "unsorted.rou.xml",
        '<routes>\n  <trip id="late" from="left0A0" to="A0B0" depart="50"/>\n'
        '  <flow id="early" from="left0A0" to="A0B0" begin="10" end="90" period="5"/>\n</routes>\n',
    )
    message = _files_error(own_yaml(f"net_file: {sumo_files.net_file}, route_files: [{routes}]"))
    assert "scenario.sumo.route_files" in message and "not sorted by departure time" in message
    assert '<flow id="early"> (line 3)' in message and "sort_routes.py" in message


def test_begin_not_before_end(sumo_files, own_yaml) -> None:
    message = _files_error(own_yaml(f"config: {sumo_files.sumocfg}, begin: 300, end: 300"))
    assert "scenario.sumo" in message and "begin 300 s is not before end 300 s" in message
    message = _files_error(own_yaml(f"config: {sumo_files.sumocfg}, begin: {sumo_files.end}"))
    assert "scenario.sumo.begin" in message and "not before end" in message


def test_neither_or_both_sources(sumo_files, own_yaml) -> None:
    message = _files_error(own_yaml("begin: 0"))
    assert "sumo.config" in message and "sumo.net_file" in message and "sumo.resco" in message
    message = _files_error(
        own_yaml(f"config: {sumo_files.sumocfg}, net_file: {sumo_files.net_file}")
    )
    assert "not config and net_file" in message
    message = _files_error(
        own_yaml(f"config: {sumo_files.sumocfg}, route_files: [{sumo_files.route_file}]")
    )
    assert "route_files goes with net_file" in message


def test_a_group_named_like_a_vtype_of_the_files(sumo_files, tmp_path) -> None:
    yaml_path = _write(
        tmp_path / "clash.yaml",
        f"scenario: {{type: sumo, sumo: {{config: {sumo_files.sumocfg}}}}}\n"
        "vehicles: [{type: car, count: 0, controller: sumo}]\n",
    )
    message = _files_error(yaml_path)
    assert "vehicles[0].type" in message and "'car'" in message and "rename the group" in message


def test_resco_without_sumo_rl_names_the_pip_line(own_yaml, monkeypatch) -> None:
    monkeypatch.setattr(sumo_module, "RESCO_PACKAGE", "flowsim_no_such_package")
    message = _files_error(own_yaml("resco: cologne1"))
    assert "scenario.sumo.resco" in message and "pip install 'flowsim[resco]'" in message


def test_an_unknown_resco_map_lists_the_eight(own_yaml) -> None:
    message = _files_error(own_yaml("resco: cologne2"))
    assert "scenario.sumo.resco" in message and all(name in message for name in RESCO_MAPS)
    with pytest.raises(ConfigError, match="arterial4x4"):
        resco_config("cologne2")
