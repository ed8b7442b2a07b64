"""A user's own SUMO files, made by the tests themselves: a small signalised grid (netgenerate),
routes of every kind and a ``.sumocfg`` with a time window that does not start at 0."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from flowsim.scenarios import sumo_binary

#: The ``.sumocfg``'s time window: the demand starts at BEGIN, as RESCO's city maps do.
BEGIN, END = 100, 700

ROUTES = f"""\
<routes>
  <vType id="car" accel="2.6" decel="4.5" length="5" maxSpeed="13.9"/>
  <vType id="bus" accel="1.2" decel="4.0" length="12" maxSpeed="11"/>
  <route id="west_east" edges="left0A0 A0B0 B0right0"/>
  <vehicle id="early" type="car" route="west_east" depart="{BEGIN}"/>
  <flow id="north_south" type="car" from="top0A1" to="A0bottom0" begin="{BEGIN}" end="{END}"
        period="6"/>
  <flow id="east_west" type="car" from="right0B0" to="A0left0" begin="{BEGIN}" end="{END}"
        period="8"/>
  <vehicle id="inline" type="bus" depart="{BEGIN + 5}">
    <route edges="top1B1 B1B0 B0bottom1"/>
  </vehicle>
  <trip id="crossing" type="car" from="left1A1" to="B0bottom1" depart="{BEGIN + 10}"/>
</routes>
"""

SUMOCFG = f"""\
<configuration>
  <input>
    <net-file value="grid.net.xml"/>
    <route-files value="grid.rou.xml"/>
  </input>
  <time>
    <begin value="{BEGIN}"/>
    <end value="{END}"/>
  </time>
</configuration>
"""


@dataclass(frozen=True)
class SumoFiles:
    """The files a user would bring: network, routes and a ``.sumocfg`` naming both."""

    folder: Path
    net_file: Path
    route_file: Path
    sumocfg: Path
    traffic_lights: tuple[str, ...] = ("A0", "A1", "B0", "B1")
    begin: float = BEGIN
    end: float = END


def make_sumo_files(folder: Path) -> SumoFiles:
    """Write a 2 x 2 grid of signalised crossings (100 m blocks, 100 m approaches), its routes
    (a route, a vehicle with its own route, a trip, two flows) and a ``.sumocfg`` to ``folder``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    net_file = folder / "grid.net.xml"
    subprocess.run(
        [
            sumo_binary("netgenerate"),
            "--grid",
            "--grid.number=2",
            "--grid.length=100",
            "--grid.attach-length=100",
            "--default-junction-type=traffic_light",
            "--no-turnarounds=true",
            f"--output-file={net_file}",
        ],
        check=True,
        capture_output=True,
    )
    route_file = folder / "grid.rou.xml"
    route_file.write_text(ROUTES)
    sumocfg = folder / "grid.sumocfg"
    sumocfg.write_text(SUMOCFG)
    return SumoFiles(folder, net_file, route_file, sumocfg)


@pytest.fixture(scope="session")
def sumo_files(tmp_path_factory: pytest.TempPathFactory) -> SumoFiles:
    """The user's files, built once per test session (treat them as read-only)."""
    return make_sumo_files(tmp_path_factory.mktemp("own-sumo-files"))


def experiment_yaml(sumo: str, env: str = "traffic_light_grid", extra: str = "") -> str:
    """An experiment on your own files: ``sumo`` is the inside of ``scenario.sumo: {...}``."""
    return f"""\
name: own_files
scenario:
  type: sumo
  sumo: {{{sumo}}}
vehicles:
  - {{type: human, count: 0, controller: sumo}}
env:
  type: {env}
  horizon: 20
  warmup_steps: 0
sim:
  step_length: 1.0
{extra}"""


@pytest.fixture
def own_yaml(tmp_path: Path) -> Callable[..., Path]:
    """Write an experiment on your own files to ``tmp_path/own.yaml``: ``own_yaml(sumo, env=...,
    extra=...)``, ``sumo`` being the inside of ``scenario.sumo: {...}``; returns its path."""

    def write(sumo: str, env: str = "traffic_light_grid", extra: str = "") -> Path:
        path = tmp_path / "own.yaml"
        path.write_text(experiment_yaml(sumo, env, extra))
        return path

    return write
