"""Signal baselines that need no training: rules that pick each traffic light's green phase.

Every rule works through a bound :class:`~flowsim.sim.signals.Signals`, as the signal envs'
agent does: :meth:`SignalRule.choose` returns the green phase index per controlled signal (the
env's action), and ``Signals.set_greens`` shows the yellow (and all-red) and keeps the minimum
green. The rules:

- ``program``: SUMO's own programme from the files runs (fixed or actuated), through
  :meth:`Signals.follow_program`; ``choose`` returns the green the programme shows.
- ``fixed_cycle``: the greens in programme order, each requested for ``green`` seconds
  (``scenario.signals.green``), restarting at phase 0 at every :meth:`SignalRule.reset`.
- ``max_pressure``: RESCO's ``MAXPRESSURE``: the green whose green links carry the largest
  sum of (vehicles queued on the link's incoming lane, minus those queued on its outgoing lane
  where that lane leads to another controlled signal), queues counted within
  ``pressure_distance`` m (200) of the stop line.
- ``greedy``: RESCO's ``MAXWAVE`` (its code names it the greedy rule): the green whose green
  links carry the most vehicles, queued or approaching, within ``greedy_distance`` m (50) of
  the stop line.

A vehicle is queued once it has stood still (SUMO's waiting time above 0). On a tie a rule
keeps the present green. The lanes of each controlled connection come from
``Signals.link_in``/``link_out`` and ``Signals.green_links``, computed once at bind.

Example:
    >>> from flowsim.envs.presets import PRESETS
    >>> from flowsim.sim.simulation import Simulation
    >>> from flowsim.sim.signals import Signals
    >>> sim = Simulation(PRESETS["intersection"])
    >>> _ = sim.reset(seed=0)
    >>> signals = Signals(sim.kernel, yellow_time=2.0, min_green=5.0)
    >>> signals.bind()
    >>> rule = signal_rule("greedy", signals)
    >>> rule.reset()
    >>> rule.choose().tolist()
    [0]
    >>> sim.close()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from flowsim.errors import ConfigError

if TYPE_CHECKING:  # controllers sit below sim: the rules only read a bound Signals
    from flowsim.sim.signals import Signals

#: The rule names :func:`signal_rule` knows (``simulate --signals``, ``evaluate``).
SIGNAL_BASELINES = ("program", "fixed_cycle", "max_pressure", "greedy")
#: RESCO's detector range for its greedy rule (MAXWAVE), m.
GREEDY_DISTANCE = 50.0
#: RESCO's detector range for its max-pressure rule (MAXPRESSURE), m.
PRESSURE_DISTANCE = 200.0


class SignalRule(Protocol):
    """A no-training signal controller bound to one :class:`Signals`."""

    def reset(self) -> None:
        """Start an episode (call after ``Signals.bind``)."""

    def choose(self) -> np.ndarray:
        """The green phase index wanted for each controlled signal, now."""


class ProgramRule:
    """SUMO's programme from the files drives the lights (fixed or actuated)."""

    def __init__(self, signals: Signals) -> None:
        """Hand ``signals``, if bound, back to their programme (again at every :meth:`reset`)."""
        self.signals = signals
        if signals.ids:
            self.reset()

    def reset(self) -> None:
        """Hand the lights (bound anew for this episode) back to SUMO's programme."""
        if not self.signals.following:
            self.signals.follow_program()

    def choose(self) -> np.ndarray:
        """The greens the programme shows (or is about to show)."""
        return self.signals.phase.copy()


class FixedCycleRule:
    """Each light cycles through its greens in programme order, ``green`` seconds each."""

    def __init__(self, signals: Signals, green: float) -> None:
        """``green``: seconds each green is requested for (its yellow included)."""
        if green <= 0:
            raise ConfigError(f"scenario.signals.green {green}: give a positive duration (s).")
        self.signals, self.green = signals, float(green)
        self.started = signals.kernel.time

    def reset(self) -> None:
        """Restart the cycle at every light's first green, now."""
        self.started = self.signals.kernel.time

    def choose(self) -> np.ndarray:
        """Green ``k mod n_i`` for each light, ``k`` the number of whole periods so far."""
        periods = int((self.signals.kernel.time - self.started + 1e-9) // self.green)
        return periods % self.signals.num_greens


class _LinkRule:
    """Shared by the link-scoring rules: the green whose green links score highest."""

    def __init__(self, signals: Signals, distance: float) -> None:
        self.signals, self.distance = signals, float(distance)

    def reset(self) -> None:
        """Nothing to forget between episodes."""

    def _link_scores(self, queued: np.ndarray, vehicles: np.ndarray, index: int) -> np.ndarray:
        raise NotImplementedError

    def choose(self) -> np.ndarray:
        """Per light, the green with the largest summed link score (the present one on ties)."""
        signals = self.signals
        incoming = np.arange(signals.num_incoming_lanes)
        vehicles, queued = signals.near_stop_line(incoming, self.distance)
        chosen = signals.phase.copy()
        for index, green_links in enumerate(signals.green_links):
            scores = green_links @ self._link_scores(queued, vehicles, index)
            best = scores.max()
            if scores[chosen[index]] < best:
                chosen[index] = int(np.argmax(scores))
        return chosen


class MaxPressureRule(_LinkRule):
    """RESCO's MAXPRESSURE: queue in minus queue downstream, summed over green links."""

    def _link_scores(self, queued: np.ndarray, vehicles: np.ndarray, index: int) -> np.ndarray:
        signals = self.signals
        lane_in, lane_out = signals.link_in[index], signals.link_out[index]
        # an outgoing lane counts only where it is a controlled light's incoming lane
        downstream = lane_out < signals.num_incoming_lanes
        out = np.where(downstream, queued[np.where(downstream, lane_out, 0)], 0.0)
        return queued[lane_in] - out


class GreedyRule(_LinkRule):
    """RESCO's MAXWAVE: vehicles queued or approaching, summed over green links."""

    def _link_scores(self, queued: np.ndarray, vehicles: np.ndarray, index: int) -> np.ndarray:
        return vehicles[self.signals.link_in[index]]


def signal_rule(
    name: str,
    signals: Signals,
    *,
    green: float = 31.0,
    greedy_distance: float = GREEDY_DISTANCE,
    pressure_distance: float = PRESSURE_DISTANCE,
) -> SignalRule:
    """The baseline ``name`` (one of :data:`SIGNAL_BASELINES`) driving the bound ``signals``.

    ``green`` (s, ``scenario.signals.green``) is ``fixed_cycle``'s period per green; the
    distances (m) are the detector ranges of ``greedy`` and ``max_pressure``. ``program``
    hands the lights to SUMO's programme at once (and again at every ``reset``).

    Raises:
        ConfigError: an unknown name.
    """
    if name == "program":
        return ProgramRule(signals)
    if name == "fixed_cycle":
        return FixedCycleRule(signals, green)
    if name == "max_pressure":
        return MaxPressureRule(signals, pressure_distance)
    if name == "greedy":
        return GreedyRule(signals, greedy_distance)
    raise ConfigError(
        f"signal baseline {name!r} unknown; choose from {', '.join(SIGNAL_BASELINES)}."
    )


__all__ = [
    "GREEDY_DISTANCE",
    "PRESSURE_DISTANCE",
    "SIGNAL_BASELINES",
    "FixedCycleRule",
    "GreedyRule",
    "MaxPressureRule",
    "ProgramRule",
    "SignalRule",
    "signal_rule",
]
