"""Where the time of one ring env step goes (issue 21): each piece's own time, per env step.

    PYTHONPATH=TREE .venv/bin/python benchmarks/hotpath_profile.py [idm|sumo] [STEPS] [--json]

Runs the shipped ring (`scenarios/ring.yaml`; ``sumo`` sets the human group's controller to
SUMO's) as ``flowsim bench env`` times it: libsumo, an action every SUMO step, a zero action,
no warm-up. Each piece is a function wrapped with a timer; a piece's time excludes the pieces it
calls. Timers add their own cost, so every piece is scaled by (unwrapped µs per step) /
(wrapped µs per step), both measured in this process in alternating blocks. Works on trees from
before issue 21 (commit 475bdb6) and after it: pieces missing in a tree are skipped.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

import flowsim.controllers.car_following as car_following
import flowsim.envs.base as env_base
import flowsim.envs.ring as ring
import flowsim.sim.backends as backends
import flowsim.sim.kernel as kernel
import flowsim.sim.simulation as simulation
from flowsim.config import load_config
from flowsim.envs import make_env

#: (owner, attribute, piece): the functions timed, grouped into the pieces of the table
PIECES: list[tuple[Any, str, str]] = [
    (backends.LibsumoBackend, "step", "SUMO: simulationStep"),
    (backends.LibsumoBackend, "speeds", "libsumo: 22 getSpeed (+ array)"),
    (backends.LibsumoBackend, "leaders", "libsumo: getLeader per follower (+ list)"),
    (backends.LibsumoBackend, "leader_columns", "libsumo: getLeader per follower (+ list)"),
    (backends.LibsumoBackend, "set_speeds", "libsumo: setSpeed per commanded vehicle"),
    (backends.LibsumoBackend, "set_speed", "libsumo: setSpeed per commanded vehicle"),
    (backends.LibsumoBackend, "colliding_ids", "libsumo: collisions, teleports"),
    (backends.LibsumoBackend, "teleports", "libsumo: collisions, teleports"),
    (kernel.Kernel, "leaders", "kernel: leaders bookkeeping (headway, leader speed)"),
    (kernel.Kernel, "_read_leaders", "kernel: leaders bookkeeping (headway, leader speed)"),
    (kernel.Kernel, "_read_watched_leaders", "kernel: leaders bookkeeping (headway, leader speed)"),
    (kernel.Kernel, "_leaders_from", "kernel: leaders bookkeeping (headway, leader speed)"),
    (kernel.Kernel, "speeds", "kernel: step bookkeeping, speed cache"),
    (kernel.Kernel, "step", "kernel: step bookkeeping, speed cache"),
    (kernel.Kernel, "apply_accelerations", "kernel: acceleration -> speed command"),
    (kernel.Kernel, "_accelerate_one", "kernel: acceleration -> speed command"),
    (car_following.IDM, "model_accelerations", "controller: IDM maths"),
    (car_following.CarFollowingModel, "accelerations", "controller: noise, overlap check"),
    (car_following.CarFollowingModel, "_noise", "controller: noise, overlap check"),
    (simulation, "apply_failsafes", "controller: fail-safe (speed limit)"),
    (simulation.Simulation, "step", "simulation: step, drive_humans, following_state"),
    (simulation.Simulation, "drive_humans", "simulation: step, drive_humans, following_state"),
    (simulation.Simulation, "following_state", "simulation: step, drive_humans, following_state"),
    (ring.WaveAttenuationEnv, "observe", "env: observation"),
    (ring.WaveAttenuationEnv, "step_reward", "env: reward (mean, std of speeds)"),
    (simulation.Simulation, "metrics", "env: reward (mean, std of speeds)"),
    (simulation.Simulation, "speed_stats", "env: reward (mean, std of speeds)"),
    (env_base.FlowsimEnv, "_info", "env: info dict"),
    (env_base.FlowsimEnv, "step", "env: step loop, action check, AV command"),
    (env_base.FlowsimEnv, "sanitize_action", "env: step loop, action check, AV command"),
    (ring._RingTask, "apply_action", "env: step loop, action check, AV command"),
]


class Timers:
    """Exclusive time per piece: a wrapped call's time minus that of wrapped calls inside it."""

    def __init__(self) -> None:
        self.exclusive: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)
        self._children: list[int] = []

    def wrap(self, piece: str, function: Callable[..., Any]) -> Callable[..., Any]:
        clock, exclusive, calls, children = (
            time.perf_counter_ns,
            self.exclusive,
            self.calls,
            (self._children),
        )

        def timed(*args: Any, **kwargs: Any) -> Any:
            children.append(0)
            started = clock()
            try:
                return function(*args, **kwargs)
            finally:
                spent = clock() - started
                inner = children.pop()
                exclusive[piece] += spent - inner
                calls[piece] += 1
                if children:
                    children[-1] += spent

        return timed


def make_ring(humans: str) -> Any:
    overrides = ["env.warmup_steps=0", "env.horizon=1000000", "env.sims_per_step=1"]
    overrides.append("sim.backend=libsumo")
    if humans == "sumo":
        overrides.append("vehicles.0.controller=sumo")
    env = make_env(load_config("scenarios/ring.yaml", overrides))
    env.reset(seed=0)
    return env


def us_per_step(env: Any, steps: int) -> float:
    action = np.zeros(1, dtype=np.float32)
    started = time.perf_counter()
    for _ in range(steps):
        env.step(action)
    return (time.perf_counter() - started) / steps * 1e6


def profile(humans: str, steps: int, blocks: int = 5) -> dict[str, Any]:
    """Pieces of one env step (µs, scaled to the unwrapped step time) and the step time."""
    env = make_ring(humans)
    us_per_step(env, 300)  # warm up
    originals = [
        (owner, name, getattr(owner, name)) for owner, name, _ in PIECES if hasattr(owner, name)
    ]
    timers = Timers()
    wrapped = [
        (owner, name, timers.wrap(piece, getattr(owner, name)))
        for owner, name, piece in PIECES
        if hasattr(owner, name)
    ]
    plain, timed = [], []
    try:
        for _ in range(blocks):
            plain.append(us_per_step(env, steps))
            for owner, name, function in wrapped:
                setattr(owner, name, function)
            timed.append(us_per_step(env, steps))
            for owner, name, function in originals:
                setattr(owner, name, function)
    finally:
        for owner, name, function in originals:
            setattr(owner, name, function)
        env.close()
    step_us, wrapped_us = statistics.median(plain), statistics.median(timed)
    total_steps = steps * blocks
    scale = step_us / wrapped_us
    pieces = {
        piece: ns / 1000 / total_steps * scale
        for piece, ns in sorted(timers.exclusive.items(), key=lambda item: -item[1])
    }
    return {
        "humans": humans,
        "us_per_step": step_us,
        "us_per_step_blocks": plain,
        "wrapped_us_per_step": wrapped_us,
        "pieces_us": pieces,
        "calls_per_step": {piece: count / total_steps for piece, count in timers.calls.items()},
    }


def raw_sumo_cpu_us(humans: str, steps: int = 20000, repeats: int = 3) -> dict[str, float]:
    """CPU and wall µs per step of the ``sumo`` binary alone on the ring's network and demand,
    as ``flowsim bench env`` runs it: long minus short run (start-up cancels), the least of
    ``repeats``. CPU time (the child's user + system) is what other work on the machine
    inflates least."""
    import math
    import os
    import subprocess

    from flowsim.scenarios import sumo_binary
    from flowsim.scenarios.ring import RingScenario

    overrides = ["vehicles.0.controller=sumo"] if humans == "sumo" else []
    config = load_config("scenarios/ring.yaml", overrides)
    dt = config.sim.step_length
    fastest = max(g.max_speed for g in config.vehicles)
    loops = math.ceil(steps * dt * fastest / config.scenario.min_length) + 2
    scenario = RingScenario(config.scenario, config.vehicles, route_loops=loops)
    instance = scenario.instance(np.random.default_rng(config.sim.seed))

    def run(n: int) -> tuple[float, float]:
        command = [
            sumo_binary("sumo"),
            "--net-file", str(instance.net_file),
            "--route-files", str(instance.route_file),
            "--step-length", repr(dt),
            "--end", repr(n * dt),
            "--time-to-teleport", "-1",
            "--no-step-log", "true",
            "--no-warnings", "true",
            "--duration-log.disable", "true",
        ]  # fmt: skip
        before, started = os.times(), time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        wall, after = time.perf_counter() - started, os.times()
        cpu = (after.children_user - before.children_user) + (
            after.children_system - before.children_system
        )
        return cpu, wall

    short = max(steps // 5, 10)
    run(short)  # warm the file cache
    shorts = [run(short) for _ in range(repeats)]
    longs = [run(steps) for _ in range(repeats)]
    span = steps - short
    return {
        "raw_cpu_us": (min(c for c, _ in longs) - min(c for c, _ in shorts)) / span * 1e6,
        "raw_wall_us": (min(w for _, w in longs) - min(w for _, w in shorts)) / span * 1e6,
    }


def env_cpu_us(humans: str, steps: int = 2000, blocks: int = 5) -> dict[str, float]:
    """CPU and wall µs per ring env step (as ``bench env`` runs it), medians of ``blocks``."""
    env = make_ring(humans)
    action = np.zeros(1, dtype=np.float32)
    try:
        us_per_step(env, 300)
        cpu, wall = [], []
        for _ in range(blocks):
            started_cpu, started = time.process_time(), time.perf_counter()
            for _ in range(steps):
                env.step(action)
            cpu.append((time.process_time() - started_cpu) / steps * 1e6)
            wall.append((time.perf_counter() - started) / steps * 1e6)
    finally:
        env.close()
    return {"env_cpu_us": statistics.median(cpu), "env_wall_us": statistics.median(wall)}


def main() -> None:
    humans = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "idm"
    numbers = [arg for arg in sys.argv[1:] if arg.isdigit()]
    if "--rate" in sys.argv:  # CPU and wall µs per step of the env and of the raw binary
        import os

        rate = {"humans": humans, "load_before": os.getloadavg()[0]}
        rate.update(env_cpu_us(humans))
        rate.update(raw_sumo_cpu_us(humans))
        rate["ratio_to_raw_cpu"] = rate["raw_cpu_us"] / rate["env_cpu_us"]
        rate["ratio_to_raw_wall"] = rate["raw_wall_us"] / rate["env_wall_us"]
        rate["load_after"] = os.getloadavg()[0]
        print(json.dumps(rate))
        return
    result = profile(humans, int(numbers[0]) if numbers else 2000)
    if "--json" in sys.argv:
        print(json.dumps(result))
        return
    print(f"{humans} humans: {result['us_per_step']:.1f} µs per env step")
    for piece, us in result["pieces_us"].items():
        print(f"  {piece:55s} {us:7.2f} µs  {100 * us / result['us_per_step']:5.1f} %")


if __name__ == "__main__":
    main()
