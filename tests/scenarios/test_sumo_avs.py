"""AVs on your own SUMO files: groups claiming the route files' vehicles, and open_accel."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from flowsim.config import load_config
from flowsim.envs import make_env
from flowsim.errors import ConfigError
from flowsim.sim.simulation import Simulation

#: The files' 'car' vehicles are AVs driven by the agent; their buses and SUMO's humans stay.
AV_GROUPS = "vehicles=[{type: human, count: 0}, {type: av, count: 0, vtype: car, controller: rl}]"


def _own(own_yaml: Callable[..., Path], sumo_files, *overrides: str):
    path = own_yaml(f"config: {sumo_files.sumocfg}", env="open_accel")
    return load_config(path, [AV_GROUPS, *overrides])


def test_vtype_claims_the_route_files_vehicles_of_that_vtype(own_yaml, sumo_files) -> None:
    simulation = Simulation(_own(own_yaml, sumo_files))
    try:
        simulation.reset(seed=0)
        kernel = simulation.kernel
        claimed: set[str] = set()
        seen: dict[str, str] = {}
        for _ in range(60):
            simulation.step()
            seen.update({v: kernel.vehicle_type(v) for v in kernel.vehicle_ids})
            claimed.update(simulation.group("av").ids)
        cars = {v for v, vtype in seen.items() if vtype == "car"}
        assert "inline" in seen and seen["inline"] == "bus"  # the bus stays SUMO's
        assert len(cars) >= 5 and claimed == cars
    finally:
        simulation.close()


def test_a_vtype_the_files_lack_is_refused_listing_theirs(own_yaml, sumo_files) -> None:
    simulation = Simulation(_own(own_yaml, sumo_files, "vehicles.1.vtype=truck"))
    try:
        with pytest.raises(ConfigError, match=r"vehicles\[1\]\.vtype: 'truck' .* bus, car"):
            simulation.reset(seed=0)
    finally:
        simulation.close()


def test_open_accel_drives_the_claimed_cars(own_yaml, sumo_files) -> None:
    env = make_env(_own(own_yaml, sumo_files, "env.num_rl=3", "env.warmup_steps=30"))
    try:
        obs, info = env.reset(seed=0)
        assert obs.shape == (18,) and env.action_space.shape == (3,)
        controlled = 0
        for _ in range(20):
            obs, reward, terminated, _, info = env.step(np.full(3, 1.0))
            assert env.observation_space.contains(obs) and reward >= 0 and not terminated
            controlled = max(controlled, info["controlled_avs"])
            for av in env.slots:
                assert not av or env.kernel.vehicle_type(av) == "car"
        assert controlled > 0
    finally:
        env.close()
