"""OpenStreetMap areas: any ``.osm`` / ``.osm.bz2`` extract becomes a SUMO network plus demand.

The extract (``scenario.osm.file``, or ``scenario.osm.place`` fetched with osmnx when it is
installed and online) is converted once by netconvert with SUMO's recommended OpenStreetMap
options and cached by the SHA-256 of its bytes and the options, so an unchanged extract is
converted once whatever its name. Only roads that passenger cars may use are kept, and of those
only the largest connected part (clipped extracts leave fragments that no trip could reach).

Demand comes from SUMO's ``randomTrips.py`` (``--validate``: every trip is routable), seeded
from the episode's random generator: each episode draws one of :data:`DEMAND_VARIANTS` demand
variants, each generated once and cached; or from ``scenario.osm.routes_file``. Trips and
routed vehicles drive as the first vehicle group (``vehicles[0].type``), whose vType SUMO uses.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from flowsim.config import OSMConfig, SignalConfig
from flowsim.errors import ConfigError
from flowsim.scenarios.base import NetconvertError, cache_dir, cached_build, run_netconvert
from flowsim.scenarios.open import OpenScenario, net_edges

#: netconvert options for OpenStreetMap input: SUMO's recommended set ("Networks/Import/
#: OpenStreetMap") plus the filters flowsim needs. U-turns only at dead ends (clipped roads at the
#: edge of the extract), so routes turn round there instead of at signalised junctions.
NETCONVERT_OSM_OPTIONS: tuple[str, ...] = (
    "--geometry.remove=true",
    "--ramps.guess=true",
    "--roundabouts.guess=true",
    "--junctions.join=true",
    "--tls.guess-signals=true",
    "--tls.discard-simple=true",
    "--tls.join=true",
    "--keep-edges.by-vclass=passenger",
    "--remove-edges.isolated=true",
    "--keep-edges.components=1",
    "--no-turnarounds.except-deadend=true",
    "--osm.elevation=false",
    "--no-warnings=true",
)

#: netconvert's ``--tls.default-type`` for each ``scenario.signals.program``.
TLS_TYPES: dict[str, str] = {"fixed": "static", "actuated": "actuated"}

#: Distinct randomTrips demands an OSM scenario draws from (each generated once, then cached):
#: enough variety for training, a bounded cache and no randomTrips run after the first resets.
DEMAND_VARIANTS = 16

#: randomTrips ``--fringe-factor``: trips start and end at the extract's boundary this many times
#: more often than inside it (through traffic, as in SUMO's OSM web wizard).
FRINGE_FACTOR = 5.0

#: Elements of a routes file that carry a vehicle type (and become the first group's).
_DRIVEN = ("vehicle", "trip", "flow")

PLACE_HELP = (
    "osm.place needs osmnx and internet; offline, download the extract and give osm.file "
    "(e.g. the Export button on openstreetmap.org, or a Geofabrik extract cut with osmium)"
)

_FILE_HELP = (
    "give an OpenStreetMap XML extract (.osm, .osm.bz2), e.g. exported from openstreetmap.org"
)


def _file_key(osm: OSMConfig) -> str:
    """The config key that names the input, for messages."""
    return "scenario.osm.file" if osm.file is not None else "scenario.osm.place"


@lru_cache(maxsize=32)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, remembered while its size and modification time stay put."""
    path = Path(path).resolve()
    stat = path.stat()
    return _sha256(path, stat.st_size, stat.st_mtime_ns)


def decompress_osm(source: Path, target: Path, key: str = "scenario.osm.file") -> None:
    """Write ``source`` (plain, bzip2- or gzip-compressed OSM XML) to ``target`` as plain XML.

    netconvert reads plain and gzip XML but not bzip2, so every input is written out plain. A
    ConfigError naming ``key`` reports an empty file or a truncated or corrupt archive.
    """
    with source.open("rb") as handle:
        magic = handle.read(3)
    if not magic:
        raise ConfigError(f"{key}: {source} is empty; {_FILE_HELP}.")
    opener = {b"BZh": bz2.open, b"\x1f\x8b\x08": gzip.open}.get(magic)
    if opener is None:
        shutil.copyfile(source, target)
    else:
        kind = "bzip2" if opener is bz2.open else "gzip"
        try:
            with opener(source, "rb") as packed, target.open("wb") as plain:
                shutil.copyfileobj(packed, plain, 1 << 20)
        except (EOFError, OSError) as error:
            raise ConfigError(
                f"{key}: {source} is a truncated or corrupt {kind} archive ({error}); "
                f"download it again, or {_FILE_HELP}."
            ) from None
    if target.stat().st_size == 0:
        raise ConfigError(f"{key}: {source} holds no data once decompressed; {_FILE_HELP}.")


def _root_tag(plain: Path) -> str | None:
    """The root element's name, or None where the XML breaks first (netconvert then says how)."""
    try:
        for _, element in ET.iterparse(plain, events=("start",)):
            return element.tag
    except (ET.ParseError, UnicodeError, ValueError, LookupError):  # LookupError: encoding
        return None
    return None


def _convert(folder: Path, source: Path, signals: SignalConfig, key: str) -> None:
    """netconvert ``source`` into ``folder/osm.net.xml``; ConfigErrors name ``key`` and the fix."""
    plain = folder / "input.osm"
    decompress_osm(source, plain, key)
    root = _root_tag(plain)
    if root not in (None, "osm"):
        plain.unlink()
        raise ConfigError(
            f"{key}: {source} has a <{str(root)[:40]}> root element, not <osm>; {_FILE_HELP}."
        )
    options = [
        f"--osm-files={plain.name}",
        "--output-file=osm.net.xml",
        *NETCONVERT_OSM_OPTIONS,
        f"--tls.default-type={TLS_TYPES[signals.program]}",
        f"--tls.green.time={signals.green:g}",
        f"--tls.yellow.time={signals.yellow:g}",
    ]
    no_roads = (
        f"{key}: {source} has no roads that passenger cars may drive on (footways, cycleways, "
        "tracks, rail and isolated road pieces are dropped); give an extract of an area with "
        "streets"
    )
    try:
        run_netconvert(options, cwd=folder)
    except NetconvertError as error:
        parts = (part.strip() for part in str(error).removeprefix("netconvert failed: ").split("|"))
        # netconvert's message and where it stopped; the file name it saw is a private copy
        detail = ", ".join(
            part.removeprefix("Error: ").replace("At line", "at line").rstrip(".")
            for part in parts
            if part and not part.startswith(("In file", "Quitting"))
        )
        if "No edges loaded" in detail or "No nodes loaded" in detail:  # no road kept
            raise ConfigError(f"{no_roads}.") from None
        raise ConfigError(
            f"{key}: netconvert cannot read {source} as OpenStreetMap XML ({detail}); {_FILE_HELP}."
        ) from None
    finally:
        plain.unlink(missing_ok=True)  # the cache keeps only the network
    if not net_edges(folder / "osm.net.xml"):
        raise ConfigError(f"{no_roads}.")


def osm_network(source: Path, signals: SignalConfig, key: str = "scenario.osm.file") -> Path:
    """The ``.net.xml`` netconvert makes of the extract ``source``, built once per content.

    The cache key is the SHA-256 of the file's bytes, the options and the signal programme; a
    renamed or moved copy of an extract reuses the network.
    """
    try:
        digest = file_sha256(source)
    except OSError as error:
        raise ConfigError(
            f"{key}: cannot read {source} ({error.strerror}); {_FILE_HELP}."
        ) from None
    params = {
        "osm_sha256": digest,
        "options": list(NETCONVERT_OSM_OPTIONS),
        "signals": signals.model_dump(),
    }
    folder = cached_build("osm", params, lambda out: _convert(out, source, signals, key))
    return folder / "osm.net.xml"


def fetch_place(place: str) -> Path:
    """OSM XML of the drivable streets of ``place`` (a name osmnx geocodes), fetched once.

    Needs the optional osmnx package and internet access; a ConfigError says so otherwise. The
    download is cached by the place name (delete the ``osm-place-*`` cache folder to refresh).
    """
    try:
        import osmnx as ox
    except ImportError:
        raise ConfigError(
            f"scenario.osm.place: {PLACE_HELP}. osmnx is not installed (pip install osmnx)."
        ) from None

    def download(folder: Path) -> None:
        saved = (ox.settings.all_oneway, ox.settings.cache_folder)
        # save_graph_xml needs one-way ways; osmnx's HTTP cache goes under flowsim's cache.
        ox.settings.all_oneway = True
        ox.settings.cache_folder = str(cache_dir() / "osmnx")
        try:
            graph = ox.graph_from_place(place, network_type="drive", simplify=False)
            ox.io.save_graph_xml(graph, filepath=str(folder / "place.osm"))
        except Exception as error:  # osmnx raises many kinds: geocoding, HTTP, empty area
            raise ConfigError(
                f"scenario.osm.place: could not fetch '{place}' with osmnx "
                f"({type(error).__name__}: {error}); {PLACE_HELP}."
            ) from None
        finally:
            ox.settings.all_oneway, ox.settings.cache_folder = saved

    return cached_build("osm-place", {"place": place}, download) / "place.osm"


def _random_trips(folder: Path, net_file: Path, osm: OSMConfig, seed: int, source: str) -> None:
    """Run randomTrips.py (validated trips) into ``folder/trips.xml``; ``source`` names the
    extract in messages."""
    import sumo

    command = [
        sys.executable,
        str(Path(sumo.SUMO_HOME) / "tools" / "randomTrips.py"),
        "--net-file", str(net_file),
        "--output-trip-file", "trips.xml",
        "--seed", str(seed),
        "--begin", "0",
        "--end", f"{osm.trips_end:g}",
        "--period", f"{osm.trips_period:g}",
        "--min-distance", f"{osm.min_trip_distance:g}",
        "--fringe-factor", f"{FRINGE_FACTOR:g}",
        "--vclass", "passenger",
        "--validate",
    ]  # fmt: skip
    # randomTrips finds duarouter through SUMO_HOME: the eclipse-sumo package's, not another.
    env = {**os.environ, "SUMO_HOME": sumo.SUMO_HOME}
    result = subprocess.run(
        command, cwd=folder, env=env, capture_output=True, text=True, check=False
    )
    trips = folder / "trips.xml"
    count = 0
    if result.returncode == 0 and trips.is_file():
        count = sum(1 for _ in ET.parse(trips).getroot().iter("trip"))
    if count == 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        said = dict.fromkeys(line.removeprefix("Warning: ") for line in lines[-3:])
        detail = "; ".join(line for line in said if line and "proj.db" not in line)
        raise ConfigError(
            f"scenario.osm: randomTrips found no valid trips on the network of {source} "
            f"({detail or 'no routable trip'}); lower "
            f"osm.min_trip_distance (now {osm.min_trip_distance:g} m), raise osm.trips_end, "
            "use a larger extract, or give osm.routes_file."
        )
    for leftover in folder.glob("trips.xml.*"):  # randomTrips' intermediate files
        leftover.unlink()


def random_trips(net_file: Path, osm: OSMConfig, seed: int, source: str = "the extract") -> Path:
    """Validated random trips (``<trip>`` elements) on ``net_file``, generated once per seed;
    ``source`` names the extract in messages."""
    params = {
        "network": net_file.parent.name,
        "seed": seed,
        "period": osm.trips_period,
        "end": osm.trips_end,
        "min_distance": osm.min_trip_distance,
        "fringe_factor": FRINGE_FACTOR,
    }
    folder = cached_build(
        "osm-trips", params, lambda out: _random_trips(out, net_file, osm, seed, source)
    )
    return folder / "trips.xml"


def trips_xml(trips_file: Path, vehicle_type: str) -> str:
    """randomTrips' trips as route-file lines driven by ``vehicle_type``, ids ``<type>_osm<n>``."""
    lines = []
    for trip in ET.parse(trips_file).getroot().iter("trip"):
        attributes = {
            "id": f"{vehicle_type}_osm{trip.get('id')}",
            "type": vehicle_type,
            "depart": trip.get("depart", "0"),
            "from": trip.get("from", ""),
            "to": trip.get("to", ""),
            "departLane": "best",
            "departSpeed": "max",
        }
        body = " ".join(f"{key}={quoteattr(value)}" for key, value in attributes.items())
        lines.append(f"  <trip {body}/>")
    return "\n".join(lines)


def routes_file_xml(path: Path, vehicle_type: str, edges: dict[str, tuple[float, int]]) -> str:
    """The content of a SUMO routes file for insertion in flowsim's, driven by ``vehicle_type``.

    Its own ``<vType>`` definitions are dropped and every vehicle, trip and flow gets
    ``type=vehicle_type``; a ConfigError names a malformed file or an edge that the network
    lacks (routes must be written for the network flowsim builds from the same extract).
    """
    key = "scenario.osm.routes_file"
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, UnicodeError, LookupError) as error:  # LookupError: encoding
        raise ConfigError(
            f"{key}: {path} is not valid XML ({error}); give a SUMO routes file."
        ) from None
    if root.tag != "routes":
        raise ConfigError(
            f"{key}: {path} has a <{root.tag}> root; a SUMO routes file has <routes>."
        )
    kept = []
    for element in root:
        if element.tag in ("vType", "vTypeDistribution"):
            continue
        for item in element.iter():
            if item.tag in _DRIVEN:
                item.set("type", vehicle_type)
            named = [*item.get("edges", "").split(), item.get("from"), item.get("to")]
            for edge in filter(None, named):
                if edge not in edges:
                    raise ConfigError(
                        f"{key}: {path} uses edge '{edge}', which the network built from the "
                        "extract lacks; write routes for flowsim's network (`flowsim scenarios "
                        "build CONFIG --out DIR` writes it) or leave routes_file out for "
                        "random trips."
                    )
        kept.append("  " + ET.tostring(element, encoding="unicode").strip())
    return "\n".join(kept)


class OSMScenario(OpenScenario):
    """A real road network from OpenStreetMap with random (or given) trips through it.

    Vehicles enter at their trip's first edge and leave at its last; there is no main route, so
    positions along one are NaN and every vehicle group's ``count`` must be 0. The network's
    traffic lights run ``scenario.signals``' programme unless an agent controls them.

    Example (YAML; ``file`` resolves relative to the YAML file)::

        scenario:
          type: osm
          osm: {file: West-Oakland.osm.bz2, trips_period: 2.0, trips_end: 3600}
        vehicles:
          - {type: human, count: 0, controller: sumo}
    """

    kind = "osm"

    def source(self) -> Path:
        """The OSM extract: ``osm.file``, or ``osm.place`` fetched with osmnx."""
        osm = self.config.osm
        if osm.file is not None:
            return osm.file
        assert osm.place is not None  # the config demands exactly one of file and place
        return fetch_place(osm.place)

    def network(self) -> Path:
        """The built (cached) network of the extract."""
        osm = self.config.osm
        return osm_network(self.source(), self.config.signals, _file_key(osm))

    def extra_routes(self, rng: np.random.Generator) -> str:
        """This episode's trips (one of the cached randomTrips variants) or the routes file."""
        osm = self.config.osm
        vehicle_type = self.groups[0].type
        net_file = self.network()
        if osm.routes_file is not None:
            return routes_file_xml(osm.routes_file, vehicle_type, net_edges(net_file))
        seed = int(rng.integers(DEMAND_VARIANTS))
        source = str(osm.file) if osm.file is not None else f"'{osm.place}'"
        return trips_xml(random_trips(net_file, osm, seed, source), vehicle_type)
