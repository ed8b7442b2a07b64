"""Signal control: spaces, yellow and min-green rules, queues under a held phase, rewards,
the TraCI path, the PettingZoo env and config errors (the registry-wide checker and
determinism tests in test_envs.py cover the two registered ids too)."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import parallel_api_test

from flowsim import testing
from flowsim.config import load_config
from flowsim.envs import make_env
from flowsim.envs.multiagent_signals import parallel_env
from flowsim.envs.presets import PRESETS
from flowsim.envs.signals import TrafficLightGridEnv
from flowsim.errors import ConfigError
from flowsim.sim.signals import (
    Signals,
    all_red_phase,
    green_states,
    signal_layout,
    yellow_between,
)
from flowsim.sim.simulation import Simulation

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
#: One SUMO step (1 s) per agent step, so the light can be watched second by second.
EVERY_SECOND = ["env.sims_per_step=1", "env.horizon=200"]

needs_sumo_rl = testing.needs_sumo_rl()


def _state(env: TrafficLightGridEnv, index: int = 0) -> str:
    return env.kernel.backend.api.trafficlight.getRedYellowGreenState(env.signal_ids[index])


def test_phase_helpers() -> None:
    assert green_states(["GGrr", "yyrr", "rrGG", "rryy", "rrrr", "GGrr"]) == ["GGrr", "rrGG"]
    # red-yellow (u) is a transition; G against g makes two greens
    assert green_states(["GGrr", "uurr", "ggrr", "Gyrr"]) == ["GGrr", "ggrr"]
    assert yellow_between("GGgrr", "rrGGG") == "yygrr"  # green to green stays
    assert yellow_between("GGgg", "gGGg") == "GGgg"  # G to g: nothing loses its green
    assert all_red_phase(["GGrr", "yyrr", "rrrr", "rrGG", "rryy", "rrrr"], [30, 3, 2, 30, 3, 2])
    assert all_red_phase(["GGrr", "yyrr", "rrGG", "rryy"], [30, 3, 30, 3]) is None


@pytest.mark.parametrize("name", ["intersection", "grid"])
def test_shipped_yaml_matches_env_preset(name: str) -> None:
    shipped, preset = load_config(SCENARIOS / f"{name}.yaml"), PRESETS[name]
    for section in ("name", "scenario", "vehicles", "inflows", "env", "sim"):
        assert getattr(shipped, section) == getattr(preset, section), section


def test_intersection_spaces() -> None:
    env = gym.make("flowsim/Intersection-v0").unwrapped
    try:
        assert env.signal_ids == ("center",)
        assert env.action_space == gym.spaces.Discrete(2)
        # 2 green phases + min-green flag + density and queue of 8 incoming lanes
        assert env.observation_space.shape == (2 + 1 + 2 * 8,)
        obs, info = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        assert {"queue", "waiting_time", "arrived", "vehicles", "mean_speed"} <= set(info)
    finally:
        env.close()


def test_grid_spaces_and_checker() -> None:
    env = gym.make("flowsim/TrafficLightGrid-v0", overrides=["env.horizon=30"]).unwrapped
    try:
        assert env.action_space == gym.spaces.MultiDiscrete([2] * 9)
        assert env.observation_space.shape == (9 * (2 + 1 + 2 * 4),)
        check_env(env, skip_render_check=True)
    finally:
        env.close()


def test_yellow_all_red_then_green_and_min_green() -> None:
    env = gym.make("flowsim/Intersection-v0", overrides=EVERY_SECOND).unwrapped
    try:
        env.reset(seed=0)
        north_south, east_west = env.signals.greens[0]
        all_red = env.signals.all_red[0]  # the programme's 1 s all-red between its greens
        assert all_red == "r" * len(north_south) and env.signals.red_time[0] == 1.0
        assert _state(env) == north_south and env.signals.phase[0] == 0
        for _ in range(8):  # yellow 2 s + all-red 1 s + min green 5 s must pass first
            obs, *_ = env.step(1)
            assert _state(env) == north_south
        assert obs[2] == 1.0  # the min-green flag
        env.step(1)  # now the switch starts: 2 s of yellow, then 1 s of all-red
        yellow = yellow_between(north_south, east_west)
        assert _state(env) == yellow and "y" in yellow
        env.step(1)
        assert _state(env) == yellow
        env.step(1)
        assert _state(env) == all_red
        obs, *_ = env.step(1)
        assert _state(env) == east_west
        assert obs[:3].tolist() == [0.0, 1.0, 0.0]  # phase one-hot, min green not yet
        env.step(0)  # too early to switch back
        assert _state(env) == east_west
        env.step(np.nan)  # NaN keeps the phase
        assert env.signals.phase[0] == 1
    finally:
        env.close()


def _mean_queues(phase_of_step) -> tuple[float, float]:
    """Halted vehicles on the north-south and east-west approaches, averaged over 300 s."""
    env = gym.make("flowsim/Intersection-v0").unwrapped
    try:
        env.reset(seed=0)
        lanes = env.signals.lanes
        north_south = np.array([lane.startswith(("north_in", "south_in")) for lane in lanes])
        east_west = np.array([lane.startswith(("east_in", "west_in")) for lane in lanes])
        totals = np.zeros(2)
        for step in range(60):
            env.step(phase_of_step(step))
            halting = env.signals.readings().halting
            totals += halting[north_south].sum(), halting[east_west].sum()
    finally:
        env.close()
    return totals[0] / 60, totals[1] / 60


def test_holding_one_phase_queues_the_other_approach() -> None:
    held_ns, held_ew = _mean_queues(lambda step: 0)  # north-south green throughout
    assert held_ns < 1 and held_ew > 20
    alternate_ns, alternate_ew = _mean_queues(lambda step: (step // 4) % 2)  # 20 s each
    assert alternate_ew < held_ew / 2 and alternate_ns > held_ns


@pytest.mark.parametrize("kind", ["queue", "pressure", "diff_waiting_time"])
def test_rewards(kind: str) -> None:
    env = gym.make(
        "flowsim/TrafficLightGrid-v0", overrides=[f"env.signal_reward={kind}", "env.horizon=50"]
    ).unwrapped
    try:
        env.reset(seed=0)
        signals = env.signals
        for _ in range(40):  # every light green for north-south: east-west queues build
            _, reward, terminated, truncated, info = env.step(np.zeros(9))
        expected = {
            "queue": -signals.queues(),
            "pressure": -signals.pressures(),
            "diff_waiting_time": None,
        }[kind]
        if expected is None:
            waiting = signals.waiting_times()
            _, reward, *_ = env.step(np.ones(9))
            expected = (waiting - signals.waiting_times()) / 100.0
        assert reward == pytest.approx(expected.sum())
        assert env.signal_rewards == pytest.approx(expected)
        if kind == "queue":
            assert reward == -info["queue"] and info["queue"] > 0
        assert not terminated and not truncated
    finally:
        env.close()


def test_vehicles_arrive_during_an_episode() -> None:
    env = gym.make("flowsim/TrafficLightGrid-v0").unwrapped
    try:
        env.reset(seed=0)
        arrived = 0
        for _ in range(200):
            *_, info = env.step(env.action_space.sample())
            arrived += info["arrived"]
        assert arrived > 50 and info["vehicles"] > 0
    finally:
        env.close()


def test_traci_reads_the_same_as_libsumo() -> None:
    def rollout(backend: str) -> tuple[np.ndarray, list[float]]:
        env = make_env(PRESETS["intersection"], [f"sim.backend={backend}", "env.horizon=40"])
        env.action_space.seed(3)
        try:
            observations = [env.reset(seed=5)[0]]
            rewards = []
            for _ in range(30):
                obs, reward, *_ = env.step(env.action_space.sample())
                observations.append(obs)
                rewards.append(reward)
        finally:
            env.close()
        return np.array(observations), rewards

    libsumo_obs, libsumo_rewards = rollout("libsumo")
    traci_obs, traci_rewards = rollout("traci")
    assert np.array_equal(libsumo_obs, traci_obs)
    assert libsumo_rewards == pytest.approx(traci_rewards)
    assert libsumo_obs[-1].sum() > 0


def test_passes_pettingzoo_parallel_api_test() -> None:
    env = parallel_env(overrides=["env.horizon=30"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the API test reports soft failures as warnings
            parallel_api_test(env, num_cycles=40)  # past the horizon: agents empty at step 30
    finally:
        env.close()


def test_multiagent_splits_the_single_agent_task() -> None:
    env = parallel_env(overrides=["env.horizon=5"])
    # a second simulation in this process: over TraCI (libsumo runs one per process)
    single = gym.make(
        "flowsim/TrafficLightGrid-v0", overrides=["env.horizon=5", "sim.backend=traci"]
    ).unwrapped
    try:
        assert env.possible_agents == [f"center{k}" for k in range(9)]
        observations, _ = env.reset(seed=1)
        vector, _ = single.reset(seed=1)
        assert np.array_equal(np.concatenate([observations[a] for a in env.agents]), vector)
        phases = {agent: k % 2 for k, agent in enumerate(env.agents)}
        for step in range(5):
            observations, rewards, terminations, truncations, _ = env.step(phases)
            vector, reward, *_ = single.step(np.array([k % 2 for k in range(9)]))
            assert np.array_equal(np.concatenate(list(observations.values())), vector)
            assert sum(rewards.values()) == pytest.approx(reward)
            assert not any(terminations.values())
            assert all(truncations.values()) == (step == 4)
        assert env.agents == []
    finally:
        env.close()
        single.close()


def test_multiagent_determinism() -> None:
    def rollout() -> list[dict]:
        env = parallel_env(preset="intersection", overrides=["env.horizon=40"])
        try:
            env.action_space("center").seed(2)
            env.reset(seed=9)
            return [env.step({"center": env.action_space("center").sample()})[1] for _ in range(40)]
        finally:
            env.close()

    assert rollout() == rollout()


def test_signal_env_on_a_ring_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"has none; give a network with traffic lights"):
        TrafficLightGridEnv({"env": {"type": "traffic_light_grid"}})


def test_wrong_number_of_phases_is_refused() -> None:
    env = gym.make("flowsim/TrafficLightGrid-v0").unwrapped
    try:
        env.reset(seed=0)
        with pytest.raises(ValueError, match="expected 9 green phase"):
            env.step(np.zeros(3))
    finally:
        env.close()


@pytest.mark.parametrize(
    "module",
    [
        "flowsim.sim.signals",
        "flowsim.envs.signals",
        "flowsim.envs.multiagent_signals",
        "flowsim.controllers.signals",
    ],
)
def test_docstring_examples_run(module: str) -> None:
    found = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert found.attempted > 0 and found.failed == 0


def test_multiagent_type_points_at_its_factory() -> None:
    overrides = ["env.type=multiagent_traffic_light_grid"]
    with pytest.raises(ConfigError, match=r"flowsim\.envs\.multiagent_signals\.parallel_env"):
        make_env(PRESETS["grid"], overrides)
    env = parallel_env(PRESETS["grid"], [*overrides, "env.horizon=3"])
    try:
        observations, _ = env.reset(seed=0)
        assert len(observations) == 9
    finally:
        env.close()


def test_env_signals_picks_the_lights_in_its_order() -> None:
    overrides = ["env.signals=[center4, center0]", "env.horizon=10"]
    env = TrafficLightGridEnv(PRESETS["grid"], overrides)
    try:
        assert env.signal_ids == ("center4", "center0")
        assert env.action_space == gym.spaces.MultiDiscrete([2, 2])
        assert env.observation_space.shape == (2 * (2 + 1 + 2 * 4),)
        env.reset(seed=0)
        api = env.kernel.backend.api
        assert api.trafficlight.getProgram("center4") == "online"  # taken over by flowsim
        assert api.trafficlight.getProgram("center1") != "online"  # still its programme
        for _ in range(10):
            env.step(env.action_space.sample())
    finally:
        env.close()
    agents = parallel_env(PRESETS["grid"], overrides)
    try:
        assert agents.possible_agents == ["center4", "center0"]
    finally:
        agents.close()


def test_unknown_signal_id_names_env_signals_and_the_lights() -> None:
    with pytest.raises(ConfigError, match=r"env\.signals: 'nowhere' not among the traffic"):
        TrafficLightGridEnv(PRESETS["grid"], ["env.signals=[center0, nowhere]"])
    with pytest.raises(ConfigError, match=r"choose from center0, center1, center2"):
        TrafficLightGridEnv(PRESETS["grid"], ["env.signals=[nowhere]"])
    sim = Simulation(PRESETS["intersection"])
    try:
        sim.reset(seed=0)
        with pytest.raises(ConfigError, match=r"env\.signals: 'west'.*choose from center"):
            Signals(sim.kernel, 2.0, 5.0, ids=["west"]).bind()
    finally:
        sim.close()


def test_greens_that_differ_only_in_g_and_G() -> None:
    """A programme whose first two greens differ only in priority (G) against yield (g)."""
    sim = Simulation(PRESETS["intersection"])
    try:
        sim.reset(seed=0)
        lights = sim.kernel.backend.api.trafficlight
        yielding, priority = "GGGgrrrrGGGgrrrr", "GGGGrrrrGGGGrrrr"
        east_west = "rrrrGGGgrrrrGGGg"
        phases = [
            lights.Phase(20, yielding),
            lights.Phase(10, priority),
            lights.Phase(2, "yyyyrrrryyyyrrrr"),
            lights.Phase(30, east_west),
            lights.Phase(2, "rrrryyyyrrrryyyy"),
        ]
        lights.setProgramLogic("center", lights.Logic("gG", 0, 0, phases))
        signals = Signals(sim.kernel, yellow_time=2.0, min_green=5.0)
        signals.bind()
        assert signals.greens[0] == [yielding, priority, east_west]
        assert signals.all_red == [None]
        for _ in range(7):
            sim.step()
        assert signals.set_green(0, 1)  # no link loses its green: no yellow
        assert lights.getRedYellowGreenState("center") == priority
        assert not signals.is_yellow[0]
        for _ in range(7):
            signals.tick()
            sim.step()
        assert signals.set_green(0, 2)
        assert lights.getRedYellowGreenState("center") == yellow_between(priority, east_west)
        for _ in range(2):
            sim.step()
        signals.tick()
        assert lights.getRedYellowGreenState("center") == east_west
    finally:
        sim.close()


def test_average_speed_reward() -> None:
    overrides = [*EVERY_SECOND, "env.signal_reward=average_speed", "env.warmup_steps=0"]
    env = TrafficLightGridEnv(PRESETS["intersection"], overrides)
    try:
        env.reset(seed=0)
        assert env.signals.average_speeds().tolist() == [1.0]  # nobody on the approaches yet
        api = env.kernel.backend.api
        for _ in range(40):  # north-south held: east-west vehicles stop
            _, reward, *_ = env.step(0)
        ratios = [
            api.vehicle.getSpeed(v) / api.vehicle.getAllowedSpeed(v)
            for lane in env.signals.lanes[: env.signals.num_incoming_lanes]
            for v in api.lane.getLastStepVehicleIDs(lane)
        ]
        assert len(ratios) > 5 and 0.0 < reward < 1.0
        assert reward == pytest.approx(np.mean(ratios))
    finally:
        env.close()


@needs_sumo_rl
@pytest.mark.parametrize("name", ["cologne3", "ingolstadt7", "ingolstadt21", "grid4x4"])
def test_resco_maps_lights_keep_their_own_programmes(name: str) -> None:
    """Lights with 2 to 8 greens each (on ingolstadt21 some link indices control several
    connections); every state shown is a green of the light's own programme, the yellow
    between two of them, or the programme's all-red."""
    yaml = SCENARIOS / "resco" / f"{name}.yaml"
    overrides = ["env.type=traffic_light_grid", "env.horizon=12"]
    env = TrafficLightGridEnv(yaml, overrides)
    try:
        layout = signal_layout(env.simulation.scenario.network())
        counts = [len(light.greens) for light in layout]
        assert env.action_space == gym.spaces.MultiDiscrete(counts)
        assert len(set(counts)) > 1 or counts[0] == 8  # different sizes, or many phases
        env.reset(seed=0)
        env.action_space.seed(0)
        api = env.kernel.backend.api
        for _ in range(12):
            env.step(env.action_space.sample())
            for index, tls in enumerate(env.signal_ids):
                state = api.trafficlight.getRedYellowGreenState(tls)
                greens = env.signals.greens[index]
                assert (
                    state in greens
                    or state == env.signals.all_red[index]
                    or any(state == yellow_between(a, b) for a in greens for b in greens)
                ), (tls, state)
    finally:
        env.close()
    if name == "cologne3":
        agents = parallel_env(yaml, overrides)
        try:
            assert [agents.action_space(a).n for a in agents.possible_agents] == counts
        finally:
            agents.close()
