"""Mixed autonomy on open networks: groups claiming vehicles (vtype, share) and open_accel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from flowsim.config import load_config
from flowsim.envs import make_env
from flowsim.errors import ConfigError
from flowsim.sim.simulation import Simulation
from flowsim.testing import run_cli

ROOT = Path(__file__).resolve().parents[2]
OSM_AV = ROOT / "scenarios" / "osm_av.yaml"
#: A short episode on the town: 60 s of warm-up fill it with a few dozen vehicles.
SHORT = ["env.warmup_steps=60", "env.horizon=40"]


def _claimed(simulation: Simulation, steps: int) -> tuple[set[str], set[str]]:
    """AV ids and all vehicle ids seen over ``steps`` steps."""
    avs: set[str] = set()
    seen: set[str] = set()
    for _ in range(steps):
        simulation.step()
        seen.update(simulation.kernel.vehicle_ids)
        avs.update(simulation.group("av").ids)
    return avs, seen


def test_share_claims_that_fraction_of_entering_vehicles_reproducibly() -> None:
    config = load_config(OSM_AV, ["vehicles.1.share=0.3"])
    simulation = Simulation(config)
    try:
        simulation.reset(seed=3)
        avs, seen = _claimed(simulation, 300)
        humans = set(simulation.group("human").ids)
        assert len(seen) > 100
        assert 0.2 < len(avs) / len(seen) < 0.4
        assert not avs & humans  # a vehicle belongs to one group
        # the AVs keep the route files' vType; the rl group drives them
        kernel = simulation.kernel
        assert {kernel.vehicle_type(v) for v in simulation.group("av").ids} == {"human"}
        simulation.reset(seed=3)
        assert _claimed(simulation, 300)[0] == avs  # the same draws for the same seed
        simulation.reset(seed=4)
        assert _claimed(simulation, 300)[0] != avs
    finally:
        simulation.close()


def test_vtype_claims_every_vehicle_of_that_vtype_on_a_merge() -> None:
    # trucks enter on the highway as their own vType; the rl group claims them all by vType
    config = load_config(
        ROOT / "scenarios" / "merge.yaml",
        [
            "vehicles=[{type: human, count: 0}, {type: av, count: 0, vtype: truck, "
            "controller: rl}, {type: truck, count: 0, length: 12}]",
            "inflows=[{edge: inflow_highway, vehicle: human, rate: 1200}, "
            "{edge: inflow_highway, vehicle: truck, rate: 600}]",
        ],
    )
    simulation = Simulation(config)
    try:
        simulation.reset(seed=0)
        avs, seen = _claimed(simulation, 200)
        kernel = simulation.kernel
        trucks = {v for v in seen if v.startswith("truck")}
        assert trucks and avs == trucks
        assert simulation.group("truck").ids == ()  # the claim wins over the name
        assert all(kernel.vehicle_type(v) == "truck" for v in simulation.group("av").ids)
    finally:
        simulation.close()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["vehicles.1.share=0"], "vehicles.1.share"),
        (["vehicles.1.share=1.5"], "outside (0, 1]"),
        (["vehicles.1.vtype=human"], "not both"),
        (["vehicles.1.count=3"], "set count: 0"),
    ],
)
def test_bad_claims_are_refused_naming_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("]", r"\]")):
        load_config(OSM_AV, overrides)


def test_claims_that_cannot_work_are_refused_before_sumo_starts() -> None:
    ring = load_config(
        ROOT / "scenarios" / "ring.yaml",
        ["vehicles.1.count=0", "vehicles.1.share=0.5"],
    )
    with pytest.raises(ConfigError, match=r"vehicles\[1\]\.share: scenario.type ring"):
        Simulation(ring)
    shares = load_config(
        OSM_AV, ["vehicles=[{type: a, count: 0, share: 0.6}, {type: b, count: 0, share: 0.6}]"]
    )
    with pytest.raises(ConfigError, match=r"vehicles\[1\]\.share: .* add up to 1.2"):
        Simulation(shares)
    twice = load_config(
        OSM_AV, ["vehicles=[{type: a, count: 0, vtype: x}, {type: b, count: 0, vtype: x}]"]
    )
    with pytest.raises(ConfigError, match=r"vehicles\[1\]\.vtype: vType 'x' is already"):
        Simulation(twice)


def test_open_accel_refuses_a_closed_network_or_no_avs() -> None:
    with pytest.raises(ConfigError, match="open_accel needs an open network"):
        make_env(ROOT / "scenarios" / "ring.yaml", overrides=["env={type: open_accel}"])
    with pytest.raises(ConfigError, match="needs a vehicle group with controller: rl"):
        make_env(OSM_AV, overrides=["vehicles.1.controller=sumo"])


def test_a_vtype_the_route_files_lack_exits_2_naming_the_key() -> None:
    done = run_cli(
        "simulate",
        str(OSM_AV),
        "--steps",
        "5",
        "--set",
        "vehicles.1.share=null",
        "--set",
        "vehicles.1.vtype=bus",
    )
    assert done.returncode == 2, done.stderr
    assert "vehicles[1].vtype: 'bus' is not a vType of the route files" in done.stderr
    assert "Traceback" not in done.stderr


def test_empty_slots_observe_zeros_and_ignore_actions() -> None:
    env = make_env(OSM_AV, overrides=["env.warmup_steps=0", "env.horizon=3"])
    try:
        obs, info = env.reset(seed=0)
        assert info["controlled_avs"] == 0 and not obs.any()
        obs, reward, *_ = env.step(env.action_space.high)
        assert np.isfinite(obs).all() and reward >= 0
    finally:
        env.close()


def test_same_seed_same_episode() -> None:
    def play() -> list[np.ndarray]:
        env = make_env(OSM_AV, overrides=SHORT)
        try:
            rng = np.random.default_rng(0)
            observations = [env.reset(seed=7)[0]]
            for _ in range(30):
                observations.append(env.step(rng.uniform(-1.5, 1.5, 10))[0])
            return observations
        finally:
            env.close()

    first, second = play(), play()
    assert any(o.any() for o in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_train_checkpoints_and_evaluates_against_the_human_baseline(tmp_path: Path) -> None:
    overrides = [
        "sampler.num_workers=0",
        "env.warmup_steps=60",
        "env.horizon=50",
        "sampler.rollout_fragment_length=100",
        "train.iterations=2",
        "train.minibatch_size=50",
    ]
    sets = [arg for item in overrides for arg in ("--set", item)]
    done = run_cli("train", str(OSM_AV), "--out", str(tmp_path), *sets)
    assert done.returncode == 0, done.stderr
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert any((run / "checkpoints").iterdir())
    done = run_cli("evaluate", str(run), "--episodes", "1", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    # SUMO drives the AVs in the human baseline; the per-AV controllers do not apply
    assert result["baselines"]["human"]["mean_speed"] > 0
    assert result["skipped_baselines"] == ["pi_saturation"]
    assert np.isfinite(result["mean_speed"])


@pytest.fixture(scope="module")
def two_slot_env():
    """The town with half the vehicles AVs and two slots: a queue forms and slots turn over.

    libsumo runs one simulation per process: the tests using it come last in this module."""
    env = make_env(OSM_AV, overrides=[*SHORT, "env.num_rl=2", "vehicles.1.share=0.5"])
    yield env
    env.close()


def test_spaces_pass_gymnasiums_checker(two_slot_env) -> None:
    env = two_slot_env
    assert env.observation_space.shape == (12,) and env.action_space.shape == (2,)
    check_env(env, skip_render_check=True)


def test_slots_fill_as_avs_enter_and_free_as_they_leave(two_slot_env) -> None:
    env = two_slot_env
    obs, info = env.reset(seed=0)
    held: dict[int, list[str]] = {0: [], 1: []}
    queued = 0
    for _ in range(150):  # past the horizon: trips take a minute or two
        obs, _, terminated, _, info = env.step(np.full(2, np.nan))  # SUMO drives: no crashes
        assert env.observation_space.contains(obs) and not terminated
        queued = max(queued, info["queued_avs"])
        for slot, av in enumerate(env.slots):
            if av:
                assert av in env.kernel.vehicle_ids and av in env.simulation.group("av").ids
                if not held[slot] or held[slot][-1] != av:
                    held[slot].append(av)
            else:
                assert not obs[6 * slot : 6 * slot + 6].any()  # an empty slot observes zeros
    assert queued > 0 and info["controlled_avs"] == 2
    assert any(len(avs) >= 2 for avs in held.values())  # an AV left and the queue refilled
    # an AV that got a slot kept it until it left the network
    for avs in held.values():
        assert len(avs) == len(set(avs))
