"""Speed benchmarks: the sumo binary alone against flowsim's env on libsumo and TraCI."""

from __future__ import annotations

import math
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from flowsim import jsonout
from flowsim.config import FlowsimConfig, apply_overrides
from flowsim.envs import make_env
from flowsim.evaluation import fixed_cycle_actor
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


def machine_description() -> dict[str, Any]:
    """Processor, core count and software versions, recorded beside every benchmark."""
    import os

    return {
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sumo": metadata.version("eclipse-sumo"),
        "platform": platform.platform(),
    }


def write_result(result: dict[str, Any], folder: Path = Path("benchmarks/results")) -> Path:
    """Write a benchmark result as JSON under ``folder`` and return the file's path."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    path = folder / f"{result['benchmark']}-{result['config']}-{stamp}.json"
    path.write_text(jsonout.dumps(result) + "\n")
    return path


def _sampler_rate(group: Any, steps: int, rounds: int) -> tuple[float, dict[str, float]]:
    """Driver-side steps/s of ``group`` over ``rounds`` calls, and where a step's time went."""
    group.sample(num_steps=max(steps // 10, 50))  # actors placed, networks built, caches warm
    started = time.perf_counter()
    totals = {"steps": 0.0, "sim_s": 0.0, "inference_s": 0.0, "runner_wall_s": 0.0}
    for _ in range(rounds):
        batch = group.sample(num_steps=steps)
        for runner in batch.metrics["runners"]:
            totals["steps"] += runner["steps"]
            totals["sim_s"] += runner["sim_s"]
            totals["inference_s"] += runner["inference_s"]
            totals["runner_wall_s"] += runner["wall_s"]
    wall = time.perf_counter() - started
    per_step_us = {
        "simulator_us": totals["sim_s"] / totals["steps"] * 1e6,
        "inference_us": totals["inference_s"] / totals["steps"] * 1e6,
        "bookkeeping_us": (totals["runner_wall_s"] - totals["sim_s"] - totals["inference_s"])
        / totals["steps"]
        * 1e6,
        "transfer_and_driver_us": max(wall * group.num_runners - totals["runner_wall_s"], 0.0)
        / totals["steps"]
        * 1e6,
    }
    return totals["steps"] / wall, per_step_us


def bench_sampler(
    config: FlowsimConfig,
    steps: int = 2000,
    rounds: int = 3,
    trajectories: int = 144,
    report: Callable[[str], None] = lambda phase: None,
) -> dict[str, Any]:
    """Sampler throughput in-process, on 1 Ray worker and on every core; 144-trajectory time.

    The policy is a 64-64 tanh Gaussian MLP evaluated in numpy, as a trainer's runners use.
    """
    import os

    from flowsim.distributed import LocalRunnerGroup, PolicySpec, RayRunnerGroup
    from flowsim.distributed.cluster import init_ray

    policy = PolicySpec(kind="gaussian_mlp", hidden=(64, 64))
    cores = int(os.cpu_count() or 1)
    settings: dict[str, dict[str, Any]] = {}
    report(f"in-process runner, {rounds} x {steps} steps")
    local = LocalRunnerGroup(config, 1, policy)
    try:
        rate, split = _sampler_rate(local, steps, rounds)
        settings["in_process"] = {"workers": 0, "steps_per_s": rate, **split}
    finally:
        local.close()
    init_ray(config.sampler)
    for name, workers in (("ray_1_worker", 1), ("ray_all_cores", cores)):
        report(f"Ray group, {workers} worker(s), {rounds} x {steps} steps each")
        group = RayRunnerGroup(config, workers, policy)
        try:
            rate, split = _sampler_rate(group, steps, rounds)
            settings[name] = {"workers": workers, "steps_per_s": rate, **split}
        finally:
            group.close()

    horizon = config.env.horizon
    report(f"{trajectories} trajectories of {horizon} steps on {cores} workers")
    group = RayRunnerGroup(config, cores, policy)
    try:
        group.sample(num_steps=10)  # actors placed; not timed, as in the RLlib figure
        started = time.perf_counter()
        completed = 0
        while completed < trajectories:  # one episode per runner per call, to show progress
            completed += group.sample(num_episodes=1).num_episodes
            report(
                f"{completed}/{trajectories} trajectories, {time.perf_counter() - started:.0f} s"
            )
        seconds = time.perf_counter() - started
    finally:
        group.close()

    one = settings["ray_1_worker"]["steps_per_s"]
    return {
        "benchmark": "sampler",
        "config": config.name,
        "cores": cores,
        "steps_per_s": {name: s["steps_per_s"] for name, s in settings.items()},
        "per_step_us": {
            name: {k: v for k, v in s.items() if k.endswith("_us")} for name, s in settings.items()
        },
        "scaling_efficiency": settings["ray_all_cores"]["steps_per_s"] / (cores * one),
        "ray_1_worker_vs_in_process": one / settings["in_process"]["steps_per_s"],
        "trajectories": completed,
        "trajectory_steps": horizon,
        "warmup_steps": config.env.warmup_steps,
        # Runners may finish a few more episodes than asked; scale to exactly 144.
        "seconds_for_144_trajectories": seconds * 144 / max(completed, 1),
        "machine": machine_description(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


#: The ring's result that matters: speed ratio and wave amplitude the trained AV must reach.
TARGET_SPEED_RATIO = 0.95
TARGET_SPEED_STD = 0.5


def _reaches_target(metrics: dict[str, Any]) -> bool:
    return (
        metrics.get("speed_ratio", 0.0) >= TARGET_SPEED_RATIO
        and metrics["speed_std"] < TARGET_SPEED_STD
        and metrics["collisions"] == 0
    )


class _TargetTracker:
    """A training callback: evaluates the policy now and then and notes when it hits the target."""

    def __init__(
        self,
        algo: str,
        config: FlowsimConfig,
        budget_s: float,
        eval_every: int,
        episodes: int,
        seed: int,
        report: Callable[[str], None],
    ) -> None:
        self.algo, self.config, self.budget_s = algo, config, budget_s
        self.eval_every, self.episodes, self.seed, self.report = eval_every, episodes, seed, report
        self.eval_s = 0.0
        self.target: dict[str, Any] | None = None
        self.curve: list[dict[str, Any]] = []

    def __call__(self, row: dict[str, float], trainer: Any) -> bool:
        """Evaluate every ``eval_every`` iterations; False (stop) once the budget is spent."""
        from flowsim.evaluation import evaluate

        train_s = row["wall_s"] - self.eval_s
        iteration = int(row["iteration"])
        last = iteration >= self.config.train.iterations or train_s >= self.budget_s
        if iteration % self.eval_every == 0 or last:
            started = time.perf_counter()
            policy = trainer.model.export(trainer.normalizer)
            metrics = evaluate(self.config, policy, self.episodes, self.seed, baselines=())
            metrics = metrics["policy"]
            self.eval_s += time.perf_counter() - started
            self.curve.append(
                {
                    "iteration": iteration,
                    "env_steps": int(row["env_steps"]),
                    "train_s": train_s,
                    "speed_ratio": metrics.get("speed_ratio"),
                    "speed_std": metrics["speed_std"],
                    "mean_return": metrics["mean_return"],
                }
            )
            if self.target is None and _reaches_target(metrics):
                self.target = {"wall_s": train_s, "env_steps": int(row["env_steps"])}
            ratio = metrics.get("speed_ratio", float("nan"))
            self.report(
                f"{self.algo}: iteration {iteration}, {train_s:.0f} s, speed ratio {ratio:.3f}, "
                f"speed std {metrics['speed_std']:.2f} m/s"
            )
        return not last


def bench_train(
    config: FlowsimConfig,
    algos: tuple[str, ...] = ("ppo", "trpo", "es"),
    budget_s: float = 900.0,
    eval_every: int = 5,
    episodes: int = 3,
    final_episodes: int = 5,
    seed: int = 1000,
    out: Path = Path("runs/bench"),
    report: Callable[[str], None] = lambda phase: None,
) -> dict[str, Any]:
    """Train each algorithm on ``config`` and time how long the AV takes to dissolve the wave.

    Every ``eval_every`` iterations the current policy runs deterministically on ``episodes``
    fixed evaluation seeds; the target is a mean speed of at least 95 % of the equilibrium speed
    with a speed std below 0.5 m/s and no collision. ``wall_s_to_target`` counts training time
    only (evaluation pauses are subtracted). Each algorithm trains for ``train.iterations`` or
    until ``budget_s`` of training time, then a final evaluation on ``final_episodes`` seeds is
    compared with the all-human ring and a PISaturation AV on the same seeds.
    """
    from flowsim.evaluation import evaluate
    from flowsim.training import train

    # The driver evaluates in its own process: with in-process runners it must use TraCI.
    eval_overrides = ["sim.backend=traci"] if config.sampler.num_workers == 0 else []
    report("baselines: all-human ring and a PISaturation AV")
    baselines = evaluate(apply_overrides(config, eval_overrides), None, final_episodes, seed)[
        "baselines"
    ]
    results: dict[str, Any] = {}
    for algo in algos:
        algo_config = apply_overrides(config, [f"train.algo={algo}"])
        eval_config = apply_overrides(algo_config, eval_overrides)
        tracker = _TargetTracker(algo, eval_config, budget_s, eval_every, episodes, seed, report)
        run = train(algo_config, out=out, callback=tracker)
        report(f"{algo}: final evaluation on {final_episodes} episodes")
        final = evaluate(
            eval_config,
            run.trainer.model.export(run.trainer.normalizer),
            final_episodes,
            seed,
            baselines=(),
        )["policy"]
        target = tracker.target or {}
        pi_speed = baselines["pi_saturation"]["mean_speed"]
        results[algo] = {
            "iterations": run.trainer.iteration,
            "env_steps": run.trainer.env_steps,
            "train_s": run.rows[-1]["wall_s"] - tracker.eval_s if run.rows else 0.0,
            "wall_s_to_target": target.get("wall_s"),
            "env_steps_to_target": target.get("env_steps"),
            "final": final,
            "reaches_target": _reaches_target(final),
            # "at least matching" PISaturation: within 1 % of its mean speed, or faster
            "matches_pi_saturation": final["mean_speed"] >= 0.99 * pi_speed,
            "curve": tracker.curve,
            "run_dir": str(run.directory),
        }
    return {
        "benchmark": "train",
        "config": config.name,
        "target": {
            "speed_ratio": TARGET_SPEED_RATIO,
            "speed_std": TARGET_SPEED_STD,
            "budget_s": budget_s,
        },
        "evaluation_seeds": list(range(seed, seed + final_episodes)),
        "baselines": baselines,
        "algos": results,
        "machine": machine_description(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
