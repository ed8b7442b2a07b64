"""Speed benchmarks: the sumo binary alone against flowsim's env on libsumo and TraCI, and
flowsim's signal env beside a peer's (sumo-rl) on the same files."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from flowsim.bench.results import machine_description
from flowsim.config import FlowsimConfig, apply_overrides
from flowsim.config.env import SIGNAL_ENV_TYPES
from flowsim.envs import make_env
from flowsim.errors import ConfigError, FlowsimError
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
    load_before = os.getloadavg()[0]
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
        # The 1-minute load average before and after: other work on the machine slows both.
        "load_average": [load_before, os.getloadavg()[0]],
        "machine": machine_description(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# -- side by side with a peer env ------------------------------------------------------------

#: Envs ``bench env --peer`` can run beside flowsim's.
PEERS = ("sumo-rl",)

#: sumo-rl's defaults (``SumoEnvironment``): a decision every 5 s, 2 s yellow, 5 s min green
#: on SUMO's 1 s step. Both envs run with them in a side-by-side timing.
SUMO_RL_DEFAULTS = {"decision_s": 5, "yellow_time": 2.0, "min_green": 5.0, "step_length": 1.0}


@dataclass(frozen=True)
class PeerTask:
    """What both envs of a side-by-side timing run: the same files and time window.

    Attributes:
        config: flowsim's config, set to sumo-rl's decision interval, yellow and min green.
        net_file: the SUMO network both load.
        route_files: the demand both load (flowsim's vehicle types and inflows first).
        additional_files: the scenario's SUMO additional files, loaded by both.
        begin: simulated second the episode starts at.
        seconds: simulated seconds of one episode.
        signals: traffic lights each env controls (all of the network's).
        files_owner: keeps the scenario's generated files alive while the task lives.
    """

    config: FlowsimConfig
    net_file: Path
    route_files: tuple[Path, ...]
    additional_files: tuple[Path, ...]
    begin: int
    seconds: int
    signals: int
    files_owner: object = field(default=None, compare=False, repr=False)

    @property
    def decisions(self) -> int:
        """Decisions in one episode."""
        return self.seconds // SUMO_RL_DEFAULTS["decision_s"]


def require_sumo_rl(flag: str) -> None:
    """Raise a ConfigError naming the pip line if the sumo-rl package is not installed."""
    from flowsim.scenarios.sumo import RESCO_EXTRA, RESCO_PACKAGE

    if importlib.util.find_spec(RESCO_PACKAGE) is None:
        raise ConfigError(
            f"{flag} needs the sumo-rl package, which is not installed: {RESCO_EXTRA}"
        )


def peer_task(config: FlowsimConfig) -> PeerTask:
    """The files, time window and flowsim settings of a side-by-side timing of ``config``.

    The episode is the config's (``env.horizon`` decisions of ``env.sims_per_step`` steps from
    the scenario's begin, e.g. 7 am on RESCO's Cologne maps); flowsim takes sumo-rl's decision
    interval, yellow and min green, so both simulate the same seconds per decision.
    """
    from flowsim.scenarios import make_scenario

    if config.env.type not in SIGNAL_ENV_TYPES:
        raise ConfigError(
            f"env.type {config.env.type}: --peer sumo-rl times signal control; use a config "
            f"whose env.type is {' or '.join(SIGNAL_ENV_TYPES)}, e.g. scenarios/intersection.yaml."
        )
    if getattr(config.env, "signals", None):
        raise ConfigError(
            "env.signals lists some traffic lights, but sumo-rl controls every light of the "
            "network; use --set env.signals=[] for a side-by-side timing."
        )
    seconds = round(config.env.horizon * config.env.sims_per_step * config.sim.step_length)
    decision_s = SUMO_RL_DEFAULTS["decision_s"]
    timed = apply_overrides(
        config,
        [
            "sim.backend=libsumo",
            "sim.gui=false",
            f"sim.step_length={SUMO_RL_DEFAULTS['step_length']}",
            f"env.sims_per_step={decision_s}",
            f"env.yellow_time={SUMO_RL_DEFAULTS['yellow_time']}",
            f"env.min_green={SUMO_RL_DEFAULTS['min_green']}",
            "env.warmup_steps=0",
            f"env.horizon={max(seconds // decision_s, 1)}",
        ],
    )
    scenario = make_scenario(timed)
    instance = scenario.instance(np.random.default_rng(timed.sim.seed))
    return PeerTask(
        config=timed,
        net_file=Path(instance.net_file),
        route_files=tuple(Path(path) for path in instance.all_route_files),
        additional_files=tuple(Path(path) for path in instance.additional_files),
        begin=round(instance.begin),
        seconds=seconds,
        signals=len(instance.traffic_lights),
        files_owner=instance,
    )


class Timing(NamedTuple):
    """One timed run of an env: decisions per second of wall-clock and of CPU time.

    CPU time (the process's own) leaves out the waits that other work on a shared machine
    causes, so it is the steadier of the two when the load moves during a run.
    """

    decisions_per_s: float
    cpu_decisions_per_s: float


def flowsim_timing(config: FlowsimConfig, decisions: int, seed: int) -> Timing:
    """Decisions per second of flowsim's signal env with random actions after a reset.

    The env is the config's: one agent (``traffic_light_grid``) or one PettingZoo agent per
    light (``multiagent_traffic_light_grid``), each acting through its own action space.
    """
    if config.env.type == "multiagent_traffic_light_grid":
        from flowsim.envs.multiagent_signals import parallel_env

        env = parallel_env(config)
        try:
            env.reset(seed=seed)
            spaces = {agent: env.action_space(agent) for agent in env.possible_agents}
            for offset, space in enumerate(spaces.values()):
                space.seed(seed + offset)
            started, cpu_started = time.perf_counter(), time.process_time()
            for _ in range(decisions):
                env.step({agent: space.sample() for agent, space in spaces.items()})
            return _timing(decisions, started, cpu_started)
        finally:
            env.close()
    single = make_env(config)
    try:
        single.reset(seed=seed)
        single.action_space.seed(seed)
        started, cpu_started = time.perf_counter(), time.process_time()
        for _ in range(decisions):
            single.step(single.action_space.sample())
        return _timing(decisions, started, cpu_started)
    finally:
        single.close()


def _timing(decisions: int, started: float, cpu_started: float) -> Timing:
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    return Timing(decisions / wall, decisions / max(cpu, 1e-9))


def peer_timing(task: PeerTask, decisions: int, seed: int) -> Timing:
    """Decisions per second of sumo-rl's own env on ``task``'s files, in a process of its own
    (:mod:`flowsim.bench.sumorl_peer`: libsumo, random actions, sumo-rl's defaults)."""
    import sumo

    arguments = {
        "net_file": str(task.net_file),
        "route_files": [str(path) for path in task.route_files],
        "begin": task.begin,
        "seconds": task.seconds,
        "decisions": decisions,
        "seed": seed,
        "single_agent": task.signals == 1,
        "additional_files": [str(path) for path in task.additional_files],
    }
    environment = {**os.environ, "LIBSUMO_AS_TRACI": "1", "SUMO_HOME": sumo.SUMO_HOME}
    finished = subprocess.run(
        [sys.executable, "-m", "flowsim.bench.sumorl_peer", json.dumps(arguments)],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )
    lines = [line for line in finished.stdout.splitlines() if line.startswith("{")]
    if finished.returncode != 0 or not lines:
        tail = "\n".join(finished.stderr.strip().splitlines()[-5:])
        raise FlowsimError(f"sumo-rl's env failed (exit {finished.returncode}):\n{tail}")
    timing = json.loads(lines[-1])
    return Timing(
        timing["decisions"] / timing["seconds"],
        timing["decisions"] / max(timing["cpu_seconds"], 1e-9),
    )


def bench_env_peer(
    config: FlowsimConfig,
    peer: str = "sumo-rl",
    decisions: int | None = None,
    repeats: int = 3,
    report: Callable[[str], None] = lambda phase: None,
) -> dict[str, Any]:
    """flowsim's signal env and ``peer``'s on the same files, random actions, runs interleaved.

    Each repeat times ``decisions`` decisions (default and at most one episode) of each env
    after an untimed reset, with the same seed; the env that goes first alternates, so neither
    always meets a warmer or a busier machine. See ``flowsim bench env --peer``.

    Besides each env's decisions/s and the ratio of their medians, the result holds the
    same from CPU time (``cpu_*``) and the ratio within each repeat (``pair_ratios``): on a
    shared machine these move less than wall-clock medians taken minutes apart.
    """
    if peer not in PEERS:
        raise ConfigError(f"--peer {peer}: choose from {', '.join(PEERS)}.")
    require_sumo_rl(f"--peer {peer}")
    task = peer_task(config)
    decisions = min(decisions or task.decisions, task.decisions)
    timings: dict[str, list[Timing]] = {"flowsim": [], peer: []}
    load_before = os.getloadavg()[0]
    for repeat in range(repeats):
        seed = config.sim.seed + repeat
        order = ("flowsim", peer) if repeat % 2 == 0 else (peer, "flowsim")
        for who in order:
            report(f"repeat {repeat + 1}/{repeats}: {who}, {decisions} decisions")
            if who == "flowsim":
                timings[who].append(flowsim_timing(task.config, decisions, seed))
            else:
                timings[who].append(peer_timing(task, decisions, seed))
    rates = {who: [t.decisions_per_s for t in runs] for who, runs in timings.items()}
    cpu_rates = {who: [t.cpu_decisions_per_s for t in runs] for who, runs in timings.items()}
    medians = {who: statistics.median(values) for who, values in rates.items()}
    cpu_medians = {who: statistics.median(values) for who, values in cpu_rates.items()}
    return {
        "benchmark": "env-peer",
        "config": config.name,
        "peer": peer,
        "peer_version": metadata.version("sumo-rl"),
        "env_type": task.config.env.type,
        "signals": task.signals,
        "net_file": str(task.net_file),
        "begin": task.begin,
        "decision_s": SUMO_RL_DEFAULTS["decision_s"],
        "yellow_time": SUMO_RL_DEFAULTS["yellow_time"],
        "min_green": SUMO_RL_DEFAULTS["min_green"],
        "decisions": decisions,
        "repeats": repeats,
        "decisions_per_s": rates,
        "median_decisions_per_s": medians,
        "ratio_to_peer": medians["flowsim"] / medians[peer],
        "pair_ratios": [a / b for a, b in zip(rates["flowsim"], rates[peer], strict=True)],
        "cpu_decisions_per_s": cpu_rates,
        "median_cpu_decisions_per_s": cpu_medians,
        "cpu_ratio_to_peer": cpu_medians["flowsim"] / cpu_medians[peer],
        # The 1-minute load average before and after: other work on the machine slows both.
        "load_average": [load_before, os.getloadavg()[0]],
        "machine": machine_description(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
