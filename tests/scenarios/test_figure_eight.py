"""Flow's figure eight: geometry, positions through the crossing, the human baseline, errors."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from flowsim.config import apply_overrides, load_config, parse_config
from flowsim.envs import make_env
from flowsim.errors import ConfigError
from flowsim.evaluation.simulate import simulate
from flowsim.scenarios import FIGURE_EIGHT_EDGES, make_scenario
from flowsim.scenarios.open import net_edges

ROOT = Path(__file__).resolve().parents[2]
FIGURE_EIGHT = ROOT / "scenarios" / "figure_eight.yaml"
#: Flow's published all-human average speed on the figure eight (Vinitsky et al. 2018).
FLOW_HUMAN_SPEED = 4.18


def test_network_has_flows_edges_and_only_straight_crossings() -> None:
    config = load_config(FIGURE_EIGHT)
    instance = make_scenario(config).instance(np.random.default_rng(0))
    root = ET.parse(instance.net_file).getroot()
    lengths = {edge: length for edge, (length, _) in net_edges(instance.net_file).items()}
    r = config.scenario.radius
    assert set(lengths) == set(FIGURE_EIGHT_EDGES)
    for edge, length in lengths.items():
        assert length == pytest.approx(3 * math.pi * r / 2 if "ring" in edge else r, abs=0.01)
    crossings = {
        (c.get("from"), c.get("to"))
        for c in root.iter("connection")
        if c.get("from") in ("bottom", "right")
    }
    assert crossings == {("bottom", "top"), ("right", "left")}
    # The loop: its edges plus the junction lanes between them, each offset once, increasing.
    offsets = sorted(instance.edge_offsets.values())
    assert offsets[0] == 0.0 and len(set(offsets)) == len(offsets)
    assert (4 + 3 * math.pi) * r < instance.length < (4 + 3 * math.pi) * r + 25


def test_positions_stay_on_the_loop_through_the_crossing() -> None:
    env = make_env(FIGURE_EIGHT, overrides=["env.horizon=400"])
    try:
        env.reset(seed=0)
        kernel = env.unwrapped.kernel
        length = env.unwrapped.simulation.instance.length
        seen_internal = False
        for _ in range(400):
            env.step(np.zeros(1, dtype=np.float32))
            positions = kernel.positions()
            assert np.all(np.isfinite(positions))
            assert np.all((positions >= 0) & (positions < length))
            seen_internal |= any(edge.startswith(":center") for edge in kernel.edges())
        assert seen_internal  # vehicles did drive through the crossing
    finally:
        env.close()


@pytest.mark.slow
def test_all_human_speed_is_near_flows_baseline() -> None:
    # Flow's baseline: 14 IDM humans, the mean speed averaged over a 150 s episode.
    runs = [
        simulate(
            load_config(
                FIGURE_EIGHT, ["vehicles.0.count=14", "vehicles.1.count=0", f"sim.seed={seed}"]
            ),
            steps=1500,
        )
        for seed in (0, 1, 2)
    ]
    speed = np.mean([run["run_mean_speed"] for run in runs])
    assert abs(speed - FLOW_HUMAN_SPEED) / FLOW_HUMAN_SPEED <= 0.15
    assert all(run["collisions"] == 0 and run["teleports"] == 0 for run in runs)


def test_too_many_vehicles_names_the_radius() -> None:
    with pytest.raises(ConfigError, match=r"scenario\.radius"):
        parse_config(
            {
                "scenario": {"type": "figure_eight", "radius": 5},
                "vehicles": [{"type": "human", "count": 40}],
            }
        )


def test_collisions_inside_the_crossing_are_counted() -> None:
    def collisions(check: str) -> int:
        config = apply_overrides(
            load_config(FIGURE_EIGHT),
            [
                f"sim.check_junction_collisions={check}",
                "env.terminate_on_collision=false",
                "env.horizon=1500",
                "vehicles.0.speed_mode=aggressive",
                "vehicles.1.speed_mode=aggressive",
            ],
        )
        env = make_env(config)
        try:
            env.reset(seed=0)
            total = 0
            for _ in range(1500):  # everyone ignores right of way; the AV at full throttle
                _, _, _, truncated, info = env.step(env.action_space.high)
                total += int(info["collisions"])
                if truncated:
                    break
            return total
        finally:
            env.close()

    assert collisions("true") > collisions("false")  # the crossing's crashes go unseen without
