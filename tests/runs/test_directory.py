"""RunDirectory: naming, progress.csv healed after a failed append, checkpoints kept and read."""

from __future__ import annotations

import builtins
import csv
from pathlib import Path

import pytest

import flowsim.runs.directory as directory_module
from flowsim.config import FlowsimConfig, load_config
from flowsim.errors import ConfigError
from flowsim.runs.directory import RunDirectory

COLUMNS = ("iteration", "return_mean")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_fresh_directories_are_named_by_config_and_time(tmp_path: Path) -> None:
    config = FlowsimConfig()
    first = RunDirectory.create(config, tmp_path)
    second = RunDirectory.create(config, tmp_path)
    assert first.path.name.startswith(f"{config.name}-") and first.checkpoints.is_dir()
    assert second.path != first.path  # same second: a -k suffix
    assert load_config(first.config_path) == config == first.load_config()
    with pytest.raises(ConfigError, match="not a run directory"):
        RunDirectory.open(tmp_path)


def test_a_failed_append_is_healed_by_the_next_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = RunDirectory(tmp_path)
    rows = [{"iteration": 1, "return_mean": 1.0}]
    run.write_progress(rows, COLUMNS)
    real_open = builtins.open

    def full(path, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if "a" in mode:
            raise OSError(28, "No space left on device")
        return real_open(path, mode, *args, **kwargs)

    rows.append({"iteration": 2, "return_mean": 2.0})
    monkeypatch.setattr(directory_module, "open", full, raising=False)
    with pytest.raises(OSError):
        run.append_progress(rows, COLUMNS)
    monkeypatch.undo()
    assert [r["iteration"] for r in _rows(run.progress_path)] == ["1"]
    rows.append({"iteration": 3, "return_mean": 3.0})
    run.append_progress(rows, COLUMNS)  # rewrites: row 2 is back
    assert [r["iteration"] for r in _rows(run.progress_path)] == ["1", "2", "3"]
    rows.append({"iteration": 4, "return_mean": 4.0})
    run.heal_progress(rows, COLUMNS)  # the last row had not been written
    run.append_progress([*rows, {"iteration": 5, "return_mean": 5.0}], COLUMNS)
    assert [r["iteration"] for r in _rows(run.progress_path)] == ["1", "2", "3", "4", "5"]
    assert run.progress_rows_past(3) == 2


def test_checkpoints_keep_the_last_k_and_the_best(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path)
    run.checkpoints.mkdir()
    for iteration in range(1, 6):
        state = {"trainer": {"iteration": iteration}, "rows": []}
        run.save_checkpoint(state, iteration, keep=2, best=iteration == 3)
    assert [p.name for p in run.checkpoint_paths()] == [
        "checkpoint-000004.pt",
        "checkpoint-000005.pt",
    ]
    assert run.load_checkpoint("latest")[0]["trainer"]["iteration"] == 5
    assert run.load_checkpoint("best")[0]["trainer"]["iteration"] == 3
    with pytest.raises(ConfigError, match="choose latest or best"):
        run.load_checkpoint("newest")
    # A damaged newest falls back to the previous and says which.
    newest = run.checkpoint_paths()[-1]
    newest.write_bytes(newest.read_bytes()[:50])
    damaged: list[tuple[Path, str]] = []
    state, path = run.latest_checkpoint(damaged)
    assert path.name == "checkpoint-000004.pt" and [p for p, _ in damaged] == [newest]
    # Resuming at 4 forgets the history past it; best.pt (iteration 3) stays.
    assert run.drop_checkpoints_after(4) is False
    assert [p.name for p in run.checkpoint_paths()] == ["checkpoint-000004.pt"]
    assert run.drop_checkpoints_after(2) is True and not (run.checkpoints / "best.pt").exists()
    with pytest.raises(ConfigError, match="does not exist; use the latest"):
        run.best_checkpoint()
    with pytest.raises(ConfigError, match="no checkpoints/checkpoint-"):
        run.latest_checkpoint()
