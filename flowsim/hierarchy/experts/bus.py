"""The bus expert: an AV serving stops on the two-lane ring, a task that needs memory.

A bus (an AV of ``flowsim/LaneChangeRing-v0``'s task) drives the loop, and at each of
:data:`STOPS` stops (evenly spaced, the first at the loop's origin) it pulls up to the stop
line, dwells for :data:`DWELL_STEPS` agent steps, then departs. While it dwells its features
(:func:`bus_features`: the ring features plus the distance to the next stop line) hardly
change, so the observation alone does not say whether to keep waiting or to leave: the
program counter of the ``Dwell`` frame does. A memoryless policy that clones the expert
step by step sees "stopped at a stop" followed by "brake" ten times and "accelerate" once.

Procedures (indices as in :func:`bus_spec`):

- ``Drive`` (root, only calls): ``Dwell`` when stopped within 3 m of a stop line; ``Approach``
  when the next stop line is within braking range (``v²/3 + 10`` m); else ``Yield`` (gap < 8 m),
  ``Follow`` (gap < 40 m) or ``Cruise``;
- ``Cruise``: accelerate towards 15 m/s; ``Follow``: IDM behind the leader; both stop when a
  stop comes within braking range or after 20 steps; ``Yield``: brake until the gap is 12 m;
- ``Approach``: brake so as to stop 1 m before the line (and no closer to the leader than IDM
  allows); stops once stopped (Drive then calls ``Dwell`` at the line, or ``Approach`` again
  behind a queue); it has no use for its program counter;
- ``Dwell``: hold the brake for :data:`DWELL_STEPS` steps, then accelerate; stops once the
  stop line is behind (the next stop is far).

A stop is *served* when a bus stands (speed < 0.5 m/s) within 3 m of its line for
:data:`DWELL_STEPS` consecutive steps (:func:`at_stop` marks such steps).
"""

from __future__ import annotations

import numpy as np

from flowsim.hierarchy.experts.ring import (
    FEATURES as RING_FEATURES,
)
from flowsim.hierarchy.experts.ring import (
    GAP_SCALE,
    KEEP,
    MAX_ACCEL,
    Reading,
    RingLayout,
    RootRule,
    Rule,
    idm_accel,
    ring_features,
)
from flowsim.hierarchy.neural import ProcedureSpec, ProgramSpec
from flowsim.hierarchy.procedures import Act, Call, Frame, Procedure

DRIVE, CRUISE, FOLLOW, YIELD, APPROACH, DWELL = range(6)
PROCEDURE_NAMES = ("Drive", "Cruise", "Follow", "Yield", "Approach", "Dwell")
FEATURES = (*RING_FEATURES, "stop_distance")
#: Stops on the loop, evenly spaced from its origin.
STOPS = 3
#: Agent steps a bus stands at a stop.
DWELL_STEPS = 10
#: The bus's cruising speed (m/s).
BUS_SPEED = 15.0
#: Within this distance (m) of a stop line, standing counts as being at the stop.
AT_STOP = 3.0


def bus_features(obs: np.ndarray, layout: RingLayout) -> np.ndarray:
    """Per-AV features (num_avs, 14): :func:`ring_features` and the distance to the next stop
    line ahead (divided by ``GAP_SCALE``, capped at 1)."""
    ring = ring_features(obs, layout)
    n = layout.num_vehicles
    position = obs[n : 2 * n][list(layout.av_slots)] * layout.length
    spacing = layout.length / STOPS
    distance = np.mod(-position, spacing)  # stops at 0, spacing, 2 * spacing, ...
    column = np.minimum(distance, GAP_SCALE) / GAP_SCALE
    return np.concatenate([ring, column[:, None].astype(np.float32)], axis=1)


def at_stop(features: np.ndarray, max_speed: float) -> np.ndarray:
    """Which AVs stand at a stop (speed < 0.5 m/s within ``AT_STOP`` m of its line)."""
    return (features[:, 0] * max_speed < 0.5) & (features[:, -1] * GAP_SCALE < AT_STOP)


def bus_spec(hidden: tuple[int, ...] = (64, 64), pc_cap: int = 20) -> ProgramSpec:
    """The program shape of the bus: Drive calls five acting procedures."""
    return ProgramSpec(
        procedures=(
            ProcedureSpec(
                "Drive",
                callees=(CRUISE, FOLLOW, YIELD, APPROACH, DWELL),
                can_act=False,
                use_pc=False,
            ),
            ProcedureSpec("Cruise"),
            ProcedureSpec("Follow"),
            ProcedureSpec("Yield"),
            ProcedureSpec("Approach", use_pc=False),
            ProcedureSpec("Dwell"),
        ),
        obs_dim=len(FEATURES),
        discrete_actions=(3,),
        continuous_actions=1,
        pc_cap=pc_cap,
        hidden=hidden,
    )


class _BusReading(Reading):
    def __init__(self, f: np.ndarray, vmax: float) -> None:
        super().__init__(f, vmax)
        self.stop = float(f[-1]) * GAP_SCALE


#: The bus brakes for a stop at this rate (m/s²).
STOP_DECEL = 1.5


def _braking_range(speed: float) -> float:
    return speed * speed / (2.0 * STOP_DECEL) + 10.0


class _BusRule(Rule):
    reading = _BusReading


class Drive(_BusRule, RootRule):
    """Root: serve the stop, approach it, or drive in traffic (never terminates)."""

    name = "Drive"

    def operate(self, obs: np.ndarray, frame: Frame) -> Call:
        r = self.read(obs)
        if r.stop < AT_STOP and r.speed < 0.5:
            return Call(DWELL)
        if r.stop < _braking_range(r.speed):
            return Call(APPROACH)
        if r.gap < 8.0:
            return Call(YIELD)
        return Call(FOLLOW) if r.gap < 40.0 else Call(CRUISE)


class Cruise(_BusRule):
    """Free road: accelerate towards the bus's speed."""

    name = "Cruise"

    def terminate(self, obs: np.ndarray, frame: Frame) -> bool:
        r = self.read(obs)
        return r.gap < 35.0 or r.stop < _braking_range(r.speed) or frame.pc >= 20

    def operate(self, obs: np.ndarray, frame: Frame) -> Act:
        accel = np.clip(0.6 * (BUS_SPEED - self.read(obs).speed), -MAX_ACCEL, MAX_ACCEL)
        return Act((KEEP,), (float(accel),))


def _bus_idm(r: Reading) -> float:
    return idm_accel(r, v0=BUS_SPEED)


class Follow(_BusRule):
    """Car following (IDM) behind the leader."""

    name = "Follow"

    def terminate(self, obs: np.ndarray, frame: Frame) -> bool:
        r = self.read(obs)
        return r.gap > 45.0 or r.stop < _braking_range(r.speed) or frame.pc >= 20

    def operate(self, obs: np.ndarray, frame: Frame) -> Act:
        return Act((KEEP,), (max(_bus_idm(self.read(obs)), -MAX_ACCEL),))


class Yield(_BusRule):
    """Too close: brake to open the gap."""

    name = "Yield"

    def terminate(self, obs: np.ndarray, frame: Frame) -> bool:
        return self.read(obs).gap >= 12.0 or frame.pc >= 10

    def operate(self, obs: np.ndarray, frame: Frame) -> Act:
        return Act((KEEP,), (-2.5,))


class Approach(_BusRule):
    """Brake to stop 1 m before the stop line (no closer to the leader than IDM allows)."""

    name = "Approach"

    def terminate(self, obs: np.ndarray, frame: Frame) -> bool:
        r = self.read(obs)
        return r.speed < 0.5 or r.stop > 90.0  # stopped, or the line is behind (overshot)

    def operate(self, obs: np.ndarray, frame: Frame) -> Act:
        r = self.read(obs)
        target = max(r.stop - 1.0, 0.0)
        wanted = (2.0 * STOP_DECEL * target) ** 0.5  # stops at the target braking steadily
        accel = min(2.0 * (wanted - r.speed), _bus_idm(r))  # reach it within about 0.5 s
        return Act((KEEP,), (float(np.clip(accel, -MAX_ACCEL, 1.5)),))


class Dwell(_BusRule):
    """Stand at the stop for ``DWELL_STEPS`` steps, then pull away."""

    name = "Dwell"

    def terminate(self, obs: np.ndarray, frame: Frame) -> bool:
        return self.read(obs).stop > 20.0 or frame.pc >= DWELL_STEPS + 10

    def operate(self, obs: np.ndarray, frame: Frame) -> Act:
        if frame.pc < DWELL_STEPS:
            return Act((KEEP,), (-MAX_ACCEL,))
        return Act((KEEP,), (max(min(1.5, _bus_idm(self.read(obs))), -MAX_ACCEL),))


def bus_procedures(vmax: float) -> list[Procedure]:
    """The expert's procedures, indexed as in :func:`bus_spec`."""
    return [Drive(vmax), Cruise(vmax), Follow(vmax), Yield(vmax), Approach(vmax), Dwell(vmax)]
