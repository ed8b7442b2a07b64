"""Write a scenario's SUMO files (network, routes, ``.sumocfg``) to a folder, for use by hand.

The folder is self-contained: ``sumo-gui -c DIR/<name>.sumocfg`` runs the scenario and
``netedit DIR/<name>.net.xml`` opens its network. Outside flowsim the vehicles drive by SUMO's
car-following model of their vType: flowsim's controllers, the agent and the continuous router
(which extends routes after ``route_loops`` loops) run only inside flowsim.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from flowsim.config import FlowsimConfig
from flowsim.errors import ConfigError
from flowsim.scenarios import make_scenario
from flowsim.scenarios.base import ScenarioInstance

#: Largest seed SUMO and flowsim accept (``sim.seed``'s bound).
MAX_SEED = 2**31 - 1


def _output_folder(out_dir: Path) -> Path:
    """``out_dir``, created if absent; a ConfigError naming the fix if it cannot be a folder."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file; give a folder for the SUMO files.")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"--out {out_dir}: cannot create the folder ({error.strerror}); give a writable one."
        ) from None
    return out_dir


def _copy_files(sources: list[Path], out_dir: Path, taken: list[str]) -> list[str]:
    """Copy ``sources`` into ``out_dir`` under their own names (prefixed by their index where a
    name is in ``taken`` already); their names there, in order. ``taken`` grows with them."""
    names: list[str] = []
    for index, source in enumerate(sources):
        name = source.name if source.name not in taken else f"{index}-{source.name}"
        shutil.copyfile(source, out_dir / name)
        names.append(name)
        taken.append(name)
    return names


def _write_sumocfg(
    path: Path,
    config: FlowsimConfig,
    files: dict[str, str],
    additional: list[str],
    sumo_seed: int,
    instance: ScenarioInstance,
) -> None:
    """A ``.sumocfg`` with the options the kernel passes to SUMO (files named relative to it)."""
    root = ET.Element("configuration")
    root.append(
        ET.Comment(
            f" Written by flowsim scenarios build from '{config.name}' "
            f"(scenario.type {config.scenario.type}). Vehicles drive by their vType's "
            "car-following model here; flowsim's controllers run only inside flowsim. "
        )
    )
    inputs = ET.SubElement(root, "input")
    ET.SubElement(inputs, "net-file", value=files["net"])
    ET.SubElement(inputs, "route-files", value=files["routes"])
    if additional:
        ET.SubElement(inputs, "additional-files", value=",".join(additional))
    time = ET.SubElement(root, "time")
    if instance.begin:
        ET.SubElement(time, "begin", value=f"{instance.begin:g}")
    if instance.end is not None:
        ET.SubElement(time, "end", value=f"{instance.end:g}")
    ET.SubElement(time, "step-length", value=repr(config.sim.step_length))
    processing = ET.SubElement(root, "processing")
    ET.SubElement(processing, "time-to-teleport", value=repr(config.sim.teleport_time))
    ET.SubElement(processing, "collision.action", value=config.sim.collision_action)
    ET.SubElement(ET.SubElement(root, "random_number"), "seed", value=str(sumo_seed))
    ET.indent(root, space="    ")
    ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)
    with path.open("a") as handle:
        handle.write("\n")


def network_summary(net_file: Path) -> dict[str, Any]:
    """Counts and length of a SUMO network, read with sumolib; junction (internal) edges excluded.

    Returns ``edges`` and ``lanes`` (of normal edges), ``junctions`` (nodes),
    ``traffic_lights`` (signal programs) and ``total_length_m``: the sum of the lengths of every
    lane of every normal edge (lane-metres, so a 2-lane 230 m ring gives 460).
    """
    import sumolib

    net = sumolib.net.readNet(str(net_file), withInternal=False)
    edges = net.getEdges(withInternal=False)
    lanes = [lane for edge in edges for lane in edge.getLanes()]
    return {
        "edges": len(edges),
        "lanes": len(lanes),
        "junctions": len(net.getNodes()),
        "traffic_lights": len(net.getTrafficLights()),
        "total_length_m": round(sum(lane.getLength() for lane in lanes), 3),
    }


def _route_length(instance: ScenarioInstance) -> dict[str, float | None]:
    """The driven loop's length on a loop; the main route's on an open network (or None)."""
    if not instance.open:
        return {"loop_length_m": round(instance.length, 3)}
    return {"route_length_m": round(instance.length, 3) if instance.ring_edges else None}


def build_scenario(
    config: FlowsimConfig, out_dir: str | Path, seed: int | None = None
) -> dict[str, Any]:
    """Write ``config``'s network, routes and ``.sumocfg`` into ``out_dir``; return a summary.

    The files are ``<name>.net.xml``, ``<name>.rou.xml`` and ``<name>.sumocfg`` (``name`` is
    ``config.name``), plus copies of ``sim.additional_files``; existing files of those names are
    replaced. On your own files (``scenario.type sumo``) the network is copied as it is, the
    route and additional files under their own names, and the ``.sumocfg`` keeps their time
    window; the summary adds ``begin``, ``end``, the demand counts and ``sources`` (the files
    read, absolute paths). ``seed`` (default ``sim.seed``) draws the episode exactly as
    ``Simulation.reset(seed)`` does: the same ring length, vehicle placement and SUMO seed.

    The summary holds the file paths, :func:`network_summary`'s counts, ``vehicles`` (count),
    ``loop_length_m`` (one lap of the driven loop, junction lanes included) on a loop or
    ``route_length_m`` (the main route, null where there is none) on an open network, and the
    settings.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     summary = build_scenario(FlowsimConfig(), folder)
        >>> summary["edges"], summary["traffic_lights"], round(summary["total_length_m"])
        (4, 0, 230)
    """
    if config.env.type == "gym":
        raise ConfigError(
            f"env.type gym ({config.env.id}) runs a Gymnasium env, not SUMO: there is no network "
            "to build; use a traffic scenario such as scenarios/ring.yaml."
        )
    seed = config.sim.seed if seed is None else seed
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"--seed {seed}: give a seed between 0 and {MAX_SEED}, e.g. 0.")
    folder = _output_folder(Path(out_dir))
    # The same draws, in the same order, as Simulation.reset: SUMO's seed, then the instance.
    rng = np.random.default_rng(seed)
    sumo_seed = int(rng.integers(0, MAX_SEED))
    instance = make_scenario(config).instance(rng)
    files = {"net": f"{config.name}.net.xml", "routes": f"{config.name}.rou.xml"}
    shutil.copyfile(instance.net_file, folder / files["net"])
    shutil.copyfile(instance.route_file, folder / files["routes"])
    taken = [files["net"], files["routes"], f"{config.name}.sumocfg"]
    route_names = [files["routes"], *_copy_files(list(instance.route_files), folder, taken)]
    additional = _copy_files(
        [*instance.additional_files, *config.sim.additional_files], folder, taken
    )
    sumocfg = folder / f"{config.name}.sumocfg"
    _write_sumocfg(
        sumocfg, config, {**files, "routes": ",".join(route_names)}, additional, sumo_seed, instance
    )
    return {
        "name": config.name,
        "scenario": config.scenario.type,
        "seed": seed,
        "sumo_seed": sumo_seed,
        "step_length": config.sim.step_length,
        "vehicles": len(instance.vehicles),
        **network_summary(folder / files["net"]),
        **_route_length(instance),
        "net_file": str(folder / files["net"]),
        "route_file": str(folder / files["routes"]),
        "sumocfg": str(sumocfg),
        "additional_files": [str(folder / name) for name in additional],
        **_own_files(config, instance, [folder / name for name in route_names]),
    }


def _own_files(
    config: FlowsimConfig, instance: ScenarioInstance, route_files: list[Path]
) -> dict[str, Any]:
    """On your own files: the time window, the demand and the files read (else nothing)."""
    if config.scenario.type != "sumo":
        return {}
    from flowsim.scenarios.sumo import demand_summary, resolve_files

    files = resolve_files(config.scenario.sumo)
    return {
        "route_files": [str(path) for path in route_files],
        "begin": instance.begin,
        "end": instance.end,
        **demand_summary(files),
        "sources": {
            "key": files.key,
            "config": None if files.config is None else str(files.config),
            "net_file": str(files.net_file),
            "route_files": [str(path) for path in files.route_files],
            "additional_files": [str(path) for path in files.additional_files],
        },
    }
