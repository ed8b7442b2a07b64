"""`flowsim train` submitted with `ray job submit` to a two-node cluster made by `ray start`.

The cluster (``conftest.py``) is a head and a worker node, one CPU each, each with its own Ray
temp dir and its own network cache, all on 127.0.0.1. The job's YAML travels in Ray's
``runtime_env`` working directory (its local copy is deleted as soon as the job is
submitted), ``flowsim train`` inside the job joins the cluster through ``RAY_ADDRESS``
(``flowsim.distributed.cluster.init_ray``), its runners land on both nodes and each node
builds the ring's network into its own cache.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from flowsim import testing
from flowsim.runs.events import read_events

pytestmark = pytest.mark.cluster

FRAGMENT = 200

#: The files every finished run directory holds.
RUN_FILES = ("config.yaml", "progress.csv", "summary.json", "checkpoints/best.pt")


def _job_folder(root: Path, *files: Path) -> Path:
    """A folder with only ``files``: what the job uploads as its working dir."""
    folder = root / "job"
    folder.mkdir()
    for file in files or (testing.ROOT / "scenarios" / "ring.yaml",):
        shutil.copy(file, folder / file.name)
    return folder


def _submit(
    cluster,
    folder: Path,
    out: Path,
    submission_id: str,
    config: str = "ring.yaml",
    extra: tuple[str, ...] = (),
    **run: int | None,
) -> None:
    """``ray job submit --no-wait --working-dir FOLDER -- flowsim train CONFIG ...``."""
    entrypoint = ["flowsim", "train", config, "--out", str(out)]
    entrypoint += testing.cli_flags(testing.short_run(*extra, **run))
    submitted = cluster.ray(
        "job",
        "submit",
        "--no-wait",
        "--submission-id",
        submission_id,
        "--working-dir",
        str(folder),
        "--",
        *entrypoint,
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    # Uploaded: the job needs no file from the submitting machine any more.
    shutil.rmtree(folder)


def _job_status(cluster, submission_id: str) -> str:
    jobs = json.loads(cluster.ray("list", "jobs", "--format", "json").stdout or "[]")
    return next((j["status"] for j in jobs if j["submission_id"] == submission_id), "?")


def _wait_for_job(cluster, submission_id: str, timeout: float = 300.0) -> str:
    """The job's final status (SUCCEEDED, FAILED, STOPPED), or the last one seen at timeout.

    One ``ray job logs --follow`` waits for the end (a CLI call per poll would cost the
    shared cores more than the job); the status is then asked once, or polled if the log
    stream ended early."""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(subprocess.TimeoutExpired):
        cluster.ray("job", "logs", "--follow", submission_id, timeout=timeout)
    status = _job_status(cluster, submission_id)
    while status not in ("SUCCEEDED", "FAILED", "STOPPED") and time.monotonic() < deadline:
        time.sleep(2.0)
        status = _job_status(cluster, submission_id)
    return status


def _job_logs(cluster, submission_id: str) -> str:
    return cluster.ray("job", "logs", submission_id).stdout


def _runner_nodes(cluster, submission_id: str) -> set[str]:
    """The Ray nodes that ran the job's EnvRunner actors (alive or dead), from the State API."""
    jobs = json.loads(cluster.ray("list", "jobs", "--format", "json").stdout)
    job_id = next(j["job_id"] for j in jobs if j["submission_id"] == submission_id)
    listed = cluster.ray(
        "list", "actors", "--detail", "--format", "json", "--limit", "1000",
        "--filter", "class_name=EnvRunner",
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    return {a["node_id"] for a in json.loads(listed.stdout) if a["job_id"] == job_id}


def _node_ids(cluster) -> dict[str, str]:
    """Node id -> "head" or "worker"."""
    nodes = json.loads(cluster.ray("list", "nodes", "--format", "json").stdout)
    return {n["node_id"]: "head" if n["is_head_node"] else "worker" for n in nodes}


def _summary_nodes(cluster, run: Path) -> set[str]:
    """ "head" / "worker" for each node that ``summary.json``'s ``runner_nodes`` names."""
    named = json.loads((run / "summary.json").read_text())["runner_nodes"]
    return {role for node, role in _node_ids(cluster).items() if node[:12] in named}


def _run_directory(out: Path) -> Path:
    (run,) = out.iterdir()
    for name in RUN_FILES:
        assert (run / name).is_file(), f"{name} missing from {sorted(run.rglob('*'))}"
    return run


def _progress(run: Path) -> list[dict[str, str]]:
    with open(run / "progress.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def test_files_named_by_the_yaml_travel_with_the_job(ray_cluster, tmp_path: Path) -> None:
    """An OSM extract named by the YAML comes in the working dir; each node converts it."""
    osm = testing.ROOT / "flowsim" / "data" / "town.osm"
    folder = _job_folder(tmp_path, testing.ROOT / "scenarios" / "osm.yaml", osm)
    out = tmp_path / "runs"
    job = "flowsim-osm"
    _submit(
        ray_cluster,
        folder,
        out,
        job,
        config="osm.yaml",
        extra=("scenario.osm.file=town.osm",),  # beside the YAML in the uploaded folder
        iterations=1,
        horizon=40,
        warmup=None,
        fragment=40,
        minibatch=40,
        workers=2,
        epochs=1,
    )
    assert _wait_for_job(ray_cluster, job) == "SUCCEEDED", _job_logs(ray_cluster, job)
    nodes = _node_ids(ray_cluster)
    assert {nodes[n] for n in _runner_nodes(ray_cluster, job)} == {"head", "worker"}
    run = _run_directory(out)
    assert [int(r["env_steps"]) for r in _progress(run)] == [2 * 40]
    assert _summary_nodes(ray_cluster, run) == {"head", "worker"}
    # The YAML's path resolved inside the head's unpacked working dir, not the deleted folder;
    # the worker node unpacked the same package, in a folder of the same name under its own
    # temp dir: where a runner on a machine without the head's copy finds the file
    # (flowsim.config.paths.reroot_missing).
    osm = Path(yaml.safe_load((run / "config.yaml").read_text())["scenario"]["osm"]["file"])
    package = next(part for part in osm.parts if part.startswith("_ray_pkg_"))
    assert osm.is_relative_to(ray_cluster.root / "head")
    worker_dir = ray_cluster.root / "worker"
    assert list(
        worker_dir.glob(f"session_*/runtime_resources/working_dir_files/{package}/town.osm")
    )
    for cache in ("cache-head", "cache-worker"):
        assert list((ray_cluster.root / cache / "networks").glob("osm-*/osm.net.xml")), cache


def test_ray_job_trains_on_both_nodes_and_finishes_when_the_worker_raylet_dies(
    ray_cluster, tmp_path: Path
) -> None:
    """A ring job's runners sample on both nodes, each node building the ring into its own
    cache, until the worker node is taken away after the first iteration; the run finishes
    on the head with full batches. Runs last: the cluster has one node afterwards."""
    out = tmp_path / "runs"
    job = "flowsim-node-loss"
    _submit(
        ray_cluster,
        _job_folder(tmp_path),
        out,
        job,
        iterations=6,
        horizon=500,
        warmup=10,
        fragment=FRAGMENT,
        minibatch=None,
        workers=2,
        epochs=1,
    )
    worker = next(node for node in ray_cluster.nodes if node.name == "worker")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # the first iteration is written: runners are busy
        progress = list(out.glob("*/progress.csv"))
        if progress and len(progress[0].read_text().splitlines()) >= 2:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the job wrote no iteration: " + _job_logs(ray_cluster, job))
    os.kill(worker.raylet_pid(), signal.SIGKILL)

    status = _wait_for_job(ray_cluster, job)
    assert status == "SUCCEEDED", _job_logs(ray_cluster, job)
    run = _run_directory(out)
    rows = _progress(run)
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    # Full batches throughout: the head's runner samples the lost runner's share too.
    assert [int(r["env_steps"]) for r in rows] == [2 * FRAGMENT * i for i in range(1, 7)]
    assert int(float(rows[-1]["runner_restarts"])) >= 1
    restarts = [e for e in read_events(run) if e["kind"] == "runner_restart"]
    assert restarts and restarts[0]["iteration"] >= 2  # noticed after the kill
    assert _summary_nodes(ray_cluster, run) == {"head", "worker"}  # the lost node too
    assert len(list((run / "checkpoints").glob("checkpoint-*.pt"))) >= 1
    nodes = _node_ids(ray_cluster)  # the State API lists the lost node's actors too
    placed = _runner_nodes(ray_cluster, job) - {None}  # a replacement may never be placed
    assert {nodes[n] for n in placed} == {"head", "worker"}
    # No shared filesystem assumed: each node built the network into its own cache.
    for cache in ("cache-head", "cache-worker"):
        assert list((ray_cluster.root / cache / "networks").glob("ring-*/ring.net.xml")), cache
