"""Training survives injected faults on real processes, with nothing lost and everything logged.

Each fault hits a real ``flowsim train`` run on the ring: SUMO killed in a runner, a runner's
process killed, the trainer SIGKILLed mid-iteration and resumed, the disk full while a
checkpoint is written (injected ENOSPC, and a real full tmpfs where this machine may mount
one), a checkpoint truncated on disk. For each, the run ends with every iteration in
``progress.csv`` once and in order, each iteration's batch full, the newest intact checkpoint
in use, and the fault in ``events.jsonl`` and in ``progress.csv``'s counters.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from flowsim.bench.faults import full_disk, kill_process, truncate
from flowsim.config import FlowsimConfig, apply_overrides, dump_config
from flowsim.errors import FlowsimError
from flowsim.runs.directory import RunDirectory
from flowsim.runs.events import FAULT_COLUMNS, read_events
from flowsim.runs.training import train
from flowsim.testing import ROOT, run_cli, short_run

#: Steps per runner and iteration: small, so each test trains a few iterations in seconds.
FRAGMENT = 200


def _config(iterations: int, *overrides: str) -> FlowsimConfig:
    return apply_overrides(
        FlowsimConfig(),
        short_run(
            "train.keep_checkpoints=2",
            *overrides,
            iterations=iterations,
            horizon=500,
            warmup=10,
            fragment=FRAGMENT,
            minibatch=None,
            workers=None,
            epochs=1,
        ),
    )


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "progress.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def _assert_complete(run_dir: Path, iterations: int, steps_per_iteration: int) -> list[dict]:
    """Every iteration once, in order, each with a full batch; the counters present."""
    rows = _rows(run_dir)
    assert [int(r["iteration"]) for r in rows] == list(range(1, iterations + 1))
    steps = [int(r["env_steps"]) for r in rows]
    assert steps == [steps_per_iteration * (i + 1) for i in range(iterations)]
    assert set(FAULT_COLUMNS) <= set(rows[0])
    return rows


def _kinds(run_dir: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in read_events(run_dir):
        counts[event["kind"]] = counts.get(event["kind"], 0) + event["count"]
    return counts


def test_clean_run_has_no_events_and_zero_counters(tmp_path: Path) -> None:
    run = train(_config(2), out=tmp_path)
    rows = _assert_complete(run.directory, 2, FRAGMENT)
    assert read_events(run.directory) == []
    assert all(float(rows[-1][c]) == 0 for c in FAULT_COLUMNS)
    summary = json.loads((run.directory / "summary.json").read_text())
    assert summary["faults"] == dict.fromkeys(FAULT_COLUMNS, 0)


def test_sumo_killed_mid_episode_is_restarted_and_counted(tmp_path: Path) -> None:
    config = _config(4, "sim.backend=traci")
    killed: list[int] = []

    def kill_sumo(row: dict, trainer) -> None:
        if row["iteration"] == 2:  # the horizon is 500: an episode is in flight
            (described,) = trainer.group.describe()
            killed.extend(p for p in described["sumo_pids"] if kill_process(p))

    run = train(config, out=tmp_path, callback=kill_sumo)
    assert killed
    rows = _assert_complete(run.directory, 4, FRAGMENT)
    assert int(float(rows[-1]["sim_restarts"])) >= 1
    assert int(float(rows[1]["sim_restarts"])) == 0  # counted where it happened, not before
    assert _kinds(run.directory).get("sim_restart", 0) >= 1


def test_runner_process_killed_is_replaced_and_counted(tmp_path: Path) -> None:
    import ray

    config = _config(4, "sampler.num_workers=2")
    killed: list[int] = []

    def kill_runner(row: dict, trainer) -> None:
        if row["iteration"] == 1:  # at once, and again while the next batch is sampled
            described = trainer.group.describe()
            killed.append(kill_process(described[0]["pid"]))
            timer = threading.Timer(0.3, lambda: killed.append(kill_process(described[1]["pid"])))
            timer.start()

    try:
        run = train(config, out=tmp_path, callback=kill_runner)
    finally:
        ray.shutdown()
    assert killed[:1] == [True]
    rows = _assert_complete(run.directory, 4, 2 * FRAGMENT)
    restarts = int(float(rows[-1]["runner_restarts"]))
    assert restarts == sum(killed) >= 1
    events = [e for e in read_events(run.directory) if e["kind"] == "runner_restart"]
    assert sum(e["count"] for e in events) == restarts
    assert all("runner" in e["detail"] for e in events)


def test_trainer_sigkilled_mid_iteration_resumes_without_gap_or_duplicate(
    tmp_path: Path,
) -> None:
    config_path = tmp_path / "ring.yaml"
    config_path.write_text(dump_config(_config(8)))
    out = tmp_path / "runs"
    command = [sys.executable, "-m", "flowsim.cli", "train", str(config_path), "--out", str(out)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            if list(out.glob("*/checkpoints/checkpoint-000003.pt")):
                break
            time.sleep(0.02)
        time.sleep(0.1)  # into the next iteration's sampling
        assert process.poll() is None, process.stderr.read().decode()
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
        process.stderr.close()
    (run_dir,) = list(out.iterdir())
    _, newest = RunDirectory(run_dir).latest_checkpoint()
    done = int(newest.stem.split("-")[1])
    assert 3 <= done < 8
    resumed = subprocess.run(
        [sys.executable, "-m", "flowsim.cli", "train", "--resume", str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    rows = _assert_complete(run_dir, 8, FRAGMENT)
    (event,) = read_events(run_dir)
    assert event["kind"] == "resumed" and event["iteration"] == done
    assert newest.name in event["detail"]
    assert [int(float(r["resumes"])) for r in rows] == [0] * done + [1] * (8 - done)


def test_checkpoint_write_failing_on_a_full_disk_is_skipped(tmp_path: Path) -> None:
    config = _config(6)
    disk = full_disk()

    def fill_then_free(row: dict, trainer) -> None:
        if row["iteration"] == 2:
            disk.__enter__()  # checkpoints 3 and 4 hit a full disk
        if row["iteration"] == 4:
            disk.__exit__(None, None, None)

    try:
        run = train(config, out=tmp_path, callback=fill_then_free)
    finally:
        disk.__exit__(None, None, None)
    rows = _assert_complete(run.directory, 6, FRAGMENT)
    assert [int(float(r["write_failures"])) for r in rows] == [0, 0, 1, 2, 2, 2]
    assert _kinds(run.directory) == {"write_failed": 2}
    folder = run.directory / "checkpoints"
    assert not list(folder.glob("*.tmp"))  # no half-written staging file left
    names = sorted(p.name for p in folder.glob("checkpoint-*.pt"))
    assert names == ["checkpoint-000005.pt", "checkpoint-000006.pt"]
    state, _ = RunDirectory(run.directory).latest_checkpoint()
    assert [int(r["iteration"]) for r in state["rows"]] == list(range(1, 7))


def test_disk_that_stays_full_stops_the_run_which_then_resumes(tmp_path: Path) -> None:
    config = _config(7)

    def fill(row: dict, trainer) -> None:
        if row["iteration"] == 2:
            disk.__enter__()

    disk = full_disk()
    try:
        with pytest.raises(FlowsimError, match=r"3 checkpoints in a row.*--resume"):
            train(config, out=tmp_path, callback=fill)
    finally:
        disk.__exit__(None, None, None)
    (run_dir,) = list(tmp_path.iterdir())
    assert [int(r["iteration"]) for r in _rows(run_dir)] == [1, 2, 3, 4, 5]
    train(None, resume=run_dir)
    rows = _assert_complete(run_dir, 7, FRAGMENT)
    kinds = _kinds(run_dir)
    assert kinds == {"write_failed": 3, "resumed": 1}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["faults"]["resumes"] == 1
    assert "3 progress row(s) past it dropped" in read_events(run_dir)[-1]["detail"]
    # The counters restart from the checkpoint the run resumed from (iteration 2).
    assert int(float(rows[-1]["write_failures"])) == 0 and int(float(rows[-1]["resumes"])) == 1


def test_truncated_checkpoint_falls_back_and_is_logged(tmp_path: Path) -> None:
    run = train(_config(3), out=tmp_path)
    latest = run.directory / "checkpoints" / "checkpoint-000003.pt"
    truncate(latest, keep=0.3)
    (run.directory / "config.yaml").write_text(
        (run.directory / "config.yaml").read_text().replace("iterations: 3", "iterations: 5")
    )
    train(None, resume=run.directory)
    _assert_complete(run.directory, 5, FRAGMENT)
    events = read_events(run.directory)
    assert [e["kind"] for e in events] == ["checkpoint_damaged", "resumed"]
    assert "checkpoint-000003.pt" in events[0]["detail"]
    assert "checkpoint-000002.pt" in events[1]["detail"] and events[1]["iteration"] == 2


def _mount_tmpfs(size: str) -> Path | None:
    """A fresh tmpfs of ``size``, or None where this process may not mount one."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        return None
    point = Path(tempfile.mkdtemp(prefix="flowsim-tmpfs-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
        capture_output=True,
    )
    if done.returncode != 0:
        point.rmdir()
        return None
    return point


def test_a_real_full_filesystem_is_survived(tmp_path: Path) -> None:
    point = _mount_tmpfs("8m")
    if point is None:
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN); the injected "
                    "ENOSPC tests above cover the same code path")  # fmt: skip
    try:
        filler = point / "filler"

        def fill_then_free(row: dict, trainer) -> None:
            if row["iteration"] == 2:  # fill every byte that is left
                descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT)
                try:
                    while os.write(descriptor, b"\0" * 65536):
                        pass
                except OSError as error:
                    assert error.errno == errno.ENOSPC
                finally:
                    os.close(descriptor)
            if row["iteration"] == 4:
                filler.unlink()

        run = train(_config(6), out=point, callback=fill_then_free)
        rows = _assert_complete(run.directory, 6, FRAGMENT)
        assert int(float(rows[-1]["write_failures"])) >= 2
        assert not list((run.directory / "checkpoints").glob("*.tmp"))
        state, path = RunDirectory(run.directory).latest_checkpoint()
        assert path.name == "checkpoint-000006.pt" and len(state["rows"]) == 6
        assert _kinds(run.directory).get("write_failed", 0) >= 2
    finally:
        subprocess.run(["umount", str(point)], check=False)
        point.rmdir()


def test_es_runner_killed_is_replaced_and_its_pairs_left_out(tmp_path: Path) -> None:
    import ray

    config = _config(
        3,
        "train.algo=es",
        "sampler.num_workers=2",
        "env.horizon=150",
        "train.es.perturbations=4",
        "train.es.noise_table_size=1000000",
        "train.es.eval_episodes=1",
    )
    killed: list[bool] = []

    def kill_runner(row: dict, trainer) -> None:
        if row["iteration"] == 1:  # iteration 2 sends it episodes to play and finds it gone
            killed.append(kill_process(trainer.group.describe()[0]["pid"]))

    try:
        run = train(config, out=tmp_path, callback=kill_runner)
    finally:
        ray.shutdown()
    rows = _rows(run.directory)
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3]
    assert killed == [True]
    assert int(float(rows[-1]["runner_restarts"])) == 1
    assert _kinds(run.directory).get("runner_restart") == 1
    # The iteration it died in estimated the gradient from the pairs the survivor played.
    assert min(int(float(r["pairs"])) for r in rows) < 4


def test_bench_faults_reports_every_kind_and_nothing_lost(tmp_path: Path) -> None:
    results = tmp_path / "results"
    done = run_cli(
        "bench", "faults", "--config", "scenarios/ring.yaml", "--soak-s", "3",
        "--fuzz-examples", "20", "--out", str(tmp_path / "runs"), "--results", str(results),
        "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report["faults"]) >= {
        "trainer_killed_and_resumed",
        "disk_full_at_checkpoint",
        "checkpoint_truncated",
        "sumo_killed_in_training",
        "soak_sumo_killed",
        "soak_runner_killed",
    }
    assert report["totals"]["batches_lost"] == 0 and report["totals"]["iterations_lost"] == 0
    assert report["config_fuzz"]["examples"] == 20 and report["config_fuzz"]["tracebacks"] == 0
    assert list(results.glob("faults-*.json"))
    refused = run_cli("bench", "faults", "--config", "scenarios/ring.yaml", "--soak-s", "0")
    assert refused.returncode == 2 and "--soak-s" in refused.stderr
    assert "Traceback" not in refused.stderr
