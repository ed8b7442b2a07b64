"""Speed benchmarks: the sumo binary alone against flowsim's env on libsumo and TraCI."""

from __future__ import annotations

import math
import statistics
import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import numpy as np

from flowsim.bench.results import machine_description
from flowsim.config import FlowsimConfig, apply_overrides
from flowsim.envs import make_env
from flowsim.evaluation.evaluate import fixed_cycle_actor
from flowsim.scenarios import sumo_binary


def raw_sumo_steps_per_s(config: FlowsimConfig, steps: int, repeats: int = 5) -> float:
    """Steps per second of the ``sumo`` binary alone on the config's network and demand.

    The fastest of ``repeats`` runs of ``steps`` and of ``steps // 5`` steps are subtracted,
    so start-up cost cancels out and other load on the machine (which only ever slows a run
    down) is filtered. Routes are long enough that no vehicle leaves during the run.
    """
    from flowsim.scenarios import make_scenario
    from flowsim.scenarios.ring import RingScenario

    dt = config.sim.step_length
    if config.scenario.open:  # the same network and inflows; vehicles come and go as in the env
        scenario = make_scenario(config)
    else:
        fastest = max(g.max_speed for g in config.vehicles)
        loops = math.ceil(steps * dt * fastest / config.scenario.min_length) + 2
        scenario = RingScenario(config.scenario, config.vehicles, route_loops=loops)
    instance = scenario.instance(np.random.default_rng(config.sim.seed))

    def run(n: int) -> float:
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
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        return time.perf_counter() - started

    short, long = max(steps // 5, 10), steps
    run(short)  # warm the file cache
    # Fastest of each length, then the difference: a maximum of noisy differences overshoots.
    best_short = min(run(short) for _ in range(repeats))
    best_long = min(run(long) for _ in range(repeats))
    return (long - short) / max(best_long - best_short, 1e-9)


def timing_actions(space: Any, config: FlowsimConfig) -> Callable[[int], Any]:
    """The action at each agent step of a timing run: traffic as in the raw SUMO run.

    A box action is zero on a loop; on an open network it is its upper bound, so AVs
    accelerate to the speed SUMO's safe-speed check allows (zero acceleration would hold
    each AV at its entry speed and jam the road behind it). Signal phases (a discrete space)
    cycle every ``scenario.signals.green`` seconds, a fixed-time programme; holding one phase
    would grow the cross street's queue without bound.
    """
    import gymnasium

    if isinstance(space, gymnasium.spaces.Box):
        action = space.high if config.scenario.open else np.zeros(space.shape)
        fixed = np.asarray(action, dtype=np.float32)
        return lambda step: fixed
    if isinstance(space, (gymnasium.spaces.Discrete, gymnasium.spaces.MultiDiscrete)):
        return fixed_cycle_actor(config, space)
    space.seed(0)
    sample = space.sample()
    return lambda step: sample


def env_steps_per_s(config: FlowsimConfig, steps: int, sims_per_step: int | None = 1) -> float:
    """Agent steps per second of the config's env stepping with a fixed action.

    ``sims_per_step`` overrides the config's (default 1: an action every SUMO step, so the
    figure compares with raw SUMO steps); None keeps the config's.
    """
    overrides = ["env.warmup_steps=0", f"env.horizon={steps + 101}"]
    if sims_per_step is not None:
        overrides.append(f"env.sims_per_step={sims_per_step}")
    timed = apply_overrides(config, overrides)
    env = make_env(timed)
    try:
        env.reset(seed=config.sim.seed)
        actions = timing_actions(env.action_space, timed)
        warmup = min(100, steps)
        for step in range(warmup):  # warm caches and allocators
            env.step(actions(step))
        started = time.perf_counter()
        for step in range(warmup, warmup + steps):
            env.step(actions(step))
        return steps / (time.perf_counter() - started)
    finally:
        env.close()


def reset_times_ms(config: FlowsimConfig, resets: int = 20) -> dict[str, float]:
    """Median env reset time (ms) on libsumo, each reset drawing a new, already cached length.

    On a ring the length is drawn from ``[L, L + 2]`` m; every network on that 0.1 m grid is
    built first, so the figure is the cost of loading a cached network, placing and inserting
    vehicles. Other scenarios are reset ``resets`` times untimed first, so what they cache
    (networks, OSM demand variants) is built, then reload it.
    """
    from flowsim.scenarios.ring import ring_network

    closed_ring = config.scenario.type in ("ring", "multilane_ring")
    low = config.scenario.min_length
    if closed_ring:
        for tenth in range(21):
            ring_network(
                round(low + tenth / 10, 1), config.scenario.lanes, config.scenario.speed_limit
            )
    medians: dict[str, float] = {}
    for key, warmup in (("reset_ms", 0), ("reset_with_warmup_ms", config.env.warmup_steps)):
        overrides = [f"env.warmup_steps={warmup}"]
        if closed_ring:
            overrides.append(f"scenario.length=[{low}, {low + 2}]")
        env = make_env(apply_overrides(config, overrides))
        try:
            env.reset(seed=config.sim.seed)
            if not closed_ring:  # build what the scenario caches (e.g. OSM demand variants)
                for _ in range(resets):
                    env.reset()
            timings = []
            for _ in range(resets):
                started = time.perf_counter()
                env.reset()
                timings.append((time.perf_counter() - started) * 1000)
            medians[key] = statistics.median(timings)
        finally:
            env.close()
    return medians


def bench_env(
    config: FlowsimConfig,
    steps: int = 5000,
    traci_steps: int | None = None,
    report: Callable[[str], None] = lambda phase: None,
) -> dict[str, Any]:
    """Run the env benchmark and return its figures (see ``flowsim bench env``).

    ``report`` is called with the name of each phase as it starts (for a progress display).
    """
    libsumo_config = apply_overrides(config, ["sim.backend=libsumo", "sim.gui=false"])
    traci_config = apply_overrides(config, ["sim.backend=traci", "sim.gui=false"])
    make_env(libsumo_config).close()  # a config the env rejects fails now, not after minutes
    report(f"raw sumo binary, {steps} steps")
    raw = raw_sumo_steps_per_s(libsumo_config, steps)
    report(f"env on libsumo, {steps} steps")
    libsumo_rate = env_steps_per_s(libsumo_config, steps)
    traci_steps = traci_steps or max(steps // 5, 200)
    report(f"env on traci, {traci_steps} steps")
    per_backend = {"libsumo": libsumo_rate, "traci": env_steps_per_s(traci_config, traci_steps)}
    decisions: dict[str, float] = {}
    if config.env.sims_per_step > 1:
        report(f"agent decisions every {config.env.sims_per_step} steps, libsumo and traci")
        decisions = {
            "libsumo": env_steps_per_s(libsumo_config, max(steps // 5, 100), None),
            "traci": env_steps_per_s(traci_config, max(traci_steps // 5, 50), None),
        }
    report("env resets")
    humans = sorted({g.controller.type for g in config.vehicles if g.controller.type != "rl"})
    return {
        "benchmark": "env",
        "config": config.name,
        "humans": humans,
        "vehicles": config.num_vehicles,
        "steps": steps,
        "raw_sumo_steps_per_s": raw,
        "env_steps_per_s": per_backend,
        "ratio_to_raw": per_backend["libsumo"] / raw,
        "sims_per_step": config.env.sims_per_step,
        "decisions_per_s": decisions or dict(per_backend),
        **reset_times_ms(libsumo_config),
        "machine": machine_description(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
