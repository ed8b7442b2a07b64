"""The ``env:`` section: one settings model per env type, picked by ``env.type``.

:class:`EnvConfig` holds the keys every env type takes (the episode's length and timing); each
type's model adds the keys its env reads, so a key for another type is an error that lists the
keys of the chosen one. :data:`AnyEnvConfig` is the union the experiment's ``env`` field
validates, keyed by ``type`` (``wave_attenuation`` when absent).

Example:
    >>> from pydantic import TypeAdapter
    >>> env = TypeAdapter(AnyEnvConfig).validate_python({"type": "merge", "num_rl": 3})
    >>> type(env).__name__, env.num_rl, env.horizon
    ('MergeEnvConfig', 3, 3000)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from flowsim.config.sections import Section

__all__ = [
    "DEFAULT_ENV_TYPE",
    "ENV_CONFIGS",
    "SIGNAL_ENV_TYPES",
    "AccelEnvConfig",
    "AnyEnvConfig",
    "BottleneckEnvConfig",
    "EnvConfig",
    "FlowTrafficLightGridEnvConfig",
    "GymEnvConfig",
    "LaneChangeAccelEnvConfig",
    "MergeEnvConfig",
    "MultiAgentTrafficLightGridEnvConfig",
    "MultiAgentWaveAttenuationEnvConfig",
    "OpenAccelEnvConfig",
    "TrafficLightGridEnvConfig",
    "WaveAttenuationEnvConfig",
]

#: ``env.type`` when a config gives none.
DEFAULT_ENV_TYPE = "wave_attenuation"
#: Env types whose actions are traffic-light phases (signal baselines, trip metrics);
#: ``flow_traffic_light_grid``'s actions are switch requests, not phases, so it is not one.
SIGNAL_ENV_TYPES = ("traffic_light_grid", "multiagent_traffic_light_grid")

EnvType = Literal[
    "wave_attenuation",
    "accel",
    "lane_change_accel",
    "merge",
    "bottleneck",
    "open_accel",
    "traffic_light_grid",
    "flow_traffic_light_grid",
    "multiagent_wave_attenuation",
    "multiagent_traffic_light_grid",
    "gym",
]


def _type_required(schema: dict[str, Any], model: type) -> None:
    """In the JSON Schema, a type other than the default must be named (``type: merge``)."""
    field = getattr(model, "model_fields", {}).get("type")
    if field is not None and field.default != DEFAULT_ENV_TYPE:
        schema["required"] = ["type", *schema.get("required", [])]


class EnvConfig(Section):
    """The reinforcement-learning task on top of the scenario: the keys every env type takes."""

    model_config = ConfigDict(json_schema_extra=_type_required)

    type: EnvType = Field(
        DEFAULT_ENV_TYPE,
        description="Registered env: wave_attenuation, accel, lane_change_accel, merge (AVs on "
        "a highway with an on-ramp), bottleneck (AV speed commands per segment and lane in Flow's "
        "lane-drop bottleneck), open_accel (AV slots on any open network), "
        "traffic_light_grid (signal control on any network with traffic lights), "
        "flow_traffic_light_grid (Flow's centralised grid benchmark env: switch requests per "
        "light), gym (a "
        "Gymnasium id, env.id), or the PettingZoo envs multiagent_wave_attenuation and "
        "multiagent_traffic_light_grid.",
    )
    horizon: StrictInt = Field(3000, ge=1, le=10_000_000, description="Steps per episode.")
    warmup_steps: StrictInt = Field(
        750, ge=0, le=1_000_000, description="Steps simulated at reset before the agent acts."
    )
    sims_per_step: StrictInt = Field(
        1, ge=1, le=1000, description="SUMO steps each action is held for (one agent step)."
    )


class _SumoEnv(EnvConfig):
    """Keys of every env that runs SUMO (flowsim's base env reads them)."""

    terminate_on_collision: bool = Field(True, description="End the episode on a collision.")


class _AVEnv(_SumoEnv):
    """Keys of the envs whose agent accelerates AVs."""

    max_accel: float = Field(1.0, gt=0, le=20, description="Largest AV acceleration (m/s²).")
    max_decel: float = Field(1.0, gt=0, le=20, description="Largest AV deceleration (m/s²).")
    target_speed: float = Field(
        20.0, gt=0, le=100, description="Speed normalising the reward's speed term (m/s)."
    )


class _WaveReward(_AVEnv):
    """Keys of the ring's wave-attenuation reward."""

    speed_weight: float = Field(4.0, ge=0, description="Weight of mean speed in the reward.")
    accel_penalty: float = Field(4.0, ge=0, description="Weight of mean |AV accel| penalty.")
    wave_penalty: float = Field(
        0.0, ge=0, description="Weight of the speed std across vehicles (the wave) in the reward."
    )


class _SignalEnv(_SumoEnv):
    """Keys of the envs whose agent switches traffic lights."""

    yellow_time: float = Field(
        2.0,
        ge=0,
        le=60,
        description="traffic_light_grid: yellow time (s) between two green phases (sumo-rl: 2).",
    )
    min_green: float = Field(
        5.0,
        ge=0,
        le=600,
        description="traffic_light_grid: a green phase lasts at least this long (s) before "
        "the agent may switch it (sumo-rl: 5).",
    )
    signal_reward: Literal["diff_waiting_time", "queue", "pressure", "average_speed"] = Field(
        "diff_waiting_time",
        description="traffic_light_grid reward per signal: the drop in accumulated waiting "
        "time (sumo-rl's default), minus the queue (halted vehicles), minus the pressure "
        "(vehicles in minus vehicles out), or the average speed (mean over the vehicles on "
        "the incoming lanes of speed / allowed speed, 1 when empty).",
    )
    signals: list[Annotated[str, StringConstraints(min_length=1)]] = Field(
        default_factory=list,
        max_length=10_000,
        description="traffic_light_grid: ids of the traffic lights the agent controls (the "
        "others run their programme); empty: every traffic light of the network.",
    )


class WaveAttenuationEnvConfig(_WaveReward):
    """``wave_attenuation``: one AV damps the stop-and-go wave on a ring (Flow's ring)."""

    type: Literal["wave_attenuation"] = Field("wave_attenuation", description="The env type.")


class AccelEnvConfig(_AVEnv):
    """``accel``: N AVs drive towards the target speed, fully observed (Flow's AccelEnv)."""

    type: Literal["accel"] = Field("accel", description="The env type.")


class LaneChangeAccelEnvConfig(_AVEnv):
    """``lane_change_accel``: N AVs that accelerate and change lanes (Flow's
    LaneChangeAccelEnv)."""

    type: Literal["lane_change_accel"] = Field("lane_change_accel", description="The env type.")
    lane_change_duration: float = Field(
        5.0,
        ge=0,
        le=3600,
        description="lane_change_accel: seconds an AV must wait after a lane change before "
        "the next one.",
    )
    lane_change_penalty: float = Field(
        0.1, ge=0, description="lane_change_accel: reward cost of each AV lane change."
    )


class MergeEnvConfig(_AVEnv):
    """``merge``: AV slots on a highway with an on-ramp (Flow's merge)."""

    type: Literal["merge"] = Field("merge", description="The env type.")
    num_rl: StrictInt = Field(
        5,
        ge=1,
        le=1000,
        description="merge: AVs the agent controls at once (first come, first served); "
        "others drive by SUMO's model until a slot frees up. Flow's merge: 5.",
    )


class BottleneckEnvConfig(_SumoEnv):
    """``bottleneck``: a speed command per segment and lane for the AVs in Flow's lane-drop
    bottleneck (Flow's ``DesiredVelocityEnv``)."""

    type: Literal["bottleneck"] = Field("bottleneck", description="The env type.")
    controlled_segments: dict[str, StrictInt] = Field(
        default_factory=lambda: {"2": 2, "3": 2, "4": 2},
        description="bottleneck: edge -> number of equal segments whose AVs take one speed "
        "command per lane (Flow: edges 2, 3 and 4 with 2 segments each; AVs elsewhere drive "
        "at max_speed).",
    )
    observed_segments: dict[str, StrictInt] = Field(
        default_factory=lambda: {"1": 1, "2": 3, "3": 3, "4": 3, "5": 1},
        description="bottleneck: edge -> number of equal segments observed per lane (Flow: "
        "1, 3, 3, 3, 1 on edges 1 to 5).",
    )
    speed_step_low: float = Field(
        -1.5, ge=-100, le=0, description="bottleneck: lowest change of an AV's max speed per step."
    )
    speed_step_high: float = Field(
        1.0, ge=0, le=100, description="bottleneck: highest change of an AV's max speed per step."
    )
    max_speed: float = Field(
        23.0, gt=0, le=100, description="bottleneck: cap of the AVs' max speed (m/s); Flow: 23."
    )
    reward_window: float = Field(
        5.0,
        gt=0,
        le=100_000,
        description="bottleneck: the reward is the outflow over this many seconds (Flow: 10 "
        "steps of 0.5 s), divided by 2000 veh/h per unit of lane scaling.",
    )
    outflow_window: float = Field(
        500.0,
        gt=0,
        le=1_000_000,
        description="bottleneck: info['outflow'] (and evaluate's outflow) counts arrivals over "
        "this many seconds (Flow's benchmark: the last 500 s).",
    )

    @field_validator("controlled_segments", "observed_segments")
    @classmethod
    def _segments(cls, value: dict[str, int]) -> dict[str, int]:
        for edge, count in value.items():
            if edge not in ("1", "2", "3", "4", "5"):
                raise ValueError(f"edge {edge!r} is not an edge of the bottleneck; use 1 to 5")
            if not 1 <= count <= 100:
                raise ValueError(f"edge {edge} has {count} segments; give 1 to 100")
        if not value:
            raise ValueError("no edge given; give at least one, e.g. {'3': 2}")
        return value


class OpenAccelEnvConfig(_AVEnv):
    """``open_accel``: AV slots on any open network (OSM, your own SUMO files)."""

    type: Literal["open_accel"] = Field("open_accel", description="The env type.")
    num_rl: StrictInt = Field(
        10,
        ge=1,
        le=1000,
        description="open_accel: AVs the agent controls at once (first come, first served); "
        "others drive by SUMO's model until a slot frees up.",
    )
    view_distance: float = Field(
        100.0,
        gt=0,
        le=10_000,
        description="open_accel: distances observed (leader gap, next junction, next signal) "
        "are capped at and divided by this many metres.",
    )


class TrafficLightGridEnvConfig(_SignalEnv):
    """``traffic_light_grid``: one agent sets every controlled signal's green phase (any
    network with traffic lights)."""

    type: Literal["traffic_light_grid"] = Field("traffic_light_grid", description="The env type.")


class FlowTrafficLightGridEnvConfig(_SumoEnv):
    """``flow_traffic_light_grid``: Flow's centralised traffic-light grid (its
    ``TrafficLightGridBenchmarkEnv``): one agent asks each light to switch or not."""

    type: Literal["flow_traffic_light_grid"] = Field(
        "flow_traffic_light_grid", description="The env type."
    )
    yellow_time: float = Field(
        3.0,
        ge=0,
        le=60,
        description="flow_traffic_light_grid: seconds of yellow between the two greens (Flow's "
        "switch_time; its grid0/1 benchmarks: 3); switch requests during a yellow are ignored.",
    )
    num_observed: StrictInt = Field(
        2,
        ge=1,
        le=100,
        description="flow_traffic_light_grid: vehicles observed on each incoming edge of each "
        "light, the nearest to the light first (Flow: 2).",
    )
    target_speed: float = Field(
        50.0,
        gt=0,
        le=200,
        description="flow_traffic_light_grid: the desired velocity (m/s) of the reward "
        "(Flow's target_velocity; its grid benchmarks: 50).",
    )
    reward: Literal["desired_velocity", "delay"] = Field(
        "desired_velocity",
        description="flow_traffic_light_grid: desired_velocity (Flow's training reward: 1 "
        "when every vehicle drives at target_speed, falling with the distance of the speeds "
        "from it) or delay (Flow's evaluation reward: minus the step's delay, dt times the "
        "vehicles' mean (v_top - v) / v_top).",
    )


class MultiAgentWaveAttenuationEnvConfig(_WaveReward):
    """``multiagent_wave_attenuation``: the ring with one PettingZoo agent per AV."""

    type: Literal["multiagent_wave_attenuation"] = Field(
        "multiagent_wave_attenuation", description="The env type."
    )


class MultiAgentTrafficLightGridEnvConfig(_SignalEnv):
    """``multiagent_traffic_light_grid``: one PettingZoo agent per traffic light."""

    type: Literal["multiagent_traffic_light_grid"] = Field(
        "multiagent_traffic_light_grid", description="The env type."
    )


class GymEnvConfig(EnvConfig):
    """``gym``: any registered Gymnasium env, by id (no SUMO)."""

    type: Literal["gym"] = Field("gym", description="The env type.")
    id: str | None = Field(None, description="Gymnasium env id when type is gym, e.g. CartPole-v1.")

    @model_validator(mode="after")
    def _plain_id(self) -> GymEnvConfig:
        if not self.id:
            raise ValueError("env.type gym needs env.id, a Gymnasium id such as CartPole-v1")
        if ":" in self.id:
            raise ValueError(
                f"env.id {self.id!r}: a 'module:Env' id would make Gymnasium import that module "
                "from a config; import and register your env in Python, then give its plain id"
            )
        return self


#: ``env.type`` -> its settings model.
ENV_CONFIGS: dict[str, type[EnvConfig]] = {
    "wave_attenuation": WaveAttenuationEnvConfig,
    "accel": AccelEnvConfig,
    "lane_change_accel": LaneChangeAccelEnvConfig,
    "merge": MergeEnvConfig,
    "bottleneck": BottleneckEnvConfig,
    "open_accel": OpenAccelEnvConfig,
    "traffic_light_grid": TrafficLightGridEnvConfig,
    "flow_traffic_light_grid": FlowTrafficLightGridEnvConfig,
    "multiagent_wave_attenuation": MultiAgentWaveAttenuationEnvConfig,
    "multiagent_traffic_light_grid": MultiAgentTrafficLightGridEnvConfig,
    "gym": GymEnvConfig,
}


#: The keys of the one env model that every type shared before each had its own. A run
#: directory's ``config.yaml`` written then holds them all: such a mapping keeps the keys of
#: its type only (the others were ignored then), so that old runs still load.
_SHARED_KEYS_BEFORE = frozenset(
    {
        "type",
        "id",
        "horizon",
        "warmup_steps",
        "sims_per_step",
        "max_accel",
        "max_decel",
        "target_speed",
        "speed_weight",
        "accel_penalty",
        "wave_penalty",
        "terminate_on_collision",
        "lane_change_duration",
        "lane_change_penalty",
        "num_rl",
        "yellow_time",
        "min_green",
        "signal_reward",
    }
)


def _with_type(data: Any) -> Any:
    """The ``env`` mapping with its default type filled in (and an old run's keys of other
    types dropped); anything but a mapping or a settings model is refused like a section
    given a single value."""
    if isinstance(data, EnvConfig):
        return data
    if not isinstance(data, dict):
        raise PydanticCustomError(
            "model_type", "Input should be a valid dictionary or instance of EnvConfig"
        )
    model = ENV_CONFIGS.get(data.get("type")) if isinstance(data.get("type"), str) else None
    if model is not None and data.keys() >= _SHARED_KEYS_BEFORE:
        return {key: value for key, value in data.items() if key in model.model_fields}
    return data if "type" in data else {"type": DEFAULT_ENV_TYPE, **data}


#: The ``env`` section: the settings model of its ``type``.
AnyEnvConfig = Annotated[
    Union[  # noqa: UP007 - a discriminated union of the models, one per type
        WaveAttenuationEnvConfig,
        AccelEnvConfig,
        LaneChangeAccelEnvConfig,
        MergeEnvConfig,
        BottleneckEnvConfig,
        OpenAccelEnvConfig,
        TrafficLightGridEnvConfig,
        FlowTrafficLightGridEnvConfig,
        MultiAgentWaveAttenuationEnvConfig,
        MultiAgentTrafficLightGridEnvConfig,
        GymEnvConfig,
    ],
    Field(discriminator="type"),
    BeforeValidator(_with_type),
]
