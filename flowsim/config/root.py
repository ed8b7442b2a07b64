"""The experiment config: :class:`FlowsimConfig`, and YAML, overrides and schema in and out.

Precedence is defaults < YAML file < ``--set key=value`` overrides. Paths in a file resolve
relative to that file. Every validation failure becomes a :class:`~flowsim.errors.ConfigError`
whose message names the key, the value and the fix.

Example:
    >>> cfg = apply_overrides(FlowsimConfig(), ["env.horizon=1000"])
    >>> cfg.env.horizon
    1000
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from flowsim.config.env import AnyEnvConfig, EnvConfig, WaveAttenuationEnvConfig
from flowsim.config.errors import format_errors
from flowsim.config.imitation import ImitationConfig
from flowsim.config.keys import set_value, shorten
from flowsim.config.sections import (
    PLACEMENT_MARGIN,
    InflowConfig,
    SamplerConfig,
    ScenarioConfig,
    Section,
    SimConfig,
    VehicleGroup,
    vehicle_spans,
)
from flowsim.config.train import TrainConfig
from flowsim.config.tune import TuneConfig, config_key_problem
from flowsim.config.yaml_io import YAMLSyntaxError, load_yaml, read_yaml
from flowsim.errors import ConfigError

__all__ = [
    "FlowsimConfig",
    "apply_overrides",
    "config_schema",
    "dump_config",
    "load_config",
    "parse_config",
]


def _default_vehicles() -> list[VehicleGroup]:
    return [
        VehicleGroup(type="human", count=21, controller={"type": "idm", "params": {"noise": 0.2}}),
        VehicleGroup(type="av", count=1, controller="rl", color="255,0,0"),
    ]


class FlowsimConfig(Section):
    """A whole experiment. The defaults are Flow's classic ring (``scenarios/ring.yaml``)."""

    name: str = Field(
        "ring",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        max_length=100,
        description="Experiment name (letters, digits, _ . -); names run folders.",
    )
    scenario: ScenarioConfig = Field(default_factory=ScenarioConfig)
    vehicles: list[VehicleGroup] = Field(default_factory=_default_vehicles, min_length=1)
    inflows: list[InflowConfig] = Field(
        default_factory=list,
        description="Vehicle streams entering an open network (merge, grid, intersection, osm).",
    )
    env: AnyEnvConfig = Field(
        default_factory=WaveAttenuationEnvConfig,
        description="The task: env.type picks the env and the keys it takes.",
    )
    sim: SimConfig = Field(default_factory=SimConfig)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    train: TrainConfig = Field(default_factory=lambda: TrainConfig())
    tune: TuneConfig | None = Field(
        None, description="Ray Tune: search space, scheduler, search, stop (`flowsim tune`)."
    )
    imitation: ImitationConfig | None = Field(
        None, description="Hierarchical imitation (`flowsim imitate`): expert, demonstrations."
    )

    @field_validator("vehicles")
    @classmethod
    def _unique_groups(cls, groups: list[VehicleGroup]) -> list[VehicleGroup]:
        names = [group.type for group in groups]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"vehicle group names must be unique; repeated: {duplicates}")
        return groups

    @model_validator(mode="after")
    def _some_vehicles(self) -> FlowsimConfig:
        if self.scenario.open:
            groups = {group.type for group in self.vehicles}
            for index, inflow in enumerate(self.inflows):
                if inflow.vehicle not in groups:
                    raise ConfigError(
                        f"inflows[{index}].vehicle: no vehicle group '{inflow.vehicle}'; "
                        f"groups: {sorted(groups)}. Add it under vehicles: or fix the name."
                    )
            return self
        if self.inflows:
            raise ConfigError(
                f"inflows: scenario.type {self.scenario.type} is a closed loop that vehicles "
                "never enter or leave; inflows need an open network (merge, grid, intersection "
                "or osm). Remove the inflows: section."
            )
        if self.num_vehicles == 0:
            raise ValueError("at least one vehicle is needed; set a group's count above 0")
        return self

    @model_validator(mode="after")
    def _vehicles_fit(self) -> FlowsimConfig:
        if self.scenario.open:
            return self  # vehicles enter on inflows; SUMO waits for room to insert them
        lanes = self.scenario.lanes
        needed = [0.0] * lanes
        for index, span in enumerate(vehicle_spans(self.vehicles)):
            needed[index % lanes] += span  # vehicles are dealt to lanes in turn
        fullest = max(needed)
        if fullest > self.scenario.min_length:
            total = sum(group.count for group in self.vehicles)
            per_lane = f" on the fullest of {lanes} lanes" if lanes > 1 else ""
            figure_eight = self.scenario.type == "figure_eight"
            road = "the figure eight's loop" if figure_eight else "scenario.length"
            knob = "scenario.radius" if figure_eight else "scenario.length"
            raise ConfigError(
                f"vehicles: {total} vehicles need {fullest:.1f} m of lane{per_lane} (length + "
                f"min_gap + {PLACEMENT_MARGIN} m each) but {road} is "
                f"{self.scenario.min_length:g} m; lower a group's count, or raise "
                f"{knob} or scenario.lanes."
            )
        return self

    @model_validator(mode="after")
    def _batch_fits_minibatch(self) -> FlowsimConfig:
        """Each learner's batch per iteration holds at least one minibatch.

        A batch counts agent decisions: env steps per iteration (fragment x envs_per_worker x
        num_workers) times the agents of the smallest policy (:meth:`_fewest_agents_per_policy`).
        """
        env_steps = (
            self.sampler.rollout_fragment_length
            * self.sampler.envs_per_worker
            * max(self.sampler.num_workers, 1)
        )
        agents = self._fewest_agents_per_policy()
        if self.train.algo == "es" or agents is None:
            return self
        if env_steps * agents < self.train.minibatch_size:
            decisions = f" x {agents} agents sharing the policy" if agents > 1 else ""
            raise ValueError(
                f"train.minibatch_size {self.train.minibatch_size} is larger than the batch of "
                f"{env_steps * agents} decisions per iteration (sampler.rollout_fragment_length "
                f"x envs_per_worker x num_workers{decisions}); lower the minibatch or raise the "
                "fragment"
            )
        return self

    def _fewest_agents_per_policy(self) -> int | None:
        """A lower bound on the agents behind each policy's batch; None where only the network
        files tell (the lights of a multi-agent signal env on a ``sumo`` or ``osm`` network).

        Single-agent envs have one; ``train.multiagent.policies`` other than ``shared`` may give
        a policy a single agent; a shared policy drives every AV of the multi-agent ring and
        every light of a ``grid`` (rows x columns) or ``intersection`` scenario.
        """
        if self.env.type == "multiagent_wave_attenuation":
            agents: int | None = sum(
                group.count for group in self.vehicles if group.controller.type == "rl"
            )
        elif self.env.type == "multiagent_traffic_light_grid":
            grid = self.scenario.grid
            agents = {"grid": grid.rows * grid.columns, "intersection": 1}.get(self.scenario.type)
        else:
            return 1
        if self.train.multiagent.policies != "shared":
            return 1
        return max(agents, 1) if agents is not None else None

    @model_validator(mode="after")
    def _one_libsumo_per_process(self) -> FlowsimConfig:
        uses_sumo = self.env.type != "gym"
        if uses_sumo and self.sampler.envs_per_worker > 1 and self.sim.backend == "libsumo":
            raise ValueError(
                f"sampler.envs_per_worker: {self.sampler.envs_per_worker} needs sim.backend: "
                "traci (libsumo runs one simulation per process); or raise "
                "sampler.num_workers instead"
            )
        return self

    @property
    def num_vehicles(self) -> int:
        """Total vehicles across groups."""
        return sum(group.count for group in self.vehicles)

    @field_validator("tune")
    @classmethod
    def _tuned_keys_apply(cls, tune: TuneConfig | None, info: ValidationInfo) -> Any:
        env = info.data.get("env")
        if tune is None or not isinstance(env, EnvConfig):
            return tune
        for key in tune.search_space:
            problem = config_key_problem(key, FlowsimConfig, {"env": env.type})
            if problem:
                raise ValueError(problem)
        return tune


#: :class:`TuneConfig` checks its ``search_space`` keys against this model.
TuneConfig.experiment_model = FlowsimConfig


def parse_config(
    data: Any, source: str = "<config>", base_dir: Path | None = None
) -> FlowsimConfig:
    """Validate a raw mapping (from YAML or Python) into a :class:`FlowsimConfig`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"invalid configuration in {source}: the top level must be a mapping of sections "
            f"(name, scenario, vehicles, env, sim, ...), got {type(data).__name__}."
        )
    try:
        return FlowsimConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as error:
        raise ConfigError(format_errors(error, source, FlowsimConfig)) from None
    except ConfigError as error:
        raise ConfigError(f"invalid configuration in {source}:\n  {error}") from None
    except (TypeError, ValueError, RecursionError) as error:
        raise ConfigError(f"invalid configuration in {source}: {error}") from None


def _as_data(config: FlowsimConfig) -> dict[str, Any]:
    """``config`` as the plain data overrides are set in: every value, except that ``env``
    holds only its type and the keys given, so that an override of ``env.type`` starts from
    the new type's defaults."""
    data = config.model_dump(mode="json")
    data["env"] = {
        "type": config.env.type,
        **config.env.model_dump(mode="json", exclude_unset=True),
    }
    return data


def _parse_override(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` as the dotted key and the value read as YAML (text when it is not YAML)."""
    if "=" not in item:
        raise ConfigError(
            f"--set '{shorten(item)}' must look like key=value, e.g. env.horizon=1000."
        )
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(
            f"--set '{shorten(item)}': the key must be dotted names, e.g. sim.seed=3."
        )
    if not raw.strip():
        return key, ""
    try:
        value = load_yaml(
            raw,
            f"--set {shorten(key)}: the value",
            fix=f"Quote a value meant as text: --set '{shorten(key, 30)}=\"...\"'.",
        )
    except YAMLSyntaxError:
        value = raw  # not YAML at all (an unclosed bracket): the text itself
    return key, value


def _overrides_source(source: str, keys: list[str]) -> str:
    """Where validated data came from, naming the overridden keys (for error messages)."""
    return f"{source} {', '.join(shorten(key) for key in keys)}" if keys else source


def apply_overrides(
    config: FlowsimConfig | dict[str, Any], overrides: list[str] | None, source: str = "--set"
) -> FlowsimConfig:
    """Return ``config`` with ``key=value`` overrides applied (values parsed as YAML).

    Raises:
        ConfigError: an override is malformed or gives an invalid value; the message names
            its key.
    """
    data = _as_data(config) if isinstance(config, FlowsimConfig) else dict(config)
    keys = []
    for item in overrides or []:
        key, value = _parse_override(item)
        set_value(data, key, value)
        keys.append(key)
    return parse_config(data, source=_overrides_source(source, keys))


def load_config(path: str | Path, overrides: list[str] | None = None) -> FlowsimConfig:
    """Load a YAML experiment file, apply ``key=value`` overrides and validate it."""
    path = Path(path)
    raw = read_yaml(path)
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(
            f"invalid configuration in {path}: the top level must be a mapping of sections "
            f"(name, scenario, vehicles, env, sim, ...), got {type(raw).__name__}."
        )
    data = dict(raw or {})
    defaults = _as_data(FlowsimConfig()) if overrides else None
    keys = []
    for item in overrides or []:
        key, value = _parse_override(item)
        set_value(data, key, value, defaults)
        keys.append(key)
    source = _overrides_source(f"{path} with --set", keys) if keys else str(path)
    return parse_config(data, source=source, base_dir=path.resolve().parent)


def dump_config(config: FlowsimConfig, effective: bool = False) -> str:
    """The resolved configuration as YAML text (saved beside every run).

    With ``effective``, per-group defaults that depend on the controller (speed mode,
    fail-safes) are written as the values in force instead of ``null``.
    """
    data = config.model_dump(mode="json")
    if effective:
        for group, raw in zip(config.vehicles, data["vehicles"], strict=True):
            raw["speed_mode"] = group.effective_speed_mode.value
            raw["failsafes"] = group.effective_failsafes
    return yaml.safe_dump(data, sort_keys=False)


def config_schema() -> dict[str, Any]:
    """The JSON Schema of a flowsim YAML file (for editor autocompletion).

    ``env`` is ``$defs/EnvConfig``: the keys every env type takes, and one branch per type
    (picked by ``type``) holding only the keys that type takes.
    """
    schema = FlowsimConfig.model_json_schema()
    schema["title"] = "flowsim experiment"
    env = schema["properties"]["env"]
    common = EnvConfig.model_json_schema()
    schema["$defs"]["EnvConfig"] = {
        "title": "EnvConfig",
        "description": f"{env['description']} Its properties: the keys every type takes.",
        "type": "object",
        "properties": common["properties"],
        "oneOf": env["oneOf"],
        "discriminator": env["discriminator"],
    }
    schema["properties"]["env"] = {"$ref": "#/$defs/EnvConfig"}
    return schema
