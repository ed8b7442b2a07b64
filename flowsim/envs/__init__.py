"""Gymnasium and PettingZoo envs; their ids are declared in :mod:`flowsim.envs.registry`.

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

from typing import TYPE_CHECKING, Any

from flowsim.envs.registry import ENV_IDS, ENV_TYPES, MULTIAGENT_TYPES

if TYPE_CHECKING:
    from flowsim.envs.base import FlowsimEnv, resolve_config
    from flowsim.envs.make import make_env
    from flowsim.envs.multiagent import MultiAgentRingEnv, parallel_env

#: public name -> module it lives in, imported on first use so that ``import flowsim.envs``
#: stays light (the env stack loads SUMO; the multi-agent envs load PettingZoo)
_LAZY = {
    "FlowsimEnv": "flowsim.envs.base",
    "resolve_config": "flowsim.envs.base",
    "make_env": "flowsim.envs.make",
    "MultiAgentRingEnv": "flowsim.envs.multiagent",
    "parallel_env": "flowsim.envs.multiagent",
}


def __getattr__(name: str) -> Any:
    """Import the :data:`_LAZY` names on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ENV_IDS",
    "ENV_TYPES",
    "MULTIAGENT_TYPES",
    "FlowsimEnv",
    "MultiAgentRingEnv",
    "make_env",
    "parallel_env",
    "resolve_config",
]
