"""Property-based fuzzing of config loading: any file either loads or raises ConfigError.

Generated YAML documents (random keys, types, nesting, huge numbers, NaN / inf), raw text and
bytes, alias bombs and Python object tags go through :func:`flowsim.config.load_config`. The
contract: a config or a :class:`~flowsim.errors.ConfigError`, quickly; never another exception,
never a hang, never a constructed Python object. A few of the nastiest files also go through
``flowsim check`` (exit code 2, no traceback).
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from flowsim.config import FlowsimConfig, load_config
from flowsim.errors import ConfigError
from flowsim.testing import ROOT, fuzz_settings, run_cli, time_limit

RING = ROOT / "scenarios" / "ring.yaml"
#: Seconds one load may take before it counts as a hang (a valid load takes milliseconds).
LOAD_LIMIT_S = 10


_counter = itertools.count()


def _known_keys() -> list[str]:
    """Top-level and section keys of a real config, so generated documents reach validators."""
    keys: set[str] = set(FlowsimConfig.model_fields)
    for field in FlowsimConfig.model_fields.values():
        annotation = field.annotation
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            keys.update(getattr(candidate, "model_fields", {}))
    return sorted(keys)


KNOWN_KEYS = _known_keys()
RING_DATA = yaml.safe_load(RING.read_text())

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, 2**63, -(2**63) - 1, 10**30]),
    st.text(max_size=20),
    st.sampled_from(KNOWN_KEYS),
)
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=12), st.integers(), st.none())
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=20,
)

#: Tags that would run code or build objects with an unsafe loader.
UNSAFE_TAGS = [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/apply:subprocess.check_call [['touch', '{marker}']]",
    "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
    '!!python/object/apply:builtins.exec [\'open("{marker}", "w")\']',
    "!!python/name:os.system",
    "!!python/module:os",
    "!!python/object:pathlib.Path {{}}",
    "!<tag:yaml.org,2002:python/object/apply:os.system> ['touch {marker}']",
    "!custom {{a: 1}}",
]


def _write(folder: Path, content: str | bytes) -> Path:
    path = folder / f"fuzz-{next(_counter)}.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _loads_or_refuses(path: Path) -> FlowsimConfig | ConfigError:
    """The contract: a config or a ConfigError with a message, within the time limit."""
    with time_limit(LOAD_LIMIT_S, "load_config"):
        try:
            return load_config(path)
        except ConfigError as error:
            assert str(error).strip(), "a ConfigError needs a message"
            return error


def _set_at(data: Any, path: list[int], value: Any) -> Any:
    """Replace the node that ``path`` (indices into each level's keys / items) points at."""
    if not path or not isinstance(data, dict | list) or not data:
        return value
    slots = list(data) if isinstance(data, dict) else list(range(len(data)))
    slot = slots[path[0] % len(slots)]
    data[slot] = _set_at(data[slot], path[1:], value)
    return data


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config-fuzz")


@fuzz_settings(400, "function_scoped_fixture")
@given(where=st.lists(st.integers(min_value=0, max_value=50), max_size=5), value=values)
def test_mutated_ring_config_loads_or_refuses(folder: Path, where: list[int], value: Any) -> None:
    """The shipped ring config with one node replaced by a random value."""
    data = _set_at(copy.deepcopy(RING_DATA), where, value)
    _loads_or_refuses(_write(folder, yaml.safe_dump(data)))


@fuzz_settings(200, "function_scoped_fixture")
@given(document=st.one_of(values, st.dictionaries(keys, values, max_size=6)))
def test_random_document_loads_or_refuses(folder: Path, document: Any) -> None:
    _loads_or_refuses(_write(folder, yaml.safe_dump(document)))


yaml_text = st.lists(
    st.one_of(
        st.text(alphabet="abc:-[]{},&*!|>'\"#%@`?\n\t .0123456789e+", max_size=30),
        st.sampled_from(
            [
                "\n",
                ": ",
                "- ",
                "&a ",
                "*a",
                "<<: ",
                "!!str ",
                "!!int ",
                "!!float ",
                "!!binary ",
                "!!timestamp ",
                "!!set ",
                "!!omap ",
                "!!bool ",
                "!!null ",
                "!!map ",
                "!!seq ",
                "!!pairs ",
                "!!python/tuple ",
                "!local ",
                "! ",
                "2001-13-45",
                ".nan",
                "-.inf",
                "0x" + "f" * 60,
                "9" * 5000,
                "1e99999",
                "---\n",
                "...\n",
                "%YAML 1.1\n",
                "\ufeff",
                "\x00",
                "\x85",
                *KNOWN_KEYS[:12],
            ]
        ),
    ),
    max_size=25,
).map("".join)


@fuzz_settings(300, "function_scoped_fixture")
@given(text=yaml_text)
def test_random_yaml_text_loads_or_refuses(folder: Path, text: str) -> None:
    _loads_or_refuses(_write(folder, text))


@fuzz_settings(100, "function_scoped_fixture")
@given(data=st.binary(max_size=200))
def test_random_bytes_load_or_refuse(folder: Path, data: bytes) -> None:
    """Includes non-UTF-8 bytes (refused with a message), empty files (the defaults)."""
    _loads_or_refuses(_write(folder, data))


@fuzz_settings(60, "function_scoped_fixture")
@given(tag=st.sampled_from(UNSAFE_TAGS), where=st.lists(st.integers(0, 50), max_size=4))
def test_object_tags_are_refused_not_run(folder: Path, tag: str, where: list[int]) -> None:
    marker = folder / f"ran-{next(_counter)}"
    data = _set_at(copy.deepcopy(RING_DATA), where, "TAGGED")
    text = yaml.safe_dump(data).replace("TAGGED", tag.format(marker=marker), 1)
    outcome = _loads_or_refuses(_write(folder, text))
    assert isinstance(outcome, ConfigError), f"a tagged document loaded: {text}"
    assert not marker.exists(), "a YAML tag ran code"


def _alias_bomb(width: int, depth: int, key: str) -> str:
    """Billion laughs: each level lists the previous one ``width`` times (width**depth leaves)."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, depth + 1):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    lines.append(f"{key}: *l{depth}")
    return "\n".join(lines) + "\n"


@fuzz_settings(40, "function_scoped_fixture")
@given(
    width=st.integers(2, 12),
    depth=st.integers(1, 12),
    key=st.sampled_from(["name", "vehicles", "inflows", "unknown", "env"]),
)
def test_alias_bombs_are_refused_quickly(folder: Path, width: int, depth: int, key: str) -> None:
    outcome = _loads_or_refuses(_write(folder, _alias_bomb(width, depth, key)))
    assert isinstance(outcome, ConfigError)  # the l0.. keys are unknown whatever the size
    if width**depth > 100_000:
        assert "aliases" in str(outcome)


NASTY = {
    "alias_bomb": _alias_bomb(10, 9, "name"),
    "self_alias": "vehicles: &v [*v]\n",
    "python_tag": "name: !!python/object/apply:os.system ['echo pwned']\n",
    "non_utf8": b"name: \xff\xfe ring\n",
    "huge_int": "env: {horizon: " + "9" * 5000 + "}\n",
    "deep_nesting": "name: " + "[" * 5000 + "]" * 5000 + "\n",
    "list_key": "? [a, b]\n: 1\n",
    "top_level_list": "- name: ring\n",
}


@pytest.mark.parametrize("case", sorted(NASTY))
def test_check_refuses_nasty_files_with_exit_code_2(tmp_path: Path, case: str) -> None:
    path = _write(tmp_path, NASTY[case])
    result = run_cli("check", str(path), timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip()
