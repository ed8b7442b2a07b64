"""flowsim: mixed-autonomy traffic reinforcement learning on SUMO.

Importing flowsim registers its Gymnasium envs (``flowsim/Ring-v0`` …).
"""

from flowsim import envs as envs
from flowsim.config import FlowsimConfig, load_config
from flowsim.envs import make_env
from flowsim.errors import ConfigError, FlowsimError, SimulationCrashed


def train(config, out=None, resume=None, show_progress=False):
    """Train a policy on ``config``; see :func:`flowsim.training.train` (imported lazily: torch)."""
    from flowsim.training import train as _train

    return _train(config, out=out, resume=resume, show_progress=show_progress)


__version__ = "0.1.0"

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
