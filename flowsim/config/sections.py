"""The experiment's section models: scenario, vehicles and their controllers, sim, sampler.

:class:`Section` is the strict base of every section (unknown keys are errors, values are
checked on assignment too). Each model describes and checks its section only; the rules that
span sections live on :class:`~flowsim.config.root.FlowsimConfig`.

Example:
    >>> ScenarioConfig(type="multilane_ring").lanes
    2
"""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

__all__ = [
    "OPEN_SCENARIOS",
    "PLACEMENT_MARGIN",
    "RESCO_MAPS",
    "BottleneckConfig",
    "ControllerConfig",
    "ExistingPath",
    "GridConfig",
    "InflowConfig",
    "IntersectionConfig",
    "MergeConfig",
    "OSMConfig",
    "SamplerConfig",
    "ScenarioConfig",
    "Section",
    "SignalConfig",
    "SimConfig",
    "SpeedMode",
    "SumoConfig",
    "VehicleGroup",
    "vehicle_spans",
]


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Resolve a path relative to the config file's folder and require that it exists."""
    base = (info.context or {}).get("base_dir")
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    try:
        exists, is_file = path.exists(), path.is_file()
    except OSError as error:  # e.g. a name longer than the file system allows
        raise ValueError(f"{str(path)[:80]}… cannot be a file here: {error.strerror}") from None
    if not exists:
        raise ValueError(f"file not found: {path} (paths resolve relative to the YAML file)")
    if not is_file:
        raise ValueError(f"{path} is a folder, not a file")
    return path.resolve()


ExistingPath = Annotated[Path, AfterValidator(_resolve_path)]


class Section(BaseModel):
    """Strict base of a section: unknown keys are errors, values are checked on assignment too."""

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


class GridConfig(Section):
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


class IntersectionConfig(Section):
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


class MergeConfig(Section):
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


class BottleneckConfig(Section):
    """Flow's two-stage lane-drop bottleneck (a scaled Bay Bridge): 4N lanes, then 2N, then N.

    Edges ``1`` to ``5`` are 100, 310, 140, 280 and 155 m long, as Flow's ``BottleneckNetwork``;
    the drops sit at zipper junctions after edges ``3`` and ``4``, where lanes 2k and 2k+1 join
    lane k.
    """

    scaling: StrictInt = Field(
        1,
        ge=1,
        le=8,
        description="N, the factor on the lane counts (4N -> 2N -> N); Flow: 1 for bottleneck0 "
        "and 1, 2 for bottleneck2.",
    )
    human_lane_changes: bool = Field(
        False,
        description="Humans change lanes by SUMO's LC2013 (Flow's bottleneck1, lane-change mode "
        "1621); off: no vehicle changes lanes (Flow's mode 0). AVs (controller rl) never do.",
    )


class OSMConfig(Section):
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


class SignalConfig(Section):
    """How traffic lights are programmed when no agent controls them."""

    program: Literal["fixed", "actuated"] = Field(
        "actuated",
        description="Signal programme netconvert writes: fixed-time (static) or actuated "
        "(gap-based, extends green while vehicles arrive); Flow's grid benchmark is actuated.",
    )
    green: float = Field(31.0, ge=1, le=600, description="Green phase duration (s); Flow: 31.")
    yellow: float = Field(6.0, ge=1, le=60, description="Yellow phase duration (s); Flow: 6.")


class InflowConfig(Section):
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


#: RESCO's maps (Ault & Sharon 2021), shipped by the sumo-rl package (``scenario.sumo.resco``).
RESCO_MAPS = (
    "cologne1",
    "cologne3",
    "cologne8",
    "ingolstadt1",
    "ingolstadt7",
    "ingolstadt21",
    "grid4x4",
    "arterial4x4",
)


class SumoConfig(Section):
    """Your own SUMO files, used as they are: a ``.sumocfg``, a network with routes, or a RESCO map.

    Give exactly one of ``config`` (a ``.sumocfg``; the files it names resolve relative to it,
    as in SUMO), ``net_file`` (with ``route_files`` and ``additional_files``) or ``resco`` (one
    of RESCO's maps from the installed sumo-rl package). ``begin`` and ``end`` override the
    time window the ``.sumocfg`` sets. Paths resolve relative to the YAML file.
    """

    config: ExistingPath | None = Field(
        None, description="A SUMO configuration (.sumocfg) naming the network and routes."
    )
    net_file: ExistingPath | None = Field(
        None, description="A SUMO network (.net.xml), when no .sumocfg is given."
    )
    route_files: list[ExistingPath] = Field(
        default_factory=list,
        description="With net_file: SUMO route files (vehicles, trips, flows).",
    )
    additional_files: list[ExistingPath] = Field(
        default_factory=list,
        description="With net_file: SUMO additional files (vTypes, detectors, programmes).",
    )
    begin: float | None = Field(
        None,
        ge=0,
        le=1e9,
        description="First simulated second; default the .sumocfg's begin, else 0.",
    )
    end: float | None = Field(
        None,
        gt=0,
        le=1e9,
        description="Last second of the demand window (SUMO's --end); default the .sumocfg's.",
    )
    resco: Literal[RESCO_MAPS] | None = Field(  # type: ignore[valid-type]
        None,
        description="One of RESCO's maps (cologne1, cologne3, cologne8, ingolstadt1, ingolstadt7, "
        "ingolstadt21, grid4x4, arterial4x4) from the sumo-rl package (pip install "
        "'flowsim[resco]').",
    )

    @model_validator(mode="after")
    def _one_source(self) -> SumoConfig:
        given = [
            key
            for key, value in (
                ("config", self.config),
                ("net_file", self.net_file),
                ("resco", self.resco),
            )
            if value is not None
        ]
        if len(given) > 1:
            raise ValueError(
                "give one of config (a .sumocfg), net_file (a .net.xml with route_files) or "
                f"resco (a RESCO map name), not {' and '.join(given)}"
            )
        if given and self.net_file is None and (self.route_files or self.additional_files):
            key = "route_files" if self.route_files else "additional_files"
            raise ValueError(
                f"{key} goes with net_file; with {given[0]} the files come from the .sumocfg "
                "(list them there, or give net_file and route_files instead)"
            )
        if self.begin is not None and self.end is not None and self.begin >= self.end:
            raise ValueError(
                f"begin {self.begin:g} s is not before end {self.end:g} s; give begin < end, "
                "e.g. begin: 0 and end: 3600"
            )
        return self


#: Scenario types whose vehicles enter on inflows and leave at exits (no closed loop).
OPEN_SCENARIOS = ("merge", "bottleneck", "grid", "intersection", "osm", "sumo")


class ScenarioConfig(Section):
    """The road network and where vehicles start.

    ``length`` is a fixed ring length in metres, or ``[low, high]`` to draw a new length
    uniformly at every reset (Flow's ring used ``[220, 270]``). A figure eight's size is set by
    ``radius`` instead (its loop is ``4 r + 3 pi r`` long).
    """

    type: Literal[
        "ring",
        "multilane_ring",
        "figure_eight",
        "merge",
        "bottleneck",
        "grid",
        "intersection",
        "osm",
        "sumo",
    ] = Field(
        "ring",
        description="Network generator: ring (one lane), multilane_ring, figure_eight (two "
        "3/4 loops crossing at an unsignalised intersection), merge (highway with on-ramp), "
        "bottleneck (Flow's lane drop 4N -> 2N -> N), "
        "grid (N x M traffic lights), intersection (one signalised crossing), osm "
        "(an OpenStreetMap area) or sumo (your own SUMO files, or a RESCO map).",
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
    bottleneck: BottleneckConfig = Field(
        default_factory=BottleneckConfig, description="type bottleneck: lane scaling N."
    )
    osm: OSMConfig = Field(default_factory=OSMConfig, description="type osm: input and demand.")
    sumo: SumoConfig = Field(
        default_factory=SumoConfig,
        description="type sumo: your own .sumocfg, network and routes, or a RESCO map.",
    )
    signals: SignalConfig = Field(
        default_factory=SignalConfig, description="grid / intersection / osm: signal programme."
    )

    @property
    def open(self) -> bool:
        """True for networks that vehicles enter and leave (merge, grid, intersection, osm,
        sumo)."""
        return self.type in OPEN_SCENARIOS

    @model_validator(mode="after")
    def _sumo_input(self) -> ScenarioConfig:
        sumo = self.sumo
        if self.type == "sumo" and sumo.config is sumo.net_file is sumo.resco is None:
            raise ValueError(
                "scenario.type sumo needs one of sumo.config (a .sumocfg), sumo.net_file "
                "(a .net.xml, with sumo.route_files) or sumo.resco (a RESCO map name, e.g. "
                "cologne1)"
            )
        return self

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


class ControllerConfig(Section):
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


class VehicleGroup(Section):
    """A group of vehicles: SUMO vehicle type attributes plus who drives them.

    A group drives the vehicles it places (``count``) and those entering with its name as
    vType (inflows). On an open network it may instead claim vehicles of the route files:
    all of one vType (``vtype``) or a share of every inserted vehicle (``share``); claimed
    vehicles keep their own vType's attributes.
    """

    type: str = Field(
        ...,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Group name, also the SUMO vType id (e.g. human, av).",
    )
    count: StrictInt = Field(..., ge=0, le=10_000, description="Number of vehicles.")
    vtype: str | None = Field(
        None,
        min_length=1,
        description="Open networks: claim every vehicle of this vType of the route files "
        "(e.g. a .sumocfg's 'passenger'); count must be 0.",
    )
    share: float | None = Field(
        None,
        description="Open networks: claim this fraction (0, 1] of the inserted vehicles that no "
        "vtype group claims, drawn per vehicle with the episode's seed; count must be 0.",
    )
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
        "controllers and for groups that claim vehicles (vtype, share: they cross junctions), "
        "obey_safe_speed for other rl groups.",
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

    @field_validator("share")
    @classmethod
    def _check_share(cls, share: float | None) -> float | None:
        if share is not None and not 0 < share <= 1:
            raise ValueError(
                f"share {share} is outside (0, 1]: the fraction of inserted vehicles the group "
                "drives, e.g. 0.1"
            )
        return share

    @model_validator(mode="after")
    def _one_claim(self) -> VehicleGroup:
        if self.vtype is not None and self.share is not None:
            raise ValueError(
                "give vtype (claim one vType of the route files) or share (claim a fraction of "
                "inserted vehicles), not both"
            )
        if self.claims and self.count > 0:
            key = "vtype" if self.vtype is not None else "share"
            raise ValueError(
                f"count {self.count} with {key}: a group that claims vehicles of the route files "
                "places none of its own; set count: 0"
            )
        return self

    @property
    def claims(self) -> bool:
        """Whether the group claims vehicles of the route files (``vtype`` or ``share``)."""
        return self.vtype is not None or self.share is not None

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
        if self.controller.type == "rl" and not self.claims:
            return SpeedMode.obey_safe_speed
        return SpeedMode.right_of_way


class SimConfig(Section):
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


class SamplerConfig(Section):
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
