"""Reading YAML for configs: a hardened safe loader and the files it reads.

The loader is a :class:`yaml.SafeLoader` (no Python object tags) that also refuses a key given
twice in one mapping, resolves merge keys (``<<: *base``) within a cap, refuses brackets nested
deeper than :data:`MAX_BRACKET_DEPTH` and documents whose aliases expand past
:data:`MAX_CONFIG_VALUES` values. Every problem is a :class:`~flowsim.errors.ConfigError`
naming the source and the fix.

Example:
    >>> load_yaml("env: {horizon: 500}", "<text>")
    {'env': {'horizon': 500}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from flowsim.errors import ConfigError

__all__ = [
    "MAX_BRACKET_DEPTH",
    "MAX_CONFIG_VALUES",
    "YAMLSyntaxError",
    "load_yaml",
    "read_yaml",
]

#: YAML's merge key (``<<: *base``) and value key (``=``) as the resolver tags them.
_MERGE_TAG = "tag:yaml.org,2002:merge"
_VALUE_TAG = "tag:yaml.org,2002:value"

#: Values a config may expand to once YAML aliases (``*name``) and merge keys (``<<``) are
#: followed; real ones hold a few hundred. A cap keeps an alias bomb ("billion laughs") from
#: exhausting time and memory.
MAX_CONFIG_VALUES = 100_000

#: Brackets (``[`` / ``{``) a YAML value may nest; real configs nest a few. PyYAML's scanner
#: slows with every open bracket (a line of 5000 took seconds), so deeper text is refused early.
MAX_BRACKET_DEPTH = 64


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping (YAML keeps the last) and
    resolves merge keys (``<<: *base``) within :data:`MAX_CONFIG_VALUES`.

    A mapping's merges are resolved once: the merged keys come first and its own keys override
    them (YAML's rule; of several merged mappings, ``<<: [*a, *b]``, the earlier wins). A key
    that arrives through several merges is kept once, so nested merges never grow a mapping
    past its distinct keys, and every merged key counts toward the cap.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._flattened: set[int] = set()  # ids of mapping nodes whose merges are resolved
        self._flattening: set[int] = set()  # being resolved: merging one of these is a cycle
        self._merged = 0  # key / value pairs copied by merges so far

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError, LookupError, TypeError, AttributeError) as error:
            # PyYAML's constructors raise these for a 5000-digit integer, a 13th month, or a
            # malformed explicit tag (`!!int` with no digits, `!!bool maybe`)
            tag = node.tag.rsplit(":", 1)[-1]
            shown = node.value if isinstance(node, yaml.ScalarNode) else "..."
            reason = str(error).split(";")[0]  # drop Python's hint about interpreter limits
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"{shown[:40]!r} is not a valid {tag} ({reason})",
                node.start_mark,
            ) from None

    def fetch_flow_collection_start(self, TokenClass: type) -> None:
        if self.flow_level >= MAX_BRACKET_DEPTH:
            raise yaml.scanner.ScannerError(
                None, None, f"brackets nest deeper than {MAX_BRACKET_DEPTH} levels", self.get_mark()
            )
        super().fetch_flow_collection_start(TokenClass)

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """Check the mapping's own keys, then put the merged keys they do not override first."""
        if id(node) in self._flattened:
            return
        if id(node) in self._flattening:
            raise yaml.constructor.ConstructorError(
                None, None, "a merge (<<) refers to a mapping that contains it", node.start_mark
            )
        self._flattening.add(id(node))
        own: dict[Any, tuple[yaml.Node, yaml.Node]] = {}
        sources: list[yaml.MappingNode] = []
        merge_mark = None
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                if merge_mark is not None:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        "key '<<' appears twice in one mapping; merge several with <<: [*a, *b]",
                        key_node.start_mark,
                    )
                merge_mark = key_node.start_mark
                sources = self._merge_sources(value_node)
                continue
            if key_node.tag == _VALUE_TAG:  # PyYAML reads a bare `=` key as the text "="
                key_node.tag = "tag:yaml.org,2002:str"
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a name, not a list or mapping", key_node.start_mark
                ) from None
            if key in own:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice in one mapping", key_node.start_mark
                )
            own[key] = (key_node, value_node)
        merged: dict[Any, tuple[yaml.Node, yaml.Node]] = {}
        for source in sources:
            self.flatten_mapping(source)
            self._merged += len(source.value)
            if self._merged > MAX_CONFIG_VALUES:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"its merge keys (<<) copy more than {MAX_CONFIG_VALUES:,} values; a flowsim "
                    "config is far smaller",
                    merge_mark,
                )
            for key_node, value_node in source.value:
                key = self.construct_object(key_node, deep=True)  # checked when it was flattened
                if key not in own:
                    merged.setdefault(key, (key_node, value_node))
        node.value = [*merged.values(), *own.values()]
        self._flattening.discard(id(node))
        self._flattened.add(id(node))

    @staticmethod
    def _merge_sources(value_node: yaml.Node) -> list[yaml.MappingNode]:
        """The mappings a ``<<`` key merges: one mapping, or a list of mappings."""
        if isinstance(value_node, yaml.MappingNode):
            return [value_node]
        if isinstance(value_node, yaml.SequenceNode) and all(
            isinstance(item, yaml.MappingNode) for item in value_node.value
        ):
            return list(value_node.value)
        raise yaml.constructor.ConstructorError(
            None,
            None,
            "a merge key (<<) takes a mapping or a list of mappings, e.g. <<: *base",
            value_node.start_mark,
        )


class YAMLSyntaxError(ConfigError):
    """Text that does not parse as YAML, as opposed to YAML holding values flowsim refuses."""


def load_yaml(text: str, source: str, fix: str = "Fix the syntax.") -> Any:
    """The data in YAML ``text``; any problem is a ConfigError naming ``source``.

    Unparsable text raises :class:`YAMLSyntaxError` (a ConfigError); object tags, malformed
    tagged values, deep nesting and alias bombs raise a plain ConfigError ending in ``fix``.
    """
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        if isinstance(error, yaml.constructor.ConstructorError):
            raise ConfigError(f"{source} is not valid YAML{where}: {problem}. {fix}") from None
        raise YAMLSyntaxError(
            f"{source} is not valid YAML{where}: {problem}. Fix the syntax."
        ) from None
    except (RecursionError, MemoryError):
        raise ConfigError(
            f"{source} nests too deeply or is too big for a flowsim config."
        ) from None
    except (ValueError, OverflowError, LookupError, TypeError, AttributeError) as error:
        # what construct_object could not place: a malformed collection tag (`!!set [a]`)
        reason = str(error).split(";")[0]  # drop Python's hint about interpreter limits
        raise ConfigError(
            f"{source} holds a value YAML cannot read ({type(error).__name__}: {reason}). Fix "
            "the value, or drop its explicit tag (!!int, !!float, !!timestamp, !!set, ...)."
        ) from None
    try:
        _check_expanded_size(data, source)
    except RecursionError:
        raise ConfigError(f"{source} nests too deeply to be a flowsim config.") from None
    return data


def read_yaml(path: Path) -> Any:
    """The data in the YAML file ``path``; a missing, unreadable or bad file is a ConfigError."""
    if not path.exists():
        raise ConfigError(
            f"config file not found: {path}. Check the path (e.g. scenarios/ring.yaml)."
        )
    if not path.is_file():
        raise ConfigError(f"config path is not a file: {path}. Give a YAML file.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; save the YAML file as UTF-8.") from None
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}. Check its permissions.") from None
    return load_yaml(text, str(path))


def _check_expanded_size(data: Any, source: str) -> None:
    """Refuse a document whose aliases refer to themselves or expand past the cap."""
    sizes: dict[int, int] = {}  # by id: an alias is the same object, counted once per use
    open_ids: set[int] = set()

    def size(value: Any) -> int:
        if not isinstance(value, dict | list):
            return 1
        if id(value) in sizes:
            return sizes[id(value)]
        if id(value) in open_ids:
            raise ConfigError(
                f"{source}: an alias (*name) refers to a mapping or list that contains it; "
                "a config cannot hold itself. Replace the alias with the values."
            )
        open_ids.add(id(value))
        children = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        total = 1 + sum(size(child) for child in children)
        open_ids.discard(id(value))
        if total > MAX_CONFIG_VALUES:
            raise ConfigError(
                f"{source}: its aliases (*name) expand to more than {MAX_CONFIG_VALUES:,} "
                "values; a flowsim config is far smaller. Write the values out instead of "
                "nesting aliases."
            )
        sizes[id(value)] = total
        return total

    size(data)
