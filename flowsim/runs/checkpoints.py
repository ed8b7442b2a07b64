"""Checkpoint files: written atomically, read without unpickling code.

A checkpoint holds tensors, numbers, strings and numpy arrays in nested dicts and lists.
Numpy arrays are stored as tensors (tagged so that they come back as arrays), so every file
loads with ``torch.load(weights_only=True)``: a file that smuggles in pickled code (a class
with a ``__reduce__`` that runs a command, say) is refused instead of executed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flowsim.errors import ConfigError

#: Key of the one-entry dict that stands for a numpy array in a saved checkpoint.
_ARRAY_TAG = "__ndarray__"


def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {_ARRAY_TAG: torch.from_numpy(np.ascontiguousarray(value))}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(item) for item in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _ARRAY_TAG in value:
            return value[_ARRAY_TAG].numpy()
        return {key: _decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to a temporary file, flush it to disk, then rename it into place."""
    staging = Path(path).with_suffix(".tmp")
    try:
        with open(staging, "wb") as stream:
            torch.save(_encode(state), stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(staging, path)
    except BaseException:  # a full disk, say: no half-written file is left behind
        staging.unlink(missing_ok=True)
        raise


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint`, loaded without unpickling code.

    Raises:
        ConfigError: the file holds pickled objects other than tensors and plain data
            (refused, never run).
        Exception: whatever torch raises for a truncated or damaged file.
    """
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:
        if "Weights only load failed" in str(error) or "Unsupported global" in str(error):
            raise ConfigError(
                f"{path} holds pickled objects, not just tensors and numbers; flowsim does not "
                "load it (loading could run code). Use a checkpoint written by flowsim."
            ) from None
        raise
    return _decode(state)
