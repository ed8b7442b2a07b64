"""A ``flowsim imitate`` run's checkpoints: reading them and telling such a run apart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowsim.errors import ConfigError
from flowsim.runs.directory import RunDirectory


def load_hierarchy_state(run_dir: Path, checkpoint: str) -> tuple[dict[str, Any], Path]:
    """The checkpoint (``latest`` or ``best``) of a ``flowsim imitate`` run and its path."""
    state, path = RunDirectory(run_dir).load_checkpoint(checkpoint)
    if state.get("kind") != "hierarchy":
        raise ConfigError(f"{path} is not a flowsim imitate checkpoint (no kind: hierarchy).")
    return state, path
