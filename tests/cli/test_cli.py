"""The flowsim command as a user runs it: subprocesses, exit codes, JSON, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flowsim.testing import run_cli as flowsim

ROOT = Path(__file__).resolve().parents[2]


def test_schema_is_json() -> None:
    result = flowsim("schema")
    assert result.returncode == 0
    assert "scenario" in json.loads(result.stdout)["properties"]


def test_simulate_json_keys() -> None:
    result = flowsim("simulate", "scenarios/ring.yaml", "--steps", "200", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    for key in ("mean_speed", "speed_std", "collisions", "steps", "wall_s", "equilibrium_speed"):
        assert key in summary
    assert summary["steps"] == 200 and summary["collisions"] == 0


def test_check_prints_resolved_config() -> None:
    result = flowsim("check", "scenarios/ring.yaml", "--set", "env.horizon=77")
    assert result.returncode == 0 and "horizon: 77" in result.stdout


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("scenario: {length: -5}\n", "scenario.length"),
        ("env: {horizn: 3}\n", "did you mean 'horizon'"),
        ("vehicles: [{type: human, count: 99}]\n", "99 vehicles"),
        ("sim: {backend: carla}\n", "sim.backend"),
        ("env: [1, 2\n", "not valid YAML"),
    ],
)
def test_bad_config_exits_2_without_traceback(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = flowsim("simulate", str(path), "--steps", "10")
    assert result.returncode == 2
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_file_and_bad_flags_exit_2(tmp_path: Path) -> None:
    missing = flowsim("simulate", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "not found" in missing.stderr
    bad_steps = flowsim("simulate", "scenarios/ring.yaml", "--steps", "0")
    assert bad_steps.returncode == 2 and "--steps" in bad_steps.stderr
    bad_set = flowsim("simulate", "scenarios/ring.yaml", "--set", "nonsense")
    assert bad_set.returncode == 2 and "key=value" in bad_set.stderr
    unknown = flowsim("teleport")
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr


def test_bench_env_writes_results(tmp_path: Path) -> None:
    result = flowsim(
        "bench", "env", "--config", "scenarios/ring.yaml", "--steps", "300", "--json",
        "--results", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["raw_sumo_steps_per_s"] > 0
    assert set(figures["env_steps_per_s"]) == {"libsumo", "traci"}
    assert figures["ratio_to_raw"] == pytest.approx(
        figures["env_steps_per_s"]["libsumo"] / figures["raw_sumo_steps_per_s"]
    )
    written = list(tmp_path.glob("env-ring-*.json"))
    assert len(written) == 1 and json.loads(written[0].read_text())["reset_ms"] > 0


def test_listings() -> None:
    scenarios = flowsim("scenarios")
    assert scenarios.returncode == 0
    assert "multilane_ring" in scenarios.stdout and "ring.yaml" in scenarios.stdout
    envs = flowsim("envs")
    assert envs.returncode == 0 and "flowsim/Ring-v0" in envs.stdout


def test_brackets_in_messages_are_shown_verbatim(tmp_path: Path) -> None:
    folder = tmp_path / "a[red]b"
    folder.mkdir()
    (folder / "x.yaml").write_text("scenario: {length: [270, 220]}\n")
    result = flowsim("check", str(folder / "x.yaml"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "[low, high]" in result.stderr and "a[red]b" in result.stderr


def test_bench_results_must_be_a_folder(tmp_path: Path) -> None:
    target = tmp_path / "afile"
    target.write_text("")
    result = flowsim("bench", "env", "--config", "scenarios/ring.yaml", "--results", str(target))
    assert result.returncode == 2 and "is a file" in result.stderr


def test_broken_pipe_is_quiet() -> None:
    shell = f"{sys.executable} -m flowsim.cli schema | head -n 1"
    result = subprocess.run(
        shell, shell=True, cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.stdout.startswith("{") and "Traceback" not in result.stderr


def test_check_shows_effective_defaults() -> None:
    result = flowsim("check", "scenarios/ring.yaml")
    assert "speed_mode: right_of_way" in result.stdout  # the IDM humans
    assert "speed_mode: obey_safe_speed" in result.stdout  # the AV
    assert "failsafes: null" not in result.stdout


def test_bench_sampler_small(tmp_path: Path) -> None:
    result = flowsim(
        "bench", "sampler", "--config", "scenarios/ring.yaml", "--steps", "200",
        "--trajectories", "2", "--set", "env.horizon=100", "--set", "env.warmup_steps=10",
        "--workers", "1", "--json", "--results", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["cores"] == 1  # --workers: the widest setting's Ray workers
    assert set(figures["steps_per_s"]) == {"in_process", "ray_1_worker", "ray_all_cores"}
    assert all(rate > 0 for rate in figures["steps_per_s"].values())
    assert figures["trajectories"] >= 2 and figures["seconds_for_144_trajectories"] > 0
    split = figures["per_step_us"]["in_process"]
    assert split["simulator_us"] > split["bookkeeping_us"] >= 0
    assert list(tmp_path.glob("sampler-ring-*.json"))


def test_bench_sampler_refuses_zero_workers() -> None:
    result = flowsim("bench", "sampler", "--config", "scenarios/ring.yaml", "--workers", "0")
    assert result.returncode == 2 and "--workers 0" in result.stderr


def test_unreachable_cluster_exits_2_naming_the_setting() -> None:
    import socket

    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = flowsim(
        "bench", "sampler", "--config", "scenarios/ring.yaml",
        "--set", f"sampler.address=127.0.0.1:{port}", "--set", "sampler.connect_timeout_s=2",
        "--set", "env.warmup_steps=10", "--set", "env.horizon=50", "--steps", "100",
        "--trajectories", "1",
    )  # fmt: skip
    assert result.returncode == 2
    assert "sampler.address" in result.stderr and "Traceback" not in result.stderr
