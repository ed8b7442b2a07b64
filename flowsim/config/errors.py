"""Validation errors as the message a user reads: one line per bad key, with the fix.

Pydantic reports where a value failed as a location (``('vehicles', 0, 'count')``, with the
branches of unions in it); :func:`format_errors` names the key as it is written in YAML
(``vehicles[0].count``), shows the value, says what is wrong and how to fix it, and for an
unknown key lists the valid ones with the closest suggested.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence

from pydantic import BaseModel, ValidationError

from flowsim.config.keys import Place, locate

__all__ = ["format_errors"]


def _location(path: Sequence[str | int]) -> str:
    """A key path as written in messages: ``vehicles[0].controller``."""
    parts: list[str] = []
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts) or "(top level)"


def _either(tags: Sequence[str]) -> str:
    """``'a', 'b' or 'c'``, as pydantic lists the values a Literal allows."""
    quoted = [f"'{tag}'" for tag in tags]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _show(value: object) -> str:
    """A value for a message: JSON, ``{…}`` for a mapping, cut to 60 characters."""
    try:
        shown = json.dumps(value, default=str) if not isinstance(value, dict) else "{…}"
    except (ValueError, RecursionError):  # a cycle, or an int too long to print
        shown = "(a value too large to show)"
    return shown[:57] + "..." if len(shown) > 60 else shown


def _unknown_key(place: Place, key: str) -> str:
    """The line for a key its section does not take: the valid keys, the closest one, and for
    a section picked by a tag (``env.type``) the tags whose sections take it."""
    container = place.container
    valid = container.valid_keys() if container is not None else []
    last = str(place.path[-1]) if place.path else ""
    family = container.family if container is not None else None
    if container is not None and family is not None and last in family.valid_keys():
        tag_key = _location([*place.path[:-1], container.tag or ""])
        return (
            f"key '{key}' does not apply to {tag_key} {container.picked} (only to "
            f"{', '.join(container.owners(last))}). Valid keys here: {', '.join(valid)}. "
            f"Remove it or change {tag_key}."
        )
    close = difflib.get_close_matches(last, valid, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown key '{key}'. {hint}Valid keys here: {', '.join(valid)}. Remove or rename it."


def format_errors(error: ValidationError, source: str, root: type[BaseModel]) -> str:
    """The message for ``error`` raised validating a ``root`` model read from ``source``."""
    lines = []
    seen: set[str] = set()
    for item in error.errors():
        loc = tuple(item.get("loc", ()))
        place = locate(root, loc)
        key = _location(place.path)
        value = item.get("input")
        kind = item.get("type", "")
        message = item.get("msg", "").removeprefix("Value error, ").rstrip(".")
        shape = place.shape
        if kind == "union_tag_invalid" and shape is not None and shape.tagged:
            # a tag that picks no section (env.type: foo): an error of the tag's value
            key = _location([*place.path, shape.tag or ""])
            value = value.get(shape.tag) if isinstance(value, dict) else value
            message = f"Input should be {_either(shape.tags())}"
        if key in seen and loc:  # one message per key (a union reports once per branch)
            continue
        seen.add(key)
        if key == "scenario.length" and "valid" in message and "between" not in message:
            message = "expected a length in metres or a range [low, high]"
        if not loc:  # a whole-file rule (e.g. the vehicles must fit): the message says it all
            lines.append(message + ".")
        elif kind == "extra_forbidden":
            lines.append(_unknown_key(place, key))
        elif kind == "missing":
            lines.append(f"missing key '{key}': add it (see `flowsim schema`).")
        else:
            lines.append(f"{key} = {_show(value)}: {message}. Fix the value of '{key}'.")
    return f"invalid configuration in {source}:\n  " + "\n  ".join(lines)
