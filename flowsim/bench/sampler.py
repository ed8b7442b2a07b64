"""Sampler throughput: in-process, one Ray worker, every core; the 144-trajectory batch."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from flowsim.bench.results import machine_description
from flowsim.config import FlowsimConfig
from flowsim.distributed.base import RunnerGroup

#: The seed's measure (RLlib: 191 s for 144 trajectories on 16 CPUs) in Flow's ring setting:
#: an action every 0.1 s, 3,000-step trajectories after 750 warm-up steps. ``flowsim bench
#: sampler`` applies these over the YAML (a ``--set`` still wins) unless ``--yaml-setting``.
SEED_SETTING = (
    "sim.step_length=0.1",
    "env.sims_per_step=1",
    "env.horizon=3000",
    "env.warmup_steps=750",
)


def sampler_setting(config: FlowsimConfig) -> dict[str, Any]:
    """The setting a sampler figure was taken in: action interval, trajectory length, warm-up
    and whether that is the seed's (:data:`SEED_SETTING`)."""
    step_length = float(config.sim.step_length)
    interval = step_length * config.env.sims_per_step
    return {
        "seed_setting": bool(
            abs(interval - 0.1) < 1e-9
            and config.env.horizon == 3000
            and config.env.warmup_steps == 750
        ),
        "action_interval_s": round(interval, 6),
        "step_length_s": step_length,
        "sims_per_step": config.env.sims_per_step,
        "trajectory_steps": config.env.horizon,
        "warmup_steps": config.env.warmup_steps,
    }


def _sampler_rate(group: RunnerGroup, steps: int, rounds: int) -> tuple[float, dict[str, float]]:
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
    workers: int | None = None,
) -> dict[str, Any]:
    """Sampler throughput in-process, on 1 Ray worker and on ``workers`` Ray workers (default:
    one per core of this machine); 144-trajectory time on those workers.

    ``config`` is measured as it is; the result's ``setting`` says its action interval and
    trajectory length (:func:`sampler_setting`). The CLI gives it the seed's setting
    (:data:`SEED_SETTING`) unless told ``--yaml-setting``.

    With ``sampler.address`` set (e.g. ``auto``) the Ray groups run on that cluster, so
    ``workers`` may exceed this machine's cores. The policy is a 64-64 tanh Gaussian MLP
    evaluated in numpy, as a trainer's runners use.
    """
    import os

    from flowsim.distributed import make_runner_group
    from flowsim.distributed.cluster import init_ray
    from flowsim.policies.spec import PolicySpec

    policy = PolicySpec(kind="gaussian_mlp", hidden=(64, 64))
    cores = int(workers or os.cpu_count() or 1)
    setting = sampler_setting(config)
    report(
        f"actions every {setting['action_interval_s']:g} s, {setting['trajectory_steps']}-step "
        f"trajectories ({'the seed' if setting['seed_setting'] else 'not the seed'}'s setting)"
    )
    settings: dict[str, dict[str, Any]] = {}
    report(f"in-process runner, {rounds} x {steps} steps")
    local = make_runner_group(config, num_workers=0, policy_spec=policy)
    try:
        rate, split = _sampler_rate(local, steps, rounds)
        settings["in_process"] = {"workers": 0, "steps_per_s": rate, **split}
    finally:
        local.close()
    init_ray(config.sampler)
    for name, workers in (("ray_1_worker", 1), ("ray_all_cores", cores)):
        report(f"Ray group, {workers} worker(s), {rounds} x {steps} steps each")
        group = make_runner_group(config, num_workers=workers, policy_spec=policy)
        try:
            rate, split = _sampler_rate(group, steps, rounds)
            settings[name] = {"workers": workers, "steps_per_s": rate, **split}
        finally:
            group.close()

    horizon = config.env.horizon
    report(f"{trajectories} trajectories of {horizon} steps on {cores} workers")
    group = make_runner_group(config, num_workers=cores, policy_spec=policy)
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
        "setting": setting,
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


def bench_multiagent_sampler(
    config: FlowsimConfig,
    steps: int = 200,
    rounds: int = 2,
    workers: tuple[int, ...] = (0, 2),
    report: Callable[[str], None] = lambda phase: None,
) -> dict[str, Any]:
    """Agent decisions per second of a PettingZoo env's sampler, in-process (``0``) and on
    each count of Ray runners in ``workers``; ``steps`` env steps per runner and call.

    The runners drive every agent with the policy a trainer would start from (its network for
    the env's spaces, masked phases included), exploring; the decisions are the batch's
    transitions (one per live agent and env step), timed at the driver as :func:`bench_sampler`.
    """
    from flowsim.distributed import make_runner_group
    from flowsim.distributed.cluster import init_ray

    settings: dict[str, dict[str, Any]] = {}
    for count in workers:
        name = "in_process" if count == 0 else f"ray_{count}_workers"
        report(f"{name}: {rounds} x {steps} env steps per runner")
        if count:
            init_ray(config.sampler)
        group = make_runner_group(config, num_workers=count)
        try:
            rate, split = _sampler_rate(group, steps, rounds)
            settings[name] = {"workers": count, "decisions_per_s": rate, **split}
        finally:
            group.close()
    return {
        "benchmark": "multiagent-sampler",
        "config": config.name,
        "env_steps_per_call": steps,
        "rounds": rounds,
        "decisions_per_s": {name: s["decisions_per_s"] for name, s in settings.items()},
        "per_decision_us": {
            name: {k: v for k, v in s.items() if k.endswith("_us")} for name, s in settings.items()
        },
        "machine": machine_description(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


#: The ring's result that matters: speed ratio and wave amplitude the trained AV must reach.
