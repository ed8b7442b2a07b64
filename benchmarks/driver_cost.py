"""The driver's cost per runner and per batch on the ring (BENCHMARKS.md, "Scale on paper").

Two figures the projection to 16, 72 and 128 CPUs needs besides `flowsim bench sampler`'s
per-step costs:

- per runner: one sample call at the driver with N runners that step once each (weights sent
  as a trainer sends them, the call, the reply, the batches joined), for N = 1, 2, 4, 8
  runners of 0.1 CPU each, so that they all run at once on a small machine; the slope over N
  of the driver process's CPU time is its serial work per runner and call (the wall time's
  slope also holds the runners' own steps, which queue for the cores of a small machine);
- per batch: what the driver does with the data of 144 ring trajectories (``env.horizon``
  agent steps each: 600 decisions, 3,000 SUMO steps) whatever N is: unpickle each runner's
  arrays (Ray's transfer, pickle protocol 5) and ``Batch.concat`` them.

Prints the figures and writes benchmarks/results/driver-cost-ring-*.json.

    .venv/bin/python benchmarks/driver_cost.py                  # about 1 minute
    .venv/bin/python benchmarks/driver_cost.py --runners 1,2,4,8,16,32 --calls 50
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from flowsim.bench.results import machine_description, write_result
from flowsim.config import apply_overrides, load_config
from flowsim.distributed import Batch, make_runner_group
from flowsim.distributed.cluster import init_ray
from flowsim.policies.spec import PolicySpec

RING = Path(__file__).resolve().parents[1] / "scenarios" / "ring.yaml"
POLICY = PolicySpec(kind="gaussian_mlp", hidden=(64, 64))


def call_round_trip(config, runners: int, calls: int) -> tuple[list[float], list[float]]:
    """Wall seconds and the driver process's CPU seconds of each ``set_weights`` +
    ``sample(num_steps=1)`` (one step per runner) with ``runners`` runners."""
    group = make_runner_group(config, num_workers=runners, policy_spec=POLICY)
    try:
        group.sample(num_steps=10)  # placed, networks built
        local = make_runner_group(config, num_workers=0, policy_spec=POLICY)
        try:
            weights = local.runners[0].policy.initial_weights(0)
        finally:
            local.close()
        wall, cpu = [], []
        for version in range(calls):
            started, started_cpu = time.perf_counter(), time.process_time()
            group.set_weights(weights, version)
            group.sample(num_steps=1)  # per runner
            wall.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
        return wall, cpu
    finally:
        group.close()


def batch_data_cost(config, trajectories: int, steps: int, repeats: int) -> list[float]:
    """Seconds to unpickle ``trajectories`` one-trajectory batches and join them."""
    local = make_runner_group(config, num_workers=0, policy_spec=POLICY)
    try:
        one = local.sample(num_steps=steps)
    finally:
        local.close()
    wire = pickle.dumps(one, protocol=5)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        Batch.concat([pickle.loads(wire) for _ in range(trajectories)])
        seconds.append(time.perf_counter() - started)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runners", default="1,2,4,8", help="runner counts, comma-separated")
    parser.add_argument("--calls", type=int, default=30, help="timed calls per runner count")
    parser.add_argument("--cpus-per-runner", type=float, default=0.1)
    args = parser.parse_args(argv)
    config = apply_overrides(
        load_config(RING),
        ["env.warmup_steps=0", f"sampler.resources_per_worker.CPU={args.cpus_per_runner}"],
    )
    import ray

    init_ray(config.sampler)
    try:
        round_trip = {}
        for count in (int(n) for n in args.runners.split(",")):
            wall, cpu = call_round_trip(config, count, args.calls)
            round_trip[count] = {
                "wall_median_ms": statistics.median(wall) * 1e3,
                "wall_p25_ms": float(np.percentile(wall, 25) * 1e3),
                "wall_p75_ms": float(np.percentile(wall, 75) * 1e3),
                "driver_cpu_median_ms": statistics.median(cpu) * 1e3,
            }
            row = round_trip[count]
            print(
                f"{count:3d} runners: call {row['wall_median_ms']:.2f} ms wall "
                f"({row['wall_p25_ms']:.2f}-{row['wall_p75_ms']:.2f}), driver CPU "
                f"{row['driver_cpu_median_ms']:.2f} ms"
            )
        counts = np.array(sorted(round_trip), dtype=float)
        cpu_ms = np.array([round_trip[int(n)]["driver_cpu_median_ms"] for n in counts])
        wall_ms = np.array([round_trip[int(n)]["wall_median_ms"] for n in counts])
        per_runner_ms, fixed_ms = np.polyfit(counts, cpu_ms, 1)
        wall_per_runner_ms, wall_fixed_ms = np.polyfit(counts, wall_ms, 1)
        print(f"driver CPU per call: {fixed_ms:.2f} ms + {per_runner_ms:.3f} ms x runners")
        print(f"wall per call: {wall_fixed_ms:.2f} ms + {wall_per_runner_ms:.3f} ms x runners")
        horizon = config.env.horizon
        data = batch_data_cost(config, 144, horizon, repeats=5)
        print(f"144 batches of {horizon} steps unpickled and joined: {min(data):.3f} s")
    finally:
        ray.shutdown()
    result = {
        "benchmark": "driver-cost",
        "config": config.name,
        "cpus_per_runner": args.cpus_per_runner,
        "calls": args.calls,
        "round_trip_ms": {str(k): v for k, v in round_trip.items()},
        "driver_cpu_per_runner_ms": float(per_runner_ms),
        "driver_cpu_fixed_per_call_ms": float(fixed_ms),
        "wall_per_runner_ms": float(wall_per_runner_ms),
        "wall_fixed_per_call_ms": float(wall_fixed_ms),
        "trajectory_steps": horizon,
        "batch_144_trajectories_unpickle_concat_s": {
            "min": min(data),
            "median": statistics.median(data),
        },
        "machine": machine_description(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    print(write_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
