"""The osm scenario: OpenStreetMap extracts to cached SUMO networks, random trips, bad input."""

from __future__ import annotations

import bz2
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import sumo

from flowsim.config import load_config
from flowsim.errors import ConfigError
from flowsim.scenarios import SCENARIOS, make_scenario
from flowsim.scenarios import osm as osm_module
from flowsim.scenarios.open import net_edges
from flowsim.scenarios.osm import DEMAND_VARIANTS, OSMScenario
from flowsim.testing import run_cli as flowsim

ROOT = Path(__file__).resolve().parents[2]
#: Shared data beside the repository (this workspace only; never copied into the repository).
WEST_OAKLAND = ROOT.parent / "shared" / "data" / "osm" / "West-Oakland.osm.bz2"
#: A race track shipped with eclipse-sumo: its raceway is for SUMO's vip class only.
SPREEWALDRING = Path(sumo.SUMO_HOME) / "tools" / "game" / "racing" / "spreewaldring.osm"

CONFIG = """\
name: osm_test
scenario:
  type: osm
  osm: {{{osm}}}
vehicles:
  - {{type: human, count: 0, controller: sumo}}
env:
  type: traffic_light_grid
sim:
  step_length: 1.0
"""


def town_osm(rows: int = 4, columns: int = 4) -> str:
    """OSM XML of a small street grid (about 150 m blocks) with signals at its inner crossings.

    Rows are secondary roads, columns residential ones; every second inner crossing has a
    ``highway=traffic_signals`` node. Synthetic, so no data licence applies.
    """
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="test">']

    def node_id(row: int, column: int) -> int:
        return 1 + row * columns + column

    for row in range(rows):
        for column in range(columns):
            inner = 0 < row < rows - 1 and 0 < column < columns - 1
            signal = '<tag k="highway" v="traffic_signals"/>' if inner else ""
            lat, lon = 52.5 + row * 0.00135, 13.4 + column * 0.0022
            lines.append(
                f'  <node id="{node_id(row, column)}" lat="{lat:.7f}" lon="{lon:.7f}">'
                f"{signal}</node>"
            )
    way = 100
    for row in range(rows):
        refs = "".join(f'<nd ref="{node_id(row, c)}"/>' for c in range(columns))
        lines.append(f'  <way id="{way}">{refs}<tag k="highway" v="secondary"/></way>')
        way += 1
    for column in range(columns):
        refs = "".join(f'<nd ref="{node_id(r, column)}"/>' for r in range(rows))
        lines.append(f'  <way id="{way}">{refs}<tag k="highway" v="residential"/></way>')
        way += 1
    return "\n".join([*lines, "</osm>"]) + "\n"


FOOTWAYS_ONLY = """\
<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="test">
  <node id="1" lat="52.5000" lon="13.4000"/>
  <node id="2" lat="52.5000" lon="13.4050"/>
  <node id="3" lat="52.5030" lon="13.4050"/>
  <way id="10"><nd ref="1"/><nd ref="2"/><nd ref="3"/><tag k="highway" v="footway"/></way>
  <way id="11"><nd ref="3"/><nd ref="1"/><tag k="highway" v="cycleway"/></way>
</osm>
"""


def write_config(folder: Path, osm: str) -> Path:
    """A YAML experiment in ``folder`` whose ``scenario.osm`` mapping is ``{osm}``."""
    path = folder / "osm.yaml"
    path.write_text(CONFIG.format(osm=osm))
    return path


@pytest.fixture
def town(tmp_path: Path) -> Path:
    """The synthetic town grid as ``town.osm.bz2`` in a temporary folder."""
    path = tmp_path / "town.osm.bz2"
    path.write_bytes(bz2.compress(town_osm().encode()))
    return path


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty network cache for this test alone."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("FLOWSIM_CACHE_DIR", str(folder))
    return folder


def test_osm_is_registered() -> None:
    assert SCENARIOS["osm"] is OSMScenario


def test_town_builds_and_vehicles_enter_and_leave(town: Path) -> None:
    config = write_config(town.parent, "file: town.osm.bz2, trips_period: 3")  # relative path
    built = flowsim("scenarios", "build", str(config), "--out", str(town.parent / "out"), "--json")
    assert built.returncode == 0, built.stderr
    summary = json.loads(built.stdout)
    assert summary["edges"] > 20 and summary["lanes"] >= summary["edges"]
    assert summary["traffic_lights"] >= 1
    run = flowsim("simulate", str(config), "--steps", "600", "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["entered"] >= 150  # one trip every 3 s for 600 s
    assert result["arrived"] > 50 and result["collisions"] == 0
    assert result["mean_travel_time_s"] > 0


def test_instance_is_open_and_reproducible(town: Path) -> None:
    config = load_config(write_config(town.parent, "file: town.osm.bz2"))
    scenario = make_scenario(config)
    first = scenario.instance(np.random.default_rng(3))
    text = first.route_file.read_text()
    again = make_scenario(config).instance(np.random.default_rng(3))
    assert again.route_file.read_text() == text
    assert first.open and first.ring_edges == () and first.vehicles == ()
    assert first.traffic_lights
    assert text.count("<trip ") == 1800  # trips_period 2 s up to trips_end 3600 s
    assert 'type="human"' in text and 'id="human_osm0"' in text
    edges = net_edges(first.net_file)
    assert all(e in edges for e in re.findall(r'(?:from|to)="([^"]+)"', text))


def test_demand_variants_are_bounded_and_cached(town: Path, private_cache: Path) -> None:
    config = load_config(write_config(town.parent, "file: town.osm.bz2, trips_end: 600"))
    scenario = make_scenario(config)
    texts = {
        scenario.instance(np.random.default_rng(seed)).route_file.read_text() for seed in range(40)
    }
    assert 1 < len(texts) <= DEMAND_VARIANTS
    assert len(list((private_cache / "networks").glob("osm-trips-*"))) == len(texts)


def test_second_build_is_a_cache_hit(
    town: Path, private_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    real = osm_module.run_netconvert

    def counting(args: list[str], cwd: Path) -> None:
        calls.append(args)
        real(args, cwd)

    monkeypatch.setattr(osm_module, "run_netconvert", counting)
    config = load_config(write_config(town.parent, "file: town.osm.bz2"))
    net_file = OSMScenario(config.scenario, config.vehicles).network()
    stamp = net_file.stat().st_mtime_ns
    assert OSMScenario(config.scenario, config.vehicles).network() == net_file
    # The key is the file's bytes: a renamed copy is the same network, an edited one is not.
    copy = town.parent / "renamed.osm.bz2"
    shutil.copyfile(town, copy)
    same = load_config(write_config(town.parent, "file: renamed.osm.bz2"))
    assert OSMScenario(same.scenario, same.vehicles).network() == net_file
    assert len(calls) == 1 and net_file.stat().st_mtime_ns == stamp
    copy.write_bytes(bz2.compress(town_osm(rows=5).encode()))
    edited = load_config(write_config(town.parent, "file: renamed.osm.bz2"))
    assert OSMScenario(edited.scenario, edited.vehicles).network() != net_file
    assert len(calls) == 2
    assert len(list((private_cache / "networks").glob("osm-????????????????"))) == 2


def test_signal_programme_follows_the_config(town: Path) -> None:
    fixed = load_config(
        write_config(town.parent, "file: town.osm.bz2"),
        ["scenario.signals.program=fixed", "scenario.signals.green=20"],
    )
    net_file = OSMScenario(fixed.scenario, fixed.vehicles).network()
    text = net_file.read_text()
    assert 'type="static"' in text and 'type="actuated"' not in text
    assert 'duration="20"' in text


def test_routes_file_replaces_random_trips(town: Path) -> None:
    config = load_config(write_config(town.parent, "file: town.osm.bz2"))
    net_file = OSMScenario(config.scenario, config.vehicles).network()
    first, second = sorted(e for e in net_edges(net_file) if not e.startswith("-"))[:2]
    routes = town.parent / "mine.rou.xml"
    routes.write_text(
        '<routes>\n  <vType id="car" accel="2"/>\n'
        f'  <vehicle id="a" type="car" depart="0"><route edges="{first}"/></vehicle>\n'
        f'  <trip id="b" depart="5" from="{first}" to="{second}"/>\n</routes>\n'
    )
    given = write_config(town.parent, "file: town.osm.bz2, routes_file: mine.rou.xml")
    scenario = make_scenario(load_config(given))
    text = scenario.instance(np.random.default_rng(0)).route_file.read_text()
    assert 'id="car"' not in text and text.count('type="human"') == 2
    run = flowsim("simulate", str(given), "--steps", "120", "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["entered"] == 2
    routes.write_text('<routes><trip id="c" depart="0" from="nowhere" to="x"/></routes>\n')
    with pytest.raises(ConfigError, match=r"routes_file.*'nowhere'"):
        make_scenario(load_config(given)).instance(np.random.default_rng(0))


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.osm", b"", "is empty"),
        ("garbage.osm", bytes(range(256)) * 8, "cannot read"),
        ("text.osm", b"this is not xml\n", "cannot read"),
        ("cut.osm.bz2", bz2.compress(town_osm().encode())[:300], "truncated or corrupt bzip2"),
        ("cut.osm", town_osm().encode()[:700], "cannot read"),
        ("paths.osm", FOOTWAYS_ONLY.encode(), "no roads that passenger cars"),
    ],
    ids=["empty", "garbage", "text", "truncated-bz2", "truncated-xml", "footways-only"],
)
def test_bad_extract_exits_2_naming_osm_file(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    (tmp_path / name).write_bytes(content)
    result = flowsim("simulate", str(write_config(tmp_path, f"file: {name}")), "--steps", "5")
    assert result.returncode == 2, result.stderr
    assert "scenario.osm.file" in result.stderr and reason in result.stderr
    assert "Traceback" not in result.stderr


def test_race_track_has_no_roads_for_cars(tmp_path: Path) -> None:
    # spreewaldring.osm: a raceway (vip only in SUMO's typemap) and one dead-end tertiary road.
    if not SPREEWALDRING.is_file():
        pytest.skip(f"{SPREEWALDRING} is not part of this eclipse-sumo")
    shutil.copyfile(SPREEWALDRING, tmp_path / "spreewaldring.osm")
    config = load_config(write_config(tmp_path, "file: spreewaldring.osm"))
    with pytest.raises(ConfigError, match=r"scenario\.osm\.file: .* no roads that passenger cars"):
        OSMScenario(config.scenario, config.vehicles).network()


def test_no_valid_trips_names_the_fix(town: Path) -> None:
    config = load_config(
        write_config(town.parent, "file: town.osm.bz2, min_trip_distance: 50000, trips_end: 60")
    )
    with pytest.raises(ConfigError, match=r"randomTrips found no valid trips.*min_trip_distance"):
        make_scenario(config).instance(np.random.default_rng(0))


def test_place_without_osmnx_or_internet_exits_2(tmp_path: Path) -> None:
    config = write_config(tmp_path, "place: 'Piedmont, California'")
    # Should osmnx be installed, its requests go to a closed loopback port, never outside.
    proxy = "http://127.0.0.1:9"
    env = {**os.environ, "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "NO_PROXY": ""}
    env.update({key.lower(): value for key, value in env.items() if key.endswith("_PROXY")})
    result = flowsim("simulate", str(config), "--steps", "5", env=env)
    assert result.returncode == 2, result.stderr
    assert "osm.place needs osmnx and internet" in result.stderr
    assert "Traceback" not in result.stderr


def test_shipped_yaml_runs_on_a_given_extract(town: Path) -> None:
    result = flowsim(
        "simulate", "scenarios/osm.yaml", "--steps", "300", "--json",
        "--set", f"scenario.osm.file={town}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["entered"] > 0


def test_west_oakland_builds_with_traffic_lights(tmp_path: Path) -> None:
    if not WEST_OAKLAND.is_file():
        pytest.skip(f"West-Oakland extract not found at {WEST_OAKLAND} (workspace data only)")
    config = write_config(tmp_path, f"file: {WEST_OAKLAND}, trips_period: 4")
    built = flowsim("scenarios", "build", str(config), "--out", str(tmp_path / "out"), "--json")
    assert built.returncode == 0, built.stderr
    summary = json.loads(built.stdout)
    assert summary["edges"] > 40 and summary["traffic_lights"] >= 1
    run = flowsim("simulate", str(config), "--steps", "600", "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["entered"] >= 140 and result["arrived"] > 50
