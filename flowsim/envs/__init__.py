"""Gymnasium envs and their registered ids (declared here, statically).

>>> import gymnasium as gym, flowsim
>>> for env_id in sorted(i for i in gym.registry if i.startswith("flowsim/")):
...     print(env_id)
flowsim/FigureEight-v0
flowsim/Intersection-v0
flowsim/LaneChangeRing-v0
flowsim/Merge-v0
flowsim/MultiLaneRing-v0
flowsim/OSM-v0
flowsim/Ring-v0
flowsim/TrafficLightGrid-v0

The multi-agent ring (a PettingZoo parallel env, one agent per AV) is
``flowsim.envs.multiagent.parallel_env``; ``flowsim.envs.parallel_env`` and
``flowsim.envs.MultiAgentRingEnv`` import it (and PettingZoo) on first use only. The
multi-agent signal controller (one agent per traffic light) is
``flowsim.envs.multiagent_signals.parallel_env``.
"""

from __future__ import annotations

from gymnasium.envs.registration import register

from flowsim.envs.base import FlowsimEnv, resolve_config

#: env id -> (entry point, preset); ``env.type`` in YAML maps to the same classes.
ENV_IDS: dict[str, tuple[str, str]] = {
    "flowsim/Ring-v0": ("flowsim.envs.ring:WaveAttenuationEnv", "ring"),
    "flowsim/MultiLaneRing-v0": ("flowsim.envs.ring:AccelEnv", "multilane_ring"),
    "flowsim/FigureEight-v0": ("flowsim.envs.ring:AccelEnv", "figure_eight"),
    "flowsim/LaneChangeRing-v0": ("flowsim.envs.ring:LaneChangeAccelEnv", "lane_change_ring"),
    "flowsim/Merge-v0": ("flowsim.envs.merge:MergeEnv", "merge"),
    "flowsim/Intersection-v0": ("flowsim.envs.signals:TrafficLightGridEnv", "intersection"),
    "flowsim/TrafficLightGrid-v0": ("flowsim.envs.signals:TrafficLightGridEnv", "grid"),
    "flowsim/OSM-v0": ("flowsim.envs.signals:TrafficLightGridEnv", "osm"),
}

#: ``env.type`` values and their classes.
ENV_TYPES: dict[str, str] = {
    "wave_attenuation": "flowsim.envs.ring:WaveAttenuationEnv",
    "accel": "flowsim.envs.ring:AccelEnv",
    "lane_change_accel": "flowsim.envs.ring:LaneChangeAccelEnv",
    "merge": "flowsim.envs.merge:MergeEnv",
    "traffic_light_grid": "flowsim.envs.signals:TrafficLightGridEnv",
}

#: ``env.type`` values of multi-agent (PettingZoo) envs, built by flowsim.envs.multiagent and
#: flowsim.envs.multiagent_signals.
MULTIAGENT_TYPES: tuple[str, ...] = (
    "multiagent_wave_attenuation",
    "multiagent_traffic_light_grid",
)

for _env_id, (_entry_point, _preset) in ENV_IDS.items():
    register(id=_env_id, entry_point=_entry_point, kwargs={"preset": _preset})


def make_env(config, overrides: list[str] | None = None) -> FlowsimEnv:
    """The env that ``config.env.type`` names, built from a config, mapping or YAML path."""
    import importlib

    resolved = resolve_config(config, overrides)
    if resolved.env.type == "gym":
        return _make_gym_env(resolved.env.id or "")
    if resolved.env.type in MULTIAGENT_TYPES:
        from flowsim.errors import ConfigError

        signals = resolved.env.type == "multiagent_traffic_light_grid"
        raise ConfigError(
            f"env.type {resolved.env.type} is a multi-agent (PettingZoo) env: build it with "
            f"flowsim.envs.{'multiagent_signals' if signals else 'multiagent'}.parallel_env("
            "config); flowsim's single-agent trainers and samplers do not run it yet."
        )
    module_name, class_name = ENV_TYPES[resolved.env.type].split(":")
    env_class = getattr(importlib.import_module(module_name), class_name)
    return env_class(resolved)


def _make_gym_env(env_id: str):
    """A Gymnasium env by id (``env.type: gym``), with a clear error for an unknown id."""
    import gymnasium

    from flowsim.errors import ConfigError

    try:
        return gymnasium.make(env_id)
    except gymnasium.error.Error as error:
        raise ConfigError(f"env.id {env_id!r}: {error}; use a registered Gymnasium id.") from None


def __getattr__(name: str):
    """Import the multi-agent env lazily: ``import flowsim`` must not import PettingZoo."""
    if name in ("MultiAgentRingEnv", "parallel_env"):
        from flowsim.envs import multiagent

        return getattr(multiagent, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ENV_IDS",
    "ENV_TYPES",
    "FlowsimEnv",
    "MultiAgentRingEnv",
    "make_env",
    "parallel_env",
    "resolve_config",
]
