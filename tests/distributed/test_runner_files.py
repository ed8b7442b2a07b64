"""A runner on a node without the driver's copy of the job's folder finds the YAML's files in
its own copy (Ray unpacks a job's working dir per node, under each node's temp dir)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flowsim import testing
from flowsim.config import load_config
from flowsim.distributed import EnvRunner

PACKAGE = "_ray_pkg_0123abcd"  # the package's folder name: the same on every node


def test_osm_runner_finds_the_extract_in_its_own_working_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = tmp_path / "head" / "working_dir_files" / PACKAGE
    driver.mkdir(parents=True)
    shutil.copy(testing.ROOT / "scenarios" / "osm.yaml", driver)
    shutil.copy(testing.ROOT / "flowsim" / "data" / "town.osm", driver)
    config = load_config(
        driver / "osm.yaml",
        ["scenario.osm.file=town.osm", "env.horizon=20", "sampler.num_workers=0"],
    )
    here = tmp_path / "worker" / "working_dir_files" / PACKAGE
    shutil.copytree(driver, here)
    shutil.rmtree(driver)  # the driver's copy is on another machine
    monkeypatch.delenv("TUNE_ORIG_WORKING_DIR", raising=False)
    monkeypatch.chdir(here)  # Ray makes the job's working dir each worker's cwd

    runner = EnvRunner(config, seed=1)
    try:
        assert runner.config.scenario.osm.file == here / "town.osm"
        assert len(runner.sample(num_steps=20)) == 20
    finally:
        runner.close()
