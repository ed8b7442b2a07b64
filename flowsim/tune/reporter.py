"""What a trial tells Ray Tune, as a loop callback: reports, checkpoints and ``trial.json``.

:class:`TuneReporter` runs inside :func:`flowsim.runs.loop.train_until` like the CSV writer:
after each iteration it reports the ``progress.csv`` row (finite values only, the metric
carried over iterations without a finished episode, the PBT lineage) with
:func:`ray.tune.report`, and when the loop has just written a checkpoint it hands Tune the
same file (hard-linked, with ``origin.json`` naming the trial and iteration), so that PBT can
copy it into another trial and ASHA / HyperBand can pause and resume trials.

``trial.json`` in the trial's run directory keeps its parameters, timing (``tune_layer_s``:
the time spent on this layer, read by ``flowsim bench tune``) and lineage
(``restored_from``: PBT exploits; ``resumed_at``: restores of its own checkpoints).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowsim.runs.loop import Callback

if TYPE_CHECKING:
    from flowsim.algos.base import Trainer
    from flowsim.runs.directory import Row

__all__ = [
    "CHECKPOINT_FILE",
    "ORIGIN_FILE",
    "TRIAL_FILE",
    "TuneReporter",
    "read_trial_record",
    "write_trial_record",
]

#: File name of the flowsim checkpoint inside a Tune checkpoint folder.
CHECKPOINT_FILE = "checkpoint.pt"
#: Who wrote a Tune checkpoint (trial id and iteration), beside :data:`CHECKPOINT_FILE`.
ORIGIN_FILE = "origin.json"
#: A trial's parameters, timing and PBT lineage, inside its run directory.
TRIAL_FILE = "trial.json"


def read_trial_record(run_dir: Path) -> dict[str, Any]:
    """A trial's ``trial.json`` (parameters, timing, lineage); empty if not written yet."""
    path = Path(run_dir) / TRIAL_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_trial_record(run_dir: Path, record: dict[str, Any]) -> None:
    """Replace a trial's ``trial.json`` atomically."""
    path = Path(run_dir) / TRIAL_FILE
    staging = path.with_suffix(".tmp")
    staging.write_text(json.dumps(record, indent=1, default=float))
    os.replace(staging, path)


def _last_finite(rows: Sequence[Row], key: str) -> float | None:
    for row in reversed(rows):
        value = row.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            return float(value)
    return None


class TuneReporter(Callback):
    """Reports each iteration of a trial to Ray Tune, with the checkpoint when there is one.

    Args:
        run_dir: the trial's run directory (``trial.json`` is written there).
        trial_id: the trial, named in each Tune checkpoint's ``origin.json``.
        record: the trial's ``trial.json`` contents, updated at each report.
        metric: ``tune.metric``; an iteration without a finished episode reports its last
            finite value (no value before the first one).
        rows: the loop's rows (the metric is carried over them).
    """

    def __init__(
        self,
        run_dir: Path,
        trial_id: str,
        record: dict[str, Any],
        metric: str,
        rows: list[Row],
    ) -> None:
        self.run_dir, self.trial_id, self.record = Path(run_dir), trial_id, record
        self.metric, self.rows = metric, rows
        self.layer_s = float(record.get("tune_layer_s", 0.0))
        self._checkpoint: Path | None = None

    def on_checkpoint(self, path: Path, row: Row) -> None:
        """Hand this checkpoint to Tune with the iteration's report."""
        self._checkpoint = path

    def on_iteration(self, row: Row, trainer: Trainer) -> None:
        """Report the row (and the checkpoint just written, if any) to Ray Tune."""
        from ray import tune

        tick = time.perf_counter()
        lineage = self.record["restored_from"]
        report: dict[str, Any] = {k: v for k, v in row.items() if math.isfinite(v)}
        carried = _last_finite(self.rows, self.metric)
        if carried is not None:
            report[self.metric] = carried
        else:
            report.pop(self.metric, None)
        report["exploits"] = len(lineage)
        report["restored_from"] = lineage[-1]["trial_id"] if lineage else ""
        # Time spent on this layer up to the previous iteration (this one's is still running).
        self.record["last_report_at"] = time.time()
        self.record["iteration"] = trainer.iteration
        self.record["tune_layer_s"] = self.layer_s
        write_trial_record(self.run_dir, self.record)
        saved, self._checkpoint = self._checkpoint, None
        if saved is None:
            tune.report(report)
        else:
            with tempfile.TemporaryDirectory(dir=self.run_dir, prefix=".tune-") as folder:
                _link_or_copy(saved, Path(folder) / CHECKPOINT_FILE)
                origin = {"trial_id": self.trial_id, "iteration": trainer.iteration}
                (Path(folder) / ORIGIN_FILE).write_text(json.dumps(origin))
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(folder))
        self.layer_s += time.perf_counter() - tick


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (no second write), or copy it across file systems."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
