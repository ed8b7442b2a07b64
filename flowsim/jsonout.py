"""Strict JSON for figures: NaN and infinities become ``null``, which every parser reads."""

from __future__ import annotations

import json
import math
from typing import Any


def strict(value: Any) -> Any:
    """``value`` with every non-finite float inside it (dicts, lists, tuples) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: strict(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict(item) for item in value]
    return value


def dumps(value: Any, indent: int | None = 2) -> str:
    """JSON text of ``value`` (NaN -> null); fails loudly on anything JSON cannot hold."""
    return json.dumps(strict(value), indent=indent, allow_nan=False)
