"""Car-following models: IDM, OVM, Bando follow-the-leader, linear OVM and Gipps.

Every model maps a :class:`~flowsim.controllers.base.FollowingState` of ``n`` vehicles to ``n``
accelerations in one vectorised call, adds optional Gaussian acceleration noise, and follows
two rules at the edges of its domain:

* no leader (``headway == inf``, ``leader_speed == speed``): free-road behaviour, never NaN;
* overlapping vehicles (``headway <= 0``): at least the braking that stops the vehicle within
  one step (``-speed / step_length``), always finite.

Noise follows Flow's convention: each step adds ``noise * sqrt(step_length) * N(0, 1)`` to the
acceleration, drawn from the controller's generator, so ``noise: 0.2`` at 0.1 s steps has a
standard deviation of about 0.063 m/s², as in Flow's ring experiments.

Example:
    >>> import numpy as np
    >>> from flowsim.controllers.base import FollowingState
    >>> state = FollowingState(
    ...     speed=np.array([0.0, 10.0]),
    ...     leader_speed=np.array([0.0, 10.0]),
    ...     headway=np.array([np.inf, 12.0]),
    ...     speed_limit=np.array([30.0, 30.0]),
    ...     step_length=0.1,
    ... )
    >>> IDM().accelerations(state).round(3)
    array([ 1.   , -0.012])
"""

from __future__ import annotations

import math
import numbers
from abc import abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np

from flowsim.controllers.base import Controller, FollowingState, zero_d

#: Smallest headway (m) a model divides by; a headway of zero or less is a collision.
MIN_HEADWAY = 1e-3

_ZERO = zero_d(0.0)
_ONE = zero_d(1.0)
_FLOAT64 = np.dtype(np.float64)
_MIN_HEADWAY = zero_d(MIN_HEADWAY)

#: Noise is drawn from the generator ahead of use, this many numbers at a time (or one step's
#: worth for larger groups): one draw per step costs more than the arithmetic it feeds.
NOISE_BLOCK = 4096


def check_parameters(controller: Controller, positive: Iterable[str] = ()) -> None:
    """Check that every dataclass field of ``controller`` is a finite number >= 0.

    Fields named in ``positive`` must be strictly greater than zero. Integers are stored as
    floats. Raises ``ValueError`` naming the parameter and the controller class.
    """
    strictly_positive = set(positive)
    owner = type(controller).__name__
    for spec in fields(controller):  # type: ignore[arg-type]
        value = getattr(controller, spec.name)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"parameter '{spec.name}' of {owner} must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"parameter '{spec.name}' of {owner} must be finite, got {value}")
        if spec.name in strictly_positive and value <= 0:
            raise ValueError(f"parameter '{spec.name}' of {owner} must be > 0, got {value:g}")
        if value < 0:
            raise ValueError(f"parameter '{spec.name}' of {owner} must be >= 0, got {value:g}")
        setattr(controller, spec.name, value)


@dataclass(kw_only=True)
class CarFollowingModel(Controller):
    """A car-following law plus Gaussian acceleration noise and a stop rule for overlaps.

    Subclasses implement :meth:`model_accelerations`, the noise-free law; this class adds the
    noise and enforces at least stopping within one step where ``headway <= 0``.

    Attributes:
        noise: acceleration noise intensity; each step adds ``noise·sqrt(dt)·N(0, 1)`` (m/s²).
    """

    noise: float = 0.0

    #: Parameters that must be strictly positive (others must be >= 0).
    positive_parameters: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        check_parameters(self, self.positive_parameters)
        self._clear_noise()

    @abstractmethod
    def model_accelerations(self, state: FollowingState) -> np.ndarray:
        """Noise-free accelerations (m/s²) of the model, shape (n,)."""

    def reset(self, num_vehicles: int, rng: np.random.Generator) -> None:
        """Prepare for a new episode with ``num_vehicles`` vehicles drawing noise from ``rng``."""
        super().reset(num_vehicles, rng)
        self._clear_noise()

    def accelerations(self, state: FollowingState) -> np.ndarray:
        """Model accelerations plus noise (m/s²), at least stopping where vehicles overlap.

        The noise is the generator's standard normal stream in order, ``num_vehicles`` numbers
        per call, as if drawn call by call; it is drawn ahead in blocks (:data:`NOISE_BLOCK`),
        so draw nothing else from :attr:`rng` between calls.
        """
        accel = self.model_accelerations(state)
        if type(accel) is not np.ndarray or accel.dtype is not _FLOAT64:
            accel = np.asarray(accel, dtype=np.float64)
        if self.noise > 0:
            accel = accel + self._noise(state.num_vehicles, state.step_length)
        overlapping = state.headway <= _ZERO
        if np.count_nonzero(overlapping):  # rare (a collision): skip the work otherwise
            stop_now = (0.0 - np.maximum(state.speed, 0.0)) / state.step_length
            accel = np.where(overlapping, np.minimum(accel, stop_now), accel)
        return accel

    def _clear_noise(self) -> None:
        self._raw_noise = np.zeros(0)  # standard normal draws not used yet, in stream order
        self._scaled_noise = self._raw_noise
        self._noise_used = 0  # how many of them are used
        self._noise_scale = math.nan

    def _noise(self, count: int, step_length: float) -> np.ndarray:
        """The next ``count`` draws of the stream times ``noise * sqrt(step_length)``."""
        scale = self.noise * math.sqrt(step_length)
        start = self._noise_used
        end = start + count
        if end > self._raw_noise.size or scale != self._noise_scale:
            rest = self._raw_noise[start:]
            if end > self._raw_noise.size:
                more = self.rng.standard_normal(max(NOISE_BLOCK, count) - rest.size)
                rest = np.concatenate([rest, more])
            # scale * each draw: the same products as scaling one step's draws at a time
            self._raw_noise, self._scaled_noise = rest, scale * rest
            self._noise_scale = scale
            start, end = 0, count
        self._noise_used = end
        return self._scaled_noise[start:end]


def _headway(state: FollowingState) -> np.ndarray:
    """Headway floored at :data:`MIN_HEADWAY` so that models can divide by it."""
    return np.maximum(state.headway, _MIN_HEADWAY)


@dataclass(kw_only=True)
class IDM(CarFollowingModel):
    """Intelligent Driver Model (Treiber, Hennecke and Helbing 2000), Flow's defaults.

    ``a·(1 − (v/v0)^delta − (s*/s)²)`` with desired gap ``s* = s0 + max(0, v·T + v·(v − v_l) /
    (2·sqrt(a·b)))``; without a leader the interaction term vanishes.

    Attributes:
        v0: desired speed (m/s).
        T: safe time headway (s).
        a: maximum acceleration (m/s²).
        b: comfortable deceleration (m/s²).
        delta: acceleration exponent (-).
        s0: jam distance (m).
        noise: see :class:`CarFollowingModel`.
    """

    v0: float = 30.0
    T: float = 1.0
    a: float = 1.0
    b: float = 1.5
    delta: float = 4.0
    s0: float = 2.0

    positive_parameters: ClassVar[tuple[str, ...]] = ("v0", "a", "b", "delta")

    def desired_gap(self, speed: np.ndarray, leader_speed: np.ndarray) -> np.ndarray:
        """The IDM desired gap s* (m) for the given own and leader speeds."""
        braking = speed * (speed - leader_speed) / zero_d(2.0 * math.sqrt(self.a * self.b))
        # x * 1.0 is x exactly (signed zeros, infinities and NaN too): skip Flow's T = 1
        timed = speed if self.T == 1.0 else speed * zero_d(self.T)
        return zero_d(self.s0) + np.maximum(_ZERO, timed + braking)

    def model_accelerations(self, state: FollowingState) -> np.ndarray:
        """IDM accelerations (m/s²), shape (n,)."""
        speed = state.speed
        free_road = np.power(np.maximum(speed, _ZERO) / zero_d(self.v0), zero_d(self.delta))
        interaction = np.square(self.desired_gap(speed, state.leader_speed) / _headway(state))
        relative = _ONE - free_road - interaction
        return relative if self.a == 1.0 else zero_d(self.a) * relative  # as T above


@dataclass(kw_only=True)
class OVM(CarFollowingModel):
    """Optimal velocity model with a relative-speed term, Flow's parameters.

    ``alpha·(V(h) − v) + beta·(v_l − v)`` with ``V(h) = v_max/2·(1 − cos(pi·(h − h_st) /
    (h_go − h_st)))`` between ``h_st`` (stop) and ``h_go`` (full speed), 0 below, ``v_max``
    above.

    Attributes:
        alpha: gain on the optimal-velocity error (1/s).
        beta: gain on the speed difference to the leader (1/s).
        h_st: headway below which the optimal velocity is zero (m).
        h_go: headway above which the optimal velocity is ``v_max`` (m).
        v_max: maximum optimal velocity (m/s).
        noise: see :class:`CarFollowingModel`.
    """

    alpha: float = 1.0
    beta: float = 1.0
    h_st: float = 2.0
    h_go: float = 15.0
    v_max: float = 30.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.h_go <= self.h_st:
            raise ValueError(
                f"parameter 'h_go' of OVM must exceed h_st ({self.h_st:g}), got {self.h_go:g}"
            )

    def optimal_velocity(self, headway: np.ndarray) -> np.ndarray:
        """The optimal velocity V(h) (m/s) for headways ``headway`` (m)."""
        progress = (np.clip(headway, self.h_st, self.h_go) - self.h_st) / (self.h_go - self.h_st)
        return 0.5 * self.v_max * (1.0 - np.cos(np.pi * progress))

    def model_accelerations(self, state: FollowingState) -> np.ndarray:
        """OVM accelerations (m/s²), shape (n,)."""
        speed = state.speed
        return self.alpha * (self.optimal_velocity(state.headway) - speed) + self.beta * (
            state.leader_speed - speed
        )


@dataclass(kw_only=True)
class BandoFTL(CarFollowingModel):
    """Bando optimal velocity plus follow-the-leader term, Flow's parameters.

    ``alpha·(V(h) − v) + beta·(v_l − v)/h²`` with ``V(h) = v_max·(tanh(h/h_st − 2) + tanh 2) /
    (1 + tanh 2)``. Without a leader the follow-the-leader term vanishes.

    Attributes:
        alpha: gain on the optimal-velocity error (1/s).
        beta: follow-the-leader gain (m²/s).
        h_st: headway scale of the optimal-velocity function (m).
        v_max: optimal velocity as the headway grows without bound (m/s).
        noise: see :class:`CarFollowingModel`.
    """

    alpha: float = 0.5
    beta: float = 20.0
    h_st: float = 2.0
    v_max: float = 32.0

    positive_parameters: ClassVar[tuple[str, ...]] = ("h_st",)

    def optimal_velocity(self, headway: np.ndarray) -> np.ndarray:
        """The optimal velocity V(h) (m/s) for headways ``headway`` (m)."""
        return (
            self.v_max * (np.tanh(headway / self.h_st - 2.0) + np.tanh(2.0)) / (1.0 + np.tanh(2.0))
        )

    def model_accelerations(self, state: FollowingState) -> np.ndarray:
        """Bando-FTL accelerations (m/s²), shape (n,)."""
        headway = _headway(state)
        speed = state.speed
        follow = self.beta * (state.leader_speed - speed) / headway**2
        return self.alpha * (self.optimal_velocity(headway) - speed) + follow


@dataclass(kw_only=True)
class LinearOVM(CarFollowingModel):
    """Optimal velocity model with a piecewise-linear optimal velocity, Flow's parameters.

    ``(V(h) − v) / adaptation`` with ``V(h) = clip(alpha·(h − h_st), 0, v_max)``; ``alpha`` is
    Nakayama's average slope.

    Attributes:
        v_max: maximum optimal velocity (m/s).
        adaptation: relaxation time towards the optimal velocity (s).
        h_st: headway below which the optimal velocity is zero (m).
        alpha: slope of the optimal velocity against headway (1/s).
        noise: see :class:`CarFollowingModel`.
    """

    v_max: float = 30.0
    adaptation: float = 0.65
    h_st: float = 5.0
    alpha: float = 1.689

    positive_parameters: ClassVar[tuple[str, ...]] = ("adaptation",)

    def optimal_velocity(self, headway: np.ndarray) -> np.ndarray:
        """The optimal velocity V(h) (m/s) for headways ``headway`` (m)."""
        return np.clip(self.alpha * (headway - self.h_st), 0.0, self.v_max)

    def model_accelerations(self, state: FollowingState) -> np.ndarray:
        """Linear-OVM accelerations (m/s²), shape (n,)."""
        return (self.optimal_velocity(state.headway) - state.speed) / self.adaptation


@dataclass(kw_only=True)
class Gipps(CarFollowingModel):
    """Gipps' model (Treiber and Kesting, Traffic Flow Dynamics, ch. 11), Flow's parameters.

    The speed after one reaction time is ``min(v_acc, v_safe, v0)`` with
    ``v_acc = v + 2.5·acc·tau·(1 − v/v0)·sqrt(0.025 + v/v0)`` and
    ``v_safe = −b·tau + sqrt(b²·tau² + b·(2·(h − s0) − tau·v + v_l²/b_l))``; as in Flow, that
    speed is reached within one simulation step: ``(v_next − v) / step_length``. Decelerations
    are positive magnitudes here (Flow writes them as negative numbers).

    Attributes:
        v0: desired speed (m/s).
        acc: maximum acceleration (m/s²).
        b: comfortable deceleration, a positive magnitude (m/s²).
        b_l: the leader's assumed comfortable deceleration, a positive magnitude (m/s²).
        s0: jam distance (m).
        tau: reaction time (s).
        noise: see :class:`CarFollowingModel`.
    """

    v0: float = 30.0
    acc: float = 1.5
    b: float = 1.0
    b_l: float = 1.0
    s0: float = 2.0
    tau: float = 1.0

    positive_parameters: ClassVar[tuple[str, ...]] = ("v0", "b", "b_l", "tau")

    def next_speed(self, state: FollowingState) -> np.ndarray:
        """The speed (m/s) Gipps' model aims for, never negative."""
        speed = np.maximum(state.speed, 0.0)
        ratio = speed / self.v0
        v_acc = speed + 2.5 * self.acc * self.tau * (1.0 - ratio) * np.sqrt(0.025 + ratio)
        radicand = (self.b * self.tau) ** 2 + self.b * (
            2.0 * (state.headway - self.s0) - self.tau * speed + state.leader_speed**2 / self.b_l
        )
        v_safe = -self.b * self.tau + np.sqrt(np.maximum(radicand, 0.0))
        return np.maximum(np.minimum(np.minimum(v_acc, v_safe), self.v0), 0.0)

    def model_accelerations(self, state: FollowingState) -> np.ndarray:
        """Gipps accelerations (m/s²), shape (n,)."""
        return (self.next_speed(state) - state.speed) / state.step_length
