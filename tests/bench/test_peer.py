"""``flowsim bench env --peer sumo-rl``: sumo-rl's own env beside flowsim's on the same files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from flowsim.cli import main

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

needs_sumo_rl = pytest.mark.skipif(
    importlib.util.find_spec("sumo_rl") is None,
    reason="the sumo-rl package is not installed: pip install 'flowsim[resco]' (make installs it)",
)


@needs_sumo_rl
def test_peer_on_the_intersection(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "bench",
            "env",
            "--config",
            str(SCENARIOS / "intersection.yaml"),
            "--peer",
            "sumo-rl",
            "--steps",
            "20",
            "--repeats",
            "2",
            "--results",
            str(tmp_path),
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["benchmark"] == "env-peer" and result["signals"] == 1
    assert result["decisions"] == 20 and result["decision_s"] == 5
    for who in ("flowsim", "sumo-rl"):
        assert len(result["decisions_per_s"][who]) == 2
        assert all(rate > 0 for rate in result["decisions_per_s"][who])
    assert result["ratio_to_peer"] > 0
    assert Path(result["written_to"]).is_file()


def test_peer_without_sumo_rl_names_the_pip_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "sumo_rl" else real_find_spec(name, *args),
    )
    code = main(
        ["bench", "env", "--config", str(SCENARIOS / "intersection.yaml"), "--peer", "sumo-rl"]
    )
    assert code == 2
    assert "pip install 'flowsim[resco]'" in capsys.readouterr().err


@needs_sumo_rl
def test_peer_needs_a_signal_env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ring = str(SCENARIOS / "ring.yaml")
    code = main(["bench", "env", "--config", ring, "--peer", "sumo-rl", "--results", str(tmp_path)])
    assert code == 2
    assert "traffic_light_grid" in capsys.readouterr().err
