"""Fail-safes: bounds on the accelerations a controller asks for, applied before the kernel.

Each fail-safe takes accelerations (m/s², shape (n,)) and returns bounded ones of the same
shape. The kernel applies an acceleration ``a`` by commanding the speed ``max(v + a·dt, 0)``
for the next step, and SUMO's default (Euler) update then moves the vehicle by that speed
times ``dt``; :func:`safe_velocity` relies on that update.

Example:
    >>> import numpy as np
    >>> from flowsim.controllers.base import FollowingState, zero_d

_ZERO = zero_d(0.0)
_FLOAT64 = np.dtype(np.float64)
    >>> state = FollowingState(
    ...     speed=np.array([10.0]),
    ...     leader_speed=np.array([0.0]),
    ...     headway=np.array([5.0]),
    ...     speed_limit=np.array([30.0]),
    ...     step_length=0.1,
    ... )
    >>> apply_failsafes(np.array([1.0]), state, ["safe_velocity", "feasible_accel"], 1.0, 7.5)
    array([-7.5])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flowsim.controllers.base import FollowingState, zero_d

_ZERO = zero_d(0.0)
_FLOAT64 = np.dtype(np.float64)

#: Names accepted by :func:`apply_failsafes`, in no particular order.
FAILSAFES: tuple[str, ...] = ("feasible_accel", "obey_speed_limit", "safe_velocity")


def feasible_accel(
    accel: np.ndarray, max_accel: float | np.ndarray, max_decel: float | np.ndarray
) -> np.ndarray:
    """Clip accelerations to ``[-max_decel, max_accel]`` (both positive magnitudes, m/s²)."""
    return np.clip(accel, -np.abs(max_decel), max_accel)


def obey_speed_limit(
    accel: np.ndarray, speed: np.ndarray, speed_limit: np.ndarray, dt: float
) -> np.ndarray:
    """Lower accelerations that would take the speed above ``speed_limit`` in one step.

    A vehicle already above its limit gets the (possibly hard) braking that returns it to the
    limit in one step; a non-positive limit means stopping.
    """
    to_limit = (np.maximum(speed_limit, _ZERO) - speed) / zero_d(dt)
    return np.minimum(accel, to_limit)


def leader_braking_distance(
    leader_speed: np.ndarray, max_decel: float | np.ndarray, dt: float
) -> np.ndarray:
    """Distance (m) the leader covers if it brakes at ``max_decel`` from the next step on.

    Euler update: the leader's next speeds are ``u − k·max_decel·dt`` for k = 1, 2, … while
    positive, each held for one step.
    """
    speed = np.maximum(leader_speed, 0.0)
    reduction = np.abs(max_decel) * dt
    steps = np.floor(speed / reduction)
    return dt * (steps * speed - reduction * steps * (steps + 1) / 2.0)


def max_safe_stop_speed(
    gap: np.ndarray, max_decel: float | np.ndarray, dt: float, delay: float = 0.0
) -> np.ndarray:
    """Highest next-step speed (m/s) from which braking at ``max_decel`` stops within ``gap``.

    Euler update: the vehicle moves ``v1·dt`` this step, keeps ``v1`` for ``delay`` seconds,
    then brakes by ``max_decel·dt`` per step. With ``v1 = n·B + r`` (``B = max_decel·dt``,
    ``0 <= r < B``) it covers ``delay·v1 + dt·((n + 1)·r + B·n·(n + 1)/2)``; the largest ``n``
    that fits is found in closed form, then ``r`` fills the rest of the gap.
    """
    gap = np.maximum(gap, 0.0)
    reduction = np.abs(max_decel) * dt
    lead_in = 0.5 * dt + delay
    steps = np.floor((-lead_in + np.sqrt(lead_in**2 + 2.0 * dt * gap / reduction)) / dt)
    steps = np.maximum(steps, 0.0)
    used = delay * steps * reduction + dt * reduction * steps * (steps + 1) / 2.0
    rest = (gap - used) / (delay + dt * (steps + 1))
    return steps * reduction + np.clip(rest, 0.0, reduction)


def safe_velocity(
    accel: np.ndarray,
    state: FollowingState,
    max_decel: float | np.ndarray,
    leader_max_decel: float | np.ndarray | None = None,
    min_gap: float = 0.0,
    delay: float = 0.0,
) -> np.ndarray:
    """Cap the next speed so the vehicle can stop behind its leader if the leader brakes.

    Flow's ``safe_velocity`` fail-safe: the leader is assumed to brake at
    ``max(max_decel, leader_max_decel)`` (as hard as either vehicle can, so the smallest gap
    comes at the end), the follower at ``max_decel`` after ``delay`` seconds; the follower must
    come to rest at least ``min_gap`` behind the leader's stopping point. Vehicles without a
    leader are unaffected; overlapping ones (headway <= 0) are told to stop.

    Args:
        accel: requested accelerations (m/s²), shape (n,).
        state: the vehicles' following state.
        max_decel: the follower's maximum deceleration, a positive magnitude (m/s²).
        leader_max_decel: the leader's; ``max_decel`` when not given.
        min_gap: gap to keep once both have stopped (m).
        delay: the follower's reaction time before it brakes (s).
    """
    dt = state.step_length
    leader_decel = max_decel if leader_max_decel is None else leader_max_decel
    leader_brake = leader_braking_distance(
        state.leader_speed, np.maximum(np.abs(max_decel), np.abs(leader_decel)), dt
    )
    has_leader = np.isfinite(state.headway)
    gap = np.where(has_leader, state.headway, 0.0) + leader_brake - min_gap
    gap = np.where(state.headway <= 0, 0.0, gap)
    safe_speed = max_safe_stop_speed(gap, max_decel, dt, delay)
    capped = np.minimum(accel, (safe_speed - state.speed) / dt)
    return np.where(has_leader, capped, accel)


def apply_failsafes(
    accel: np.ndarray,
    state: FollowingState,
    names: Sequence[str],
    max_accel: float | np.ndarray,
    max_decel: float | np.ndarray,
) -> np.ndarray:
    """Apply the fail-safes ``names`` in order to ``accel`` and return the result.

    ``max_accel`` and ``max_decel`` (positive magnitudes, m/s²) feed ``feasible_accel`` and
    ``safe_velocity``; ``obey_speed_limit`` uses the state's speed limits.

    Raises:
        ValueError: a name is not one of :data:`FAILSAFES`.
    """
    for name in names:
        if name not in FAILSAFES:
            raise ValueError(f"unknown fail-safe '{name}'; valid: {', '.join(sorted(FAILSAFES))}")
    if type(accel) is not np.ndarray or accel.dtype is not _FLOAT64:
        accel = np.asarray(accel, dtype=np.float64)
    result = accel
    for name in names:
        if name == "feasible_accel":
            result = feasible_accel(result, max_accel, max_decel)
        elif name == "obey_speed_limit":
            result = obey_speed_limit(result, state.speed, state.speed_limit, state.step_length)
        else:
            result = safe_velocity(result, state, max_decel)
    return result
