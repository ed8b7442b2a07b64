"""The hierarchical expert driver of the multi-lane ring, and drivers built from procedures.

Each AV of ``flowsim/LaneChangeRing-v0`` (``env.type: lane_change_accel``) runs its own call
stack over the same procedures. A procedure sees the AV's *features* (:func:`ring_features`),
a function of the env's observation (speeds, positions and lanes of every vehicle), so a
learned program needs nothing the env does not show. Elementary action of one AV: a lane
choice (categorical: 0 right, 1 keep, 2 left) and an acceleration (m/s², real).

The expert (rule-based, over the same features):

- ``Drive`` (root, only calls): ``Yield`` when the gap ahead is under 6 m; else
  ``ChangeLane(direction)`` when the leader is near (< 30 m) and a neighbouring lane offers
  15 m more room ahead with a safe gap behind; else ``Follow`` under 40 m; else ``Cruise``.
- ``Cruise``: accelerate towards 25 m/s; stops when a leader comes within 35 m, or after 20
  steps (Drive reconsiders).
- ``Follow``: IDM behind the leader (v0 25 m/s, T 1 s, s0 2 m, a 1.5, b 2); stops when the
  gap opens beyond 45 m, or after 20 steps.
- ``ChangeLane(direction)``: commands the change at its first step, then follows for 1 s.
- ``Yield``: brakes at 2.5 m/s² until the gap ahead is 12 m again (at most 10 steps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flowsim.hierarchy.neural import ProcedureSpec, ProgramSpec
from flowsim.hierarchy.procedures import Act, Call, Frame, Procedure

DRIVE, CRUISE, FOLLOW, CHANGE_LANE, YIELD = range(5)
PROCEDURE_NAMES = ("Drive", "Cruise", "Follow", "ChangeLane", "Yield")
RIGHT, KEEP, LEFT = 0, 1, 2
#: ChangeLane's argument: 0 to the right, 1 to the left.
DIRECTIONS = ("right", "left")
FEATURES = (
    "speed",
    "gap",
    "leader_relative_speed",
    "left_exists",
    "left_gap_ahead",
    "left_gap_behind",
    "left_leader_relative_speed",
    "left_follower_relative_speed",
    "right_exists",
    "right_gap_ahead",
    "right_gap_behind",
    "right_leader_relative_speed",
    "right_follower_relative_speed",
)
#: Gaps are divided by this (m) and capped at 1 in the features.
GAP_SCALE = 100.0
MAX_ACCEL = 3.0
#: Speed the expert cruises at and its IDM desired speed (m/s).
DESIRED_SPEED = 30.0


@dataclass(frozen=True)
class RingLayout:
    """What turns an env observation into per-AV features: vehicle count, the AVs' slots,
    loop length, lanes, the speed normaliser and the vehicles' length."""

    num_vehicles: int
    av_slots: tuple[int, ...]
    length: float
    lanes: int
    max_speed: float
    vehicle_length: float = 5.0

    @classmethod
    def of(cls, env: Any) -> RingLayout:
        """The layout of a reset ``LaneChangeAccelEnv`` (or any multi-lane ``AccelEnv``)."""
        inner = env.unwrapped
        instance = inner.simulation.instance
        if instance is None or getattr(inner, "_features", 0) != 3:
            raise ValueError("the ring expert needs a reset multi-lane accel / lane-change env")
        lengths = [g.length for g in inner.config.vehicles if getattr(g, "length", None)]
        return cls(
            num_vehicles=inner.num_vehicles,
            av_slots=tuple(int(i) for i in inner._av_indices),
            length=float(instance.length),
            lanes=int(instance.lanes),
            max_speed=float(inner.max_speed),
            vehicle_length=float(max(lengths)) if lengths else 5.0,
        )


def ring_features(obs: np.ndarray, layout: RingLayout) -> np.ndarray:
    """Per-AV features (num_avs, 13) from the env observation (see :data:`FEATURES`)."""
    n, vmax, length = layout.num_vehicles, layout.max_speed, layout.length
    speed = obs[:n] * vmax
    position = obs[n : 2 * n] * length
    lane = np.rint(obs[2 * n : 3 * n] * max(layout.lanes - 1, 1)).astype(np.int64)
    out = np.zeros((len(layout.av_slots), len(FEATURES)), dtype=np.float32)
    for row, av in enumerate(layout.av_slots):
        out[row, 0] = speed[av] / vmax
        others = np.arange(n) != av
        ahead = np.mod(position - position[av], length)
        for column, offset in ((1, 0), (3, 1), (8, -1)):
            target = lane[av] + offset
            exists = 0 <= target < layout.lanes
            if offset:
                out[row, column] = float(exists)
                column += 1
            if not exists:
                if offset:
                    out[row, column : column + 4] = (0.0, 0.0, 0.0, 0.0)
                continue
            mask = others & (lane == target)
            if not mask.any():
                gap_ahead = gap_behind = GAP_SCALE
                lead_dv = follow_dv = 0.0
            else:
                dist = ahead[mask]
                k_ahead, k_behind = int(np.argmin(dist)), int(np.argmax(dist))
                gap_ahead = dist[k_ahead] - layout.vehicle_length
                gap_behind = length - dist[k_behind] - layout.vehicle_length
                lead_dv = speed[mask][k_ahead] - speed[av]
                follow_dv = speed[mask][k_behind] - speed[av]
            out[row, column] = min(max(gap_ahead, 0.0), GAP_SCALE) / GAP_SCALE
            if offset == 0:
                out[row, column + 1] = lead_dv / vmax
            else:
                out[row, column + 1] = min(max(gap_behind, 0.0), GAP_SCALE) / GAP_SCALE
                out[row, column + 2] = lead_dv / vmax
                out[row, column + 3] = follow_dv / vmax
    return out


def ring_spec(hidden: tuple[int, ...] = (64, 64), pc_cap: int = 20) -> ProgramSpec:
    """The program shape of the ring driver: Drive calls four acting procedures."""
    return ProgramSpec(
        procedures=(
            ProcedureSpec(
                "Drive", callees=(CRUISE, FOLLOW, CHANGE_LANE, YIELD), can_act=False, use_pc=False
            ),
            ProcedureSpec("Cruise"),
            ProcedureSpec("Follow"),
            ProcedureSpec("ChangeLane", num_args=2),
            ProcedureSpec("Yield"),
        ),
        obs_dim=len(FEATURES),
        discrete_actions=(3,),
        continuous_actions=1,
        pc_cap=pc_cap,
        hidden=hidden,
    )


class Reading:
    """The features of one AV in physical units."""

    def __init__(self, f: np.ndarray, vmax: float) -> None:
        self.speed = float(f[0]) * vmax
        self.gap = float(f[1]) * GAP_SCALE
        self.leader_speed = self.speed + float(f[2]) * vmax
        # per side (left, right): exists, gap ahead, gap behind, follower relative speed
        self.sides = [
            (
                bool(f[c] > 0.5),
                float(f[c + 1]) * GAP_SCALE,
                float(f[c + 2]) * GAP_SCALE,
                float(f[c + 4]) * vmax,
            )
            for c in (3, 8)
        ]


def idm_accel(r: Reading, v0: float = DESIRED_SPEED) -> float:
    """The IDM acceleration (m/s²) behind the leader that ``r`` describes, desired speed ``v0``."""
    headway, s0, a, b = 0.6, 2.0, 1.5, 2.0
    desired = s0 + r.speed * headway + r.speed * (r.speed - r.leader_speed) / (2 * (a * b) ** 0.5)
    accel = a * (1 - (r.speed / v0) ** 4 - (max(desired, 0.0) / max(r.gap, 0.1)) ** 2)
    return float(np.clip(accel, -MAX_ACCEL, MAX_ACCEL))


class Rule(Procedure):
    """A rule-based procedure over an expert's features (speed normaliser ``vmax``); an expert
    with other features sets ``reading`` to its own :class:`Reading` subclass."""

    reading: type[Reading] = Reading

    def __init__(self, vmax: float) -> None:
        self.vmax = vmax

    def read(self, obs: np.ndarray) -> Any:
        """The features ``obs`` in physical units (a ``self.reading``)."""
        return self.reading(obs, self.vmax)


class RootRule(Rule):
    """A rule-based root procedure: it never terminates."""

    def terminate(self, obs: np.ndarray, frame: Frame) -> bool:
        """Never: the root runs for the whole episode."""
        return False


class Drive(RootRule):
    """Root: pick the sub-procedure for the situation (never terminates)."""

    name = "Drive"

    def operate(self, obs: np.ndarray, frame: Frame) -> Call:
        r = self.read(obs)
        if r.gap < 8.0:
            return Call(YIELD)
        if r.gap < 30.0:
            for arg, side in ((1, r.sides[0]), (0, r.sides[1])):
                exists, ahead, behind, follower_dv = side
                if exists and ahead > r.gap + 5.0 and behind > 8.0 and follower_dv < 4.0:
                    return Call(CHANGE_LANE, arg)
        return Call(FOLLOW) if r.gap < 40.0 else Call(CRUISE)


class Cruise(Rule):
    """Free road: accelerate towards 25 m/s."""

    name = "Cruise"

    def terminate(self, obs: np.ndarray, frame: Frame) -> bool:
        return self.read(obs).gap < 35.0 or frame.pc >= 20

    def operate(self, obs: np.ndarray, frame: Frame) -> Act:
        accel = float(np.clip(0.6 * (DESIRED_SPEED - self.read(obs).speed), -MAX_ACCEL, MAX_ACCEL))
        return Act((KEEP,), (accel,))


class Follow(Rule):
    """Car following (IDM) behind the leader."""

    name = "Follow"

    def terminate(self, obs: np.ndarray, frame: Frame) -> bool:
        return self.read(obs).gap > 45.0 or frame.pc >= 20

    def operate(self, obs: np.ndarray, frame: Frame) -> Act:
        return Act((KEEP,), (idm_accel(self.read(obs)),))


class ChangeLane(Rule):
    """Command a lane change (argument: 0 right, 1 left), then follow for 1 s."""

    name = "ChangeLane"

    def terminate(self, obs: np.ndarray, frame: Frame) -> bool:
        return frame.pc >= 10

    def operate(self, obs: np.ndarray, frame: Frame) -> Act:
        lane = (LEFT if frame.arg == 1 else RIGHT) if frame.pc == 0 else KEEP
        return Act((lane,), (idm_accel(self.read(obs)),))


class Yield(Rule):
    """Too close: brake to open the gap."""

    name = "Yield"

    def terminate(self, obs: np.ndarray, frame: Frame) -> bool:
        return self.read(obs).gap >= 12.0 or frame.pc >= 10

    def operate(self, obs: np.ndarray, frame: Frame) -> Act:
        return Act((KEEP,), (-2.5,))


def expert_procedures(vmax: float) -> list[Procedure]:
    """The expert's procedures, indexed as in :func:`ring_spec`."""
    return [Drive(vmax), Cruise(vmax), Follow(vmax), ChangeLane(vmax), Yield(vmax)]
