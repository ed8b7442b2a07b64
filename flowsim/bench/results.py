"""The one benchmark result writer: machine description and JSON files under benchmarks/results."""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from flowsim import jsonout


def machine_description() -> dict[str, Any]:
    """Processor, core count and software versions, recorded beside every benchmark."""
    import os

    return {
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sumo": metadata.version("eclipse-sumo"),
        "platform": platform.platform(),
    }


def result_path(result: dict[str, Any], folder: Path = Path("benchmarks/results")) -> Path:
    """Where :func:`write_result` puts ``result``: ``<benchmark>-<config>-<UTC time>.json``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return Path(folder) / f"{result['benchmark']}-{result['config']}-{stamp}.json"


def write_result(
    result: dict[str, Any], folder: Path = Path("benchmarks/results"), path: Path | None = None
) -> Path:
    """Write a benchmark result as JSON (at ``path``, else under ``folder``); return the path.

    Every ``flowsim bench`` command writes through here, so every result file has the same
    name pattern and the same strict JSON (NaN written as null).
    """
    path = Path(path) if path is not None else result_path(result, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(jsonout.dumps(result) + "\n")
    return path
