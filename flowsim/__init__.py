"""flowsim: mixed-autonomy traffic reinforcement learning on SUMO.

``import flowsim`` is light: it loads neither SUMO, Ray, torch nor Gymnasium. Its Gymnasium
ids (``flowsim/Ring-v0`` …) are registered as soon as Gymnasium is imported, before or after
flowsim; the names below are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowsim.envs.registry import register_when_gymnasium_loads
from flowsim.errors import ConfigError, FlowsimError, SimulationCrashed

if TYPE_CHECKING:
    from flowsim.config import FlowsimConfig, load_config
    from flowsim.envs import make_env
    from flowsim.runs.training import train

register_when_gymnasium_loads()

__version__ = "0.1.0"

#: public name -> module it lives in (imported on first use)
_LAZY = {
    "train": "flowsim.runs.training",
    "FlowsimConfig": "flowsim.config",
    "load_config": "flowsim.config",
    "make_env": "flowsim.envs",
}


def __getattr__(name: str) -> Any:
    """Import :data:`_LAZY` names when first used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'flowsim' has no attribute {name!r}")


__all__ = [
    "ConfigError",
    "FlowsimConfig",
    "FlowsimError",
    "SimulationCrashed",
    "__version__",
    "load_config",
    "make_env",
    "train",
]
