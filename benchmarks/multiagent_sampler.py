"""Agent decisions per second of the multi-agent sampler on RESCO's cologne8 and ingolstadt21,
in-process and on 2 Ray runners (issue 18). Prints the figures; writes one JSON per map
through flowsim.bench.results.write_result (benchmarks/results/multiagent-sampler-*.json).

    .venv/bin/python benchmarks/multiagent_sampler.py            # both maps, about 5 minutes
    .venv/bin/python benchmarks/multiagent_sampler.py --maps cologne8 --steps 100

Needs RESCO's networks (pip install 'flowsim[resco]').
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flowsim.bench.results import write_result
from flowsim.bench.sampler import bench_multiagent_sampler
from flowsim.config import load_config

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios" / "resco"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--maps", default="cologne8,ingolstadt21", help="RESCO maps, comma-separated"
    )
    parser.add_argument("--steps", type=int, default=60, help="env steps per runner and call")
    parser.add_argument("--rounds", type=int, default=2, help="timed calls per setting")
    args = parser.parse_args(argv)
    import ray

    try:
        for name in args.maps.split(","):
            config = load_config(SCENARIOS / f"{name}.yaml")
            result = bench_multiagent_sampler(
                config,
                steps=args.steps,
                rounds=args.rounds,
                report=lambda phase, name=name: print(f"{name}: {phase}", file=sys.stderr),
            )
            path = write_result(result)
            rates = ", ".join(f"{k} {v:,.0f}" for k, v in result["decisions_per_s"].items())
            print(f"{name}: agent decisions/s: {rates}  ({path})")
    finally:
        if ray.is_initialized():
            ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
