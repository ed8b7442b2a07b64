"""The one loop: the callback contract, checkpoint intervals, rows and the best."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from flowsim.algos.base import Trainer
from flowsim.config import load_config
from flowsim.runs.callbacks import CSVWriter
from flowsim.runs.directory import Row, RunDirectory
from flowsim.runs.loop import Callback, progress_columns, train_until
from flowsim.runs.training import make_trainer, train
from flowsim.testing import ROOT

CARTPOLE = ROOT / "scenarios" / "cartpole.yaml"
SHORT = ["sampler.rollout_fragment_length=64", "train.epochs=1"]


class _Recorder(Callback):
    """Notes what the loop told it; stops after ``stop_at`` iterations."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.stop_at = stop_at
        self.iterations: list[int] = []
        self.checkpoints: list[tuple[str, int]] = []
        self.closed = 0

    def on_iteration(self, row: Row, trainer: Trainer) -> bool | None:
        self.iterations.append(int(row["iteration"]))
        assert trainer.iteration == row["iteration"]
        return False if row["iteration"] == self.stop_at else None

    def on_checkpoint(self, path: Path, row: Row) -> None:
        self.checkpoints.append((path.name, int(row["iteration"])))

    def close(self) -> None:
        self.closed += 1


def test_a_callback_returning_false_stops_the_run(tmp_path: Path) -> None:
    recorder = _Recorder(stop_at=2)
    run = train(load_config(CARTPOLE, ["train.iterations=5", *SHORT]), tmp_path, callback=recorder)
    assert recorder.iterations == [1, 2] and run.trainer.iteration == 2
    assert recorder.checkpoints == [("checkpoint-000001.pt", 1), ("checkpoint-000002.pt", 2)]
    assert recorder.closed == 1
    assert len(run.rows) == 2 and isinstance(run.rows[0]["iteration"], int)
    assert run.rows[1]["wall_s"] > run.rows[0]["wall_s"] > 0


def test_checkpoints_every_k_iterations_and_at_the_last(tmp_path: Path) -> None:
    config = load_config(CARTPOLE, ["train.iterations=5", *SHORT])
    directory = RunDirectory.create(config, tmp_path)
    trainer, group = make_trainer(config)
    rows: list[Row] = []
    events = directory.events()
    recorder = _Recorder()
    columns = progress_columns(trainer)
    try:
        best = train_until(
            trainer,
            group,
            directory,
            rows,
            events,
            [CSVWriter(directory, rows, columns, events), recorder],
            iterations=5,
            keep_checkpoints=5,
            checkpoint_every=2,
        )
    finally:
        group.close()
    assert [name for name, _ in recorder.checkpoints] == [
        "checkpoint-000002.pt",
        "checkpoint-000004.pt",
        "checkpoint-000005.pt",
    ]
    assert recorder.iterations == [1, 2, 3, 4, 5] and recorder.closed == 1
    finite = [r["return_mean"] for r in rows if math.isfinite(r["return_mean"])]
    assert best == max(finite)
    with open(directory.progress_path, newline="") as stream:
        written = list(csv.DictReader(stream))
    assert [int(r["iteration"]) for r in written] == [1, 2, 3, 4, 5]
    assert tuple(written[0]) == columns
