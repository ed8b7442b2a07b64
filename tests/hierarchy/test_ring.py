"""The ring expert, demonstrations through the runners, flowsim imitate's run directory."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from flowsim.config.imitation import ImitationConfig
from flowsim.errors import ConfigError
from flowsim.hierarchy.collect import play
from flowsim.hierarchy.demos import load_demonstrations
from flowsim.hierarchy.evaluate import evaluate_any_run
from flowsim.hierarchy.experts.ring import CHANGE_LANE, FEATURES, ring_spec
from flowsim.hierarchy.imitate import evaluate_imitation_run, imitate, load_imitation
from flowsim.hierarchy.neural import ProgramSpec
from flowsim.runs.checkpoints import read_checkpoint
from flowsim.testing import run_cli

ROOT = Path(__file__).resolve().parents[2]
YAML = ROOT / "scenarios" / "imitate_lane_change.yaml"
SHORT = ["env.horizon=150", "env.warmup_steps=100"]


def test_yaml_section_and_overrides() -> None:
    config, imitation = load_imitation(YAML, ["imitation.strong_demos=2", "env.horizon=50"])
    assert imitation.strong_demos == 2 and config.env.horizon == 50
    assert config.env.type == "lane_change_accel"
    with pytest.raises(ValueError):
        ImitationConfig.model_validate({"strong_demos": 0, "weak_demos": 0})


def test_expert_demonstrations_through_the_runner() -> None:
    config, _ = load_imitation(YAML, SHORT)
    demos, stats = play(config, [0, 1], "expert", record=True)
    assert len(demos) == 2 * 4  # one per AV and episode
    assert sorted({d.episode for d in demos}) == [0, 1]
    assert all(s["collisions"] == 0 for s in stats)
    demo = demos[0]
    assert demo.obs.shape == (150, len(FEATURES))
    assert demo.stacks is not None and (demo.stacks["stack_depth"] == 2).all()
    # The expert's call stack and its actions agree: ChangeLane's first step commands a change.
    top = demo.stacks["stack_procedure"][:, 1]
    first = (top == CHANGE_LANE) & (demo.stacks["stack_pc"][:, 1] == 1)
    assert (demo.discrete_actions[first, 0] != 1).all()
    assert (demo.discrete_actions[~first, 0] == 1).all()


def test_imitate_writes_a_run_directory(tmp_path: Path) -> None:
    config, imitation = load_imitation(
        YAML,
        [
            *SHORT,
            "imitation.strong_demos=1",
            "imitation.weak_demos=1",
            "imitation.held_out_demos=1",
            "imitation.epochs=20",
            "imitation.eval_episodes=1",
        ],
    )
    run = imitate(config, imitation, out=tmp_path)
    folder = run.directory
    for name in ("config.yaml", "progress.csv", "summary.json", "demos/train.npz"):
        assert (folder / name).is_file(), name
    demos, meta = load_demonstrations(folder / "demos" / "train.npz")
    assert [d.strong for d in demos].count(True) == 4 and meta["features"] == list(FEATURES)
    state = read_checkpoint(folder / "checkpoints" / "best.pt")
    assert state["kind"] == "hierarchy"
    spec = ProgramSpec.from_dict(state["program"]["spec"])
    assert spec == ring_spec(tuple(imitation.hidden), imitation.pc_cap)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["closed_loop"]["program"]["collisions"] == 0
    assert len((folder / "progress.csv").read_text().splitlines()) == 21
    evaluated = evaluate_imitation_run(folder, episodes=1)
    assert set(evaluated["baselines"]) == {"expert", "flat"}
    # Every driver's summary has the evaluation metrics (speed_std was missing: None).
    for entry in (evaluated["policy"], *evaluated["baselines"].values()):
        assert math.isfinite(entry["speed_std"]) and entry["speed_std"] >= 0
        assert math.isfinite(entry["speed_ratio"])
    assert math.isfinite(summary["closed_loop"]["program"]["speed_std"])
    # The run's config.yaml reads back with its imitation settings.
    _, again = load_imitation(folder / "config.yaml")
    assert again.epochs == 20
    # `flowsim evaluate` shows the program beside its expert, flat cloning and AV baselines.
    table = evaluate_any_run(folder, episodes=1, baselines=("human",))
    assert list(table["baselines"]) == ["expert", "flat", "human"]
    assert table["policy"]["mean_return"] == evaluated["policy"]["mean_return"]
    # `flowsim replay` drives the program headless and writes the SUMO outputs.
    replayed = run_cli("replay", str(folder), "--steps", "30", "--out", str(tmp_path / "replay"))
    assert replayed.returncode == 0, replayed.stderr
    assert (tmp_path / "replay" / "fcd.xml").stat().st_size > 0


@pytest.mark.slow
def test_learned_program_drives_like_the_expert(tmp_path: Path) -> None:
    config, imitation = load_imitation(
        YAML, ["imitation.strong_demos=5", "imitation.eval_episodes=2", "imitation.epochs=300"]
    )
    run = imitate(config, imitation, out=tmp_path)
    loop = run.summary["closed_loop"]
    assert loop["program"]["collisions"] == 0
    assert loop["program"]["av_speed_vs_expert"] >= 0.95
    assert loop["program"]["speed_vs_expert"] >= 0.95


def test_cli_helpers_parse() -> None:
    code = (
        "import argparse\n"
        "from flowsim.hierarchy.cli import add_bench_parser, add_imitate_parser\n"
        "p = argparse.ArgumentParser(); c = p.add_subparsers(dest='command')\n"
        "add_imitate_parser(c)\n"
        "b = c.add_parser('bench').add_subparsers(dest='kind'); add_bench_parser(b)\n"
        "a = p.parse_args(['imitate', 'x.yaml', '--set', 'imitation.epochs=3'])\n"
        "assert a.overrides == ['imitation.epochs=3'] and a.handler.__name__ == 'cmd_imitate'\n"
        "a = p.parse_args(['bench', 'imitate', '--config', 'x.yaml', '--counts', '1,3'])\n"
        "assert a.counts == '1,3'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize("expert", ["ring", "bus"])
def test_expert_on_the_wrong_scenario_is_a_config_error(expert: str, tmp_path: Path) -> None:
    figure_eight = ROOT / "scenarios" / "imitate_figure_eight.yaml"
    config, imitation = load_imitation(figure_eight, [f"imitation.expert={expert}"])
    with pytest.raises(ConfigError, match=r"scenario\.type multilane_ring.*imitation\.expert"):
        imitate(config, imitation, out=tmp_path)
    assert not list(tmp_path.iterdir())  # refused before a run directory is made
