"""The signal baselines of flowsim.controllers.signals on real SUMO states: each rule picks
what its definition says (the definitions recomputed here from SUMO's own vehicle reads), and
each runs a whole episode through the signal env with the yellow, all-red and min-green
rules of Signals."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from flowsim import testing
from flowsim.config import apply_overrides
from flowsim.controllers.signals import (
    GREEDY_DISTANCE,
    PRESSURE_DISTANCE,
    SIGNAL_BASELINES,
    signal_rule,
)
from flowsim.envs.presets import PRESETS
from flowsim.envs.signals import TrafficLightGridEnv
from flowsim.errors import ConfigError
from flowsim.sim.signals import Signals
from flowsim.sim.simulation import Simulation

needs_sumo_rl = testing.needs_sumo_rl()


def _near(sim: Simulation, lane: str, length: float, distance: float) -> tuple[int, int]:
    """Vehicles within ``distance`` m of ``lane``'s end, and those with a waiting time."""
    api = sim.kernel.backend.api
    vehicles = queued = 0
    for vehicle in api.lane.getLastStepVehicleIDs(lane):
        if length - api.vehicle.getLanePosition(vehicle) <= distance:
            vehicles += 1
            queued += api.vehicle.getWaitingTime(vehicle) > 0
    return vehicles, queued


def _expected(sim: Simulation, signals: Signals, rule: str) -> list[np.ndarray]:
    """Per light, each green's score by RESCO's definition, from SUMO's links and vehicles."""
    api = sim.kernel.backend.api
    controlled_in = {
        connection[0]
        for tls in signals.ids
        for link in api.trafficlight.getControlledLinks(tls)
        for connection in link
    }
    scores = []
    for index, tls in enumerate(signals.ids):
        links = api.trafficlight.getControlledLinks(tls)
        per_green = []
        for green in signals.greens[index]:
            total = 0.0
            for state, link in zip(green, links, strict=False):
                for lane_in, lane_out, _via in link if state in "Gg" else ():
                    length_in = api.lane.getLength(lane_in)
                    if rule == "greedy":
                        total += _near(sim, lane_in, length_in, GREEDY_DISTANCE)[0]
                        continue
                    total += _near(sim, lane_in, length_in, PRESSURE_DISTANCE)[1]
                    if lane_out in controlled_in:
                        length_out = api.lane.getLength(lane_out)
                        total -= _near(sim, lane_out, length_out, PRESSURE_DISTANCE)[1]
            per_green.append(total)
        scores.append(np.array(per_green))
    return scores


@pytest.fixture(scope="module")
def grid_state() -> Iterator[tuple[Simulation, Signals]]:
    """Flow's grid after 200 s with its west column at its second green, the others at their
    first: traffic through the west column queues at the next light."""
    # over TraCI, so that the libsumo slot stays free for the other tests of this module
    sim = Simulation(apply_overrides(PRESETS["grid"], ["sim.backend=traci"]))
    sim.reset(seed=0)
    signals = Signals(sim.kernel, yellow_time=2.0, min_green=5.0)
    signals.bind()
    held = np.array([1 if tls in ("center0", "center3", "center6") else 0 for tls in signals.ids])
    for _ in range(200):
        signals.tick()
        signals.set_greens(held)
        sim.step()
    yield sim, signals
    sim.close()


@pytest.mark.parametrize("rule", ["greedy", "max_pressure"])
def test_link_rules_pick_the_green_their_definition_scores_highest(
    grid_state: tuple[Simulation, Signals], rule: str
) -> None:
    sim, signals = grid_state
    chosen = signal_rule(rule, signals).choose()
    expected = _expected(sim, signals, rule)
    assert any(scores.max() > 0 for scores in expected)  # queues have built up
    for index, scores in enumerate(expected):
        present = signals.phase[index]
        best = present if scores[present] == scores.max() else int(np.argmax(scores))
        assert chosen[index] == best, (signals.ids[index], scores)
    assert (chosen != signals.phase).any()  # some light is asked to switch


def test_max_pressure_subtracts_the_queue_downstream(
    grid_state: tuple[Simulation, Signals],
) -> None:
    """An outgoing lane that is another light's approach counts against its green."""
    sim, signals = grid_state
    downstream = [
        (index, out)
        for index, outs in enumerate(signals.link_out)
        for out in outs.tolist()
        if 0 <= out < signals.num_incoming_lanes
    ]
    assert downstream  # the grid's inner edges lead from one light to the next
    _, queued = signals.near_stop_line(np.arange(signals.num_incoming_lanes), PRESSURE_DISTANCE)
    assert queued[[out for _, out in downstream]].sum() > 0
    rule = signal_rule("max_pressure", signals)
    with_downstream = _expected(sim, signals, "max_pressure")
    greedy_like = [
        signals.green_links[i].astype(float) @ queued[signals.link_in[i]]
        for i in range(len(signals.ids))
    ]
    assert any(not np.allclose(a, b) for a, b in zip(with_downstream, greedy_like, strict=True))
    assert rule.choose().shape == (len(signals.ids),)


def test_fixed_cycle_and_program_on_the_intersection() -> None:
    sim = Simulation(PRESETS["intersection"])
    try:
        sim.reset(seed=0)
        signals = Signals(sim.kernel, yellow_time=2.0, min_green=5.0)
        signals.bind()
        cycle = signal_rule("fixed_cycle", signals, green=20.0)
        cycle.reset()
        wanted = []
        for _ in range(60):
            wanted.append(int(cycle.choose()[0]))
            sim.step()
        assert wanted == [0] * 20 + [1] * 20 + [0] * 20
        # the programme: SUMO switches the lights, Signals switches nothing and follows it
        api = sim.kernel.backend.api
        program = signal_rule("program", signals)
        assert signals.following and api.trafficlight.getProgram("center") != "online"
        logic = api.trafficlight.getAllProgramLogics("center")[0]
        states = {phase.state for phase in logic.phases}
        seen = set()
        for _ in range(120):
            signals.set_greens(1 - program.choose())  # ignored: the programme drives
            sim.step()
            signals.tick()
            state = api.trafficlight.getRedYellowGreenState("center")
            seen.add(state)
            if state in signals.greens[0]:
                assert signals.greens[0][program.choose()[0]] == state
        assert seen == states  # every phase of the programme, nothing else
        signals.bind()  # a new bind takes the lights back
        assert not signals.following
    finally:
        sim.close()


def test_unknown_rule_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="choose from program, fixed_cycle"):
        signal_rule("longest_queue", None)  # type: ignore[arg-type]


def _episode(config: object, overrides: list[str], name: str, decisions: int) -> dict:
    """One episode of ``decisions`` steps of the signal env driven by the rule ``name``."""
    env = TrafficLightGridEnv(config, [*overrides, f"env.horizon={decisions}"])
    try:
        env.reset(seed=0)
        rule = signal_rule(name, env.signals, green=env.config.scenario.signals.green)
        rule.reset()
        switches: list[list[float]] = [[] for _ in env.signal_ids]
        last = env.signals.phase.copy()
        truncated = False
        arrived = 0
        while not truncated:
            _, _, terminated, truncated, info = env.step(rule.choose())
            assert not terminated
            arrived += info["arrived"]
            for index in np.flatnonzero(env.signals.phase != last).tolist():
                switches[index].append(env.kernel.time)
            last = env.signals.phase.copy()
        info["arrived_total"] = arrived
        info["switches"] = switches
        info["hold"] = env.config.env.yellow_time + env.signals.red_time + env.config.env.min_green
        return info
    finally:
        env.close()


@pytest.mark.parametrize("name", SIGNAL_BASELINES)
def test_each_rule_runs_an_episode_on_the_intersection(name: str) -> None:
    info = _episode(PRESETS["intersection"], ["env.warmup_steps=0"], name, 120)
    assert info["arrived_total"] > 100 and info["avg_delay"] > 0
    switches = info["switches"][0]
    assert len(switches) >= 2, name  # the rule does switch the light
    if name != "program":  # the agent's rules wait yellow + all-red + min green
        assert np.diff(switches).min() >= info["hold"][0] - 1e-9


@needs_sumo_rl
@pytest.mark.parametrize("name", SIGNAL_BASELINES)
def test_each_rule_runs_on_resco_cologne3(name: str) -> None:
    """Three lights with 3, 4 and 4 greens; RESCO's settings (10 s decisions, 3 s yellow)."""
    from pathlib import Path

    yaml = Path(__file__).resolve().parents[2] / "scenarios" / "resco" / "cologne3.yaml"
    info = _episode(yaml, ["env.type=traffic_light_grid"], name, 30)
    assert info["throughput"] > 0 and info["avg_delay"] > 0
    assert sum(len(s) for s in info["switches"]) >= 3
