"""`flowsim replay`: sumo-gui under Xvfb with screenshots, headless FCD output, bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sumolib

from flowsim.testing import cli_flags, short_run
from flowsim.testing import run_cli as flowsim

ROOT = Path(__file__).resolve().parents[2]
RING = ROOT / "scenarios" / "ring.yaml"
#: One short PPO iteration on short episodes: a run directory with a checkpoint, in seconds.
TINY_RUN = short_run(iterations=1, fragment=300, horizon=300)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory written by `flowsim train` (one iteration)."""
    out = tmp_path_factory.mktemp("runs")
    result = flowsim("train", str(RING), *cli_flags(TINY_RUN), "--out", str(out))
    assert result.returncode == 0, result.stderr
    (run,) = out.iterdir()
    return run


def _sumo_gui_pids() -> set[int]:
    """Processes running sumo-gui now."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if command.endswith(b"sumo-gui"):
                pids.add(int(entry.name))
    return pids


def _colour_pixels(png: Path) -> tuple[int, int]:
    """(yellow pixels, red pixels): SUMO's default human colour and the AVs' red."""
    from PIL import Image

    with Image.open(png) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    yellow = (red > 180) & (green > 180) & (blue < 100)
    av_red = (red > 180) & (green < 80) & (blue < 80)
    return int(yellow.sum()), int(av_red.sum())


@pytest.mark.gui
def test_gui_replay_saves_frames_with_vehicles_and_closes_sumo_gui(
    display: str, tmp_path: Path
) -> None:
    frames, gif, out = tmp_path / "frames", tmp_path / "ring.gif", tmp_path / "replay"
    before = _sumo_gui_pids()
    result = flowsim(
        "replay",
        str(RING),
        "--gui",
        "--frames",
        str(frames),
        "--gif",
        str(gif),
        "--steps",
        "200",
        "--delay",
        "0",
        "--out",
        str(out),
        "--json",
        *cli_flags(["env.warmup_steps=50"]),
        env={**os.environ, "DISPLAY": display},
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["gui"] is True and summary["driver"] == "human" and summary["steps"] == 200
    assert not _sumo_gui_pids() - before  # sumo-gui closed with the replay
    pngs = sorted(frames.glob("frame-*.png"))
    assert len(pngs) == 21  # at the start and after every 10 of 200 steps
    assert len(summary["files"]["frames"]) == 21
    for png in (pngs[0], pngs[10], pngs[-1]):
        yellow, red = _colour_pixels(png)
        assert yellow > 2000, f"{png.name}: {yellow} yellow pixels (21 humans expected)"
        assert red > 150, f"{png.name}: {red} red pixels (the AV expected)"
    from PIL import Image

    with Image.open(gif) as animation:
        assert animation.n_frames == 21


@pytest.mark.gui
def test_interrupted_gui_replay_closes_sumo_gui(display: str, tmp_path: Path) -> None:
    before = _sumo_gui_pids()
    command = [sys.executable, "-m", "flowsim.cli", "replay", str(RING), "--gui"]
    command += ["--steps", "3000", "--delay", "100", "--out", str(tmp_path)]
    replaying = subprocess.Popen(
        [*command, *cli_flags(["env.warmup_steps=50"])],
        cwd=ROOT,
        env={**os.environ, "DISPLAY": display},
        # Ctrl-C as a terminal sends it (a shell's background job would ignore SIGINT).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _sumo_gui_pids() - before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _sumo_gui_pids() - before, "sumo-gui did not start"
        time.sleep(1.0)  # inside the paced episode (300 s of traffic at 0.1 s per step)
        replaying.send_signal(signal.SIGINT)
        _, errors = replaying.communicate(timeout=30)
    finally:
        if replaying.poll() is None:
            replaying.kill()
    assert replaying.returncode == 130 and "interrupted" in errors, errors
    assert not _sumo_gui_pids() - before


def test_headless_replay_writes_fcd_one_record_per_vehicle_per_step(tmp_path: Path) -> None:
    warmup, steps = 50, 300
    result = flowsim(
        "replay",
        str(RING),
        "--steps",
        str(steps),
        "--out",
        str(tmp_path),
        "--json",
        *cli_flags([f"env.warmup_steps={warmup}"]),
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert json.loads((tmp_path / "replay.json").read_text())["mean_speed"] == summary["mean_speed"]
    assert summary["steps"] == steps and summary["collisions"] == 0
    for key in ("mean_speed", "speed_std", "min_speed", "equilibrium_speed"):
        assert np.isfinite(summary[key])
    assert summary["speed_std"] > 0.5  # the humans' wave, already there after the warm-up
    assert summary["av_ids"] == ["av_0"]

    vehicles = {f"human_{i}" for i in range(21)} | {"av_0"}
    times = []
    for timestep in sumolib.xml.parse(str(tmp_path / summary["files"]["fcd"]), "timestep"):
        ids = [vehicle.id for vehicle in timestep.vehicle]
        assert len(ids) == len(set(ids)) == 22 and set(ids) == vehicles, timestep.time
        times.append(float(timestep.time))
    assert len(times) == 1 + warmup + steps  # the step that inserts the vehicles, then the rest
    assert np.allclose(np.diff(times), 0.1)
    emitted = next(sumolib.xml.parse(str(tmp_path / "emission.xml"), "timestep"))
    assert len(emitted.vehicle) == 22 and float(emitted.vehicle[0].CO2) >= 0


def test_replay_of_a_trained_run_drives_its_policy(trained_run: Path, tmp_path: Path) -> None:
    result = flowsim(
        "replay", str(trained_run), "--checkpoint", "1", "--steps", "100", "--out", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "replay.json").read_text())
    assert summary["driver"] == "policy" and summary["checkpoint"] == "1"
    assert summary["agent_steps"] == 20  # 100 SUMO steps of 5 per action
    assert np.isfinite(summary["return"]) and (tmp_path / "fcd.xml").is_file()
    missing = flowsim("replay", str(trained_run), "--checkpoint", "7", "--out", str(tmp_path))
    assert missing.returncode == 2 and "keeps iterations 1" in missing.stderr


def test_run_without_checkpoints_is_a_clear_error(trained_run: Path, tmp_path: Path) -> None:
    shutil.copy(trained_run / "config.yaml", tmp_path / "config.yaml")
    result = flowsim("replay", str(tmp_path))
    assert result.returncode == 2
    assert "no checkpoints" in result.stderr and "Traceback" not in result.stderr


def test_unknown_scenario_in_a_run_is_a_clear_error(trained_run: Path, tmp_path: Path) -> None:
    shutil.copytree(trained_run, tmp_path / "run")
    config = tmp_path / "run" / "config.yaml"
    config.write_text(config.read_text().replace("type: ring", "type: moon_base", 1))
    result = flowsim("replay", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "scenario.type" in result.stderr and "moon_base" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["replay", str(RING), "--gui"], ["DISPLAY", "xvfb-run"]),
        (["replay", str(RING), "--frames", "frames"], ["add --gui"]),
        (["replay", str(ROOT / "scenarios" / "cartpole.yaml")], ["no SUMO scenario"]),
        (["replay", str(ROOT / "scenarios")], ["not a run directory"]),
        (["replay", str(RING), "--driver", "policy"], ["needs a trained run"]),
        (["replay", str(RING), "--steps", "0"], ["--steps 0"]),
        (["replay", str(RING), "--seed", "-1"], ["--seed -1"]),
    ],
)
def test_bad_input_exits_2_with_the_fix(args: list[str], fragments: list[str]) -> None:
    environment = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    result = flowsim(*args, env=environment)
    assert result.returncode == 2, result.stderr
    assert all(f in result.stderr for f in fragments), result.stderr
    assert "Traceback" not in result.stderr
