"""Everything around training on multi-agent runs, through the CLI as a user runs it: the fault
log of a run whose SUMO was killed, `evaluate` (the team and each agent beside the baselines,
on the ring and on a signal grid), `replay` (headless and in sumo-gui), `plot` (each policy's
curves) and `tune` with a multi-agent YAML.

One short run of the multi-agent ring (one policy per AV, so progress.csv has per-policy
columns; SUMO over TraCI, so the test can kill it mid-run) is shared by the module; the
commands after training run it on libsumo (``--set sim.backend=libsumo``), as fast as a
default run.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from flowsim.runs.events import read_events
from flowsim.testing import ROOT, cli_flags, run_cli, short_run

RING = ROOT / "scenarios" / "multiagent_ring.yaml"
GRID = ROOT / "scenarios" / "multiagent_grid.yaml"
AVS = ["av_0", "av_1", "av_2"]
#: The commands after training: libsumo, as a run trained with it (TraCI was for the kill).
LIBSUMO = ("--set", "sim.backend=libsumo")
#: The shared run: 4 iterations of 60 env steps (180 AV decisions) on 30-step episodes; SUMO
#: is killed after the first, so two more iterations leave room for a slow poll.
ITERATIONS = 4
RING_RUN = short_run(
    "train.multiagent.policies=per_agent",
    "sim.backend=traci",
    iterations=ITERATIONS,
    horizon=30,
    warmup=20,
    fragment=60,
    minibatch=32,
    epochs=1,
)


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "progress.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def _sumo_children(pid: int) -> list[int]:
    """The ``sumo`` processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        if parent == pid and name == "sumo":
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """`flowsim train` on the multi-agent ring, its SUMO killed once the first iteration is
    written: the run directory and the pids killed."""
    out = tmp_path_factory.mktemp("runs")
    command = [sys.executable, "-m", "flowsim.cli", "train", str(RING), *cli_flags(RING_RUN)]
    training = subprocess.Popen(
        [*command, "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed: list[int] = []
    deadline = time.monotonic() + 120
    while training.poll() is None and not killed and time.monotonic() < deadline:
        progress = list(out.glob("*/progress.csv"))
        if progress and len(progress[0].read_text().splitlines()) >= 2:  # iteration 1 is in
            for pid in _sumo_children(training.pid):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        time.sleep(0.02)
    _, stderr = training.communicate(timeout=180)
    assert training.returncode == 0, stderr
    (run_dir,) = out.iterdir()
    return run_dir, killed


def test_sumo_killed_mid_run_is_restarted_and_in_the_fault_log(
    ring_run: tuple[Path, list[int]],
) -> None:
    run_dir, killed = ring_run
    assert killed, "SUMO was not found running under flowsim train"
    rows = _rows(run_dir)
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]  # nothing lost, nothing twice
    assert [int(r["env_steps"]) for r in rows] == [60, 120, 180, 240]
    assert int(float(rows[0]["sim_restarts"])) == 0
    assert int(float(rows[-1]["sim_restarts"])) >= 1
    restarts = [e for e in read_events(run_dir) if e["kind"] == "sim_restart"]
    assert restarts and all(e["iteration"] >= 2 for e in restarts)
    # each policy's columns are there for `flowsim plot`
    for av in AVS:
        assert np.isfinite(float(rows[-1][f"{av}/reward_mean"]))
        assert np.isfinite(float(rows[-1][f"{av}/policy_loss"]))


def test_evaluate_shows_the_team_and_each_agent_beside_the_baselines(
    ring_run: tuple[Path, list[int]],
) -> None:
    run_dir, _ = ring_run
    result = run_cli("evaluate", str(run_dir), "--episodes", "1", "--json", *LIBSUMO)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert sorted(figures["baselines"]) == ["human", "pi_saturation"]
    for entry in (figures, *figures["baselines"].values()):
        assert sorted(entry["agents"]) == AVS
        returns = [entry["agents"][av]["return"] for av in AVS]
        # the team's return sums the agents'; the ring's reward is shared by the AVs
        assert entry["mean_return"] == pytest.approx(sum(returns))
        assert entry["agent_return_mean"] == pytest.approx(np.mean(returns))
        assert returns == pytest.approx([returns[0]] * 3)
        assert entry["speed_ratio"] > 0 and entry["speed_std"] >= 0
    table = run_cli("evaluate", str(run_dir), "--episodes", "1", "--baselines", "human", *LIBSUMO)
    assert table.returncode == 0, table.stderr
    assert "the team" in table.stdout and "each agent's mean return" in table.stdout
    assert all(av in table.stdout for av in AVS) and "speed_ratio" in table.stdout


def test_evaluate_a_signal_grid_per_light_beside_the_signal_baselines(tmp_path: Path) -> None:
    overrides = short_run(
        iterations=1,
        horizon=15,
        warmup=None,
        fragment=15,
        minibatch=45,
        epochs=1,
    )
    trained = run_cli("train", str(GRID), *cli_flags(overrides), "--out", str(tmp_path))
    assert trained.returncode == 0, trained.stderr
    (run_dir,) = tmp_path.iterdir()
    result = run_cli("evaluate", str(run_dir), "--episodes", "1", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    lights = [f"center{k}" for k in range(9)]
    assert sorted(figures["baselines"]) == ["fixed_cycle", "greedy", "max_pressure", "program"]
    for entry in (figures, *figures["baselines"].values()):
        assert sorted(entry["agents"]) == lights  # each light's own return
        returns = [entry["agents"][light]["return"] for light in lights]
        assert entry["mean_return"] == pytest.approx(sum(returns))
        assert np.isfinite(entry["avg_delay"]) and entry["avg_delay"] >= 0  # RESCO's, the team's


def test_replay_headless_plays_every_agent_with_its_policy(
    ring_run: tuple[Path, list[int]], tmp_path: Path
) -> None:
    run_dir, _ = ring_run
    result = run_cli("replay", str(run_dir), "--out", str(tmp_path), "--json", *LIBSUMO)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["driver"] == "policy" and summary["av_ids"] == AVS
    assert summary["steps"] == 150  # the run's 30 decisions of 5 SUMO steps
    assert sorted(summary["agent_returns"]) == AVS
    assert summary["return"] == pytest.approx(sum(summary["agent_returns"].values()))
    assert (tmp_path / "fcd.xml").stat().st_size > 0
    wrong = run_cli("replay", str(run_dir), "--driver", "max_pressure")
    assert wrong.returncode == 2 and "does not apply" in wrong.stderr


@pytest.mark.gui
def test_replay_in_sumo_gui_shows_the_three_avs(
    ring_run: tuple[Path, list[int]], display: str, tmp_path: Path
) -> None:
    from PIL import Image

    run_dir, _ = ring_run
    frames = tmp_path / "frames"
    command = ["replay", str(run_dir), "--gui", "--delay", "0", "--frames", str(frames)]
    command += ["--frame-every", "50", "--out", str(tmp_path), "--json"]
    result = run_cli(*command, env={**os.environ, "DISPLAY": display})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["gui"] is True and sorted(summary["agent_returns"]) == AVS
    pngs = sorted(frames.glob("frame-*.png"))
    assert len(pngs) == 4  # at the start and after every 50 of 150 steps
    with Image.open(pngs[-1]) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
    assert red.sum() > 300, f"{red.sum()} red pixels: the three AVs expected"


def test_plot_draws_each_policys_curves_and_the_time_space_diagram(
    ring_run: tuple[Path, list[int]], tmp_path: Path
) -> None:
    from flowsim.viz.curves import policy_columns

    run_dir, _ = ring_run
    result = run_cli("plot", str(run_dir), "--out", str(tmp_path), *LIBSUMO)
    assert result.returncode == 0, result.stderr
    for name in ("learning_curves", "policy_curves", "time_space"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000, name
    assert sorted(policy_columns(run_dir / "progress.csv")) == AVS


@pytest.mark.timeout(300)
def test_tune_runs_multiagent_trials(tmp_path: Path) -> None:
    yaml = ROOT / "scenarios" / "tune_multiagent_ring.yaml"
    overrides = short_run(
        "tune.num_samples=1",  # x the critic's grid (local, central): 2 trials
        "tune.scheduler=fifo",
        iterations=2,
        horizon=30,
        warmup=20,
        fragment=60,
        minibatch=60,
        workers=0,  # each trial samples in its own process: no runner actors to start
        epochs=1,
    )
    command = ["tune", str(yaml), *cli_flags(overrides), "--out", str(tmp_path), "--no-plots"]
    result = run_cli(*command, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    trials = summary["trials"]
    assert len(trials) == 2 and {t["status"] for t in trials} == {"done"}
    critics = set()
    for run_config in tmp_path.glob("*/trial-*/run/config.yaml"):
        rows = _rows(run_config.parent)
        assert [int(r["iteration"]) for r in rows] == [1, 2]
        assert int(rows[-1]["env_steps"]) == 120
        critics.add("critic: central" in run_config.read_text())
    assert critics == {True, False}  # one IPPO trial, one MAPPO trial
