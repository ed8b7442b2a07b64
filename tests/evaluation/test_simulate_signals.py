"""`flowsim simulate --signals NAME`: the no-training signal rules with RESCO's trip metrics."""

from __future__ import annotations

import json
import math

import pytest

from flowsim.cli import main
from flowsim.sim.trips import TRIP_METRICS

INTERSECTION = "scenarios/intersection.yaml"
SIGNALS = ("program", "fixed_cycle", "max_pressure", "greedy")


def simulate_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    """``flowsim simulate ARGS --json`` in this process: its JSON summary."""
    capsys.readouterr()
    assert main(["simulate", *args, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", SIGNALS)
def test_each_rule_runs_and_reports_trip_metrics(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    summary = simulate_json(capsys, INTERSECTION, "--steps", "300", "--signals", name)
    assert summary["signals"] == name
    assert summary["throughput"] > 50 and summary["throughput"] == int(summary["throughput"])
    for key in ("avg_delay", "avg_trip_time", "avg_waiting_time"):
        assert math.isfinite(summary[key]) and summary[key] >= 0, key
    assert summary["avg_trip_time"] >= summary["avg_waiting_time"]
    assert math.isfinite(summary["mean_speed"])  # beside today's speed metrics


def test_signalised_network_reports_trips_under_its_own_programme(
    capsys: pytest.CaptureFixture[str],
) -> None:
    summary = simulate_json(capsys, INTERSECTION, "--steps", "200")
    assert summary["signals"] == "program"
    assert set(TRIP_METRICS) <= set(summary)


def test_ring_has_no_trip_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    summary = simulate_json(capsys, "scenarios/ring.yaml", "--steps", "20")
    assert not set(TRIP_METRICS) & set(summary)


@pytest.mark.parametrize(
    ("config", "name"),
    [(INTERSECTION, "longest_queue"), ("scenarios/ring.yaml", "max_pressure")],
)
def test_bad_rule_or_network_without_lights_exits_2(
    capsys: pytest.CaptureFixture[str], config: str, name: str
) -> None:
    capsys.readouterr()
    assert main(["simulate", config, "--steps", "10", "--signals", name]) == 2
    message = capsys.readouterr().err
    assert "--signals" in message
    for choice in SIGNALS:
        assert choice in message
