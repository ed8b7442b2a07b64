"""Time-space data and `flowsim plot`: the wave is measured in the data, and the plots are drawn."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from flowsim.scenarios.base import run_netconvert
from flowsim.testing import cli_flags
from flowsim.testing import run_cli as flowsim
from flowsim.viz.curves import fault_rows, plot_learning_curves, read_progress
from flowsim.viz.replay import load_source, replay
from flowsim.viz.timespace import Route, TimeSpace, read_replay, wave_strength

ROOT = Path(__file__).resolve().parents[2]
RING = ROOT / "scenarios" / "ring.yaml"
#: Speed variance across vehicles (m²/s²) that separates a stop-and-go wave from smooth flow.
WAVE = 1.0
#: A 30 s warm-up, then 200 s: enough for PISaturation to dissolve the wave.
SHORT = ["env.warmup_steps=300"]


@pytest.fixture(scope="module")
def ring_replays(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TimeSpace]:
    """Headless replays of the ring on one seed: all human, and a PISaturation AV."""
    out = tmp_path_factory.mktemp("replays")
    source = load_source(RING, overrides=SHORT)
    data = {}
    for driver in ("human", "pi_saturation"):
        replay(source, out / driver, driver=driver, seed=1000, steps=2000)
        data[driver] = read_replay(out / driver)
    return data


def test_the_wave_is_in_the_human_data_and_gone_with_pi_saturation(
    ring_replays: dict[str, TimeSpace],
) -> None:
    human, pi = ring_replays["human"], ring_replays["pi_saturation"]
    assert wave_strength(human) > WAVE > wave_strength(pi)
    # Every time slice late in the human episode has the wave: some stand, some drive.
    late = human.time >= human.control_start + 100.0
    assert np.all(np.nanvar(human.speed[late], axis=1) > WAVE / 4)
    assert human.highlight == () and pi.highlight == ("av_0",)  # the AV is drawn when it acts


def test_positions_along_the_ring_follow_the_speeds(ring_replays: dict[str, TimeSpace]) -> None:
    data = ring_replays["human"]
    assert data.route.loop and data.route.length == pytest.approx(230.0)
    assert data.position.shape == (len(data.time), 22) and not np.isnan(data.position).any()
    assert np.all((data.position >= 0) & (data.position < data.route.length))
    # Distance moved between records, unwrapped on the loop, is the speed times the step
    # (SUMO's Euler update: x(t + dt) = x(t) + v(t + dt) dt) across all four edges.
    moved = np.mod(np.diff(data.position, axis=0), data.route.length)
    dt = float(np.diff(data.time)[0])
    assert np.abs(moved - data.speed[1:] * dt).max() < 0.02


def test_route_places_internal_junction_lanes_between_edges(tmp_path: Path) -> None:
    # Two roads meeting at an angle: netconvert adds an internal lane at the junction.
    (tmp_path / "bend.nod.xml").write_text(
        '<nodes><node id="a" x="0" y="0"/><node id="b" x="100" y="0"/>'
        '<node id="c" x="150" y="60"/></nodes>'
    )
    (tmp_path / "bend.edg.xml").write_text(
        '<edges><edge id="ab" from="a" to="b" numLanes="1"/>'
        '<edge id="bc" from="b" to="c" numLanes="1"/></edges>'
    )
    run_netconvert(
        ["-n", "bend.nod.xml", "-e", "bend.edg.xml", "-o", "bend.net.xml", "--no-turnarounds"],
        cwd=tmp_path,
    )
    route = Route.from_net(tmp_path / "bend.net.xml", ["ab", "bc"])
    internal = [edge for edge in route.offsets if edge.startswith(":")]
    assert not route.loop and internal == [":b_0"]
    assert route.offsets["ab"] == 0.0
    assert 0 < route.offsets[":b_0"] < route.offsets["bc"] < route.length
    along = route.positions(["ab_0", ":b_0_0", "bc_0", "elsewhere_0"], [5.0, 1.0, 2.0, 3.0])
    assert along[0] == 5.0 and along[1] == route.offsets[":b_0"] + 1.0
    assert along[2] == route.offsets["bc"] + 2.0 and np.isnan(along[3])


def test_learning_curves_from_progress_csv(tmp_path: Path) -> None:
    progress = tmp_path / "progress.csv"
    rows = ["iteration,env_steps,wall_s,return_mean,return_min,return_max,mean_speed,steps_per_s"]
    rows += [
        f"{i},{300 * i},{0.5 * i},{10.0 * i},{9.0 * i},{11.0 * i},2.{i},600" for i in range(1, 6)
    ]
    progress.write_text("\n".join(rows) + "\n")
    assert read_progress(progress)["env_steps"].tolist() == [300.0, 600.0, 900.0, 1200.0, 1500.0]
    png = plot_learning_curves(progress, tmp_path / "curves.png")
    from PIL import Image

    with Image.open(png) as image:
        assert image.width > 1000 and image.height > 500
    progress.write_text(rows[0] + "\n")
    with pytest.raises(ValueError, match="no rows"):
        read_progress(progress)


def test_plot_command_on_a_trained_run(tmp_path: Path, short_run: Callable[..., list[str]]) -> None:
    runs = tmp_path / "runs"
    train = ["train", str(RING), "--out", str(runs), *cli_flags(short_run(horizon=200))]
    assert flowsim(*train).returncode == 0
    (run,) = runs.iterdir()
    result = flowsim("plot", str(run), "--out", str(tmp_path / "plots"), "--steps", "300")
    assert result.returncode == 0, result.stderr
    from PIL import Image

    for name in ("learning_curves.png", "time_space.png"):
        with Image.open(tmp_path / "plots" / name) as image:
            assert image.width > 1000, name
    for driver in ("human", "policy"):
        assert (tmp_path / "plots" / f"replay-{driver}" / "fcd.xml").is_file()
    assert "wave strength: human" in result.stdout and "time_space:" in result.stdout
    # A config has no curves; its right panel is a controller.
    config = flowsim("plot", str(RING), "--out", str(tmp_path / "cfg"), "--steps", "100")
    assert config.returncode == 0, config.stderr
    assert (tmp_path / "cfg" / "replay-pi_saturation" / "replay.json").is_file()
    assert not (tmp_path / "cfg" / "learning_curves.png").exists()


def test_iterations_with_faults_are_found_for_marking(tmp_path: Path) -> None:
    progress = tmp_path / "progress.csv"
    header = "iteration,env_steps,wall_s,return_mean,return_min,return_max,mean_speed,steps_per_s"
    rows = [f"{header},sim_restarts,runner_restarts,write_failures,damaged_checkpoints,resumes"]
    counters = ["0,0,0,0,0", "1,0,0,0,0", "1,0,0,0,0", "1,2,1,0,0", "1,2,1,0,1"]
    rows += [f"{i},{300 * i},{0.5 * i},1,0,2,2.0,600,{c}" for i, c in enumerate(counters, 1)]
    progress.write_text("\n".join(rows) + "\n")
    assert fault_rows(read_progress(progress)).tolist() == [1, 3, 4]
    assert plot_learning_curves(progress, tmp_path / "curves.png").is_file()
    # A run written before flowsim counted faults has nothing to mark.
    progress.write_text("\n".join([header, "1,300,0.5,1,0,2,2.0,600"]) + "\n")
    assert fault_rows(read_progress(progress)).tolist() == []
