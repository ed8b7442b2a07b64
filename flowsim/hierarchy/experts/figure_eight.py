"""The figure-eight expert: an AV that yields at the crossing of Flow's figure eight.

Flow's figure eight (``scenario.type: figure_eight``, ``env.type: accel``, one lane) is one
loop that crosses itself at an unsignalised junction: vehicles reach the crossing point once
on the vertical straight (``bottom -> top``, the priority movement) and once on the horizontal
one (``right -> left``). The AV's speed mode ignores right of way, so whether it enters the
crossing in front of a vehicle on the other branch is its own decision.

Features (:data:`FEATURES`, :func:`figure_eight_features`), computed from the env's
observation alone (every vehicle's speed and position along the loop): the ring's ``speed``,
``gap`` and ``leader_relative_speed`` (same names and scales, so procedures learned on the ring
can be reused here), and for the next crossing: the AV's distance to the crossing point
(``junction_distance``), whether it enters on the priority branch (``junction_priority``), the
nearest vehicle approaching the same point on the other branch (``foe_distance``,
``foe_speed``) and how far the last vehicle to cross on the other branch has gone past it
(``foe_past``: small while it is still inside the crossing). Distances are divided by
``GAP_SCALE`` (100 m) and capped at 1; speeds by the speed limit.

Procedures (indices as in :func:`figure_eight_spec`; the elementary action is the ring's lane
choice, always "keep" on one lane, and an acceleration, so heads match the ring's):

- ``Drive`` (root, only calls): ``Yield`` when a vehicle on the crossing branch would reach the
  junction first (:func:`foe_first`); else ``Follow`` (gap < 40 m) or ``Cruise``;
- ``Cruise``: accelerate towards 30 m/s; ``Follow``: the ring's IDM; both stop when the gap
  changes regime, when a foe would reach the junction first, or after 20 steps;
- ``Yield``: brake so as to stand ``STOP_BEFORE`` m before the crossing point (no closer to the
  leader than IDM allows), and keep yielding *until the junction is clear*: nobody inside it
  and the next foe at least ``CLEAR_MARGIN`` s behind the AV's arrival. Drive calls Yield on a
  tighter test (``FOE_MARGIN``) than the one that ends it, so between the two the observation
  does not say whether to yield; the Yield frame on the stack does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flowsim.hierarchy.experts.ring import (
    DESIRED_SPEED,
    GAP_SCALE,
    KEEP,
    MAX_ACCEL,
    Reading,
    RingLayout,
    RootRule,
    Rule,
    idm_accel,
)
from flowsim.hierarchy.neural import ProcedureSpec, ProgramSpec
from flowsim.hierarchy.procedures import Act, Call, Frame, Procedure

DRIVE, CRUISE, FOLLOW, YIELD = range(4)
PROCEDURE_NAMES = ("Drive", "Cruise", "Follow", "Yield")
FEATURES = (
    "speed",
    "gap",
    "leader_relative_speed",
    "junction_distance",
    "junction_priority",
    "foe_distance",
    "foe_speed",
    "foe_past",
)
#: The AV watches the crossing from this distance (m).
WATCH = 40.0
#: Closer than this to the crossing point (m) the AV is committed: it no longer yields.
COMMIT = 5.0
#: Yield stands the AV this far (m) before the crossing point.
STOP_BEFORE = 8.0
#: A foe whose front is less than this (m) past the crossing point still occupies it.
OCCUPIED = 7.0
#: Drive yields when the foe arrives less than this (s) after the AV would.
FOE_MARGIN = 1.0
#: Yield ends when the next foe arrives at least this (s) after the AV would.
CLEAR_MARGIN = 2.0
#: Acceleration (m/s²) assumed for the AV's arrival time (it may be standing).
ETA_ACCEL = 1.5
#: Yield gives up after this many steps (Drive reconsiders).
YIELD_STEPS = 60


@dataclass(frozen=True)
class FigureEightLayout(RingLayout):
    """A :class:`RingLayout` of the figure eight plus where the loop crosses itself:
    ``crossings`` are the two loop positions (m) of the crossing point, the priority
    (vertical) branch's first."""

    crossings: tuple[float, float] = (0.0, 0.0)

    @classmethod
    def of(cls, env: Any) -> FigureEightLayout:
        """The layout of a reset one-lane ``AccelEnv`` on the figure eight."""
        inner = env.unwrapped
        instance = inner.simulation.instance
        if instance is None or getattr(inner, "_features", 0) != 2:
            raise ValueError("the figure-eight expert needs a reset one-lane accel env")
        offsets = instance.edge_offsets
        crossings = []
        for name in ("bottom", "right"):  # the straights entering the crossing
            internal = next(
                (e for e in offsets if e.startswith(":center") and offsets[e] > offsets[name]),
                None,
            )
            if internal is None:
                raise ValueError(
                    "the figure-eight expert needs scenario.type: figure_eight (no crossing)"
                )
            order = sorted(offsets.values())
            after = next((p for p in order if p > offsets[internal]), float(instance.length))
            crossings.append((offsets[internal] + after) / 2.0)  # the middle of the crossing
        lengths = [g.length for g in inner.config.vehicles if getattr(g, "length", None)]
        return cls(
            num_vehicles=inner.num_vehicles,
            av_slots=tuple(int(i) for i in inner._av_indices),
            length=float(instance.length),
            lanes=1,
            max_speed=float(inner.max_speed),
            vehicle_length=float(max(lengths)) if lengths else 5.0,
            crossings=(crossings[0], crossings[1]),
        )


def figure_eight_features(obs: np.ndarray, layout: RingLayout) -> np.ndarray:
    """Per-AV features (num_avs, 8) from the env observation (see :data:`FEATURES`)."""
    assert isinstance(layout, FigureEightLayout)
    n, vmax, length = layout.num_vehicles, layout.max_speed, layout.length
    speed = obs[:n] * vmax
    position = obs[n : 2 * n] * length
    present = (speed > 0) | (position > 0)  # a removed vehicle leaves zeros in its slot
    out = np.zeros((len(layout.av_slots), len(FEATURES)), dtype=np.float32)
    for row, av in enumerate(layout.av_slots):
        others = (np.arange(n) != av) & present
        out[row, 0] = speed[av] / vmax
        if others.any():
            ahead = np.mod(position[others] - position[av], length)
            k = int(np.argmin(ahead))
            out[row, 1] = min(max(ahead[k] - layout.vehicle_length, 0.0), GAP_SCALE) / GAP_SCALE
            out[row, 2] = (speed[others][k] - speed[av]) / vmax
        else:
            out[row, 1] = 1.0
        to_crossing = np.mod(np.array(layout.crossings) - position[av], length)
        mine = int(np.argmin(to_crossing))
        other = layout.crossings[1 - mine]
        out[row, 3] = min(to_crossing[mine], GAP_SCALE) / GAP_SCALE
        out[row, 4] = float(mine == 0)
        foe_distance, foe_speed, foe_past = GAP_SCALE, 0.0, GAP_SCALE
        if others.any():
            approach = np.mod(other - position[others], length)
            k = int(np.argmin(approach))
            if approach[k] < GAP_SCALE:
                foe_distance, foe_speed = float(approach[k]), float(speed[others][k])
            foe_past = min(float(np.min(np.mod(position[others] - other, length))), GAP_SCALE)
        out[row, 5] = foe_distance / GAP_SCALE
        out[row, 6] = foe_speed / vmax
        out[row, 7] = foe_past / GAP_SCALE
    return out


def figure_eight_spec(hidden: tuple[int, ...] = (64, 64), pc_cap: int = 20) -> ProgramSpec:
    """The program shape of the figure-eight driver: Drive calls three acting procedures."""
    return ProgramSpec(
        procedures=(
            ProcedureSpec("Drive", callees=(CRUISE, FOLLOW, YIELD), can_act=False, use_pc=False),
            ProcedureSpec("Cruise"),
            ProcedureSpec("Follow"),
            ProcedureSpec("Yield"),
        ),
        obs_dim=len(FEATURES),
        discrete_actions=(3,),
        continuous_actions=1,
        pc_cap=pc_cap,
        hidden=hidden,
    )


class _CrossingReading(Reading):
    """The features of one AV in physical units."""

    def __init__(self, f: np.ndarray, vmax: float) -> None:
        self.speed = float(f[0]) * vmax
        self.gap = float(f[1]) * GAP_SCALE
        self.leader_speed = self.speed + float(f[2]) * vmax
        self.junction = float(f[3]) * GAP_SCALE
        self.priority = bool(f[4] > 0.5)
        self.foe_distance = float(f[5]) * GAP_SCALE
        self.foe_speed = float(f[6]) * vmax
        self.foe_past = float(f[7]) * GAP_SCALE


def arrival_time(distance: float, speed: float, accel: float = ETA_ACCEL) -> float:
    """Seconds to cover ``distance`` m from ``speed`` m/s accelerating at ``accel`` m/s²."""
    return (-speed + (speed * speed + 2.0 * accel * max(distance, 0.0)) ** 0.5) / accel


def foe_first(r: _CrossingReading, margin: float = FOE_MARGIN) -> bool:
    """True when the AV, watching the crossing and not yet committed, should let a vehicle on
    the other branch go first: one is inside the crossing, or one would arrive less than
    ``margin`` s after the AV."""
    if not COMMIT <= r.junction < WATCH:
        return False
    if r.foe_past < OCCUPIED:
        return True
    if r.foe_distance >= WATCH or r.foe_speed < 0.1:  # nobody coming (a standing foe waits)
        return False
    return r.foe_distance / r.foe_speed < arrival_time(r.junction, r.speed) + margin


class _CrossingRule(Rule):
    reading = _CrossingReading


class Drive(_CrossingRule, RootRule):
    """Root: yield at the crossing, follow or cruise (never terminates)."""

    name = "Drive"

    def operate(self, obs: np.ndarray, frame: Frame) -> Call:
        r = self.read(obs)
        if foe_first(r):
            return Call(YIELD)
        return Call(FOLLOW) if r.gap < 40.0 else Call(CRUISE)


class Cruise(_CrossingRule):
    """Free road: accelerate towards 30 m/s."""

    name = "Cruise"

    def terminate(self, obs: np.ndarray, frame: Frame) -> bool:
        r = self.read(obs)
        return r.gap < 35.0 or foe_first(r) or frame.pc >= 20

    def operate(self, obs: np.ndarray, frame: Frame) -> Act:
        r = self.read(obs)
        accel = float(np.clip(0.6 * (DESIRED_SPEED - r.speed), -MAX_ACCEL, MAX_ACCEL))
        return Act((KEEP,), (min(accel, idm_accel(r)),))


class Follow(_CrossingRule):
    """Car following (the ring's IDM) behind the leader."""

    name = "Follow"

    def terminate(self, obs: np.ndarray, frame: Frame) -> bool:
        r = self.read(obs)
        return r.gap > 45.0 or foe_first(r) or frame.pc >= 20

    def operate(self, obs: np.ndarray, frame: Frame) -> Act:
        return Act((KEEP,), (idm_accel(self.read(obs)),))


class Yield(_CrossingRule):
    """Slow down to stand before the crossing until it is clear."""

    name = "Yield"

    def terminate(self, obs: np.ndarray, frame: Frame) -> bool:
        r = self.read(obs)
        return not foe_first(r, CLEAR_MARGIN) or frame.pc >= YIELD_STEPS

    def operate(self, obs: np.ndarray, frame: Frame) -> Act:
        r = self.read(obs)
        room = max(r.junction - STOP_BEFORE, 0.0)
        wanted = (2.0 * 2.0 * room) ** 0.5  # stands at the line braking at 2 m/s²
        accel = min(2.0 * (wanted - r.speed), idm_accel(r))
        return Act((KEEP,), (float(np.clip(accel, -MAX_ACCEL, 1.0)),))


def figure_eight_procedures(vmax: float) -> list[Procedure]:
    """The expert's procedures, indexed as in :func:`figure_eight_spec`."""
    return [Drive(vmax), Cruise(vmax), Follow(vmax), Yield(vmax)]
