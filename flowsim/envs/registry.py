"""flowsim's env ids and ``env.type`` names as strings; importing this loads nothing heavy.

Entry points are ``"module:Class"`` strings, imported only when an env is made. The
Gymnasium ids are registered by :func:`register_envs`; ``import flowsim`` arranges for that
to happen as soon as Gymnasium is imported (before or after flowsim), so ``import flowsim``
itself loads neither Gymnasium nor any env module.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

#: env id -> (entry point, preset); ``env.type`` in YAML maps to the same classes.
ENV_IDS: dict[str, tuple[str, str]] = {
    "flowsim/Ring-v0": ("flowsim.envs.ring:WaveAttenuationEnv", "ring"),
    "flowsim/MultiLaneRing-v0": ("flowsim.envs.ring:AccelEnv", "multilane_ring"),
    "flowsim/FigureEight-v0": ("flowsim.envs.ring:AccelEnv", "figure_eight"),
    "flowsim/LaneChangeRing-v0": ("flowsim.envs.ring:LaneChangeAccelEnv", "lane_change_ring"),
    "flowsim/Merge-v0": ("flowsim.envs.merge:MergeEnv", "merge"),
    "flowsim/Bottleneck-v0": ("flowsim.envs.bottleneck:BottleneckEnv", "bottleneck"),
    "flowsim/Intersection-v0": ("flowsim.envs.signals:TrafficLightGridEnv", "intersection"),
    "flowsim/TrafficLightGrid-v0": ("flowsim.envs.signals:TrafficLightGridEnv", "grid"),
    "flowsim/OSM-v0": ("flowsim.envs.signals:TrafficLightGridEnv", "osm"),
}

#: ``env.type`` values of single-agent (Gymnasium) envs and their classes.
ENV_TYPES: dict[str, str] = {
    "wave_attenuation": "flowsim.envs.ring:WaveAttenuationEnv",
    "accel": "flowsim.envs.ring:AccelEnv",
    "lane_change_accel": "flowsim.envs.ring:LaneChangeAccelEnv",
    "merge": "flowsim.envs.merge:MergeEnv",
    "bottleneck": "flowsim.envs.bottleneck:BottleneckEnv",
    "open_accel": "flowsim.envs.open_av:OpenAccelEnv",
    "traffic_light_grid": "flowsim.envs.signals:TrafficLightGridEnv",
    "flow_traffic_light_grid": "flowsim.envs.flow_grid:FlowGridEnv",
}

#: ``env.type`` values of multi-agent (PettingZoo) envs and the modules whose
#: ``parallel_env(config)`` builds them.
MULTIAGENT_TYPES: dict[str, str] = {
    "multiagent_wave_attenuation": "flowsim.envs.multiagent",
    "multiagent_traffic_light_grid": "flowsim.envs.multiagent_signals",
}


def load_entry_point(entry_point: str) -> Any:
    """The object a ``"module:attribute"`` string names, importing its module."""
    module_name, attribute = entry_point.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def register_envs() -> None:
    """Register every id of :data:`ENV_IDS` with Gymnasium (again: a no-op)."""
    from gymnasium.envs.registration import register, registry

    for env_id, (entry_point, preset) in ENV_IDS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point, kwargs={"preset": preset})


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Finds ``gymnasium`` with the other finders and registers flowsim's ids once it has run."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "gymnasium":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run_module = spec.loader.exec_module

        def run_then_register(module: ModuleType) -> None:
            run_module(module)
            register_envs()

        spec.loader.exec_module = run_then_register  # type: ignore[method-assign]
        return spec


def register_when_gymnasium_loads() -> None:
    """Register the ids now if Gymnasium is loaded, else as soon as something imports it."""
    if "gymnasium" in sys.modules:
        register_envs()
    elif not any(isinstance(finder, _RegisterAfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
