"""sumo-rl's own env timed with random actions: the peer of ``flowsim bench env --peer sumo-rl``.

Runs in a process of its own (``python -m flowsim.bench.sumorl_peer '{...}'``), started by
:func:`flowsim.bench.env.peer_timing`: sumo-rl picks libsumo when
``LIBSUMO_AS_TRACI`` is set before it is imported, and libsumo runs one simulation per process,
so the peer cannot share flowsim's. It prints one JSON line: ``{"decisions": n, "seconds": s,
"cpu_seconds": c, "signals": k}`` (``cpu_seconds``: the process's CPU time over the same
decisions, which other load on the machine disturbs less than the wall clock). The env keeps
sumo-rl's defaults (a decision every 5 s, 2 s yellow, 5 s min green, its observation and
reward); only the files, the time window and the seed are given.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def run_peer(
    net_file: str,
    route_files: list[str],
    begin: int,
    seconds: int,
    decisions: int,
    seed: int,
    single_agent: bool,
    additional_files: list[str] | None = None,
) -> dict[str, Any]:
    """Time ``decisions`` steps of sumo-rl's env with random actions after an untimed reset.

    ``single_agent``: one agent (sumo-rl's ``single_agent=True``, for a network with one
    traffic light), else one per light, acting through a dict. Stops early if the episode ends.
    """
    os.environ.setdefault("LIBSUMO_AS_TRACI", "1")
    import sumo  # the eclipse-sumo wheel: sumo-rl reads its tools through SUMO_HOME

    os.environ.setdefault("SUMO_HOME", sumo.SUMO_HOME)
    from sumo_rl import SumoEnvironment

    extra = f"-a {','.join(additional_files)}" if additional_files else None
    env = SumoEnvironment(
        net_file=net_file,
        route_file=",".join(route_files),
        begin_time=begin,
        num_seconds=seconds,
        use_gui=False,
        sumo_warnings=False,
        sumo_seed=seed,
        single_agent=single_agent,
        additional_sumo_cmd=extra,
    )
    try:
        env.reset(seed=seed)
        spaces = {ts: env.action_spaces(ts) for ts in env.ts_ids}
        for offset, space in enumerate(spaces.values()):
            space.seed(seed + offset)
        done, taken = False, 0
        started, cpu_started = time.perf_counter(), time.process_time()
        while taken < decisions and not done:
            if single_agent:
                *_, terminated, truncated, _ = env.step(env.action_space.sample())
                done = terminated or truncated
            else:
                _, _, dones, _ = env.step({ts: space.sample() for ts, space in spaces.items()})
                done = dones["__all__"]
            taken += 1
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    finally:
        env.close()
    return {"decisions": taken, "seconds": elapsed, "cpu_seconds": cpu, "signals": len(spaces)}


def main(argv: list[str]) -> int:
    """Entry point of the peer process: one JSON argument in, one JSON line out."""
    if len(argv) != 2:
        print("usage: python -m flowsim.bench.sumorl_peer '<json arguments>'", file=sys.stderr)
        return 2
    result = run_peer(**json.loads(argv[1]))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
