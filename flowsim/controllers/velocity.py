"""Velocity controllers for automated vehicles: FollowerStopper and PI with saturation.

Both come from Stern et al. 2018, "Dissipation of stop-and-go waves via control of autonomous
vehicles: Field experiments" (Transportation Research Part C 89). Each computes a command
velocity ``v_cmd`` and returns the acceleration that reaches it in one step,
``(v_cmd − v) / step_length``, unclipped: the fail-safes bound it.

Example:
    >>> import numpy as np
    >>> from flowsim.controllers.base import FollowingState
    >>> state = FollowingState(
    ...     speed=np.array([5.0]),
    ...     leader_speed=np.array([5.0]),
    ...     headway=np.array([np.inf]),
    ...     speed_limit=np.array([30.0]),
    ...     step_length=0.1,
    ... )
    >>> FollowerStopper(v_des=6.0).accelerations(state)
    array([10.])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowsim.controllers.base import Controller, FollowingState
from flowsim.controllers.car_following import check_parameters

# PISaturation's safety distance is max(SAFETY_TIME_GAP·Δv, SAFETY_MIN_GAP), as in the paper.
SAFETY_TIME_GAP = 2.0
SAFETY_MIN_GAP = 4.0


@dataclass(kw_only=True)
class FollowerStopper(Controller):
    """FollowerStopper: drive at ``v_des`` unless the gap to the leader says otherwise.

    With ``Δv⁻ = min(v_l − v, 0)``, three boundaries ``Δx_k = Δx⁰_k + (Δv⁻)²/(2·d_k)`` split
    the headway ``Δx`` into four regions; with ``u = min(max(v_l, 0), v_des)`` the command is
    ``0`` below ``Δx_1``, ``u·(Δx − Δx_1)/(Δx_2 − Δx_1)`` up to ``Δx_2``,
    ``u + (v_des − u)·(Δx − Δx_2)/(Δx_3 − Δx_2)`` up to ``Δx_3``, and ``v_des`` beyond (and
    without a leader). The command is continuous in the headway, as in the paper.

    Attributes:
        v_des: desired speed (m/s); ``r`` in the paper.
        dx_1_0: headway of the first boundary at zero closing speed (m).
        dx_2_0: headway of the second boundary at zero closing speed (m).
        dx_3_0: headway of the third boundary at zero closing speed (m).
        d_1: deceleration shaping the first boundary (m/s²).
        d_2: deceleration shaping the second boundary (m/s²).
        d_3: deceleration shaping the third boundary (m/s²).
    """

    v_des: float = 15.0
    dx_1_0: float = 4.5
    dx_2_0: float = 5.25
    dx_3_0: float = 6.0
    d_1: float = 1.5
    d_2: float = 1.0
    d_3: float = 0.5

    def __post_init__(self) -> None:
        check_parameters(self, positive=("d_1", "d_2", "d_3"))
        if not self.dx_1_0 < self.dx_2_0 < self.dx_3_0:
            raise ValueError(
                "FollowerStopper needs dx_1_0 < dx_2_0 < dx_3_0, got "
                f"{self.dx_1_0:g}, {self.dx_2_0:g}, {self.dx_3_0:g}"
            )
        if not self.d_1 >= self.d_2 >= self.d_3:
            raise ValueError(
                "FollowerStopper needs d_1 >= d_2 >= d_3 so that the boundaries stay ordered, "
                f"got {self.d_1:g}, {self.d_2:g}, {self.d_3:g}"
            )

    def command_velocity(self, state: FollowingState) -> np.ndarray:
        """The command velocity v_cmd (m/s), shape (n,)."""
        closing = np.minimum(state.leader_speed - state.speed, 0.0) ** 2
        dx_1 = self.dx_1_0 + closing / (2.0 * self.d_1)
        dx_2 = self.dx_2_0 + closing / (2.0 * self.d_2)
        dx_3 = self.dx_3_0 + closing / (2.0 * self.d_3)
        headway = state.headway
        follow = np.minimum(np.maximum(state.leader_speed, 0.0), self.v_des)
        # Each ramp is 0 before its region and 1 after it, so the sum is the piecewise law.
        ramp_up = np.clip((headway - dx_1) / (dx_2 - dx_1), 0.0, 1.0)
        ramp_free = np.clip((headway - dx_2) / (dx_3 - dx_2), 0.0, 1.0)
        return follow * ramp_up + (self.v_des - follow) * ramp_free

    def accelerations(self, state: FollowingState) -> np.ndarray:
        """Accelerations (m/s²) that reach the command velocity in one step, shape (n,)."""
        return (self.command_velocity(state) - state.speed) / state.step_length


@dataclass(kw_only=True)
class PISaturation(Controller):
    """Proportional-integral controller with saturation: drive at the recent average speed.

    The target speed is the vehicle's own mean speed over the last ``history_seconds`` plus a
    catch-up term ``v_catch·clip((Δx − g_l)/(g_u − g_l), 0, 1)``. With a safety distance
    ``Δx_s = max(2·(v_l − v), 4)``, ``alpha = clip((Δx − Δx_s)/gamma, 0, 1)`` blends the target
    with the leader's speed and ``beta = 1 − alpha/2`` filters the command:
    ``v_cmd ← beta·(alpha·v_target + (1 − alpha)·v_l) + (1 − beta)·v_cmd``. The previous command
    starts at the vehicle's speed on its first step.

    Per-vehicle state (speed history, previous command) is sized by :meth:`reset`; call it
    whenever the group's vehicles change.

    Attributes:
        v_catch: extra speed to close a large gap (m/s).
        g_l: headway where catching up starts (m).
        g_u: headway where catching up is complete (m).
        gamma: headway range over which control passes from the leader to the target (m).
        history_seconds: length of the speed history averaged into the target (s).
    """

    v_catch: float = 1.0
    g_l: float = 7.0
    g_u: float = 30.0
    gamma: float = 2.0
    history_seconds: float = 38.0

    def __post_init__(self) -> None:
        check_parameters(self, positive=("gamma", "history_seconds"))
        if self.g_u <= self.g_l:
            raise ValueError(
                f"parameter 'g_u' of PISaturation must exceed g_l ({self.g_l:g}), got {self.g_u:g}"
            )
        self._num_vehicles = -1

    def reset(self, num_vehicles: int, rng: np.random.Generator) -> None:
        """Forget the speed history and previous commands; size them for ``num_vehicles``."""
        super().reset(num_vehicles, rng)
        self._num_vehicles = num_vehicles
        self._previous_command = np.full(num_vehicles, np.nan)
        # The history's length depends on the step, known at the first call.
        self._speed_history = np.zeros((num_vehicles, 0))
        self._history_filled = 0
        self._history_next = 0

    def keep_vehicles(self, keep: np.ndarray) -> None:
        """Keep the history and previous command of the vehicles still in the group."""
        keep = np.asarray(keep, dtype=bool)
        self._previous_command = self._previous_command[keep]
        self._speed_history = self._speed_history[keep]
        self._num_vehicles = int(keep.sum())

    def add_vehicles(self, count: int) -> None:
        """New vehicles start with no previous command and a speed history filled with their
        first speed reading."""
        self._previous_command = np.concatenate([self._previous_command, np.full(count, np.nan)])
        width = self._speed_history.shape[1]
        self._speed_history = np.concatenate([self._speed_history, np.full((count, width), np.nan)])
        self._num_vehicles += count

    def history_steps(self, step_length: float) -> int:
        """Number of steps in the speed history for a simulation step of ``step_length`` s."""
        return max(1, round(self.history_seconds / step_length))

    def _record(self, speed: np.ndarray, step_length: float) -> np.ndarray:
        """Add ``speed`` to the history; return the mean speed over the history."""
        window = self.history_steps(step_length)
        if self._speed_history.shape[1] != window:
            self._speed_history = np.zeros((self._num_vehicles, window))
            self._history_filled = self._history_next = 0
        fresh = np.isnan(self._speed_history[:, 0]) if self._history_filled else None
        if fresh is not None and fresh.any():  # vehicles added since: history = current speed
            self._speed_history[fresh] = speed[fresh, None]
        self._speed_history[:, self._history_next] = speed
        self._history_next = (self._history_next + 1) % window
        self._history_filled = min(self._history_filled + 1, window)
        return self._speed_history[:, : self._history_filled].mean(axis=1)

    def accelerations(self, state: FollowingState) -> np.ndarray:
        """Accelerations (m/s²) that reach the filtered command velocity in one step."""
        if self._num_vehicles < 0:
            self.reset(state.num_vehicles, self.rng)
        if state.num_vehicles != self._num_vehicles:
            raise ValueError(
                f"PISaturation was reset for {self._num_vehicles} vehicles but got "
                f"{state.num_vehicles}; call reset() when the group changes"
            )
        speed, leader_speed, headway = state.speed, state.leader_speed, state.headway
        average_speed = self._record(speed, state.step_length)
        catch_up = np.clip((headway - self.g_l) / (self.g_u - self.g_l), 0.0, 1.0)
        target = average_speed + self.v_catch * catch_up
        safety_gap = np.maximum(SAFETY_TIME_GAP * (leader_speed - speed), SAFETY_MIN_GAP)
        alpha = np.clip((headway - safety_gap) / self.gamma, 0.0, 1.0)
        beta = 1.0 - 0.5 * alpha
        previous = np.where(np.isnan(self._previous_command), speed, self._previous_command)
        blended = alpha * target + (1.0 - alpha) * leader_speed
        command = beta * blended + (1.0 - beta) * previous
        self._previous_command = command
        return (command - speed) / state.step_length
