"""Dotted config keys (``train.lr``, ``vehicles.0.controller``): the one walker.

A dotted key is walked part by part over one of two trees:

- plain data, the dicts and lists a YAML file or a dumped config holds: :func:`get_value`
  reads a key and :func:`set_value` writes one (the engine of ``--set``);
- the model tree, the pydantic section models seen as :class:`Shape` objects (sections,
  lists of sections, free mappings, single values, and sections picked by a tag such as
  ``env.type``): :func:`key_problem` says whether a key exists and, if not, where the walk
  stopped and which keys were valid there; :func:`locate` turns a pydantic error location
  into the key a user wrote.

Example:
    >>> data = {"vehicles": [{"type": "human", "count": 21}]}
    >>> set_value(data, "vehicles.0.count", 10)
    >>> get_value(data, "vehicles.0.count")
    10
"""

from __future__ import annotations

import copy
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from flowsim.errors import ConfigError

__all__ = [
    "TYPE_SHORTHANDS",
    "KeyProblem",
    "Place",
    "Shape",
    "as_index",
    "get_value",
    "key_problem",
    "locate",
    "set_value",
    "shorten",
]

#: Keys whose value may be written as its type name alone (``controller: idm`` is
#: ``controller: {type: idm}``); a key set inside one expands the shorthand first.
TYPE_SHORTHANDS = frozenset({"controller"})

#: Parts of a pydantic error location below a section that name a union branch, not a key
#: (``length: float | tuple[float, float]``); so does any part with a bracket (a validator's
#: name, a mapping's ``[key]`` slot).
_BRANCH_LABELS = frozenset({"tuple[float, float]", "float"})


def shorten(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters for a message (a key or value may be any size)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def as_index(part: str) -> int | None:
    """``part`` as a list index (ASCII digits only: ``int`` also reads '²' and '٣'), or None."""
    return int(part) if part.isascii() and part.isdigit() and len(part) < 19 else None


# ---------------------------------------------------------------------------------------------
# Plain data: dicts and lists


def _list_slot(node: list[Any], part: str, dotted: str, label: str) -> int:
    """The index ``part`` names in the list ``node``; a ConfigError if it names none."""
    index = as_index(part)
    if index is None or index >= len(node):
        raise ConfigError(
            f"{label} {shorten(dotted)}: '{shorten(part, 20)}' is not an index of a list of "
            f"{len(node)} items."
        )
    return index


def _default_at(defaults: Any, part: str) -> Any:
    """The default value under ``part`` of a defaults node, deep-copied; None if absent."""
    if isinstance(defaults, dict):
        return copy.deepcopy(defaults.get(part))
    index = as_index(part)
    if isinstance(defaults, list) and index is not None and index < len(defaults):
        return copy.deepcopy(defaults[index])
    return None


def get_value(data: Any, dotted: str, label: str = "key") -> Any:
    """The value at ``dotted`` in nested dicts and lists (list items by index: ``a.0.b``).

    Raises:
        ConfigError: a part names no key of its mapping or no index of its list, or the walk
            reaches a single value before the key ends; the message starts with ``label``.
    """
    node = data
    for part in dotted.split("."):
        if isinstance(node, list):
            node = node[_list_slot(node, part, dotted, label)]
        elif isinstance(node, dict):
            if part not in node:
                raise ConfigError(
                    f"{label} {shorten(dotted)}: no key '{shorten(part, 20)}' here; keys: "
                    f"{shorten(', '.join(map(str, node)), 200)}."
                )
            node = node[part]
        else:
            raise ConfigError(
                f"{label} {shorten(dotted)}: '{shorten(part, 20)}' is not inside a mapping."
            )
    return node


def set_value(
    data: dict[str, Any], dotted: str, value: Any, defaults: Any = None, label: str = "--set"
) -> None:
    """Set ``a.b.0.c = value`` in nested dicts and lists, creating missing mappings.

    A missing branch starts from its value in ``defaults`` (the same tree of defaults, when
    given), else as an empty list (the next part is an index) or mapping. A key of
    :data:`TYPE_SHORTHANDS` written as a bare name is expanded to ``{type: name}`` first.

    Raises:
        ConfigError: a part is not an index of its list, or the walk meets a single value;
            the message starts with ``label`` and the key.
    """
    parts = dotted.split(".")
    node: Any = data
    for index, part in enumerate(parts[:-1]):
        default = _default_at(defaults, part)
        if isinstance(node, list):
            node, defaults = node[_list_slot(node, part, dotted, label)], default
            continue
        if not isinstance(node, dict):
            raise ConfigError(
                f"{label} {shorten(dotted)}: '{shorten(part, 20)}' is not inside a mapping."
            )
        if isinstance(node.get(part), str) and part in TYPE_SHORTHANDS:
            node[part] = {"type": node[part]}  # expand the shorthand `controller: idm`
        if part not in node or node[part] is None:
            is_index = as_index(parts[index + 1]) is not None
            node[part] = default if default is not None else ([] if is_index else {})
        node, defaults = node[part], default
    last = parts[-1]
    if isinstance(node, list):
        node[_list_slot(node, last, dotted, label)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(
            f"{label} {shorten(dotted)}: the parent of '{shorten(last, 20)}' is not a mapping."
        )


# ---------------------------------------------------------------------------------------------
# The model tree


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _tags(model: type[BaseModel], field: str) -> list[str]:
    """The values of ``model``'s Literal field ``field`` (a tagged section's tags)."""
    info = model.model_fields.get(field)
    return [str(tag) for tag in typing.get_args(info.annotation)] if info else []


@dataclass(frozen=True)
class Shape:
    """What a place in the config holds, for walking keys.

    ``section``: a model (``models`` has one), or one of several models picked by the value
    of their ``tag`` field (``env`` by ``env.type``); ``variant`` picks one, and the picked
    shape keeps the whole set as ``family`` and the tag that picked it as ``picked``.
    ``list``: items of shape ``item``. ``mapping``: free keys (a controller's params), each a
    single value. ``value``: a single value.
    """

    kind: Literal["section", "list", "mapping", "value"]
    models: tuple[type[BaseModel], ...] = ()
    tag: str | None = None
    item: Shape | None = None
    family: Shape | None = None
    picked: str | None = None

    @classmethod
    def of_model(cls, model: type[BaseModel]) -> Shape:
        """The section ``model`` describes."""
        return cls("section", (model,))

    @classmethod
    def of_field(cls, field: FieldInfo) -> Shape:
        """What a model field holds (its annotation; ``discriminator`` tags a union)."""
        tag = field.discriminator if isinstance(field.discriminator, str) else None
        return cls.of_annotation(field.annotation, tag)

    @classmethod
    def of_annotation(cls, annotation: Any, tag: str | None = None) -> Shape:
        """What a value of type ``annotation`` holds (``X | None`` is ``X``)."""
        while typing.get_origin(annotation) is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        origin = typing.get_origin(annotation)
        if origin is typing.Union or origin is types.UnionType:
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            models = tuple(m for m in members if _is_model(m))
            if len(members) == 1:
                return cls.of_annotation(members[0], tag)
            if models and len(models) == len(members) and tag is not None:
                return cls("section", models, tag=tag)
            return cls("section", models[:1]) if models else cls("value")
        if _is_model(annotation):
            return cls.of_model(annotation)
        if origin is list:
            args = typing.get_args(annotation)
            if args and _is_model(args[0]):
                return cls("list", item=cls.of_model(args[0]))
            return cls("value")
        if origin is dict:
            return cls("mapping")
        return cls("value")

    @property
    def tagged(self) -> bool:
        """A section whose model is not picked yet: one of several, by ``tag``."""
        return self.kind == "section" and self.tag is not None and self.family is None

    def valid_keys(self) -> list[str]:
        """The keys valid in this section (of any of its models, in order); none elsewhere."""
        keys: dict[str, None] = {}
        for model in self.models:
            keys.update(dict.fromkeys(model.model_fields))
        return list(keys)

    def tags(self) -> list[str]:
        """The tags that pick this section's models, in order (none if it has one model)."""
        if self.tag is None:
            return []
        return [tag for model in self.models for tag in _tags(model, self.tag)]

    def variant(self, tag: str) -> Shape | None:
        """The section of the model that ``tag`` picks (None if none does)."""
        for model in self.models:
            if self.tag is not None and tag in _tags(model, self.tag):
                return Shape("section", (model,), tag=self.tag, family=self, picked=tag)
        return None

    def owners(self, key: str) -> list[str]:
        """The tags of the family whose models take ``key``."""
        family = self.family or self
        if family.tag is None:
            return []
        return [t for m in family.models if key in m.model_fields for t in _tags(m, family.tag)]

    def child(self, key: str | int) -> Shape | None:
        """What ``key`` holds inside this shape (None: not a key here)."""
        if self.kind == "list":
            return self.item if isinstance(key, int) else None
        if self.kind == "mapping":
            return Shape("value")
        if self.kind != "section":
            return None
        for model in self.models:
            field = model.model_fields.get(str(key))
            if field is not None:
                return Shape.of_field(field)
        return None


@dataclass(frozen=True)
class KeyProblem:
    """Why a dotted key names nothing in the model tree: where the walk stopped, and why.

    ``kind``: ``empty`` (a part is empty), ``value`` (the part before holds a single value),
    ``index`` (a list needs a numeric index), ``unknown`` (no section model takes the part)
    or ``variant`` (the section takes it, but not for the picked tag). ``where`` is the
    dotted path before ``part`` (``""`` at the top level), ``valid`` the keys valid there,
    ``close`` the valid key closest to ``part``, ``tag_key`` / ``tag`` the picking key and
    its value, ``owners`` the tags whose models take ``part``.
    """

    kind: Literal["empty", "value", "index", "unknown", "variant"]
    index: int
    part: str
    where: str
    valid: tuple[str, ...] = ()
    close: str | None = None
    tag_key: str | None = None
    tag: str | None = None
    owners: tuple[str, ...] = ()


def key_problem(
    root: type[BaseModel], dotted: str, picked: Mapping[str, str] | None = None
) -> KeyProblem | None:
    """Why ``dotted`` is not a key of the config ``root`` describes (None if it is one).

    Sections picked by a tag (``env``) take the keys of all their models, unless ``picked``
    gives the tag of that section's path (``{"env": "accel"}``). A list takes an index, a free
    mapping any one key.
    """
    parts = dotted.split(".")
    if not all(parts):
        index = parts.index("")
        return KeyProblem("empty", index, "", ".".join(parts[:index]))
    shape: Shape | None = Shape.of_model(root)
    for index, part in enumerate(parts):
        where = ".".join(parts[:index])
        if shape is None or shape.kind == "value":
            return KeyProblem("value", index, part, where)
        if shape.kind == "list":
            if as_index(part) is None:
                return KeyProblem("index", index, part, where)
            shape = shape.item
            continue
        if shape.kind == "mapping":
            shape = None
            continue
        tag = (picked or {}).get(where)
        if shape.tagged and tag is not None:
            shape = shape.variant(tag) or shape
        if part not in shape.valid_keys():
            valid = tuple(shape.valid_keys())
            if shape.family is not None and part in shape.family.valid_keys():
                return KeyProblem(
                    "variant",
                    index,
                    part,
                    where,
                    valid,
                    tag_key=".".join([*parts[:index], shape.tag or ""]),
                    tag=tag,
                    owners=tuple(shape.owners(part)),
                )
            close = difflib.get_close_matches(part, valid, n=1)
            return KeyProblem("unknown", index, part, where, valid, close[0] if close else None)
        shape = shape.child(part)
    return None


@dataclass(frozen=True)
class Place:
    """Where a pydantic error points: ``path`` is the key as a user writes it (union-branch
    labels and tags dropped), ``container`` the shape holding its last part and ``shape`` the
    shape the whole path leads to (None outside the model tree)."""

    path: tuple[str | int, ...]
    container: Shape | None
    shape: Shape | None


def locate(root: type[BaseModel], loc: Sequence[str | int]) -> Place:
    """The key a pydantic error location ``loc`` (in a ``root`` model) names, and its shapes."""
    path: list[str | int] = []
    container: Shape | None = None
    shape: Shape | None = Shape.of_model(root)
    for part in loc:
        if shape is not None and shape.tagged and isinstance(part, str) and part in shape.tags():
            shape = shape.variant(part)  # the branch pydantic validated: not a key
            continue
        in_section = shape is not None and shape.kind == "section"
        if not in_section and isinstance(part, str) and (part in _BRANCH_LABELS or "[" in part):
            continue
        path.append(part)
        container, shape = shape, shape.child(part) if shape is not None else None
    return Place(tuple(path), container, shape)
