"""The controller contract: arrays in, accelerations out, for all vehicles of a group at once."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FollowingState:
    """What a longitudinal controller sees of the vehicles it drives, one entry per vehicle.

    Attributes:
        speed: own speed (m/s), shape (n,).
        leader_speed: speed of the vehicle ahead (m/s); equals ``speed`` where there is no leader.
        headway: bumper-to-bumper gap to the leader (m); ``np.inf`` where there is no leader.
        speed_limit: the lane's speed limit (m/s), shape (n,).
        step_length: simulation step (s).
    """

    speed: np.ndarray
    leader_speed: np.ndarray
    headway: np.ndarray
    speed_limit: np.ndarray
    step_length: float

    @property
    def num_vehicles(self) -> int:
        """Number of vehicles in this state."""
        return int(self.speed.shape[0])


_ZERO_D: dict[float, np.ndarray] = {}


def zero_d(value: float) -> np.ndarray:
    """``value`` as a 0-d float64 array, made once per value.

    A ufunc takes a 0-d float64 operand faster than a Python float (no conversion) and
    computes the same float64 result: the per-step maths on a group's arrays uses these.
    """
    array = _ZERO_D.get(value)
    if array is None or (value == 0.0 and math.copysign(1.0, value) != math.copysign(1.0, array)):
        # (-0.0 and 0.0 are one dict key but different operands)
        if len(_ZERO_D) > 1024:  # parameters that keep changing: do not grow without bound
            _ZERO_D.clear()
        array = _ZERO_D[value] = np.array(float(value))
        array.flags.writeable = False
    return array


class Controller(ABC):
    """A longitudinal controller for a group of vehicles.

    Subclasses are dataclasses whose fields are the controller's documented parameters, so a
    YAML ``params:`` mapping is validated against them. The kernel calls :meth:`reset` when the
    group is (re)created and :meth:`accelerations` every step; the returned accelerations are
    then passed through the fail-safes and applied by the kernel.
    """

    def reset(self, num_vehicles: int, rng: np.random.Generator) -> None:
        """Prepare for a new episode with ``num_vehicles`` vehicles drawing noise from ``rng``."""
        self._rng = rng

    def keep_vehicles(self, keep: np.ndarray) -> None:
        """Drop per-vehicle state of vehicles that left (``keep``: a boolean mask over them).

        Stateless controllers need nothing; those with per-vehicle memory override this.
        """
        return None

    def add_vehicles(self, count: int) -> None:
        """Make room for ``count`` vehicles that joined the group (appended after the others).

        Stateless controllers need nothing; those with per-vehicle memory override this.
        """
        return None

    @property
    def rng(self) -> np.random.Generator:
        """The generator given at :meth:`reset` (a fixed-seed one before the first reset)."""
        rng = getattr(self, "_rng", None)
        if rng is None:
            rng = self._rng = np.random.default_rng(0)
        return rng

    @abstractmethod
    def accelerations(self, state: FollowingState) -> np.ndarray:
        """Desired accelerations (m/s²), shape (n,), for the vehicles described by ``state``."""
