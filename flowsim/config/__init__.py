"""Typed experiment configuration: YAML in, validated pydantic models out.

Precedence is defaults < YAML file < ``--set key=value`` overrides. Paths in a file resolve
relative to that file. Every validation failure becomes a :class:`~flowsim.errors.ConfigError`
whose message names the key, the value and the fix. Importing this package imports neither
SUMO, Ray, torch nor Gymnasium.

Modules, each importing only the ones listed before it:

- :mod:`~flowsim.config.keys`: dotted keys (``vehicles.0.count``) walked over plain data and
  over the model tree;
- :mod:`~flowsim.config.yaml_io`: the hardened safe YAML loader;
- :mod:`~flowsim.config.sections`: scenario, vehicles, controllers, sim and sampler;
- :mod:`~flowsim.config.env`: the ``env`` section, one model per ``env.type``;
- :mod:`~flowsim.config.train`, :mod:`~flowsim.config.tune`, :mod:`~flowsim.config.imitation`:
  the ``train``, ``tune`` and ``imitation`` sections;
- :mod:`~flowsim.config.errors`: validation errors as messages;
- :mod:`~flowsim.config.root`: :class:`FlowsimConfig` and loading, overrides, dumping, schema.

Example:
    >>> from flowsim.config import FlowsimConfig, apply_overrides
    >>> cfg = apply_overrides(FlowsimConfig(), ["env.horizon=1000"])
    >>> cfg.env.horizon
    1000
"""

from __future__ import annotations

from flowsim.config.env import EnvConfig
from flowsim.config.root import (
    FlowsimConfig,
    apply_overrides,
    config_schema,
    dump_config,
    load_config,
    parse_config,
)
from flowsim.config.sections import (
    PLACEMENT_MARGIN,
    RESCO_MAPS,
    BottleneckConfig,
    ControllerConfig,
    GridConfig,
    InflowConfig,
    IntersectionConfig,
    MergeConfig,
    OSMConfig,
    SamplerConfig,
    ScenarioConfig,
    SignalConfig,
    SimConfig,
    SumoConfig,
    VehicleGroup,
)
from flowsim.config.train import TrainConfig
from flowsim.config.yaml_io import MAX_CONFIG_VALUES

__all__ = [
    "MAX_CONFIG_VALUES",
    "PLACEMENT_MARGIN",
    "RESCO_MAPS",
    "BottleneckConfig",
    "ControllerConfig",
    "EnvConfig",
    "FlowsimConfig",
    "GridConfig",
    "InflowConfig",
    "IntersectionConfig",
    "MergeConfig",
    "OSMConfig",
    "SamplerConfig",
    "ScenarioConfig",
    "SignalConfig",
    "SimConfig",
    "SumoConfig",
    "TrainConfig",
    "VehicleGroup",
    "apply_overrides",
    "config_schema",
    "dump_config",
    "load_config",
    "parse_config",
]
