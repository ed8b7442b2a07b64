"""Your own SUMO files: a ``.sumocfg``, a network with route files, or one of RESCO's maps.

The files are used as they are (no netconvert). ``scenario.sumo.config`` names a ``.sumocfg``
whose ``net-file``, ``route-files``, ``additional-files``, ``begin`` and ``end`` are read, the
files resolved relative to the ``.sumocfg`` as SUMO does; ``net_file``, ``route_files`` and
``additional_files`` name the files directly (relative to the YAML); ``resco`` takes a RESCO
map's ``.sumocfg`` from the installed sumo-rl package. ``begin`` and ``end`` in the YAML
override the ``.sumocfg``'s.

Before SUMO starts, every file is checked once per process (and again only when it changes):
it exists and is readable, it is well-formed XML of the right kind, and every edge a route,
trip or flow uses is an edge of the network, so bad input is a :class:`ConfigError` naming the
key and the fix rather than a failure inside SUMO. Vehicles enter and leave as on the other
open networks; those of the route files keep their own vTypes and SUMO drives them unless a
vehicle group claims them.
"""

from __future__ import annotations

import gzip
import importlib.util
import re
import xml.parsers.expat
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import IO

import numpy as np

from flowsim.config import (
    RESCO_MAPS,
    InflowConfig,
    ScenarioConfig,
    SumoConfig,
    VehicleGroup,
)
from flowsim.errors import ConfigError
from flowsim.scenarios.base import ScenarioInstance
from flowsim.scenarios.open import OpenScenario

#: The package that ships RESCO's maps (under ``nets/RESCO/<map>/``); found, never imported.
RESCO_PACKAGE = "sumo_rl"

#: The pip line that brings the sumo-rl package and with it RESCO's maps.
RESCO_EXTRA = "pip install 'flowsim[resco]'"

#: ``.sumocfg`` option names (long and short, as SUMO takes them) flowsim reads.
_CFG_OPTIONS: dict[str, str] = {
    "net-file": "net-file",
    "n": "net-file",
    "route-files": "route-files",
    "r": "route-files",
    "additional-files": "additional-files",
    "a": "additional-files",
    "begin": "begin",
    "b": "begin",
    "end": "end",
    "e": "end",
}

#: Route-file elements whose ``from`` / ``to`` / ``via`` name edges.
_ROUTED = frozenset(("vehicle", "trip", "flow", "ride", "personTrip", "transport", "tranship"))

#: Route-file elements SUMO loads in departure order, and the attribute holding their departure.
_DEPARTING = {
    "vehicle": "depart",
    "trip": "depart",
    "flow": "begin",
    "person": "depart",
    "personFlow": "begin",
    "container": "depart",
    "containerFlow": "begin",
}

_NET_HELP = "give a SUMO network (.net.xml), e.g. written by netconvert or netedit"
_ROUTES_HELP = "give a SUMO routes file (<routes> with vehicles, trips or flows)"
_CFG_HELP = "give a SUMO configuration (.sumocfg), e.g. saved by netedit or sumo-gui"


@dataclass(frozen=True)
class SumoFiles:
    """The files and time window a ``scenario.sumo`` section resolves to (absolute paths).

    Attributes:
        net_file: the network.
        route_files: the demand, in the order SUMO loads it.
        additional_files: additional files (vTypes, detectors, signal programmes).
        begin: the first simulated second.
        end: the end of the demand window, or None where neither the YAML nor the
            ``.sumocfg`` sets one.
        key: the config key that named the files, for messages (``scenario.sumo.config`` …).
        config: the ``.sumocfg`` read, or None.
    """

    net_file: Path
    route_files: tuple[Path, ...]
    additional_files: tuple[Path, ...]
    begin: float
    end: float | None
    key: str
    config: Path | None = None

    @property
    def route_key(self) -> str:
        """The key that names the route files in messages."""
        return self.key if self.config is not None else "scenario.sumo.route_files"

    @property
    def additional_key(self) -> str:
        """The key that names the additional files in messages."""
        return self.key if self.config is not None else "scenario.sumo.additional_files"


@dataclass(frozen=True)
class Demand:
    """What a checked route file holds: element counts and the vTypes it defines."""

    vehicles: int = 0
    trips: int = 0
    flows: int = 0
    vtypes: frozenset[str] = frozenset()


def resco_config(name: str) -> Path:
    """The ``.sumocfg`` of RESCO's map ``name`` in the installed sumo-rl package.

    A ConfigError names the pip line where sumo-rl is absent, and the eight maps where ``name``
    is not one of them.
    """
    key = "scenario.sumo.resco"
    if name not in RESCO_MAPS:
        raise ConfigError(
            f"{key}: '{name}' is not a RESCO map; give one of {', '.join(RESCO_MAPS)}."
        )
    try:
        spec = importlib.util.find_spec(RESCO_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ConfigError(
            f"{key}: {name} comes from the sumo-rl package, which is not installed: {RESCO_EXTRA}"
        )
    path = Path(locations[0]) / "nets" / "RESCO" / name / f"{name}.sumocfg"
    if not path.is_file():
        raise ConfigError(
            f"{key}: the installed sumo-rl package has no {path.relative_to(locations[0])}; "
            f"reinstall it: {RESCO_EXTRA} --force-reinstall"
        )
    return path.resolve()


def _seconds(text: str, where: str) -> float:
    """A SUMO time (``25200``, ``25200.5``, ``7:00:00`` or ``0:7:00:00``) in seconds."""
    parts = text.strip().split(":")
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = []
    if not values or len(values) > 4 or any(v < 0 for v in values):
        raise ConfigError(f"{where}: '{text}' is not a time; give seconds, e.g. 3600.")
    scale = (86400.0, 3600.0, 60.0, 1.0)[-len(values) :]
    return float(sum(v * s for v, s in zip(values, scale, strict=True)))


#: expat's errors for a document that ends too early.
_TRUNCATED = frozenset(
    xml.parsers.expat.errors.codes[message]
    for message in (
        xml.parsers.expat.errors.XML_ERROR_NO_ELEMENTS,
        xml.parsers.expat.errors.XML_ERROR_UNCLOSED_TOKEN,
        xml.parsers.expat.errors.XML_ERROR_PARTIAL_CHAR,
    )
)


def _depart(text: str) -> float | None:
    """A departure time in seconds, or None where it is not a time (``triggered`` …)."""
    try:
        return _seconds(text, "depart")
    except ConfigError:
        return None


def _open(path: Path, key: str, help_text: str) -> IO[bytes]:
    """``path`` opened for reading as bytes (gzip unpacked); a ConfigError if unreadable."""
    try:
        with path.open("rb") as handle:
            packed = handle.read(2) == b"\x1f\x8b"
        return gzip.open(path, "rb") if packed else path.open("rb")
    except OSError as error:
        raise ConfigError(
            f"{key}: cannot read {path} ({error.strerror or error}); {help_text}."
        ) from None


def _scan(
    path: Path,
    key: str,
    help_text: str,
    roots: tuple[str, ...],
    on_element: Callable[[str, dict[str, str], int], None] | None = None,
) -> None:
    """Parse ``path`` with expat, calling ``on_element(tag, attributes, line)`` for every element.

    A ConfigError names ``key`` where the file cannot be read, is not well-formed (e.g. it was
    cut short) or its root element is not one of ``roots``.
    """
    parser = xml.parsers.expat.ParserCreate()
    seen_root: list[str] = []

    def start(tag: str, attributes: dict[str, str]) -> None:
        if not seen_root:
            seen_root.append(tag)
            if tag not in roots:
                raise ConfigError(
                    f"{key}: {path} has a <{tag[:40]}> root element, not "
                    f"<{'> or <'.join(roots)}>; {help_text}."
                )
        if on_element is not None:
            on_element(tag, attributes, parser.CurrentLineNumber)

    parser.StartElementHandler = start
    handle = _open(path, key, help_text)
    try:
        with handle:
            parser.ParseFile(handle)
    except xml.parsers.expat.ExpatError as error:
        problem = xml.parsers.expat.ErrorString(error.code)
        cut = " (the file looks cut short)" if error.code in _TRUNCATED else ""
        raise ConfigError(
            f"{key}: {path} is not well-formed XML: {problem} at line {error.lineno}, column "
            f"{error.offset}{cut}; {help_text}."
        ) from None
    except (OSError, EOFError) as error:  # a truncated or corrupt gzip file
        raise ConfigError(f"{key}: cannot read {path} ({error}); {help_text}.") from None
    if not seen_root:
        raise ConfigError(f"{key}: {path} holds no XML element; {help_text}.")


def _stamp(path: Path) -> tuple[Path, int, int]:
    """``path`` with its size and modification time: a cache key that changes with the file."""
    path = Path(path).resolve()
    try:
        stat = path.stat()
    except OSError:
        return path, -1, -1
    return path, stat.st_size, stat.st_mtime_ns


@lru_cache(maxsize=32)
def _network(stamp: tuple[Path, int, int], key: str) -> frozenset[str]:
    path = stamp[0]
    edges: set[str] = set()

    def element(tag: str, attributes: dict[str, str], _line: int) -> None:
        if tag == "edge" and attributes.get("function") != "internal":
            edges.add(attributes.get("id", ""))

    with _open(path, key, _NET_HELP) as handle:
        if isinstance(handle, gzip.GzipFile):
            raise ConfigError(
                f"{key}: {path} is gzip-compressed; flowsim reads networks as plain XML: "
                f"unpack it (gunzip) and name the .net.xml."
            )
    _scan(path, key, _NET_HELP, ("net",), element)
    if not edges:
        raise ConfigError(f"{key}: {path} has no edges; {_NET_HELP}.")
    return frozenset(edges)


def network_edges(net_file: Path, key: str = "scenario.sumo.net_file") -> frozenset[str]:
    """Ids of the normal (non-internal) edges of ``net_file``, read once per file version.

    A ConfigError naming ``key`` reports an unreadable, compressed or malformed network.
    """
    return _network(_stamp(net_file), key)


@lru_cache(maxsize=64)
def _demand(stamp: tuple[Path, int, int], edges: frozenset[str], net_name: str, key: str) -> Demand:
    path = stamp[0]
    counts = {"vehicle": 0, "trip": 0, "flow": 0}
    vtypes: set[str] = set()
    last_depart: list[tuple[float, str]] = []  # the latest departure so far, and whose

    def missing(edge: str, tag: str, attributes: dict[str, str], line: int) -> ConfigError:
        owner = f'<{tag} id="{attributes["id"]}">' if "id" in attributes else f"<{tag}>"
        return ConfigError(
            f"{key}: {path.name} uses edge '{edge}' ({owner}, line {line}), which the network "
            f"{net_name} lacks; route files must be written for this network: check which "
            "files go together, or route the demand again on it (e.g. with duarouter)."
        )

    def unsorted(tag: str, attributes: dict[str, str], line: int, depart: float) -> ConfigError:
        previous, owner = last_depart[0]
        return ConfigError(
            f'{key}: {path.name} is not sorted by departure time: <{tag} id="{attributes.get("id")}'
            f'"> (line {line}) departs at {depart:g} s after {owner} at {previous:g} s, and SUMO '
            "would silently drop it; sort the file by departure time (SUMO's "
            "tools/route/sort_routes.py does)."
        )

    def element(tag: str, attributes: dict[str, str], line: int) -> None:
        if tag in counts:
            counts[tag] += 1
        if _DEPARTING.get(tag) in attributes:  # a flow without begin starts at --begin
            depart = _depart(attributes[_DEPARTING[tag]])
            if depart is not None:
                if last_depart and depart < last_depart[0][0]:
                    raise unsorted(tag, attributes, line, depart)
                last_depart[:] = [(depart, f'<{tag} id="{attributes.get("id")}">')]
        if tag in ("vType", "vTypeDistribution"):
            vtypes.add(attributes.get("id", ""))
        named = attributes.get("edges", "").split() if "edges" in attributes else []
        if tag in _ROUTED:
            named += [attributes.get("from", ""), attributes.get("to", "")]
            named += attributes.get("via", "").split()
        for edge in named:
            if edge and edge not in edges:
                raise missing(edge, tag, attributes, line)

    _scan(path, key, _ROUTES_HELP, ("routes",), element)
    return Demand(counts["vehicle"], counts["trip"], counts["flow"], frozenset(vtypes))


def check_routes(
    route_file: Path,
    net_file: Path,
    key: str = "scenario.sumo.route_files",
    net_key: str = "scenario.sumo.net_file",
) -> Demand:
    """Check that every edge ``route_file`` uses is an edge of ``net_file``; what it holds.

    Routes (``<route edges>``, inside vehicles or on their own), ``from`` / ``to`` / ``via`` of
    trips, flows and vehicles are read in one streaming pass, once per version of the two
    files. A ConfigError naming ``key`` reports an edge the network lacks (with the line), or
    a file that is unreadable or malformed.
    """
    edges = network_edges(net_file, net_key)
    return _demand(_stamp(route_file), edges, Path(net_file).name, key)


@lru_cache(maxsize=64)
def _additional(stamp: tuple[Path, int, int], key: str) -> frozenset[str]:
    vtypes: set[str] = set()

    def element(tag: str, attributes: dict[str, str], _line: int) -> None:
        if tag in ("vType", "vTypeDistribution"):
            vtypes.add(attributes.get("id", ""))

    _scan(stamp[0], key, "give a SUMO additional file (<additional>)", _ADDITIONAL_ROOTS, element)
    return frozenset(vtypes)


#: Root elements SUMO takes in an additional file (vTypes may also come in a routes file).
_ADDITIONAL_ROOTS = ("additional", "additionals", "add", "routes")


def _split_files(value: str) -> list[str]:
    """A SUMO file list: names separated by commas or whitespace."""
    return [name for name in re.split(r"[,\s]+", value.strip()) if name]


def read_sumocfg(path: Path, key: str = "scenario.sumo.config") -> dict[str, str]:
    """The options flowsim uses from a ``.sumocfg`` (``net-file``, ``route-files``,
    ``additional-files``, ``begin``, ``end``), as written; a ConfigError naming ``key`` for a
    file that is unreadable or not a SUMO configuration."""
    options: dict[str, str] = {}

    def element(tag: str, attributes: dict[str, str], _line: int) -> None:
        name = _CFG_OPTIONS.get(tag)
        if name is not None and "value" in attributes:
            options[name] = attributes["value"]

    _scan(Path(path), key, _CFG_HELP, ("configuration", "sumoConfiguration"), element)
    return options


def _named_file(config: Path, option: str, name: str, key: str) -> Path:
    """A file a ``.sumocfg`` names, resolved relative to it; a ConfigError if it is missing."""
    path = Path(name).expanduser()
    if not path.is_absolute():
        path = config.parent / path
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ConfigError(
            f"{key}: {config.name} names {option} '{name}', which {what} (looked for {path}: "
            "files named in a .sumocfg resolve relative to it); fix the name in the .sumocfg "
            "or put the file there."
        )
    return path.resolve()


def resolve_files(section: SumoConfig) -> SumoFiles:
    """The files and time window ``section`` names, each checked (see :func:`check_routes`).

    Raises:
        ConfigError: a file is missing, unreadable or malformed, a route uses an edge the
            network lacks, or ``begin`` is not before ``end``; the message names the key.
    """
    begin: float | None = None
    end: float | None = None
    config: Path | None = None
    if section.net_file is not None:
        key = "scenario.sumo.net_file"
        net_file = section.net_file
        route_files = tuple(section.route_files)
        additional_files = tuple(section.additional_files)
    else:
        if section.config is not None:
            key, config = "scenario.sumo.config", section.config
        elif section.resco is not None:
            key, config = "scenario.sumo.resco", resco_config(section.resco)
        else:
            raise ConfigError(
                "scenario.sumo: give config (a .sumocfg), net_file (with route_files) or resco "
                "(a RESCO map name, e.g. cologne1)."
            )
        options = read_sumocfg(config, key)
        if "net-file" not in options:
            raise ConfigError(
                f'{key}: {config.name} names no net-file; add <net-file value="..."/> under '
                "<input>, or give scenario.sumo.net_file and route_files instead."
            )
        net_file = _named_file(config, "net-file", options["net-file"], key)
        route_files = tuple(
            _named_file(config, "route-files", name, key)
            for name in _split_files(options.get("route-files", ""))
        )
        additional_files = tuple(
            _named_file(config, "additional-files", name, key)
            for name in _split_files(options.get("additional-files", ""))
        )
        if "begin" in options:
            begin = _seconds(options["begin"], f"{key}: {config.name}'s begin")
        if "end" in options:
            end = _seconds(options["end"], f"{key}: {config.name}'s end")
    begin = section.begin if section.begin is not None else (begin or 0.0)
    end = section.end if section.end is not None else end
    if end is not None and begin >= end:
        where = "scenario.sumo.begin" if section.begin is not None else "scenario.sumo.end"
        raise ConfigError(
            f"{where}: begin {begin:g} s is not before end {end:g} s (the .sumocfg's values "
            "count where the YAML gives none); set scenario.sumo.begin and end with begin < end."
        )
    files = SumoFiles(
        net_file=net_file,
        route_files=route_files,
        additional_files=additional_files,
        begin=float(begin),
        end=None if end is None else float(end),
        key=key,
        config=config,
    )
    file_vtypes(files)  # reads (and checks) every file
    return files


def file_vtypes(files: SumoFiles) -> frozenset[str]:
    """The vType (and vType distribution) ids the route and additional files define."""
    network_edges(files.net_file, files.key)
    found: set[str] = set()
    for route_file in files.route_files:
        found |= _checked(files, route_file).vtypes
    for additional in files.additional_files:
        found |= _additional(_stamp(additional), files.additional_key)
    return frozenset(found)


def _checked(files: SumoFiles, route_file: Path) -> Demand:
    """:func:`check_routes` of one of ``files``' route files, with their keys."""
    return check_routes(route_file, files.net_file, files.route_key, files.key)


def demand_summary(files: SumoFiles) -> dict[str, int]:
    """How many vehicles, trips and flows the route files hold, summed."""
    demands = [_checked(files, path) for path in files.route_files]
    return {
        "route_vehicles": sum(d.vehicles for d in demands),
        "route_trips": sum(d.trips for d in demands),
        "route_flows": sum(d.flows for d in demands),
    }


class SumoScenario(OpenScenario):
    """Your own SUMO network and demand, used as they are.

    Vehicles of the route files enter and leave as SUMO inserts and removes them, with their
    own vTypes; SUMO drives them unless a vehicle group claims them (``vtype:``, ``share:``).
    Groups need ``count: 0`` (there is no main route to place vehicles on) and may add
    ``inflows:``. The network's traffic lights run the files' programmes unless an agent or a
    signal baseline controls them.

    Example (YAML; paths resolve relative to the YAML file, those in the .sumocfg relative to
    it)::

        scenario:
          type: sumo
          sumo: {config: mytown/mytown.sumocfg, begin: 0, end: 3600}
        vehicles:
          - {type: human, count: 0, controller: sumo}
    """

    kind = "sumo"

    def __init__(
        self,
        config: ScenarioConfig,
        groups: list[VehicleGroup],
        inflows: list[InflowConfig] | None = None,
    ) -> None:
        super().__init__(config, groups, inflows)
        self._files: SumoFiles | None = None

    def files(self) -> SumoFiles:
        """The resolved and checked files and time window (checked once per scenario)."""
        if self._files is None:
            files = resolve_files(self.config.sumo)
            self._check_groups(files)
            self._files = files
        return self._files

    def _check_groups(self, files: SumoFiles) -> None:
        """A group named like a vType of the files would make SUMO refuse a second vType."""
        defined = file_vtypes(files)
        for index, group in enumerate(self.groups):
            if group.type in defined:
                raise ConfigError(
                    f"vehicles[{index}].type: '{group.type}' is also a vType of the scenario's "
                    f"files ({files.key}), and SUMO refuses two vTypes of one id; rename the "
                    f"group (e.g. human), and to drive the files' '{group.type}' vehicles give "
                    f"the group vtype: {group.type}."
                )

    def network(self) -> Path:
        """The network file, as given (no netconvert)."""
        return self.files().net_file

    def instance(self, rng: np.random.Generator) -> ScenarioInstance:
        """The network, flowsim's routes (vehicle types, inflows) and the files' demand."""
        files = self.files()
        instance = super().instance(rng)
        return replace(
            instance,
            route_files=files.route_files,
            additional_files=files.additional_files,
            begin=files.begin,
            end=files.end,
        )
