"""The bus expert: stops served, a dwell timed by the call stack, driven through the runner."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from flowsim.hierarchy.collect import play, summarise
from flowsim.hierarchy.experts import expert_task
from flowsim.hierarchy.experts.bus import DWELL, DWELL_STEPS, FEATURES, bus_spec
from flowsim.hierarchy.experts.ring import MAX_ACCEL
from flowsim.hierarchy.imitate import imitate, load_imitation

ROOT = Path(__file__).resolve().parents[2]
YAML = ROOT / "scenarios" / "imitate_bus.yaml"


def test_bus_expert_serves_stops_and_times_its_dwell() -> None:
    config, imitation = load_imitation(YAML, ["env.horizon=120"])
    assert imitation.expert == "bus" and expert_task("bus").spec((8,), 20) == bus_spec((8,), 20)
    demos, stats = play(config, [0], "expert", record=True, expert="bus")
    assert len(demos) == 2 and demos[0].obs.shape == (120, len(FEATURES))
    summary = summarise(stats)
    assert summary["stops_served"] >= 1 and summary["collisions"] == 0
    assert math.isfinite(summary["speed_std"])  # closed-loop summaries carry it (evaluate)
    dwelled = 0
    for demo in demos:
        assert demo.stacks is not None
        top = demo.stacks["stack_procedure"][np.arange(len(demo)), demo.stacks["stack_depth"] - 1]
        pc = demo.stacks["stack_pc"][np.arange(len(demo)), demo.stacks["stack_depth"] - 1]
        holding = (top == DWELL) & (pc <= DWELL_STEPS)
        leaving = (top == DWELL) & (pc > DWELL_STEPS)
        dwelled += int(holding.sum())
        # The same observation (standing at the stop) gets "hold" or "go" by program counter.
        np.testing.assert_array_equal(demo.continuous_actions[holding, 0], -MAX_ACCEL)
        assert (demo.continuous_actions[leaving, 0] > 0).all()
    assert dwelled >= DWELL_STEPS


@pytest.mark.slow
def test_call_stack_times_the_dwell_where_flat_cloning_cannot(tmp_path: Path) -> None:
    config, imitation = load_imitation(
        YAML,
        ["imitation.strong_demos=10", "imitation.held_out_demos=0", "imitation.eval_episodes=2"],
    )
    loop = imitate(config, imitation, out=tmp_path).summary["closed_loop"]
    assert loop["expert"]["stops_served"] >= 2
    assert loop["program"]["stops_served_vs_expert"] >= 0.6
    assert loop["flat"]["stops_served_vs_expert"] <= 0.3  # it stands at the first stop for good
    assert loop["program"]["collisions"] == 0
