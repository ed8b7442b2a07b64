"""A run directory: one folder with everything a training (or imitation) run writes.

::

    <out>/<name>-<YYYYmmdd-HHMMSS>[-k]/
      config.yaml        the resolved config the run trains with
      progress.csv       one row per iteration (rewritten atomically, appended, healed)
      events.jsonl       faults survived (:mod:`flowsim.runs.events`)
      checkpoints/       checkpoint-NNNNNN.pt (the last K) and best.pt (train.best_by)
      summary.json       the run's figures at the end
      tensorboard/       the same rows for TensorBoard

:class:`RunDirectory` is the one place that knows these names; the loop, the writers,
``flowsim evaluate`` and ``flowsim imitate`` go through it.
"""

from __future__ import annotations

import csv
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from flowsim import jsonout
from flowsim.config import FlowsimConfig, dump_config, load_config
from flowsim.errors import ConfigError
from flowsim.runs.checkpoints import read_checkpoint, save_checkpoint
from flowsim.runs.events import RunEvents

logger = logging.getLogger(__name__)

#: One progress.csv row: column -> value (ints for iteration, env_steps and episodes).
Row = dict[str, float]

CONFIG_FILE = "config.yaml"
PROGRESS_FILE = "progress.csv"
SUMMARY_FILE = "summary.json"
CHECKPOINT_FOLDER = "checkpoints"
BEST_CHECKPOINT = "best.pt"


def checkpoint_name(iteration: int) -> str:
    """File name of the checkpoint written after ``iteration``."""
    return f"checkpoint-{iteration:06d}.pt"


class RunDirectory:
    """The files of one run folder: config, progress, events, checkpoints, summary.

    ``RunDirectory(path)`` wraps a folder that exists; :meth:`create` makes a fresh one and
    :meth:`open` checks that a folder is a run before a resume reads it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        #: rows progress.csv holds as this process wrote it; None: not written yet or lagging
        self._progress_rows: int | None = None

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    # -- making and finding runs ---------------------------------------------------------
    @classmethod
    def create(cls, config: FlowsimConfig, out: str | Path | None = None) -> RunDirectory:
        """A fresh ``<out>/<name>-<timestamp>[-k]`` folder with ``checkpoints/`` and the
        resolved ``config.yaml`` (``out`` defaults to ``runs``)."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        root = Path(out) if out is not None else Path("runs")
        path = root / f"{config.name}-{stamp}"
        suffix = 1
        while path.exists():
            suffix += 1
            path = root / f"{config.name}-{stamp}-{suffix}"
        (path / CHECKPOINT_FOLDER).mkdir(parents=True)
        directory = cls(path)
        directory.write_config(config)
        return directory

    @classmethod
    def open(cls, path: str | Path, command: str = "flowsim train") -> RunDirectory:
        """An existing run folder (one with a ``config.yaml``).

        Raises:
            ConfigError: ``path`` is not a run directory.
        """
        directory = cls(path)
        if not directory.config_path.is_file():
            raise ConfigError(
                f"{directory.path}: not a run directory (no {CONFIG_FILE}); give a folder "
                f"written by `{command}`."
            )
        return directory

    # -- the files -----------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        """``config.yaml``."""
        return self.path / CONFIG_FILE

    @property
    def progress_path(self) -> Path:
        """``progress.csv``."""
        return self.path / PROGRESS_FILE

    @property
    def summary_path(self) -> Path:
        """``summary.json``."""
        return self.path / SUMMARY_FILE

    @property
    def checkpoints(self) -> Path:
        """The ``checkpoints/`` folder."""
        return self.path / CHECKPOINT_FOLDER

    @property
    def tensorboard(self) -> Path:
        """The TensorBoard event folder."""
        return self.path / "tensorboard"

    # -- config, summary, events ---------------------------------------------------------
    def write_config(self, config: FlowsimConfig) -> None:
        """Save ``config`` as the run's ``config.yaml`` (replaced atomically)."""
        _replace_text(self.config_path, dump_config(config))

    def load_config(self) -> FlowsimConfig:
        """The config the run trains with."""
        return load_config(self.config_path)

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Write ``summary.json`` (NaN as null)."""
        self.summary_path.write_text(jsonout.dumps(summary) + "\n")

    def events(self, row: Row | None = None) -> RunEvents:
        """The run's event log, its totals going on from ``row``'s fault columns."""
        return RunEvents(self.path, row)

    # -- progress.csv --------------------------------------------------------------------
    def write_progress(self, rows: Sequence[Row], columns: Sequence[str]) -> None:
        """Write ``progress.csv`` with ``columns`` from ``rows``, replacing the file atomically."""
        path = self.progress_path
        staging = path.with_suffix(".tmp")
        self._progress_rows = None
        try:
            with open(staging, "w", newline="") as stream:
                writer = csv.DictWriter(stream, fieldnames=list(columns), extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)
            os.replace(staging, path)
        except BaseException:
            staging.unlink(missing_ok=True)
            raise
        self._progress_rows = len(rows)

    def append_progress(self, rows: Sequence[Row], columns: Sequence[str]) -> None:
        """Add the last of ``rows`` to ``progress.csv``; when the file lags behind ``rows`` (a
        write failed before), rewrite it whole instead, so a gap left by a full disk heals.

        Raises:
            OSError: the write failed; the next call rewrites the file.
        """
        if self._progress_rows != len(rows) - 1:
            self.write_progress(rows, columns)
            return
        self._progress_rows = None  # until the row is surely on disk
        with open(self.progress_path, "a", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=list(columns), extrasaction="ignore")
            writer.writerow(rows[-1])
        self._progress_rows = len(rows)

    def heal_progress(self, rows: Sequence[Row], columns: Sequence[str]) -> None:
        """Rewrite ``progress.csv`` if it lags behind ``rows``; log, not raise, a failure."""
        if self._progress_rows == len(rows):
            return
        try:
            self.write_progress(rows, columns)
        except OSError as error:
            logger.warning("could not rewrite %s: %s", self.progress_path, error)

    def progress_rows_past(self, iteration: int) -> int:
        """How many rows of ``progress.csv`` lie past ``iteration`` (a crash wrote them)."""
        try:
            with open(self.progress_path, newline="") as stream:
                return sum(
                    1
                    for row in csv.DictReader(stream)
                    if (row.get("iteration") or "").isdigit() and int(row["iteration"]) > iteration
                )
        except OSError:
            return 0

    # -- checkpoints ---------------------------------------------------------------------
    def checkpoint_paths(self) -> list[Path]:
        """The numbered checkpoints, oldest first."""
        if not self.checkpoints.is_dir():
            return []
        return sorted(self.checkpoints.glob("checkpoint-*.pt"))

    def save_checkpoint(
        self, state: dict[str, Any], iteration: int, keep: int, best: bool = False
    ) -> Path:
        """Write ``state`` as ``checkpoint-<iteration>.pt`` (and ``best.pt`` when ``best``),
        then delete all but the newest ``keep`` numbered checkpoints.

        Raises:
            OSError: a write failed (a full disk); no half-written file is left.
        """
        path = self.checkpoints / checkpoint_name(iteration)
        save_checkpoint(state, path)
        if best:
            save_checkpoint(state, self.checkpoints / BEST_CHECKPOINT)
        for old in self.checkpoint_paths()[:-keep]:
            old.unlink(missing_ok=True)
        return path

    def latest_checkpoint(
        self, damaged: list[tuple[Path, str]] | None = None
    ) -> tuple[dict[str, Any], Path]:
        """The newest checkpoint that loads; a damaged one falls back to the previous.

        Each damaged checkpoint skipped is added to ``damaged`` (path, reason) when given.

        Raises:
            ConfigError: there is no checkpoint, every one is damaged, or one holds pickled
                code (refused, never run).
        """
        candidates = self.checkpoint_paths()
        if not candidates:
            raise ConfigError(
                f"--resume {self.path}: no {CHECKPOINT_FOLDER}/checkpoint-*.pt there; give a "
                "run directory written by `flowsim train`."
            )
        for path in reversed(candidates):
            try:
                return read_checkpoint(path), path
            except ConfigError:
                raise
            except Exception as error:
                logger.warning("checkpoint %s is damaged (%s); using the previous one", path, error)
                if damaged is not None:
                    damaged.append((path, f"{type(error).__name__}: {error}"))
                print(
                    f"warning: checkpoint {path.name} is damaged; falling back to the previous one",
                    file=sys.stderr,
                )
        raise ConfigError(f"--resume {self.path}: every checkpoint is damaged; start a new run.")

    def best_checkpoint(self) -> tuple[dict[str, Any], Path]:
        """``best.pt``: the checkpoint of the best mean training return, or with
        ``train.best_by: eval`` of the best deterministic evaluation
        (:func:`flowsim.runs.loop.train_until`).

        Raises:
            ConfigError: it does not exist or is damaged (the message suggests the latest).
        """
        path = self.checkpoints / BEST_CHECKPOINT
        if not path.is_file():
            raise ConfigError(f"{path} does not exist; use the latest checkpoint instead.")
        try:
            return read_checkpoint(path), path
        except ConfigError:
            raise
        except Exception as error:
            raise ConfigError(f"{path} is damaged ({error}); use the latest checkpoint.") from error

    def load_checkpoint(self, which: str = "latest") -> tuple[dict[str, Any], Path]:
        """The ``latest`` intact checkpoint or the ``best`` one, and its path."""
        if which == "latest":
            return self.latest_checkpoint()
        if which != "best":
            raise ConfigError(f"checkpoint '{which}': choose latest or best.")
        return self.best_checkpoint()

    def drop_checkpoints_after(self, iteration: int) -> bool:
        """Delete the checkpoints past ``iteration``: a history the run no longer continues.

        A resume from an earlier checkpoint (a damaged newest one, a PBT exploit) would
        otherwise keep them, sorted after the new ones. Returns whether ``best.pt`` went too
        (it did when it came from past ``iteration``, or cannot be read).
        """
        for path in self.checkpoint_paths():
            if int(path.stem.removeprefix("checkpoint-")) > iteration:
                path.unlink(missing_ok=True)
        best = self.checkpoints / BEST_CHECKPOINT
        if not best.is_file():
            return False
        try:
            stale = int(read_checkpoint(best)["trainer"]["iteration"]) > iteration
        except Exception:  # unreadable: as good as stale
            stale = True
        if stale:
            best.unlink(missing_ok=True)
        return stale


def _replace_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a staging file and a rename."""
    staging = path.with_suffix(".tmp")
    try:
        staging.write_text(text)
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
