"""Property-based fuzzing of OpenStreetMap input: damaged extracts build or raise a clear error.

Extracts made from ``flowsim/data/town.osm`` (a 4 x 4 street grid) by cutting it at a random
byte, flipping bytes, dropping or repeating elements, mangling attribute values, or compressing
it (bzip2, gzip) and cutting the archive go through the OSM network build (netconvert). The
contract: a network with roads, or a :class:`~flowsim.errors.ConfigError` that names
``scenario.osm.file`` in one short message (no netconvert trace, no Python traceback); never
another exception. ``tests/scenarios/test_osm.py`` has the fixed bad files (empty, garbage,
text, a truncated archive, footways only).
"""

from __future__ import annotations

import bz2
import gzip
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from flowsim.config import SignalConfig
from flowsim.errors import ConfigError
from flowsim.scenarios.open import net_edges
from flowsim.scenarios.osm import osm_network
from flowsim.testing import ROOT, fuzz_settings

TOWN = (ROOT / "flowsim" / "data" / "town.osm").read_bytes()
LINES = TOWN.splitlines(keepends=True)
KEY = "scenario.osm.file"

_counter = itertools.count()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder for the extracts, and a private network cache (no builds left in ~/.cache)."""
    root = tmp_path_factory.mktemp("osm-fuzz")
    saved = os.environ.get("FLOWSIM_CACHE_DIR")
    os.environ["FLOWSIM_CACHE_DIR"] = str(root / "cache")
    try:
        yield root
    finally:
        if saved is None:
            del os.environ["FLOWSIM_CACHE_DIR"]
        else:
            os.environ["FLOWSIM_CACHE_DIR"] = saved


def _builds_or_refuses(folder: Path, content: bytes, suffix: str = ".osm") -> Path | ConfigError:
    """The contract: a network with edges, or a short ConfigError naming the config key."""
    path = folder / f"extract-{next(_counter)}{suffix}"
    path.write_bytes(content)
    try:
        network = osm_network(path, SignalConfig(), KEY)
    except ConfigError as error:
        message = str(error)
        assert message.startswith(f"{KEY}: "), message
        assert "Traceback" not in message and "\n" not in message, message
        assert len(message) < 1000, message
        return error
    assert net_edges(network), f"{network} has no edges"
    return network


cuts = st.integers(min_value=0, max_value=len(TOWN))


@fuzz_settings(12, "function_scoped_fixture", "too_slow")
@given(cut=cuts)
def test_truncated_extract(folder: Path, cut: int) -> None:
    outcome = _builds_or_refuses(folder, TOWN[:cut])
    if cut < len(TOWN) - len(b"</osm>\n"):
        assert isinstance(outcome, ConfigError)  # the root element is never closed


@fuzz_settings(12, "function_scoped_fixture", "too_slow")
@given(
    flips=st.lists(
        st.tuples(st.integers(0, len(TOWN) - 1), st.integers(1, 255)), min_size=1, max_size=6
    )
)
@example(flips=[(30, 1)])  # encoding="TTF-8": an unknown encoding (LookupError) crashed
def test_flipped_bytes(folder: Path, flips: list[tuple[int, int]]) -> None:
    damaged = bytearray(TOWN)
    for offset, mask in flips:
        damaged[offset] ^= mask
    _builds_or_refuses(folder, bytes(damaged))


@fuzz_settings(10, "function_scoped_fixture", "too_slow")
@given(
    dropped=st.sets(st.integers(0, len(LINES) - 1), max_size=12),
    repeated=st.sets(st.integers(0, len(LINES) - 1), max_size=4),
)
def test_dropped_and_repeated_elements(folder: Path, dropped: set[int], repeated: set[int]) -> None:
    """Ways whose nodes are gone, duplicate ids, a lost XML declaration or root tag."""
    lines = []
    for index, line in enumerate(LINES):
        if index not in dropped:
            lines.append(line)
        if index in repeated:
            lines.append(line)
    _builds_or_refuses(folder, b"".join(lines))


ODD_VALUES = st.sampled_from(
    [b"", b"nan", b"inf", b"-inf", b"1e999", b"-91", b"181", b"9" * 400, b"0x1f", b"&amp;", b"\xff"]
)


@fuzz_settings(10, "function_scoped_fixture", "too_slow")
@given(
    attribute=st.sampled_from([b"lat", b"lon", b"id", b"ref", b"v"]),
    which=st.integers(0, 60),
    value=ODD_VALUES,
)
def test_mangled_attribute_values(folder: Path, attribute: bytes, which: int, value: bytes) -> None:
    """One lat, lon, id, node ref or tag value replaced by an odd one."""
    marker = b" " + attribute + b'="'
    starts = [index for index in range(len(TOWN)) if TOWN.startswith(marker, index)]
    start = starts[which % len(starts)] + len(marker)
    end = TOWN.index(b'"', start)
    _builds_or_refuses(folder, TOWN[:start] + value + TOWN[end:])


@fuzz_settings(10, "function_scoped_fixture", "too_slow")
@given(compress=st.sampled_from(["bz2", "gzip"]), cut=st.floats(0.0, 1.0, exclude_max=True))
def test_cut_archive(folder: Path, compress: str, cut: float) -> None:
    packed = bz2.compress(TOWN) if compress == "bz2" else gzip.compress(TOWN)
    outcome = _builds_or_refuses(folder, packed[: int(len(packed) * cut)], f".osm.{compress}")
    assert isinstance(outcome, ConfigError)


def test_an_intact_extract_builds(folder: Path) -> None:
    """The control: the undamaged town, plain and compressed, builds a network."""
    for content, suffix in [(TOWN, ".osm"), (bz2.compress(TOWN), ".osm.bz2")]:
        assert isinstance(_builds_or_refuses(folder, content, suffix), Path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (TOWN.replace(b"<osm ", b"<!DOCTYPE osm [<!ENTITY a 'x'>]>\n<osm ", 1), "cannot read"),
        (TOWN.replace(b"<osm ", b"<gpx ", 1).replace(b"</osm>", b"</gpx>"), "<gpx> root"),
        (TOWN.replace(b'k="highway"', b'k="building"'), "no roads that passenger cars"),
        (b"\xef\xbb\xbf" + TOWN, None),
        (TOWN.decode().encode("utf-16"), "cannot read"),
    ],
    ids=["doctype-entity", "other-root", "no-highways", "utf8-bom", "utf16"],
)
def test_odd_documents(folder: Path, content: bytes, reason: str | None) -> None:
    outcome = _builds_or_refuses(folder, content)
    if reason is None:
        assert isinstance(outcome, Path)
    else:
        assert isinstance(outcome, ConfigError) and reason in str(outcome)
