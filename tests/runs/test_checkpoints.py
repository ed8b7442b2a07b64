"""Checkpoints: numpy survives the round trip, pickled code is refused, files are atomic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from flowsim.config import load_config
from flowsim.errors import ConfigError
from flowsim.runs.checkpoints import read_checkpoint, save_checkpoint
from flowsim.runs.directory import RunDirectory
from flowsim.runs.training import train
from flowsim.testing import ROOT, run_cli


def test_round_trip_keeps_arrays_tensors_and_big_ints(tmp_path: Path) -> None:
    state = {
        "w": np.arange(6, dtype=np.float32).reshape(2, 3),
        "t": torch.ones(2),
        "rng": np.random.default_rng(0).bit_generator.state,  # 128-bit integers
        "rows": [{"a": 1.5, "b": np.float64(2.0)}],
    }
    path = tmp_path / "c.pt"
    save_checkpoint(state, path)
    back = read_checkpoint(path)
    assert isinstance(back["w"], np.ndarray) and np.array_equal(back["w"], state["w"])
    assert back["w"].dtype == np.float32 and torch.equal(back["t"], state["t"])
    assert back["rng"] == state["rng"] and back["rows"] == [{"a": 1.5, "b": 2.0}]
    assert not list(tmp_path.glob("*.tmp"))


class _Payload:
    """Unpickling this would run a command."""

    def __reduce__(self) -> tuple:
        return (print, ("pwned",))


def test_pickled_code_is_refused_not_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "evil.pt"
    with open(path, "wb") as stream:
        torch.save({"trainer": _Payload()}, stream)
    with pytest.raises(ConfigError, match="pickled objects"):
        read_checkpoint(path)
    assert "pwned" not in capsys.readouterr().out


def test_a_run_resumes_from_its_safe_checkpoints(tmp_path: Path) -> None:
    config = load_config(ROOT / "scenarios" / "cartpole.yaml", ["train.iterations=2"])
    run_dir = train(config, out=tmp_path).directory
    state, _ = RunDirectory(run_dir).load_checkpoint()
    assert isinstance(state["policy"], dict) and state["trainer"]["iteration"] == 2
    evil = run_dir / "checkpoints" / "checkpoint-000003.pt"
    with open(evil, "wb") as stream:
        torch.save({"trainer": _Payload()}, stream)
    result = run_cli("train", "--resume", str(run_dir))
    assert result.returncode == 2 and "pickled objects" in result.stderr
    assert "pwned" not in result.stdout and "Traceback" not in result.stderr
