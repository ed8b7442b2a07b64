"""The Sugiyama experiment: humans alone form a stop-and-go wave; a smoothing AV removes it."""

from __future__ import annotations

import pytest

from flowsim.config import apply_overrides, load_config
from flowsim.evaluation.simulate import equilibrium_speed, simulate


def test_idm_equilibrium_speed_of_the_ring(ring_yaml) -> None:
    # 22 vehicles on 230 m: gap 230/22 - 5 = 5.4545 m, and IDM's uniform flow solves
    # s0 + vT = gap·√(1-(v/v0)^4).
    speed = equilibrium_speed(load_config(ring_yaml))
    assert 3.3 < speed < 3.6


@pytest.mark.slow
@pytest.mark.parametrize("humans", ["idm", "sumo"])
def test_ring_forms_stop_and_go_wave(ring_yaml, humans: str) -> None:
    # SUMO's IDM is deterministic: the random start (the default placement) perturbs it.
    overrides = [] if humans == "idm" else ["vehicles.0.controller=sumo"]
    result = simulate(load_config(ring_yaml, overrides), steps=3000)
    assert result["speed_std"] > 1.0
    assert result["mean_speed"] < result["equilibrium_speed"]
    assert result["collisions"] == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "smoother",
    [
        "pi_saturation",
        # FollowerStopper needs a command speed below the ring's uniform-flow speed (3.45 m/s).
        "{type: follower_stopper, params: {v_des: 3.0}}",
    ],
)
def test_smoothing_controller_dissolves_the_wave(ring_yaml, smoother: str) -> None:
    config = apply_overrides(load_config(ring_yaml), [f"vehicles.1.controller={smoother}"])
    result = simulate(config, steps=3000)
    assert result["speed_std"] < 1.0
    assert result["collisions"] == 0
