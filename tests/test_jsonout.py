"""Figures printed or written as JSON are strict JSON: NaN becomes null."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from flowsim import jsonout
from flowsim.config import load_config
from flowsim.runs.training import train

ROOT = Path(__file__).resolve().parents[1]


def _reject(constant: str) -> None:
    raise ValueError(f"non-standard JSON constant {constant}")


def test_non_finite_floats_become_null() -> None:
    text = jsonout.dumps({"a": math.nan, "b": [1.0, math.inf, (-math.inf, 2)], "c": "x"})
    assert json.loads(text, parse_constant=_reject) == {
        "a": None,
        "b": [1.0, None, [None, 2]],
        "c": "x",
    }


def test_dumps_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(TypeError):
        jsonout.dumps({"a": object()})


def test_evaluate_json_of_a_gym_run_is_strict(tmp_path: Path) -> None:
    config = load_config(ROOT / "scenarios" / "cartpole.yaml", ["train.iterations=1"])
    run_dir = train(config, out=tmp_path).directory
    result = subprocess.run(
        [sys.executable, "-m", "flowsim.cli", "evaluate", str(run_dir), "--episodes", "2",
         "--baselines", "", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout, parse_constant=_reject)
    assert figures["mean_speed"] is None and figures["mean_return"] > 0
