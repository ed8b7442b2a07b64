"""Helpers for tests of flowsim and of projects built on it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: The repository (or installed package's parent) folder: where `scenarios/` lives in a checkout.
ROOT = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ``flowsim ARGS`` in a fresh Python process (default folder: the repository root)."""
    return subprocess.run(
        [sys.executable, "-m", "flowsim.cli", *args],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
