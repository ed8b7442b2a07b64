"""The figure-eight expert: yields at the crossing, demonstrations through the runner, imitate's
run directory, and a Follow learned on the ring reused (frozen) on the figure eight."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from flowsim.errors import ConfigError
from flowsim.hierarchy.collect import play, summarise
from flowsim.hierarchy.demos import load_demonstrations
from flowsim.hierarchy.experts import expert_task
from flowsim.hierarchy.experts import figure_eight as f8
from flowsim.hierarchy.experts.ring import GAP_SCALE, KEEP, MAX_ACCEL
from flowsim.hierarchy.imitate import evaluate_imitation_run, imitate, load_imitation
from flowsim.hierarchy.neural import NeuralProgram, ProgramSpec
from flowsim.hierarchy.procedures import Frame
from flowsim.runs.checkpoints import read_checkpoint
from flowsim.testing import run_cli

ROOT = Path(__file__).resolve().parents[2]
YAML = ROOT / "scenarios" / "imitate_figure_eight.yaml"
RING_YAML = ROOT / "scenarios" / "imitate_lane_change.yaml"
SMALL = ["imitation.strong_demos=1", "imitation.held_out_demos=1", "imitation.epochs=20"]


def _yield_segments(top: np.ndarray) -> list[tuple[int, int]]:
    """(first, last + 1) of every run of steps with Yield on top of the stack."""
    on = np.r_[False, top == f8.YIELD, False].astype(np.int8)
    edges = np.flatnonzero(np.diff(on))
    return list(zip(edges[::2], edges[1::2], strict=True))


def test_expert_yields_at_the_crossing_through_the_runner() -> None:
    config, imitation = load_imitation(YAML)
    assert imitation.expert == "figure_eight" and config.scenario.type == "figure_eight"
    demos, stats = play(config, [0, 1, 5], "expert", record=True, expert="figure_eight")
    assert len(demos) == 3 and sorted(d.episode for d in demos) == [0, 1, 5]  # one AV each
    assert summarise(stats)["collisions"] == 0
    procedures = f8.figure_eight_procedures(config.scenario.speed_limit)
    segments = 0
    for demo in demos:
        assert demo.obs.shape == (config.env.horizon, len(f8.FEATURES))
        stacks = demo.stacks
        assert stacks is not None and (stacks["stack_depth"] == 2).all()
        assert (stacks["stack_procedure"][:, 0] == f8.DRIVE).all()
        top, pc = stacks["stack_procedure"][:, 1], stacks["stack_pc"][:, 1]
        assert set(np.unique(top)) <= {f8.CRUISE, f8.FOLLOW, f8.YIELD}
        assert (demo.discrete_actions[:, 0] == KEEP).all()  # one lane: always keep
        assert (np.abs(demo.continuous_actions[:, 0]) <= MAX_ACCEL).all()
        # Each recorded action is what the procedure on top of the stack does there.
        for t in range(len(demo)):
            frame = Frame(int(top[t]), int(stacks["stack_arg"][t, 1]), int(pc[t]) - 1)
            act = procedures[top[t]].operate(demo.obs[t], frame)
            assert act.continuous[0] == pytest.approx(demo.continuous_actions[t, 0], abs=1e-5)
        junction = demo.obs[:, 3] * GAP_SCALE
        speed = demo.obs[:, 0] * config.scenario.speed_limit
        # Never into the crossing while a vehicle of the other branch is still inside it.
        entering = junction < 3.0
        assert not (entering & (demo.obs[:, 7] * GAP_SCALE < f8.OCCUPIED)).any()
        for first, end in _yield_segments(top):
            segments += 1
            # Yield holds the AV before the crossing and slows it (or keeps it standing).
            assert (junction[first:end] >= f8.STOP_BEFORE - 1.0).all()
            assert speed[first:end].min() <= max(speed[first] - 0.5, 0.5)
            assert pc[first] == 1 and (np.diff(pc[first:end]) == 1).all()
            # Drive called it because a vehicle on the crossing branch would get there first.
            reading = f8._CrossingReading(demo.obs[first], config.scenario.speed_limit)
            assert f8.foe_first(reading)
    assert segments >= 3


def test_imitate_writes_a_run_directory_and_checks_the_scenario(tmp_path: Path) -> None:
    config, imitation = load_imitation(
        YAML, [*SMALL, "env.horizon=200", "imitation.eval_episodes=1"]
    )
    run = imitate(config, imitation, out=tmp_path)
    folder = run.directory
    for name in ("config.yaml", "progress.csv", "summary.json", "demos/held_out.npz"):
        assert (folder / name).is_file(), name
    demos, meta = load_demonstrations(folder / "demos" / "train.npz")
    assert len(demos) == 1 and meta["features"] == list(f8.FEATURES)
    assert meta["expert"] == "figure_eight"
    state = read_checkpoint(folder / "checkpoints" / "best.pt")
    assert state["policy"]["expert"] == "figure_eight"
    spec = ProgramSpec.from_dict(state["program"]["spec"])
    assert spec == expert_task("figure_eight").spec(tuple(imitation.hidden), imitation.pc_cap)
    loop = run.summary["closed_loop"]
    assert loop["program"]["collisions"] == 0 and loop["program"]["av_speed"] > 0
    evaluated = evaluate_imitation_run(folder, episodes=1)
    assert set(evaluated["baselines"]) == {"expert", "flat"}
    replayed = run_cli("replay", str(folder), "--steps", "30", "--out", str(tmp_path / "replay"))
    assert replayed.returncode == 0, replayed.stderr
    assert (tmp_path / "replay" / "fcd.xml").stat().st_size > 0
    ring, ring_imitation = load_imitation(RING_YAML, ["imitation.expert=figure_eight"])
    with pytest.raises(ConfigError, match=r"scenario\.type figure_eight.*imitation\.expert"):
        imitate(ring, ring_imitation, out=tmp_path)


def test_follow_learned_on_the_ring_drives_frozen_on_the_figure_eight(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    ring, ring_imitation = load_imitation(
        RING_YAML,
        [
            "env.horizon=60",
            "env.warmup_steps=50",
            "imitation.strong_demos=1",
            "imitation.held_out_demos=0",
            "imitation.epochs=20",
            "imitation.eval_episodes=0",
            "imitation.baseline=false",
        ],
    )
    source = imitate(ring, ring_imitation, out=tmp_path / "ring").directory
    config, imitation = load_imitation(
        YAML,
        [
            *SMALL,
            "env.horizon=150",
            "imitation.eval_episodes=1",
            "imitation.baseline=false",
            f"imitation.skills_from={source}",
            "imitation.skills=[{procedure: Follow, mode: frozen}]",
        ],
    )
    run = imitate(config, imitation, out=tmp_path / "eight")
    assert run.summary["frozen_procedures"] == ["Follow"]
    assert run.summary["closed_loop"]["program"]["collisions"] == 0
    ring_program = NeuralProgram.from_state(
        read_checkpoint(source / "checkpoints" / "best.pt")["program"]
    )
    eight = NeuralProgram.from_state(
        read_checkpoint(run.directory / "checkpoints" / "best.pt")["program"]
    )
    # The figure eight's Follow computes what the ring's did from the shared features
    # (speed, gap, leader_relative_speed), whatever the crossing features say; the lane
    # features it lacks count as their training means (their weights are dropped).
    ring_follow = ring_program.procedures[2]
    rng = np.random.default_rng(0)
    shared = torch.tensor(rng.uniform(0, 1, (40, 3)), dtype=torch.float32)
    ring_obs = ring_follow.standardise.shift.repeat(40, 1)
    ring_obs[:, :3] = shared
    eight_obs = torch.tensor(rng.uniform(0, 1, (40, len(f8.FEATURES))), dtype=torch.float32)
    eight_obs[:, :3] = shared
    pc, arg = torch.randint(0, 20, (40,)), torch.zeros(40, dtype=torch.long)
    with torch.no_grad():
        before = ring_follow(ring_obs, pc, arg)
        after = eight.procedures[f8.FOLLOW](eight_obs, pc, arg)
    torch.testing.assert_close(after.term_logit, before.term_logit)
    torch.testing.assert_close(after.action_logp[0], before.action_logp[0])


def test_learned_program_drives_and_yields_like_the_expert(tmp_path: Path) -> None:
    config, imitation = load_imitation(
        YAML,
        [
            "imitation.strong_demos=3",
            "imitation.held_out_demos=0",
            "imitation.eval_episodes=2",
            "imitation.baseline=false",
        ],
    )
    run = imitate(config, imitation, out=tmp_path)
    program = run.summary["closed_loop"]["program"]
    assert program["collisions"] == 0
    assert program["av_speed_vs_expert"] >= 0.95 and program["speed_vs_expert"] >= 0.95
    # Closed loop, the program's own stack yields where the expert would have.
    state = read_checkpoint(run.directory / "checkpoints" / "best.pt")["program"]
    demos, _ = play(config, [1000, 1001], "program", state, record=True, expert="figure_eight")
    should = yielded = 0
    for demo in demos:
        assert demo.stacks is not None
        top = demo.stacks["stack_procedure"][np.arange(len(demo)), demo.stacks["stack_depth"] - 1]
        for t in range(len(demo)):
            if f8.foe_first(f8._CrossingReading(demo.obs[t], config.scenario.speed_limit)):
                should += 1
                yielded += int(top[t] == f8.YIELD)
    assert should >= 20 and yielded / should >= 0.6
