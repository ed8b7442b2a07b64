"""Fuzzing of ``--set KEY=VALUE`` overrides: a config, or a ConfigError that names the key.

Generated overrides (random dotted keys, known keys with values of the wrong type, huge numbers,
NaN / inf, empty values, ``=`` inside values, unicode, YAML syntax and tags, alias bombs, very
long text) go through :func:`flowsim.config.apply_overrides` on the shipped ring config. The
contract: a valid :class:`~flowsim.config.FlowsimConfig`, or a
:class:`~flowsim.errors.ConfigError` whose message names the override's key, quickly; never
another exception, never a hang, never a constructed Python object. A few of the nastiest
overrides also go through ``flowsim check CONFIG --set ...`` (exit code 2, no traceback).

YAML merge keys (``<<: *base``) in config files are checked here too: they share the loader
with ``--set`` values, and merge bombs must meet the same cap as alias bombs.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowsim.config import MAX_CONFIG_VALUES, FlowsimConfig, apply_overrides, load_config
from flowsim.errors import ConfigError
from flowsim.testing import ROOT, fuzz_settings, run_cli, time_limit

RING = ROOT / "scenarios" / "ring.yaml"
CONFIG = load_config(RING)
#: Seconds one override may take before it counts as a hang (a valid one takes milliseconds).
LIMIT_S = 10


def _leaf_keys(data: Any, prefix: str = "") -> list[str]:
    """Every dotted key of a dumped config, sections and list items included."""
    keys = [prefix] if prefix else []
    items = (
        data.items()
        if isinstance(data, dict)
        else enumerate(data)
        if isinstance(data, list)
        else ()
    )
    for name, child in items:
        keys += _leaf_keys(child, f"{prefix}.{name}" if prefix else str(name))
    return keys


KNOWN_KEYS = sorted(_leaf_keys(CONFIG.model_dump(mode="json")))

#: Name-like parts and parts that stress the key parser: indices (huge, negative, non-ASCII
#: digits), spaces, unicode, YAML and path syntax.
key_parts = st.one_of(
    st.sampled_from(sorted({part for key in KNOWN_KEYS for part in key.split(".")})),
    st.sampled_from(["0", "1", "99", "-1", "00", "\u00b2", "\u0661", "\uff10", " ", "x y", "[0]"]),
    st.just("huge_index").map(lambda _: "9" * 5000),
    st.sampled_from(["<<", "*a", "&a", "!!str", "=", "{}", "__class__", "\x00", "é", "🚗"]),
    st.text(max_size=8).filter(lambda part: "=" not in part),
)
keys = st.one_of(
    st.sampled_from(KNOWN_KEYS),
    st.lists(key_parts, min_size=1, max_size=5).map(".".join),
    st.tuples(st.sampled_from(KNOWN_KEYS), key_parts).map(".".join),
    st.sampled_from(["", ".", "a..b", ".env", "env.", " env.horizon "]),
    st.integers(100, 10_000).map(lambda length: "x" * length),
)


def _alias_bomb(width: int, depth: int) -> str:
    """Billion laughs on one line: each anchor lists the previous one ``width`` times."""
    levels = ["&l0 [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, depth + 1):
        levels.append(f"&l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    return "[" + ", ".join(levels) + "]"


numbers = st.one_of(
    st.integers().map(str),
    st.integers(min_value=-(10**4000), max_value=10**4000).map(str),
    st.integers(4000, 6000).map(lambda digits: "9" * digits),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [".nan", ".NaN", "nan", ".inf", "-.inf", "inf", "1e400", "-1e400", "1e308", "5e-324"]
    ),
    st.sampled_from(["0x" + "f" * 60, "0o777", "0b101", "1_000", "+1", "-0", "1.", ".5", "1e3"]),
)
yaml_special = st.sampled_from(
    [
        "[",
        "]",
        "{",
        "}",
        "[1, 2",
        "{a: 1",
        "{a: 1, a: 2}",
        "{[1]: 2}",
        "[1, [2, [3]]]",
        "{type: idm, params: {noise: 0.1}}",
        "*alias",
        "&anchor value",
        "&a [*a]",
        "!!python/object/apply:os.system ['echo pwned']",
        "!!python/name:os.system",
        "!!python/object:pathlib.Path {}",
        "!custom {a: 1}",
        "!!int abc",
        "!!float x",
        "!!bool maybe",
        "!!timestamp 2001-13-45",
        "!!set [a]",
        "!!binary ####",
        "!!omap [a]",
        "!important",
        "<<: *x",
        "{<<: {horizon: 5}}",
        "{<<: [{a: 1}, {a: 2}], b: 3}",
        "- a\n- b",
        "a: b: c",
        ": ",
        "? x",
        "|\n  text",
        ">-",
        "'quoted",
        '"quoted',
        "'it''s'",
        '"\\x00"',
        "%YAML 1.1",
        "---",
        "...",
        "# comment",
        "null",
        "~",
        "true",
        "yes",
        "off",
        "2001-12-14",
        "12:30:00",
        "\ufeff",
        "\x85",
        "\x00",
        "\t",
    ]
)
#: Long values, drawn by name so that Hypothesis' reports stay short.
LONG = {
    "nesting": "[" * 5000 + "]" * 5000,
    "mapping_nesting": "{a: " * 3000 + "1" + "}" * 3000,
    "alias_bomb": _alias_bomb(10, 9),
    "deep_alias_bomb": _alias_bomb(4, 12),
    "text": "x" * 100_000,
    "digits": "9" * 100_000,
}
yaml_special = st.one_of(yaml_special, st.sampled_from(sorted(LONG)).map(LONG.__getitem__))
values = st.one_of(
    numbers,
    yaml_special,
    st.sampled_from(["", " ", "=", "a=b", "==", "x=1=2", "idm", "ring", "traci", "rl"]),
    st.text(max_size=30),
    st.lists(st.one_of(yaml_special, numbers, st.text(max_size=5)), max_size=4).map(", ".join),
)
overrides = st.one_of(
    st.tuples(keys, values).map("=".join),
    st.tuples(st.sampled_from(KNOWN_KEYS), values).map("=".join),
    st.text(max_size=20),  # mostly no '=' at all
)


def _applies_or_refuses(items: list[str]) -> FlowsimConfig | ConfigError:
    """The contract: a config, or a ConfigError that names one of the overrides' keys."""
    with time_limit(LIMIT_S, "apply_overrides"):
        try:
            return apply_overrides(CONFIG, items)
        except ConfigError as error:
            message = str(error)
            named = [item.split("=", 1)[0].strip()[:40] for item in items]
            assert any(name in message for name in named), f"no key named in: {message[:500]}"
            return error


@fuzz_settings(500)
@given(items=st.lists(overrides, min_size=1, max_size=3))
def test_random_overrides_apply_or_refuse(items: list[str]) -> None:
    _applies_or_refuses(items)


@fuzz_settings(150)
@given(key=st.sampled_from(KNOWN_KEYS), value=values)
def test_known_key_with_random_value_applies_or_refuses(key: str, value: str) -> None:
    """Every field of the config with values of the wrong type, size or syntax."""
    outcome = _applies_or_refuses([f"{key}={value}"])
    if isinstance(outcome, FlowsimConfig) and key == "name":
        assert isinstance(outcome.name, str)


@pytest.mark.parametrize(
    "value", ["!!python/object/apply:os.system ['touch {marker}']", "!!python/name:os.system"]
)
def test_object_tags_are_refused_not_run(tmp_path: Path, value: str) -> None:
    marker = tmp_path / "ran"
    outcome = _applies_or_refuses([f"name={value.format(marker=marker)}"])
    assert isinstance(outcome, ConfigError)
    assert "--set name" in str(outcome) and "quote a value" in str(outcome).lower()
    assert not marker.exists()


def test_alias_bomb_is_refused_quickly() -> None:
    outcome = _applies_or_refuses([f"train.hidden={_alias_bomb(10, 9)}"])
    assert isinstance(outcome, ConfigError)
    assert "train.hidden" in str(outcome) and "aliases" in str(outcome)


def test_unparsable_yaml_is_taken_as_text() -> None:
    """A value that is not YAML (an unclosed bracket) is the text itself, as before."""
    for text in ("[Oakland", "{Oakland", "a=b", "*alias"):
        assert apply_overrides(CONFIG, [f"scenario.osm.place={text}"]).scenario.osm.place == text


@pytest.mark.parametrize(
    ("key", "part"),
    [("vehicles.\u00b2.count", "\u00b2"), ("vehicles." + "9" * 5000 + ".count", "999")],
    ids=["superscript-digit", "5000-digit-index"],
)
def test_odd_list_indices_are_refused_naming_the_key(key: str, part: str) -> None:
    with pytest.raises(ConfigError, match="vehicles") as raised:
        apply_overrides(CONFIG, [f"{key}=3"])
    assert part in str(raised.value)


NASTY = {
    "huge_int": "env.horizon=" + "9" * 5000,
    "nan": "env.max_accel=.nan",
    "python_tag": "name=!!python/object/apply:os.system ['echo pwned']",
    "alias_bomb": "train.hidden=" + _alias_bomb(10, 9),
    "deep_nesting": "name=" + "[" * 5000 + "]" * 5000,
    "huge_index": "vehicles." + "9" * 5000 + ".count=1",
    "no_equals": "env.horizon",
    "unknown_key": "env.horizn=10",
}


@pytest.mark.parametrize("case", sorted(NASTY))
def test_check_refuses_nasty_overrides_with_exit_code_2(case: str) -> None:
    result = run_cli("check", str(RING), "--set", NASTY[case], timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert NASTY[case].split("=", 1)[0][:40] in result.stderr


# ---------------------------------------------------------------------------------------------
# YAML merge keys (`<<: *base`) in config files: allowed, with the alias-bomb cap still in force

SHARED_GROUPS = """\
name: shared
vehicles:
  - &human {type: human, count: 10, controller: idm, accel: 1.5, decel: 2.0}
  - <<: *human
    type: slow
    count: 5
    accel: 0.8
  - {<<: [{type: av, count: 1, controller: rl}, *human], color: "255,0,0"}
"""


def _write(folder: Path, text: str) -> Path:
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_merge_keys_share_a_block_and_own_keys_win(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, SHARED_GROUPS))
    human, slow, av = config.vehicles
    assert (slow.type, slow.count, slow.accel, slow.decel) == ("slow", 5, 0.8, 2.0)
    assert slow.controller.type == "idm"
    # of several merged mappings the earlier wins; the mapping's own keys win over all
    assert (av.type, av.count, av.controller.type, av.accel, av.color) == (
        "av",
        1,
        "rl",
        1.5,
        "255,0,0",
    )
    assert human.count == 10


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("env: {<<: {horizon: 5}, horizon: 6, horizon: 7}\n", "'horizon' appears twice"),
        ("env: {<<: {horizon: 5}, <<: {warmup_steps: 1}}\n", "'<<' appears twice"),
        ("env: {<<: 5}\n", "a merge key (<<) takes a mapping"),
        ("env: {<<: [{horizon: 5}, 3]}\n", "a merge key (<<) takes a mapping"),
        ("env: &e {<<: *e}\n", "refers to a mapping that contains it"),
        ("env: &e {x: {<<: *e}}\n", "contains it"),
        ("env: {<<: {horizon: 5}, horizn: 6}\n", "unknown key 'env.horizn'"),
        ("env: {<<: {[1]: 5}}\n", "not a list or mapping"),
    ],
)
def test_bad_merges_are_refused_with_a_message(tmp_path: Path, text: str, message: str) -> None:
    refused = pytest.raises(ConfigError, match=re.escape(message))
    with time_limit(LIMIT_S, "load_config"), refused:
        load_config(_write(tmp_path, text))


def _merge_bomb(width: int, depth: int, wide: bool) -> str:
    """Merges that multiply: each level merges the previous one ``width`` times and holds it
    ``width`` times (an exponential expansion), or ``wide``: ``50 * depth`` mappings that each
    merge one mapping of ``width`` keys."""
    keys = ", ".join(f"k{index}: {index}" for index in range(width))
    lines = [f"l0: &l0 {{{keys}}}"]
    if wide:
        lines += [f"m{level}: {{<<: *l0}}" for level in range(1, 50 * depth + 1)]
    else:
        for level in range(1, depth + 1):
            previous = ", ".join([f"*l{level - 1}"] * width)
            lines.append(f"l{level}: &l{level} {{<<: [{previous}], x{level}: [{previous}]}}")
    return "\n".join(lines) + "\n"


@fuzz_settings(30)
@given(
    width=st.integers(1, 200),
    depth=st.integers(1, 12),
    wide=st.booleans(),
    key=st.sampled_from(["env", "name"]),
)
def test_merge_bombs_are_refused_quickly(width: int, depth: int, wide: bool, key: str) -> None:
    text = _merge_bomb(width, depth, wide).replace("l0:", f"{key}:", 1)
    # l1, m1 ... are unknown keys: refused whatever the size
    with (
        tempfile.TemporaryDirectory() as folder,
        time_limit(LIMIT_S, "load_config"),
        pytest.raises(ConfigError) as raised,
    ):
        load_config(_write(Path(folder), text))
    expanded = width * 50 * depth if wide else width ** (depth + 1)  # at least this many
    if expanded > MAX_CONFIG_VALUES:
        assert "than 100,000 values" in str(raised.value)
