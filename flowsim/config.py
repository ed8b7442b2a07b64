"""Typed experiment configuration: YAML in, validated pydantic models out.

Precedence is defaults < YAML file < ``--set key=value`` overrides. Paths in a file resolve
relative to that file. Every validation failure becomes a :class:`~flowsim.errors.ConfigError`
whose message names the key, the value and the fix.

Example:
    >>> from flowsim.config import FlowsimConfig, apply_overrides
    >>> cfg = apply_overrides(FlowsimConfig(), ["env.horizon=1000"])
    >>> cfg.env.horizon
    1000
"""

from __future__ import annotations

import copy
import difflib
import json
import math
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from flowsim.errors import ConfigError
from flowsim.hierarchy.config import ImitationConfig
from flowsim.tune.config import TuneConfig

__all__ = [
    "ControllerConfig",
    "EnvConfig",
    "FlowsimConfig",
    "SamplerConfig",
    "ScenarioConfig",
    "SimConfig",
    "TrainConfig",
    "VehicleGroup",
    "apply_overrides",
    "config_schema",
    "dump_config",
    "load_config",
    "parse_config",
]


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Resolve a path relative to the config file's folder and require that it exists."""
    base = (info.context or {}).get("base_dir")
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    if not path.exists():
        raise ValueError(f"file not found: {path} (paths resolve relative to the YAML file)")
    if not path.is_file():
        raise ValueError(f"{path} is a folder, not a file")
    return path.resolve()


ExistingPath = Annotated[Path, AfterValidator(_resolve_path)]


class _Section(BaseModel):
    """Strict base: unknown keys are errors, values are checked on assignment too."""

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, allow_inf_nan=False, frozen=False
    )


class SpeedMode(str, Enum):
    """Which of SUMO's safety checks apply to speeds that flowsim sets (SUMO's speed-mode bits)."""

    all_checks = "all_checks"
    right_of_way = "right_of_way"
    obey_safe_speed = "obey_safe_speed"
    no_collide = "no_collide"
    aggressive = "aggressive"

    @property
    def bits(self) -> int:
        """The integer SUMO's ``setSpeedMode`` takes."""
        return {
            "all_checks": 31,
            "right_of_way": 25,
            "obey_safe_speed": 1,
            "no_collide": 7,
            "aggressive": 0,
        }[self.value]


class GridConfig(_Section):
    """An N x M grid of signalised intersections (Flow's traffic-light grid)."""

    rows: StrictInt = Field(3, ge=1, le=30, description="Rows of intersections (Flow: 3).")
    columns: StrictInt = Field(3, ge=1, le=30, description="Columns of intersections (Flow: 3).")
    inner_length: float = Field(
        300.0, ge=20, le=10_000, description="Length of edges between intersections (m)."
    )
    outer_length: float = Field(
        300.0, ge=20, le=10_000, description="Length of the entry and exit edges (m)."
    )
    lanes: StrictInt = Field(1, ge=1, le=6, description="Lanes per direction on every edge.")


class IntersectionConfig(_Section):
    """A single signalised four-way intersection (sumo-rl's single-intersection)."""

    arm_length: float = Field(
        200.0, ge=20, le=10_000, description="Length of each approach and exit arm (m)."
    )
    lanes: StrictInt = Field(1, ge=1, le=6, description="Lanes per direction on each arm.")
    demand: dict[Literal["north", "south", "east", "west"], float] = Field(
        default_factory=lambda: {"north": 720.0, "south": 720.0, "east": 1800.0, "west": 1800.0},
        description="Vehicles per hour entering on each approach (sumo-rl: 0.2/s north-south, "
        "0.5/s east-west); use inflows: for anything finer.",
    )
    turns: dict[Literal["left", "straight", "right"], float] = Field(
        default_factory=lambda: {"left": 0.0, "straight": 1.0, "right": 0.0},
        description="Share of each approach's vehicles turning left, going straight or turning "
        "right (normalised to sum 1).",
    )

    @field_validator("demand", "turns")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        for key, rate in value.items():
            if not math.isfinite(rate) or rate < 0:
                raise ValueError(f"{key}: {rate} must be a finite number >= 0")
        return value

    @field_validator("turns")
    @classmethod
    def _some_turn(cls, value: dict[str, float]) -> dict[str, float]:
        if sum(value.values()) <= 0:
            raise ValueError("at least one of left, straight, right needs a share above 0")
        return value


class MergeConfig(_Section):
    """A highway with an on-ramp merging into it (Flow's merge benchmark)."""

    pre_merge_length: float = Field(
        500.0, ge=20, le=10_000, description="Highway before the merge (m); Flow: 500."
    )
    post_merge_length: float = Field(
        100.0, ge=20, le=10_000, description="Highway after the merge (m); Flow: 100."
    )
    merge_length: float = Field(
        100.0, ge=20, le=10_000, description="On-ramp length before it joins (m); Flow: 100."
    )
    inflow_length: float = Field(
        100.0, ge=10, le=10_000, description="Entry edges before highway and ramp (m); Flow: 100."
    )
    highway_lanes: StrictInt = Field(1, ge=1, le=6, description="Highway lanes (Flow: 1).")
    merge_lanes: StrictInt = Field(1, ge=1, le=6, description="On-ramp lanes (Flow: 1).")


class OSMConfig(_Section):
    """An OpenStreetMap area converted with netconvert, with randomTrips or a routes file."""

    file: ExistingPath | None = Field(
        None, description="An .osm or .osm.bz2 extract (paths resolve relative to the YAML)."
    )
    place: str | None = Field(
        None,
        description="A place name fetched with osmnx when online, e.g. 'Piedmont, California'; "
        "offline, give file: instead.",
    )
    trips_period: float = Field(
        2.0,
        gt=0,
        le=3600,
        description="randomTrips: one new trip every this many seconds (SUMO's --period).",
    )
    trips_end: float = Field(
        3600.0, gt=0, le=1e7, description="randomTrips: last departure time (s)."
    )
    routes_file: ExistingPath | None = Field(
        None, description="A SUMO routes file to use instead of randomTrips."
    )
    min_trip_distance: float = Field(
        200.0, ge=0, le=1e6, description="randomTrips: shortest straight-line trip (m)."
    )


class SignalConfig(_Section):
    """How traffic lights are programmed when no agent controls them."""

    program: Literal["fixed", "actuated"] = Field(
        "actuated",
        description="Signal programme netconvert writes: fixed-time (static) or actuated "
        "(gap-based, extends green while vehicles arrive); Flow's grid benchmark is actuated.",
    )
    green: float = Field(31.0, ge=1, le=600, description="Green phase duration (s); Flow: 31.")
    yellow: float = Field(6.0, ge=1, le=60, description="Yellow phase duration (s); Flow: 6.")


class InflowConfig(_Section):
    """A stream of vehicles entering the network on one edge (a SUMO ``<flow>``).

    Give exactly one of ``rate`` (vehicles per hour), ``probability`` (chance of one vehicle
    per second) or ``period`` (seconds between vehicles).
    """

    edge: str = Field(..., min_length=1, description="Edge the vehicles enter on.")
    vehicle: str = Field(..., min_length=1, description="Vehicle group (vehicles[].type) driving.")
    to: str | None = Field(
        None, description="Destination edge; the scenario's default exit for the edge if omitted."
    )
    rate: float | None = Field(None, description="Vehicles per hour.")
    probability: float | None = Field(None, description="Chance of a vehicle each second.")
    period: float | None = Field(None, description="Seconds between two vehicles.")
    lane: str | StrictInt = Field(
        "free", description="SUMO departLane: free, best, random, first or a lane index."
    )
    speed: str | float = Field(
        "max", description="SUMO departSpeed: max, desired, random, avg or a speed (m/s)."
    )
    begin: float = Field(0.0, ge=0, le=1e9, description="First departure time (s).")
    end: float = Field(1e7, gt=0, le=1e9, description="Last departure time (s).")

    @model_validator(mode="after")
    def _one_rate(self) -> InflowConfig:
        given = {
            name: value
            for name, value in (
                ("rate", self.rate),
                ("probability", self.probability),
                ("period", self.period),
            )
            if value is not None
        }
        if len(given) != 1:
            raise ValueError(
                "give exactly one of rate (veh/h), probability (per second) or period (s); "
                f"got {sorted(given) or 'none'}"
            )
        ((name, value),) = given.items()
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} {value} is negative or not finite; give a number >= 0")
        if name == "probability" and value > 1:
            raise ValueError(f"probability {value} is above 1 (a chance per second)")
        if name == "period" and value == 0:
            raise ValueError("period 0 would insert infinitely many vehicles; give seconds > 0")
        if isinstance(self.lane, int) and self.lane < 0:
            raise ValueError(f"lane {self.lane} is negative; lane indices start at 0")
        if isinstance(self.lane, str) and self.lane not in ("free", "best", "random", "first"):
            raise ValueError(f"lane {self.lane!r}: use free, best, random, first or an index")
        if isinstance(self.speed, str) and self.speed not in ("max", "desired", "random", "avg"):
            raise ValueError(f"speed {self.speed!r}: use max, desired, random, avg or m/s")
        if isinstance(self.speed, float) and not (0 <= self.speed < 1000):
            raise ValueError(f"speed {self.speed} must be between 0 and 1000 m/s")
        if self.end <= self.begin:
            raise ValueError(f"end {self.end} must be after begin {self.begin}")
        return self

    @property
    def sumo_rate(self) -> tuple[str, float]:
        """The ``<flow>`` attribute and value: vehsPerHour, probability or period."""
        if self.rate is not None:
            return "vehsPerHour", self.rate
        if self.probability is not None:
            return "probability", self.probability
        assert self.period is not None
        return "period", self.period


#: Scenario types whose vehicles enter on inflows and leave at exits (no closed loop).
OPEN_SCENARIOS = ("merge", "grid", "intersection", "osm")


class ScenarioConfig(_Section):
    """The road network and where vehicles start.

    ``length`` is a fixed ring length in metres, or ``[low, high]`` to draw a new length
    uniformly at every reset (Flow's ring used ``[220, 270]``). A figure eight's size is set by
    ``radius`` instead (its loop is ``4 r + 3 pi r`` long).
    """

    type: Literal[
        "ring", "multilane_ring", "figure_eight", "merge", "grid", "intersection", "osm"
    ] = Field(
        "ring",
        description="Network generator: ring (one lane), multilane_ring, figure_eight (two "
        "3/4 loops crossing at an unsignalised intersection), merge (highway with on-ramp), "
        "grid (N x M traffic lights), intersection (one signalised crossing) or osm "
        "(an OpenStreetMap area).",
    )
    radius: float = Field(
        30.0,
        ge=5,
        le=10_000,
        description="figure_eight: radius of each loop (m); Flow's benchmark used 30.",
    )
    length: float | tuple[float, float] = Field(
        230.0, description="Ring length (m), or [low, high] re-sampled on every reset."
    )
    lanes: StrictInt = Field(1, ge=1, le=8, description="Lanes on the ring.")
    speed_limit: float = Field(30.0, gt=0, le=100, description="Lane speed limit (m/s).")
    placement: Literal["even", "random"] = Field(
        "random",
        description="Initial spacing: random gaps (a perturbed start, so the wave forms at "
        "once) or evenly spaced (the wave then needs noise and ~300 s to grow).",
    )
    grid: GridConfig = Field(default_factory=GridConfig, description="type grid: its layout.")
    intersection: IntersectionConfig = Field(
        default_factory=IntersectionConfig, description="type intersection: arms and demand."
    )
    merge: MergeConfig = Field(
        default_factory=MergeConfig, description="type merge: highway and ramp lengths."
    )
    osm: OSMConfig = Field(default_factory=OSMConfig, description="type osm: input and demand.")
    signals: SignalConfig = Field(
        default_factory=SignalConfig, description="grid / intersection / osm: signal programme."
    )

    @property
    def open(self) -> bool:
        """True for networks that vehicles enter and leave (merge, grid, intersection, osm)."""
        return self.type in OPEN_SCENARIOS

    @model_validator(mode="after")
    def _osm_input(self) -> ScenarioConfig:
        if self.type == "osm" and (self.osm.file is None) == (self.osm.place is None):
            raise ValueError(
                "scenario.type osm needs exactly one of osm.file (an .osm / .osm.bz2 extract) "
                "or osm.place (a place name, fetched online with osmnx)"
            )
        return self

    @field_validator("length")
    @classmethod
    def _check_length(cls, value: float | tuple[float, float]) -> float | tuple[float, float]:
        lengths = value if isinstance(value, tuple) else (value,)
        for length in lengths:
            if not math.isfinite(length) or length < 20.0 or length > 100_000.0:
                raise ValueError("a ring length must be between 20 and 100000 metres")
        if isinstance(value, tuple) and value[0] > value[1]:
            raise ValueError("a length range is [low, high] with low <= high")
        return value

    @model_validator(mode="after")
    def _ring_is_single_lane(self) -> ScenarioConfig:
        if self.type == "ring" and self.lanes != 1:
            raise ValueError(
                f"scenario.type ring has one lane, got lanes: {self.lanes}; "
                "use type: multilane_ring for several lanes"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _multilane_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") == "multilane_ring" and "lanes" not in data:
            data = {**data, "lanes": 2}
        return data

    @property
    def min_length(self) -> float:
        """The shortest loop this scenario can produce (m), junctions excluded."""
        if self.type == "figure_eight":
            return (4 + 3 * math.pi) * self.radius
        return self.length[0] if isinstance(self.length, tuple) else self.length

    @property
    def max_length(self) -> float:
        """The longest loop this scenario can produce (m), junctions excluded."""
        if self.type == "figure_eight":
            return self.min_length
        return self.length[1] if isinstance(self.length, tuple) else self.length


class ControllerConfig(_Section):
    """Who drives a vehicle group: a registered controller name and its parameters."""

    type: str = Field(
        "sumo",
        description="sumo (SUMO's own car-following), rl (the learning agent), or a flowsim "
        "controller: idm, ovm, bando_ftl, linear_ovm, gipps, follower_stopper, pi_saturation.",
    )
    params: dict[str, float] = Field(default_factory=dict, description="Controller parameters.")

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"type": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _check_known(self) -> ControllerConfig:
        from flowsim.controllers import CONTROLLERS, SPECIAL_CONTROLLERS, make_controller

        if self.type in SPECIAL_CONTROLLERS:
            if self.params:
                raise ValueError(
                    f"controller '{self.type}' takes no params; set the group's vehicle "
                    "attributes (accel, decel, tau, min_gap, max_speed) instead"
                )
            return self
        if self.type not in CONTROLLERS:
            valid = sorted([*SPECIAL_CONTROLLERS, *CONTROLLERS])
            raise ValueError(f"unknown controller '{self.type}'; valid: {', '.join(valid)}")
        make_controller(self.type, self.params)
        return self


class VehicleGroup(_Section):
    """A group of identical vehicles: SUMO vehicle type attributes plus who drives them."""

    type: str = Field(
        ...,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Group name, also the SUMO vType id (e.g. human, av).",
    )
    count: StrictInt = Field(..., ge=0, le=10_000, description="Number of vehicles.")
    controller: ControllerConfig = Field(default_factory=ControllerConfig)
    length: float = Field(5.0, gt=0, le=30, description="Vehicle length (m).")
    min_gap: float = Field(2.0, ge=0, le=20, description="Standstill gap (m).")
    accel: float = Field(1.0, gt=0, le=10, description="Maximum acceleration (m/s²).")
    decel: float = Field(1.5, gt=0, le=20, description="Comfortable deceleration (m/s²).")
    tau: float = Field(1.0, gt=0, le=10, description="Desired time headway (s).")
    max_speed: float = Field(30.0, gt=0, le=100, description="Maximum speed (m/s).")
    car_follow_model: Literal["IDM", "Krauss", "KraussPS", "ACC", "CACC", "EIDM"] = Field(
        "IDM", description="SUMO car-following model used when SUMO drives the group."
    )
    sigma: float = Field(
        0.0,
        ge=0,
        le=1,
        description="SUMO driver imperfection (dawdling) when SUMO drives the group; used by "
        "Krauss-type models and EIDM, ignored by SUMO's IDM.",
    )
    speed_dev: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Spread of SUMO's per-vehicle speed factor (desired speed = limit x "
        "factor, factor ~ N(1, speed_dev)); 0: every vehicle wants the limit.",
    )
    speed_mode: SpeedMode | None = Field(
        None,
        description="SUMO checks on speeds flowsim sets; default right_of_way for flowsim "
        "controllers, obey_safe_speed for rl.",
    )
    failsafes: list[str] | None = Field(
        None,
        description="Fail-safes applied in order to a flowsim controller's accelerations; "
        "default [safe_velocity, feasible_accel] for velocity controllers (follower_stopper, "
        "pi_saturation), [obey_speed_limit] for car-following models.",
    )
    color: str | None = Field(None, description="Colour in sumo-gui as 'r,g,b' (0-255).")

    @field_validator("color")
    @classmethod
    def _check_color(cls, color: str | None) -> str | None:
        if color is None:
            return None
        parts = [p.strip() for p in str(color).split(",")]
        if len(parts) not in (3, 4) or not all(p.isdigit() and int(p) <= 255 for p in parts):
            raise ValueError("a colour is 'r,g,b' with each part 0-255, e.g. '255,0,0'")
        return ",".join(parts)

    @field_validator("failsafes")
    @classmethod
    def _check_failsafes(cls, names: list[str] | None) -> list[str] | None:
        from flowsim.controllers.failsafe import FAILSAFES

        for name in names or []:
            if name not in FAILSAFES:
                raise ValueError(
                    f"unknown fail-safe '{name}'; valid: {', '.join(sorted(FAILSAFES))}"
                )
        return names

    @property
    def effective_failsafes(self) -> list[str]:
        """The fail-safes in force: the configured ones or the default for the controller."""
        if self.failsafes is not None:
            return self.failsafes
        if self.controller.type in ("follower_stopper", "pi_saturation"):
            # They return (v_cmd - v)/dt unclipped: bound it by safety and by what a car can do.
            return ["safe_velocity", "feasible_accel"]
        return ["obey_speed_limit"]

    @property
    def effective_speed_mode(self) -> SpeedMode:
        """The speed mode in force: the configured one or the default for the controller."""
        if self.speed_mode is not None:
            return self.speed_mode
        if self.controller.type == "rl":
            return SpeedMode.obey_safe_speed
        return SpeedMode.right_of_way


class EnvConfig(_Section):
    """The reinforcement-learning task on top of the scenario."""

    type: Literal[
        "wave_attenuation",
        "accel",
        "lane_change_accel",
        "merge",
        "traffic_light_grid",
        "multiagent_wave_attenuation",
        "multiagent_traffic_light_grid",
        "gym",
    ] = Field(
        "wave_attenuation",
        description="Registered env: wave_attenuation, accel, lane_change_accel, merge (AVs on "
        "a highway with an on-ramp), traffic_light_grid (signal control: grid, intersection, "
        "osm), gym (a Gymnasium id, env.id), or the PettingZoo envs "
        "multiagent_wave_attenuation and multiagent_traffic_light_grid.",
    )
    id: str | None = Field(None, description="Gymnasium env id when type is gym, e.g. CartPole-v1.")
    horizon: StrictInt = Field(3000, ge=1, le=10_000_000, description="Steps per episode.")
    warmup_steps: StrictInt = Field(
        750, ge=0, le=1_000_000, description="Steps simulated at reset before the agent acts."
    )
    sims_per_step: StrictInt = Field(
        1, ge=1, le=1000, description="SUMO steps each action is held for (one agent step)."
    )
    max_accel: float = Field(1.0, gt=0, le=20, description="Largest AV acceleration (m/s²).")
    max_decel: float = Field(1.0, gt=0, le=20, description="Largest AV deceleration (m/s²).")
    target_speed: float = Field(
        20.0, gt=0, le=100, description="Speed normalising the reward's speed term (m/s)."
    )
    speed_weight: float = Field(4.0, ge=0, description="Weight of mean speed in the reward.")
    accel_penalty: float = Field(4.0, ge=0, description="Weight of mean |AV accel| penalty.")
    wave_penalty: float = Field(
        0.0, ge=0, description="Weight of the speed std across vehicles (the wave) in the reward."
    )
    terminate_on_collision: bool = Field(True, description="End the episode on a collision.")
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
    num_rl: StrictInt = Field(
        5,
        ge=1,
        le=1000,
        description="merge: AVs the agent controls at once (first come, first served); "
        "others drive by SUMO's model until a slot frees up. Flow's merge: 5.",
    )
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
    signal_reward: Literal["diff_waiting_time", "queue", "pressure"] = Field(
        "diff_waiting_time",
        description="traffic_light_grid reward per signal: the drop in accumulated waiting "
        "time (sumo-rl's default), minus the queue (halted vehicles), or minus the pressure "
        "(vehicles in minus vehicles out).",
    )

    @model_validator(mode="after")
    def _gym_needs_id(self) -> EnvConfig:
        if self.type == "gym" and not self.id:
            raise ValueError("env.type gym needs env.id, a Gymnasium id such as CartPole-v1")
        if self.type != "gym" and self.id:
            raise ValueError(f"env.id is only for env.type gym (env.type is {self.type})")
        if self.id and ":" in self.id:
            raise ValueError(
                f"env.id {self.id!r}: a 'module:Env' id would make Gymnasium import that module "
                "from a config; import and register your env in Python, then give its plain id"
            )
        return self


class SimConfig(_Section):
    """How SUMO runs."""

    step_length: float = Field(0.1, ge=0.001, le=10, description="Simulation step (s).")
    backend: Literal["libsumo", "traci"] = Field(
        "libsumo", description="libsumo (in-process, fastest) or traci (needed for sumo-gui)."
    )
    seed: StrictInt = Field(
        0, ge=0, le=2**31 - 1, description="Seed for SUMO, flowsim's noise and unseeded resets."
    )
    gui: bool = Field(False, description="Run sumo-gui (needs backend traci).")
    teleport_time: float = Field(
        -1.0,
        ge=-1,
        le=1e9,
        description="SUMO --time-to-teleport (s); -1 disables teleporting jams.",
    )
    collision_action: Literal["warn", "remove", "teleport", "none"] = Field(
        "remove", description="SUMO --collision.action."
    )
    check_junction_collisions: bool = Field(
        True,
        description="SUMO --collision.check-junctions: also detect collisions inside junctions "
        "(the figure eight's crossing, intersections); SUMO alone checks lanes only.",
    )
    additional_files: list[ExistingPath] = Field(
        default_factory=list, description="Extra SUMO additional files (detectors, ...)."
    )

    @model_validator(mode="after")
    def _gui_needs_traci(self) -> SimConfig:
        if self.gui and self.backend != "traci":
            raise ValueError("gui: true needs backend: traci (libsumo cannot drive sumo-gui)")
        return self


class SamplerConfig(_Section):
    """Where rollouts run (filled in by the distributed sampler)."""

    num_workers: int = Field(0, ge=0, le=4096, description="Runner processes; 0 = in-process.")
    envs_per_worker: int = Field(1, ge=1, le=1024, description="Envs per runner.")
    rollout_fragment_length: int = Field(
        1000, ge=1, description="Steps each env contributes per sample call."
    )
    address: str | None = Field(
        None,
        description="Ray address: null (a local instance), auto, host:port or ray://host:port.",
    )
    resources_per_worker: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {"CPU": 1.0},
        description="Ray resources each runner actor reserves (e.g. {CPU: 1}).",
    )
    allow_oversubscription: bool = Field(
        False, description="Allow more runner CPUs than the cluster has (runners then queue)."
    )
    connect_timeout_s: float = Field(
        10.0, gt=0, le=600, description="Seconds to wait for a cluster at sampler.address."
    )
    max_runner_restarts: int = Field(
        100, ge=0, description="Runner actors the group may replace before giving up."
    )

    @field_validator("address")
    @classmethod
    def _check_address(cls, address: str | None) -> str | None:
        if address is None or address == "auto":
            return address
        host, _, port = address.removeprefix("ray://").rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                "an address is null (local Ray), auto, host:port or ray://host:port, "
                "e.g. 127.0.0.1:6379"
            )
        return address


#: Extra room (m) per vehicle at placement, so rounding never squeezes a gap below min_gap.
PLACEMENT_MARGIN = 0.01


def vehicle_spans(groups: list[VehicleGroup]) -> list[float]:
    """Road each vehicle needs at placement (m): length + min gap + margin, groups in order."""
    return [g.length + g.min_gap + PLACEMENT_MARGIN for g in groups for _ in range(g.count)]


class TRPOConfig(_Section):
    """TRPO's trust region and its separately fitted value function."""

    max_kl: float = Field(0.01, gt=0, le=1, description="KL bound of each policy step.")
    cg_iters: StrictInt = Field(10, ge=1, le=1000, description="Conjugate-gradient iterations.")
    cg_damping: float = Field(0.1, ge=0, description="Damping added to Fisher-vector products.")
    backtrack_iters: StrictInt = Field(
        10,
        ge=1,
        le=100,
        description="Line-search shrinks (by backtrack_coef) before the step is reverted.",
    )
    backtrack_coef: float = Field(0.8, gt=0, lt=1, description="Line-search shrink factor.")
    vf_epochs: StrictInt = Field(5, ge=1, le=1000, description="Value-function epochs per batch.")
    vf_lr: float = Field(1e-3, gt=0, le=1, description="Value-function Adam learning rate.")
    entropy_coef: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Entropy bonus in TRPO's surrogate; keeps the natural gradient from "
        "collapsing a Gaussian policy's std.",
    )


class ESConfig(_Section):
    """Evolution strategies (Salimans et al. 2017): antithetic noise from a shared table."""

    sigma: float = Field(0.02, gt=0, le=10, description="Std of parameter perturbations.")
    lr: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Adam step size of the ES update; null uses train.lr. ES wants steps of "
        "about 1e-2, gradient methods about 3e-4, so a config that trains both sets this.",
    )
    perturbations: StrictInt = Field(
        32, ge=1, le=1_000_000, description="Antithetic pairs evaluated per iteration."
    )
    episodes_per_perturbation: StrictInt = Field(
        1, ge=1, le=1000, description="Episodes averaged per perturbed policy."
    )
    noise_table_size: StrictInt = Field(
        25_000_000,
        ge=1_000,
        le=2_000_000_000,
        description="float32 entries in the shared noise table (25M = 100 MB in Ray's store).",
    )
    weight_decay: float = Field(0.005, ge=0, description="L2 coefficient in the Adam update.")
    eval_episodes: StrictInt = Field(
        0, ge=0, le=1000, description="Unperturbed episodes per iteration for the metrics."
    )


class TrainConfig(_Section):
    """The learning algorithm and its hyper-parameters."""

    algo: Literal["ppo", "trpo", "es"] = Field("ppo", description="Trainer: ppo, trpo or es.")
    iterations: StrictInt = Field(100, ge=1, le=10_000_000, description="Training iterations.")
    seed: StrictInt = Field(0, ge=0, le=2**31 - 1, description="Seed of the learner.")
    lr: float = Field(3e-4, gt=0, le=1, description="Adam learning rate.")
    lr_schedule: Literal["constant", "linear"] = Field(
        "constant", description="Learning rate over iterations: constant or linear to 0."
    )
    gamma: float = Field(0.99, gt=0, le=1, description="Discount factor.")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda.")
    clip: float = Field(0.2, gt=0, le=1, description="PPO ratio clip range.")
    clip_value: bool = Field(False, description="Clip the value loss like the policy loss.")
    epochs: StrictInt = Field(10, ge=1, le=1000, description="Passes over each batch.")
    minibatch_size: StrictInt = Field(64, ge=1, description="Transitions per gradient step.")
    entropy_coef: float = Field(0.0, ge=0, description="Entropy bonus weight.")
    vf_coef: float = Field(0.5, ge=0, description="Value loss weight.")
    max_grad_norm: float = Field(0.5, gt=0, description="Gradient norm clip.")
    target_kl: float | None = Field(
        None, gt=0, description="Stop an update's epochs once the KL exceeds this."
    )
    hidden: tuple[StrictInt, ...] = Field((64, 64), description="Hidden layer sizes.")
    init_log_std: float = Field(
        0.0, ge=-10, le=5, description="Initial log std of Gaussian policies (exploration)."
    )
    normalize_obs: bool = Field(True, description="Running mean/std observation normalisation.")
    keep_checkpoints: StrictInt = Field(3, ge=1, description="Latest checkpoints kept.")
    trpo: TRPOConfig = Field(default_factory=TRPOConfig, description="TRPO settings.")
    es: ESConfig = Field(default_factory=ESConfig, description="ES settings.")


def _default_vehicles() -> list[VehicleGroup]:
    return [
        VehicleGroup(type="human", count=21, controller={"type": "idm", "params": {"noise": 0.2}}),
        VehicleGroup(type="av", count=1, controller="rl", color="255,0,0"),
    ]


class FlowsimConfig(_Section):
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
    env: EnvConfig = Field(default_factory=EnvConfig)
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
        per_iteration = (
            self.sampler.rollout_fragment_length
            * self.sampler.envs_per_worker
            * max(self.sampler.num_workers, 1)
        )
        if self.train.algo != "es" and per_iteration < self.train.minibatch_size:
            raise ValueError(
                f"train.minibatch_size {self.train.minibatch_size} is larger than the batch of "
                f"{per_iteration} steps per iteration (sampler.rollout_fragment_length x "
                "envs_per_worker x num_workers); lower the minibatch or raise the fragment"
            )
        return self

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


# ---------------------------------------------------------------------------------------------
# Loading, overrides and errors


def _location(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part in ("tuple[float, float]", "float") or "[" in str(part):
            continue
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts) or "(top level)"


def _valid_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed at the mapping that holds ``loc``'s last key."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(str(part)) if hasattr(current, "model_fields") else None
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        current = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
    if current is None or not hasattr(current, "model_fields"):
        return []
    return list(current.model_fields)


def _format_errors(error: ValidationError, source: str) -> str:
    lines = []
    seen: set[str] = set()
    for item in error.errors():
        loc = tuple(item.get("loc", ()))
        key = _location(loc)
        if key in seen and loc:  # one message per key (a union reports once per branch)
            continue
        seen.add(key)
        value = item.get("input")
        try:
            shown = json.dumps(value, default=str) if not isinstance(value, dict) else "{…}"
        except (ValueError, RecursionError):  # a cycle, or an int too long to print
            shown = "(a value too large to show)"
        if len(shown) > 60:
            shown = shown[:57] + "..."
        kind = item.get("type", "")
        message = item.get("msg", "").removeprefix("Value error, ").rstrip(".")
        if key == "scenario.length" and "valid" in message and "between" not in message:
            message = "expected a length in metres or a range [low, high]"
        if not loc:  # a whole-file rule (e.g. the vehicles must fit): the message says it all
            lines.append(message + ".")
        elif kind == "extra_forbidden":
            valid = _valid_keys(FlowsimConfig, loc)
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            lines.append(
                f"unknown key '{key}'. {hint}Valid keys here: {', '.join(valid)}. "
                "Remove or rename it."
            )
        elif kind == "missing":
            lines.append(f"missing key '{key}': add it (see `flowsim schema`).")
        else:
            lines.append(f"{key} = {shown}: {message}. Fix the value of '{key}'.")
    return f"invalid configuration in {source}:\n  " + "\n  ".join(lines)


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
        raise ConfigError(_format_errors(error, source)) from None
    except ConfigError as error:
        raise ConfigError(f"invalid configuration in {source}:\n  {error}") from None
    except (TypeError, ValueError, RecursionError) as error:
        raise ConfigError(f"invalid configuration in {source}: {error}") from None


#: YAML's merge key (``<<: *base``) and value key (``=``) as the resolver tags them.
_MERGE_TAG = "tag:yaml.org,2002:merge"
_VALUE_TAG = "tag:yaml.org,2002:value"

#: Values a config may expand to once YAML aliases (``*name``) and merge keys (``<<``) are
#: followed; real ones hold a few hundred. A cap keeps an alias bomb ("billion laughs") from
#: exhausting time and memory.
MAX_CONFIG_VALUES = 100_000

#: Brackets (``[`` / ``{``) a YAML value may nest; real configs nest a few. PyYAML's scanner
#: slows with every open bracket (a line of 5000 took seconds), so deeper text is refused early.
MAX_BRACKET_DEPTH = 64


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping (YAML keeps the last) and
    resolves merge keys (``<<: *base``) within :data:`MAX_CONFIG_VALUES`.

    A mapping's merges are resolved once: the merged keys come first and its own keys override
    them (YAML's rule; of several merged mappings, ``<<: [*a, *b]``, the earlier wins). A key
    that arrives through several merges is kept once, so nested merges never grow a mapping
    past its distinct keys, and every merged key counts toward the cap.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._flattened: set[int] = set()  # ids of mapping nodes whose merges are resolved
        self._flattening: set[int] = set()  # being resolved: merging one of these is a cycle
        self._merged = 0  # key / value pairs copied by merges so far

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError, LookupError, TypeError, AttributeError) as error:
            # PyYAML's constructors raise these for a 5000-digit integer, a 13th month, or a
            # malformed explicit tag (`!!int` with no digits, `!!bool maybe`)
            tag = node.tag.rsplit(":", 1)[-1]
            shown = node.value if isinstance(node, yaml.ScalarNode) else "..."
            reason = str(error).split(";")[0]  # drop Python's hint about interpreter limits
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"{shown[:40]!r} is not a valid {tag} ({reason})",
                node.start_mark,
            ) from None

    def fetch_flow_collection_start(self, TokenClass: type) -> None:
        if self.flow_level >= MAX_BRACKET_DEPTH:
            raise yaml.scanner.ScannerError(
                None, None, f"brackets nest deeper than {MAX_BRACKET_DEPTH} levels", self.get_mark()
            )
        super().fetch_flow_collection_start(TokenClass)

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """Check the mapping's own keys, then put the merged keys they do not override first."""
        if id(node) in self._flattened:
            return
        if id(node) in self._flattening:
            raise yaml.constructor.ConstructorError(
                None, None, "a merge (<<) refers to a mapping that contains it", node.start_mark
            )
        self._flattening.add(id(node))
        own: dict[Any, tuple[yaml.Node, yaml.Node]] = {}
        sources: list[yaml.MappingNode] = []
        merge_mark = None
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                if merge_mark is not None:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        "key '<<' appears twice in one mapping; merge several with <<: [*a, *b]",
                        key_node.start_mark,
                    )
                merge_mark = key_node.start_mark
                sources = self._merge_sources(value_node)
                continue
            if key_node.tag == _VALUE_TAG:  # PyYAML reads a bare `=` key as the text "="
                key_node.tag = "tag:yaml.org,2002:str"
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a name, not a list or mapping", key_node.start_mark
                ) from None
            if key in own:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice in one mapping", key_node.start_mark
                )
            own[key] = (key_node, value_node)
        merged: dict[Any, tuple[yaml.Node, yaml.Node]] = {}
        for source in sources:
            self.flatten_mapping(source)
            self._merged += len(source.value)
            if self._merged > MAX_CONFIG_VALUES:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"its merge keys (<<) copy more than {MAX_CONFIG_VALUES:,} values; a flowsim "
                    "config is far smaller",
                    merge_mark,
                )
            for key_node, value_node in source.value:
                key = self.construct_object(key_node, deep=True)  # checked when it was flattened
                if key not in own:
                    merged.setdefault(key, (key_node, value_node))
        node.value = [*merged.values(), *own.values()]
        self._flattening.discard(id(node))
        self._flattened.add(id(node))

    @staticmethod
    def _merge_sources(value_node: yaml.Node) -> list[yaml.MappingNode]:
        """The mappings a ``<<`` key merges: one mapping, or a list of mappings."""
        if isinstance(value_node, yaml.MappingNode):
            return [value_node]
        if isinstance(value_node, yaml.SequenceNode) and all(
            isinstance(item, yaml.MappingNode) for item in value_node.value
        ):
            return list(value_node.value)
        raise yaml.constructor.ConstructorError(
            None,
            None,
            "a merge key (<<) takes a mapping or a list of mappings, e.g. <<: *base",
            value_node.start_mark,
        )


class _YAMLSyntaxError(ConfigError):
    """Text that does not parse as YAML, as opposed to YAML holding values flowsim refuses."""


def _load_yaml(text: str, source: str, fix: str = "Fix the syntax.") -> Any:
    """Parse ``text`` with the safe loader; any problem is a ConfigError naming ``source``.

    Unparsable text raises :class:`_YAMLSyntaxError` (a ConfigError); object tags, malformed
    tagged values, deep nesting and alias bombs raise a plain ConfigError ending in ``fix``.
    """
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        if isinstance(error, yaml.constructor.ConstructorError):
            raise ConfigError(f"{source} is not valid YAML{where}: {problem}. {fix}") from None
        raise _YAMLSyntaxError(
            f"{source} is not valid YAML{where}: {problem}. Fix the syntax."
        ) from None
    except (RecursionError, MemoryError):
        raise ConfigError(
            f"{source} nests too deeply or is too big for a flowsim config."
        ) from None
    except (ValueError, OverflowError, LookupError, TypeError, AttributeError) as error:
        # what construct_object could not place: a malformed collection tag (`!!set [a]`)
        reason = str(error).split(";")[0]  # drop Python's hint about interpreter limits
        raise ConfigError(
            f"{source} holds a value YAML cannot read ({type(error).__name__}: {reason}). Fix "
            "the value, or drop its explicit tag (!!int, !!float, !!timestamp, !!set, ...)."
        ) from None
    try:
        _check_expanded_size(data, source)
    except RecursionError:
        raise ConfigError(f"{source} nests too deeply to be a flowsim config.") from None
    return data


def _read_yaml(path: Path) -> Any:
    if not path.exists():
        raise ConfigError(
            f"config file not found: {path}. Check the path (e.g. scenarios/ring.yaml)."
        )
    if not path.is_file():
        raise ConfigError(f"config path is not a file: {path}. Give a YAML file.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; save the YAML file as UTF-8.") from None
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}. Check its permissions.") from None
    return _load_yaml(text, str(path))


def _check_expanded_size(data: Any, source: str) -> None:
    """Refuse a document whose aliases refer to themselves or expand past the cap."""
    sizes: dict[int, int] = {}  # by id: an alias is the same object, counted once per use
    open_ids: set[int] = set()

    def size(value: Any) -> int:
        if not isinstance(value, dict | list):
            return 1
        if id(value) in sizes:
            return sizes[id(value)]
        if id(value) in open_ids:
            raise ConfigError(
                f"{source}: an alias (*name) refers to a mapping or list that contains it; "
                "a config cannot hold itself. Replace the alias with the values."
            )
        open_ids.add(id(value))
        children = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        total = 1 + sum(size(child) for child in children)
        open_ids.discard(id(value))
        if total > MAX_CONFIG_VALUES:
            raise ConfigError(
                f"{source}: its aliases (*name) expand to more than {MAX_CONFIG_VALUES:,} "
                "values; a flowsim config is far smaller. Write the values out instead of "
                "nesting aliases."
            )
        sizes[id(value)] = total
        return total

    size(data)


def _shown(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters for a message (a key or value may be any size)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_index(part: str) -> int | None:
    """``part`` as a list index (ASCII digits only: ``int`` also reads '²' and '٣'), or None."""
    return int(part) if part.isascii() and part.isdigit() and len(part) < 19 else None


def _default_at(defaults: Any, part: str) -> Any:
    """The default value under ``part`` of a defaults node, deep-copied; None if absent."""
    if isinstance(defaults, dict):
        return copy.deepcopy(defaults.get(part))
    index = _as_index(part)
    if isinstance(defaults, list) and index is not None and index < len(defaults):
        return copy.deepcopy(defaults[index])
    return None


def _list_slot(node: list[Any], part: str, dotted: str) -> int:
    """The index ``part`` names in the list ``node``; a ConfigError if it names none."""
    index = _as_index(part)
    if index is None or index >= len(node):
        raise ConfigError(
            f"--set {_shown(dotted)}: '{_shown(part, 20)}' is not an index of a list of "
            f"{len(node)} items."
        )
    return index


def _set_dotted(data: dict[str, Any], dotted: str, value: Any, defaults: Any = None) -> None:
    """Set ``a.b.0.c = value`` in nested data; a missing branch starts from its default."""
    parts = dotted.split(".")
    node: Any = data
    for index, part in enumerate(parts[:-1]):
        default = _default_at(defaults, part)
        if isinstance(node, list):
            node, defaults = node[_list_slot(node, part, dotted)], default
            continue
        if not isinstance(node, dict):
            raise ConfigError(
                f"--set {_shown(dotted)}: '{_shown(part, 20)}' is not inside a mapping."
            )
        if isinstance(node.get(part), str) and part == "controller":
            node[part] = {"type": node[part]}  # expand the shorthand `controller: idm`
        if part not in node or node[part] is None:
            fresh = default if default is not None else None
            is_index = _as_index(parts[index + 1]) is not None
            node[part] = fresh if fresh is not None else ([] if is_index else {})
        node, defaults = node[part], default
    last = parts[-1]
    if isinstance(node, list):
        node[_list_slot(node, last, dotted)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(
            f"--set {_shown(dotted)}: the parent of '{_shown(last, 20)}' is not a mapping."
        )


def _parse_override(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` as the dotted key and the value read as YAML (text when it is not YAML)."""
    if "=" not in item:
        raise ConfigError(
            f"--set '{_shown(item)}' must look like key=value, e.g. env.horizon=1000."
        )
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set '{_shown(item)}': the key must be dotted names, e.g. sim.seed=3.")
    if not raw.strip():
        return key, ""
    try:
        value = _load_yaml(
            raw,
            f"--set {_shown(key)}: the value",
            fix=f"Quote a value meant as text: --set '{_shown(key, 30)}=\"...\"'.",
        )
    except _YAMLSyntaxError:
        value = raw  # not YAML at all (an unclosed bracket): the text itself
    return key, value


def _overrides_source(source: str, keys: list[str]) -> str:
    """Where validated data came from, naming the overridden keys (for error messages)."""
    return f"{source} {', '.join(_shown(key) for key in keys)}" if keys else source


def apply_overrides(
    config: FlowsimConfig | dict[str, Any], overrides: list[str] | None, source: str = "--set"
) -> FlowsimConfig:
    """Return ``config`` with ``key=value`` overrides applied (values parsed as YAML).

    Raises:
        ConfigError: an override is malformed or gives an invalid value; the message names
            its key.
    """
    if isinstance(config, FlowsimConfig):
        data = config.model_dump(mode="json", exclude_unset=False)
    else:
        data = dict(config)
    keys = []
    for item in overrides or []:
        key, value = _parse_override(item)
        _set_dotted(data, key, value)
        keys.append(key)
    return parse_config(data, source=_overrides_source(source, keys))


def load_config(path: str | Path, overrides: list[str] | None = None) -> FlowsimConfig:
    """Load a YAML experiment file, apply ``key=value`` overrides and validate it."""
    path = Path(path)
    raw = _read_yaml(path)
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(
            f"invalid configuration in {path}: the top level must be a mapping of sections "
            f"(name, scenario, vehicles, env, sim, ...), got {type(raw).__name__}."
        )
    data = dict(raw or {})
    defaults = FlowsimConfig().model_dump(mode="json") if overrides else None
    keys = []
    for item in overrides or []:
        key, value = _parse_override(item)
        _set_dotted(data, key, value, defaults)
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
    """The JSON Schema of a flowsim YAML file (for editor autocompletion)."""
    schema = FlowsimConfig.model_json_schema()
    schema["title"] = "flowsim experiment"
    return schema
