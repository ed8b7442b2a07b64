"""Soak: the sampler keeps delivering full batches while faults land at random moments."""

from __future__ import annotations

import pytest

from flowsim.bench.faults import SOAK_FAULTS, soak, soak_config

pytestmark = pytest.mark.soak

#: Seconds of sampling under faults: long enough for a dozen faults, short enough for CI.
DURATION_S = 40


def test_sampler_under_random_faults_loses_no_batch() -> None:
    import ray

    try:
        report = soak(soak_config(), DURATION_S, batch_steps=200, mean_interval_s=2.0, seed=3)
    finally:
        ray.shutdown()
    summary = report.as_dict()
    print(f"soak: {summary}")  # batches delivered and faults survived, in the test log
    assert report.errors == [] and report.batches_lost == 0
    assert report.batches_delivered >= 1  # how many depends on the machine: not asserted
    assert report.steps == report.batches_delivered * 2 * 200
    assert sum(report.injected.values()) >= 3
    # Every runner killed was replaced; every SUMO killed either restarted in its runner or
    # went down with a runner killed before the driver saw the restart (a runner killed right
    # after returning its batch counts both ways, hence >=).
    assert report.runner_restarts == report.injected["runner_killed"]
    assert report.sim_restarts + report.sumo_kills_absorbed >= report.injected["sumo_killed"]
    assert set(report.injected) == set(SOAK_FAULTS)
