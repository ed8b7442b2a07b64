"""A run's faults and recoveries: one JSON line each in ``events.jsonl``, counted in progress.

Every fault a training run survives is an event: a SUMO process restarted inside a runner, a
runner actor replaced (killed, its node gone, hung), a checkpoint or ``progress.csv`` write
that failed (a full disk), a damaged checkpoint skipped at resume, and the resume itself.
``events.jsonl`` in the run directory keeps one line per event (time, iteration, kind, count,
detail) and ``progress.csv`` carries the running totals (:data:`FAULT_COLUMNS`), so a plot of
a long run shows when it was hurt and that it kept going.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Event kind -> the ``progress.csv`` column that counts it (a running total over the run).
EVENT_COLUMNS = {
    "sim_restart": "sim_restarts",
    "runner_restart": "runner_restarts",
    "write_failed": "write_failures",
    "checkpoint_damaged": "damaged_checkpoints",
    "resumed": "resumes",
}
FAULT_COLUMNS = tuple(EVENT_COLUMNS.values())

#: The file, inside a run directory, that holds the events.
EVENTS_FILE = "events.jsonl"


class RunEvents:
    """Records a run's events to ``events.jsonl`` and keeps their running totals.

    Writing never raises: on a full disk the lines wait in memory and go out with the next
    event that can be written, and the warning still reaches the log.
    """

    def __init__(self, directory: Path, row: dict[str, Any] | None = None) -> None:
        self.path = Path(directory) / EVENTS_FILE
        self.counts = dict.fromkeys(FAULT_COLUMNS, 0)
        for column in FAULT_COLUMNS:  # a resumed run goes on from the checkpoint's totals
            value = (row or {}).get(column)
            if isinstance(value, int | float) and math.isfinite(value):
                self.counts[column] = int(value)
        self._unwritten: list[str] = []

    def record(self, kind: str, iteration: int, detail: str, count: int = 1) -> None:
        """Add ``count`` events of ``kind`` (a key of :data:`EVENT_COLUMNS`) at ``iteration``."""
        if kind not in EVENT_COLUMNS:
            raise ValueError(f"unknown event kind {kind!r}; one of {sorted(EVENT_COLUMNS)}")
        self.counts[EVENT_COLUMNS[kind]] += count
        logger.warning("iteration %d: %s x%d: %s", iteration, kind, count, detail)
        line = json.dumps(
            {
                "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                "iteration": iteration,
                "kind": kind,
                "count": count,
                "detail": detail,
            }
        )
        self._unwritten.append(line)
        self.flush()

    def flush(self) -> bool:
        """Write the events a full disk held back; True when none is left in memory."""
        if not self._unwritten:
            return True
        try:
            with open(self.path, "a") as stream:
                stream.write("".join(f"{item}\n" for item in self._unwritten))
        except OSError as error:
            logger.warning("could not write %s (%s); kept in memory", self.path, error)
            return False
        self._unwritten.clear()
        return True


def read_events(directory: Path) -> list[dict[str, Any]]:
    """The events of the run at ``directory`` (none if it has no ``events.jsonl``).

    A line cut short by a crash is skipped.
    """
    path = Path(directory) / EVENTS_FILE
    if not path.is_file():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events
