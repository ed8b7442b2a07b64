#!/usr/bin/env bash
# Issue 21's check on the signal envs: flowsim's signal env before and after the hot-path work
# beside sumo-rl 1.4.5's own env, on the same files, in one interleaved run (about 6 minutes on
# a quiet 2-core machine with the default ROUNDS=3).
#   bash benchmarks/ab_hotpath_signals.sh OLD_TREE [OUT]          # old vs new vs sumo-rl
#   bash benchmarks/ab_hotpath_signals.sh --profile [TREE] [OUT]  # where a decision's time goes
#   NEW_TREE=/path/to/worktree ROUNDS=5 bash benchmarks/ab_hotpath_signals.sh OLD_TREE
#   HOTPATH_DECISIONS=20 ROUNDS=1 bash benchmarks/ab_hotpath_signals.sh OLD_TREE /tmp/x  # smoke
# OLD_TREE is a git worktree of the old commit (git worktree add /tmp/old <commit>). Each tree
# runs in its own process through this checkout's .venv with PYTHONPATH=<tree>; sumo-rl runs
# with its defaults in its own process (flowsim.bench.sumorl_peer), as `bench env --peer` runs
# it. Within a round the three go in a rotating order with the same seed; every run is one
# fresh process timing random-action decisions after an untimed reset. Figures: decisions/s
# from the wall clock and from the process's CPU time (steadier on a shared machine), medians
# and min-max over the rounds, and per-round ratios. Cases: flowsim's intersection, sumo-rl's
# single-intersection files, the intersection without SUMO's junction-collision check (the same
# SUMO options as sumo-rl but for the tripinfo device), RESCO's cologne8 and ingolstadt21 (first
# 360 decisions); on flowsim's intersection also the raw `sumo` limit (raw steps/s / 5).
# The JSON lands in OUT (default benchmarks/results/).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$here/.venv/bin
if [ "${1:-}" = "--profile" ]; then
  tree=$(cd "${2:-$here}" && pwd)
  out=${3:-$here/benchmarks/results}
  mkdir -p "$out"
  cd "$tree"
  exec env PYTHONPATH="$tree" HOTPATH_OUT="$out" "$bin/python" - <<'PY'
"""Where a signal-env decision's time goes, piece by piece (microseconds per decision).

Each piece is timed exclusive of the pieces it calls, by the thread's CPU time (other load on
the machine does not count), less the timer's own cost per call, measured first. SUMO's own
step is split further by rerunning the same decisions without the junction-collision check,
without the tripinfo device and without both. sumo-rl's env is timed the same way: its SUMO
steps and the rest of its decision.
"""

import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

from flowsim.bench.env import peer_task
from flowsim.config import apply_overrides, load_config
from flowsim.envs import make_env
from flowsim.envs.base import FlowsimEnv
from flowsim.envs.signals import TrafficLightGridEnv
from flowsim.sim.kernel import Kernel
from flowsim.sim.signals import Signals
from flowsim.sim.simulation import Simulation
from flowsim.sim.trips import TRIP_OPTIONS

clock = time.thread_time
#: decisions: one hour but the last (whose trip metrics need the tripinfo device)
CASES = {  # HOTPATH_CASES=intersection picks some
    "intersection": ("scenarios/intersection.yaml", [], 719),
    "cologne8": ("scenarios/resco/cologne8.yaml", ["env.type=traffic_light_grid"], 719),
}
PIECES = [  # (class, method, piece)
    (Kernel, "step", "kernel: per-step bookkeeping (collisions, arrivals, departures, arrays)"),
    (Simulation, "step", "simulation: group indices after vehicles enter or leave"),
    (Signals, "_values", "lane reads (libsumo getters)"),
    (Signals, "tick", "signals: ending yellows and all-reds (every step)"),
    (Signals, "set_greens", "signals: switching (once a decision)"),
    (TrafficLightGridEnv, "sanitize_action", "env: action sanitising"),
    (TrafficLightGridEnv, "observe", "env: observation maths"),
    (TrafficLightGridEnv, "step_reward", "env: reward maths"),
    (FlowsimEnv, "_info", "env: base info (mean speed: every vehicle's speed)"),
    (TrafficLightGridEnv, "_signal_info", "env: signal info (queue, waiting time)"),
    (TrafficLightGridEnv, "on_vehicles_removed", "env: counting arrivals"),
    (TrafficLightGridEnv, "step", "env: step loop and the rest"),
]
SUMO = "SUMO's own steps (simulation_step)"


class Profiler:
    """Exclusive CPU time per piece: a piece's time less the time of the pieces it calls."""

    def __init__(self):
        self.spent = defaultdict(float)
        self.calls = defaultdict(int)
        self.stack = []

    def wrap(self, function, piece):
        def timed(*args, **kwargs):
            self.stack.append(0.0)
            started = clock()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = clock() - started
                inner = self.stack.pop()
                self.spent[piece] += elapsed - inner
                self.calls[piece] += 1
                if self.stack:
                    self.stack[-1] += elapsed

        return timed


def timer_cost():
    """CPU seconds one wrapped call adds (the timer's own cost), from a no-op."""
    profiler = Profiler()
    noop = profiler.wrap(lambda: None, "noop")
    plain = lambda: None  # noqa: E731
    n = 100_000
    best = []
    for _ in range(5):
        started = clock()
        for _ in range(n):
            noop()
        wrapped = clock() - started
        started = clock()
        for _ in range(n):
            plain()
        best.append((wrapped - (clock() - started)) / n)
    return min(best)


def run(config, decisions, seed, profiler=None, tripinfo=True, all_red=True):
    """CPU seconds of ``decisions`` random-action decisions and of SUMO's steps in them.

    ``all_red=False`` drops the programmes' all-red phase from every switch (sumo-rl's rule:
    yellow, then the new green): a measurement of the traffic it makes, not a setting."""
    env = make_env(config)
    if not tripinfo:
        env.kernel.extra_args = [a for a in env.kernel.extra_args if a not in TRIP_OPTIONS]
    originals = []
    try:
        env.reset(seed=seed)
        env.action_space.seed(seed)
        if not all_red:
            signals = env.signals
            signals.all_red = [None] * len(signals.ids)
            signals.red_time = signals.red_time * 0.0
            signals._hold = signals.yellow_time + signals.min_green - 1e-9
        actions = [env.action_space.sample() for _ in range(decisions)]
        if profiler is not None:  # the decisions only, not the reset
            for owner, name, piece in PIECES:
                if name in owner.__dict__:
                    originals.append((owner, name, owner.__dict__[name]))
                    setattr(owner, name, profiler.wrap(owner.__dict__[name], piece))
        raw = env.kernel.backend._raw
        sumo_step, sumo = raw.step, [0.0]
        if profiler is not None:
            raw.step = profiler.wrap(sumo_step, SUMO)
        else:

            def step():
                started = clock()
                sumo_step()
                sumo[0] += clock() - started

            raw.step = step
        started = clock()
        for action in actions:
            env.step(action)
        total = clock() - started
        vehicles = len(env.kernel.vehicle_ids)
    finally:
        env.close()
        for owner, name, function in originals:
            setattr(owner, name, function)
    return total, sumo[0], vehicles


PEER = r"""
import json, os, sys, time
os.environ["LIBSUMO_AS_TRACI"] = "1"
import sumo
os.environ.setdefault("SUMO_HOME", sumo.SUMO_HOME)
from sumo_rl import SumoEnvironment
a = json.loads(sys.argv[1])
env = SumoEnvironment(net_file=a["net_file"], route_file=",".join(a["route_files"]),
    begin_time=a["begin"], num_seconds=a["seconds"], use_gui=False, sumo_warnings=False,
    sumo_seed=a["seed"], single_agent=a["single_agent"])
env.reset(seed=a["seed"])
spaces = {ts: env.action_spaces(ts) for ts in env.ts_ids}
for offset, space in enumerate(spaces.values()):
    space.seed(a["seed"] + offset)
actions = [{ts: s.sample() for ts, s in spaces.items()} for _ in range(a["decisions"])]
inner, spent = env._sumo_step, [0.0]
def step():
    t = time.thread_time(); inner(); spent[0] += time.thread_time() - t
env._sumo_step = step
t = time.thread_time()
for action in actions:
    env.step(action[env.ts_ids[0]] if a["single_agent"] else action)
total = time.thread_time() - t
print(json.dumps({"total": total, "sumo": spent[0]}))
env.close()
"""


def peer_breakdown(task, decisions, seed):
    arguments = {
        "net_file": str(task.net_file),
        "route_files": [str(p) for p in task.route_files],
        "begin": task.begin,
        "seconds": task.seconds,
        "decisions": decisions,
        "seed": seed,
        "single_agent": task.signals == 1,
    }
    done = subprocess.run(
        [sys.executable, "-c", PEER, json.dumps(arguments)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    rounds = int(os.environ.get("ROUNDS", "3"))
    cost = timer_cost()
    report = {"benchmark": "hotpath-signals-profile", "tree": os.getcwd(), "rounds": rounds,
              "timer_cost_us": cost * 1e6, "cases": {}}  # fmt: skip
    picked = os.environ.get("HOTPATH_CASES", ",".join(CASES)).split(",")
    for case, (yaml, overrides, decisions) in CASES.items():
        if case not in picked:
            continue
        decisions = int(os.environ.get("HOTPATH_DECISIONS", decisions))
        task = peer_task(load_config(yaml, overrides or None))
        config = task.config
        variants = {
            "as configured": (config, True),
            "no junction-collision check": (
                apply_overrides(config, ["sim.check_junction_collisions=false"]), True),
            "no tripinfo device": (config, False),
            "neither": (apply_overrides(config, ["sim.check_junction_collisions=false"]), False),
            "no all-red (sumo-rl's switching)": (config, None),
        }  # fmt: skip
        per_variant = defaultdict(list)
        peer = []
        for r in range(rounds):
            seed = config.sim.seed + r
            for name, (variant, tripinfo) in variants.items():
                total, sumo, vehicles = run(
                    variant, decisions, seed, tripinfo=tripinfo is not False,
                    all_red=tripinfo is not None)  # fmt: skip
                per_variant[name].append(
                    {"decision_us": total / decisions * 1e6,
                     "sumo_us": sumo / decisions * 1e6, "vehicles_at_end": vehicles})  # fmt: skip
            timing = peer_breakdown(task, decisions, seed)
            peer.append({"decision_us": timing["total"] / decisions * 1e6,
                         "sumo_us": timing["sumo"] / decisions * 1e6})  # fmt: skip
        profiler = Profiler()
        for r in range(rounds):
            run(config, decisions, config.sim.seed + r, profiler=profiler)
        n = decisions * rounds
        pieces = {
            piece: {
                "us_per_decision": max(spent - profiler.calls[piece] * cost, 0.0) / n * 1e6,
                "calls_per_decision": profiler.calls[piece] / n,
            }
            for piece, spent in profiler.spent.items()
        }
        median = {
            name: {key: statistics.median(row[key] for row in rows) for key in rows[0]}
            for name, rows in per_variant.items()
        }
        report["cases"][case] = {
            "decisions": decisions, "variants": per_variant, "variant_medians": median,
            "pieces": pieces, "sumo_rl": peer,
            "sumo_rl_medians": {k: statistics.median(p[k] for p in peer) for k in peer[0]},
        }  # fmt: skip
        total = median["as configured"]["decision_us"]
        print(f"\n{case}: {decisions} decisions x {rounds} rounds, CPU us per decision")
        print(f"  decision, as configured: {total:8.0f}")
        for name, row in median.items():
            print(f"  {name:30s} decision {row['decision_us']:7.0f}  SUMO {row['sumo_us']:7.0f}")
        rl = report["cases"][case]["sumo_rl_medians"]
        print(f"  {'sumo-rl':30s} decision {rl['decision_us']:7.0f}  SUMO {rl['sumo_us']:7.0f}")
        profiled = sum(p["us_per_decision"] for p in pieces.values())
        for piece, row in sorted(pieces.items(), key=lambda kv: -kv[1]["us_per_decision"]):
            us = row["us_per_decision"]
            print(f"  {piece:72s} {us:7.1f} us {us / profiled:6.1%} of the decision"
                  f"  ({row['calls_per_decision']:.1f} calls)")  # fmt: skip
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    path = Path(os.environ["HOTPATH_OUT"]) / f"hotpath-signals-profile-{stamp}.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"\nwritten to {path}")


main()
PY
fi

old=$(cd "$1" && pwd)
new=$(cd "${NEW_TREE:-$here}" && pwd)
out=${2:-$here/benchmarks/results}
mkdir -p "$out"
cd "$new"
exec env PYTHONPATH="$new" HOTPATH_OLD="$old" HOTPATH_NEW="$new" HOTPATH_OUT="$out" \
  HOTPATH_PYTHON="$bin/python" "$bin/python" - <<'PY'
"""Old tree, new tree and sumo-rl on the same files, interleaved; see the script's header."""

import importlib.util
import json
import os
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from flowsim.bench.env import peer_task, peer_timing, raw_sumo_steps_per_s
from flowsim.bench.results import machine_description
from flowsim.config import load_config

# sumo-rl's package without importing it (its import wants SUMO_HOME)
SUMO_RL = Path(importlib.util.find_spec("sumo_rl").submodule_search_locations[0])
NETS = SUMO_RL / "nets" / "single-intersection"
CASES = {  # name: (yaml, overrides, decisions timed, raw sumo limit)
    "intersection": ("scenarios/intersection.yaml", [], 720, True),
    "sumo-rl single intersection": (
        "scenarios/intersection.yaml",
        ["scenario.type=sumo", f"scenario.sumo.net_file={NETS / 'single-intersection.net.xml'}",
         f"scenario.sumo.route_files=[{NETS / 'single-intersection.rou.xml'}]"],
        720, False,  # raw_sumo_steps_per_s loads flowsim's route file only: no limit here
    ),
    "intersection, no junction-collision check": (
        "scenarios/intersection.yaml", ["sim.check_junction_collisions=false"], 720, False),
    "cologne8": ("scenarios/resco/cologne8.yaml", [], 720, False),
    "ingolstadt21": ("scenarios/resco/ingolstadt21.yaml", [], 360, False),
}  # fmt: skip

#: Runs in each tree (old ones too): flowsim's env on the task, random actions, one JSON line.
CHILD = r"""
import json, sys, time
from flowsim.bench.env import peer_task
from flowsim.config import load_config
a = json.loads(sys.argv[1])
config = peer_task(load_config(a["yaml"], a["overrides"] or None)).config
if config.env.type == "multiagent_traffic_light_grid":
    from flowsim.envs.multiagent_signals import parallel_env
    env = parallel_env(config)
    env.reset(seed=a["seed"])
    spaces = {agent: env.action_space(agent) for agent in env.possible_agents}
    for offset, space in enumerate(spaces.values()):
        space.seed(a["seed"] + offset)
    act = lambda: env.step({agent: space.sample() for agent, space in spaces.items()})
else:
    from flowsim.envs import make_env
    env = make_env(config)
    env.reset(seed=a["seed"])
    env.action_space.seed(a["seed"])
    act = lambda: env.step(env.action_space.sample())
wall, cpu = time.perf_counter(), time.process_time()
for _ in range(a["decisions"]):
    act()
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
env.close()
print(json.dumps({"decisions_per_s": a["decisions"] / wall, "cpu_decisions_per_s": a["decisions"] / cpu}))
"""


def flowsim_run(tree, yaml, overrides, decisions, seed):
    arguments = {"yaml": yaml, "overrides": overrides, "decisions": decisions, "seed": seed}
    done = subprocess.run(
        [os.environ["HOTPATH_PYTHON"], "-c", CHILD, json.dumps(arguments)],
        cwd=tree, env={**os.environ, "PYTHONPATH": tree}, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"flowsim in {tree} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main():
    rounds = int(os.environ.get("ROUNDS", "3"))
    trees = {"old": os.environ["HOTPATH_OLD"], "new": os.environ["HOTPATH_NEW"]}
    load_before = os.getloadavg()[0]
    report = {"benchmark": "ab-hotpath-signals", "trees": trees, "rounds": rounds, "cases": {}}
    for case, (yaml, overrides, decisions, limit) in CASES.items():
        decisions = int(os.environ.get("HOTPATH_DECISIONS", decisions))  # a smoke run: fewer
        task = peer_task(load_config(yaml, overrides or None))  # keeps the files alive
        runs = {"old": [], "new": [], "sumo-rl": []}
        for r in range(rounds):
            seed = task.config.sim.seed + r
            order = ["old", "new", "sumo-rl"]
            for who in order[r % 3:] + order[: r % 3]:
                print(f"{case}: round {r + 1}/{rounds}, {who}", file=sys.stderr, flush=True)
                if who == "sumo-rl":
                    timing = peer_timing(task, decisions, seed)
                    runs[who].append(timing._asdict())
                else:
                    runs[who].append(flowsim_run(trees[who], yaml, overrides, decisions, seed))
        row = {"decisions": decisions, "signals": task.signals, "runs": runs}
        for key in ("decisions_per_s", "cpu_decisions_per_s"):
            row[key] = {who: spread([t[key] for t in ts]) for who, ts in runs.items()}
            for a, b in (("new", "old"), ("new", "sumo-rl"), ("old", "sumo-rl")):
                pairs = [x[key] / y[key] for x, y in zip(runs[a], runs[b], strict=True)]
                row[key][f"{a} / {b}"] = spread(pairs)
        if limit:
            raw = raw_sumo_steps_per_s(task.config, 3600)
            row["raw_sumo_steps_per_s"] = raw
            row["raw_limit_decisions_per_s"] = raw / task.config.env.sims_per_step
            row["new_to_limit"] = row["decisions_per_s"]["new"]["median"] / (
                raw / task.config.env.sims_per_step
            )
        report["cases"][case] = row
    report["load_average"] = [load_before, os.getloadavg()[0]]
    report["machine"] = machine_description()
    report["timestamp"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for key, title in (("decisions_per_s", "wall clock"), ("cpu_decisions_per_s", "CPU time")):
        print(f"\ndecisions/s from the {title}: median (min-max) over {rounds} rounds; "
              "ratios: median of the per-round ratios")  # fmt: skip
        for case, row in report["cases"].items():
            cells = [f"{who} {s['median']:.0f} ({s['min']:.0f}-{s['max']:.0f})"
                     for who, s in row[key].items() if "/" not in who]  # fmt: skip
            ratios = [f"{who} {s['median']:.2f}" for who, s in row[key].items() if "/" in who]
            print(f"  {case}: {', '.join(cells)}; {', '.join(ratios)}")
    for case, row in report["cases"].items():
        if "raw_sumo_steps_per_s" in row:
            print(f"  {case}: raw sumo {row['raw_sumo_steps_per_s']:.0f} steps/s, limit "
                  f"{row['raw_limit_decisions_per_s']:.0f} decisions/s, new / limit "
                  f"{row['new_to_limit']:.2f}")  # fmt: skip
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    path = Path(os.environ["HOTPATH_OUT"]) / f"ab-hotpath-signals-{stamp}.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"written to {path}  (load average {report['load_average']})")


main()
PY
