"""``bench env --peer``'s figures from CPU time and per repeat, beside the wall-clock ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowsim import testing
from flowsim.bench.env import bench_env_peer
from flowsim.config import load_config

INTERSECTION = Path(__file__).resolve().parents[2] / "scenarios" / "intersection.yaml"


@testing.needs_sumo_rl()
def test_peer_result_holds_cpu_rates_and_pair_ratios() -> None:
    result = bench_env_peer(load_config(INTERSECTION), decisions=10, repeats=2)
    for who in ("flowsim", "sumo-rl"):
        wall, cpu = result["decisions_per_s"][who], result["cpu_decisions_per_s"][who]
        assert len(wall) == len(cpu) == 2
        # one thread runs SUMO and Python: its CPU time is at most about the wall-clock time
        assert all(c > 0.5 * w for w, c in zip(wall, cpu, strict=True))
    pairs = result["pair_ratios"]
    assert len(pairs) == 2
    assert pairs == pytest.approx(
        [f / p for f, p in zip(*result["decisions_per_s"].values(), strict=True)]
    )
    cpu = result["median_cpu_decisions_per_s"]
    assert result["cpu_ratio_to_peer"] == pytest.approx(cpu["flowsim"] / cpu["sumo-rl"])
