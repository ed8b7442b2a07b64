"""The files a config names, and re-rooting them into another node's copy of the job's folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from flowsim.config import FlowsimConfig, parse_config
from flowsim.config.paths import config_paths, reroot_missing

PACKAGE = "_ray_pkg_0123abcd"  # a Ray working-dir package: the same name on every node


def _sumo_config(folder: Path) -> FlowsimConfig:
    folder.mkdir(parents=True)
    for name in ("net.net.xml", "a.rou.xml", "b.rou.xml", "detectors.add.xml"):
        (folder / name).write_text("<x/>")
    data = {
        "scenario": {
            "type": "sumo",
            "sumo": {"net_file": "net.net.xml", "route_files": ["a.rou.xml", "b.rou.xml"]},
        },
        "env": {"type": "traffic_light_grid"},
        "sim": {"additional_files": ["detectors.add.xml"]},
    }
    return parse_config(data, base_dir=folder)


def test_config_paths_lists_every_file_by_key(tmp_path: Path) -> None:
    folder = tmp_path / PACKAGE
    paths = config_paths(_sumo_config(folder))
    assert paths == {
        "scenario.sumo.net_file": folder / "net.net.xml",
        "scenario.sumo.route_files.0": folder / "a.rou.xml",
        "scenario.sumo.route_files.1": folder / "b.rou.xml",
        "sim.additional_files.0": folder / "detectors.add.xml",
    }
    assert config_paths(FlowsimConfig()) == {}


def test_missing_files_move_into_this_nodes_copy(tmp_path: Path) -> None:
    driver = tmp_path / "head" / "working_dir_files" / PACKAGE
    config = _sumo_config(driver)
    here = tmp_path / "worker" / "working_dir_files" / PACKAGE
    shutil.copytree(driver, here)
    assert reroot_missing(config, here) == (config, {})  # all there: used as they are

    shutil.rmtree(driver)
    (here / "b.rou.xml").unlink()  # nowhere: kept under its name, to fail where it is opened
    moved, keys = reroot_missing(config, here)
    assert sorted(keys) == [
        "scenario.sumo.net_file",
        "scenario.sumo.route_files.0",
        "sim.additional_files.0",
    ]
    assert moved.scenario.sumo.route_files == [here / "a.rou.xml", driver / "b.rou.xml"]
    assert moved.sim.additional_files == [here / "detectors.add.xml"]
    assert config.scenario.sumo.net_file == driver / "net.net.xml"  # the original is untouched
    assert moved.vehicles is config.vehicles
