"""The files a config names, and moving them to another node's copy of the job's folder.

Paths in a YAML resolve relative to the YAML when it is loaded (``sections.ExistingPath``), so a
config holds absolute paths of the machine that loaded it. In a Ray job that is the head's
unpacked copy of the job's working dir, ``<temp-dir>/session_*/runtime_resources/
working_dir_files/_ray_pkg_<hash>/``; every other node unpacks the same package under its
own temp dir, in a folder of the same name (the hash of the package's contents). A runner on
such a node calls :func:`reroot_missing` with its own working dir to find the same files there.

Example:
    >>> from flowsim.config import load_config
    >>> config = load_config("scenarios/osm.yaml")
    >>> [key for key in config_paths(config)]
    ['scenario.osm.file']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

__all__ = ["config_paths", "reroot_missing"]


def config_paths(config: BaseModel) -> dict[str, Path]:
    """Every file the config names, by dotted key (``scenario.sumo.route_files.0``)."""
    found: dict[str, Path] = {}

    def record(key: str, path: Path) -> Path:
        found[key] = path
        return path

    _walk(config, "", record)
    return found


def reroot_missing(config: BaseModel, working_dir: Path) -> tuple[Any, dict[str, Path]]:
    """``config`` with each missing file moved into ``working_dir``, and the moved files by key.

    A path that does not exist here but lies under a folder named like ``working_dir`` (another
    node's copy of the same Ray working-dir package) becomes the same relative path under
    ``working_dir``, when that file exists. Other paths are kept, so a file that is nowhere
    still fails where it is opened, under its original name. The config is not modified; the
    returned one shares the sections that hold no moved path.
    """
    working_dir = Path(working_dir)
    moved: dict[str, Path] = {}

    def move(key: str, path: Path) -> Path:
        if path.exists() or not path.is_absolute():
            return path
        parts = path.parts
        for depth in range(len(parts) - 2, 0, -1):  # the deepest folder of that name first
            if parts[depth] == working_dir.name:
                candidate = working_dir.joinpath(*parts[depth + 1 :])
                if candidate.is_file():
                    moved[key] = candidate
                    return candidate
        return path

    return _walk(config, "", move), moved


def _walk(value: Any, key: str, visit: Any) -> Any:
    """``value`` with ``visit(key, path)`` applied to every :class:`Path` in it; sections,
    lists and mappings that hold no changed path are returned as they are."""
    if isinstance(value, Path):
        return visit(key, value)
    prefix = f"{key}." if key else ""
    if isinstance(value, BaseModel):
        changed = {}
        for name in type(value).model_fields:
            item = getattr(value, name)
            new = _walk(item, prefix + name, visit)
            if new is not item:
                changed[name] = new
        # model_copy does not validate: the moved paths exist, and nothing else changes
        return value.model_copy(update=changed) if changed else value
    if isinstance(value, (list, tuple)):
        items = [_walk(item, f"{prefix}{i}", visit) for i, item in enumerate(value)]
        if any(new is not old for new, old in zip(items, value, strict=True)):
            return type(value)(items)
        return value
    if isinstance(value, dict):
        entries = {k: _walk(item, f"{prefix}{k}", visit) for k, item in value.items()}
        if any(entries[k] is not value[k] for k in value):
            return entries
        return value
    return value
