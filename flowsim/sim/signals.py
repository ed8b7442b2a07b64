"""Traffic lights under an agent's control: green phases, yellow transitions, lane readings.

:class:`Signals` binds to a loaded kernel and takes every traffic light over from SUMO's
programme. Each signal keeps the green phases of its programme (sumo-rl's ``TrafficSignal``):
switching from one green to another shows a yellow state for ``yellow_time`` seconds (every
link that loses its green turns yellow), and a green must have lasted ``yellow_time +
min_green`` seconds before it may change. Lane readings (vehicles, halted vehicles, waiting
time) are taken once per simulation step, for all lanes around the signals together: on
libsumo by direct calls (well under a microsecond each), over TraCI by one lane subscription
read per step.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowsim.errors import ConfigError
from flowsim.sim.kernel import Kernel, crash_guard

#: Road one vehicle takes in a jam when no vehicle groups are known (m): 5 m car + 2.5 m gap,
#: as sumo-rl normalises densities.
DEFAULT_SPACING = 7.5


@dataclass(frozen=True)
class LaneReadings:
    """One step's readings of every lane around the signals, indexed like ``Signals.lanes``."""

    vehicles: np.ndarray
    halting: np.ndarray
    waiting_time: np.ndarray


def yellow_between(green: str, following: str) -> str:
    """The yellow state shown when ``green`` switches to ``following``: every link green in
    ``green`` and red in ``following`` turns yellow; the others keep their state."""
    return "".join(
        "y" if now in "Gg" and after in "rs" else now
        for now, after in zip(green, following, strict=True)
    )


def green_states(phases: list[str]) -> list[str]:
    """The distinct green states of a programme: no yellow, and not all red."""
    greens: list[str] = []
    for state in phases:
        lowered = state.lower()
        if "y" in lowered or all(c in "rs" for c in state) or state in greens:
            continue
        greens.append(state)
    return greens


@dataclass(frozen=True)
class SignalLayout:
    """What a traffic light controls, read from the network file before SUMO starts."""

    tls_id: str
    greens: tuple[str, ...]
    incoming: tuple[str, ...]
    outgoing: tuple[str, ...]


def signal_layout(net_file: Path) -> list[SignalLayout]:
    """The traffic lights of ``net_file`` (sorted by id): green phases of their first
    programme and the lanes their links lead in and out, in link order."""
    root = ET.parse(net_file).getroot()
    links: dict[str, list[tuple[int, str, str]]] = {}
    for connection in root.iter("connection"):
        tls = connection.get("tl")
        if tls is not None:
            incoming = f"{connection.get('from')}_{connection.get('fromLane')}"
            outgoing = f"{connection.get('to')}_{connection.get('toLane')}"
            links.setdefault(tls, []).append(
                (int(connection.get("linkIndex", "0")), incoming, outgoing)
            )
    programs: dict[str, list[str]] = {}
    for logic in root.iter("tlLogic"):
        programs.setdefault(
            logic.get("id", ""), [phase.get("state", "") for phase in logic.iter("phase")]
        )
    layouts = []
    for tls in sorted(programs):
        ordered = sorted(links.get(tls, []))
        layouts.append(
            SignalLayout(
                tls_id=tls,
                greens=tuple(green_states(programs[tls])),
                incoming=tuple(dict.fromkeys(lane for _, lane, _ in ordered)),
                outgoing=tuple(dict.fromkeys(lane for _, _, lane in ordered)),
            )
        )
    return layouts


class Signals:
    """Every traffic light of the kernel's network, switched between its green phases.

    Call :meth:`bind` after each load (it takes the lights over from SUMO's programme),
    :meth:`tick` before every simulation step (it ends yellow phases), and :meth:`set_green`
    to ask for a green phase.

    Example:
        >>> from flowsim.envs.presets import PRESETS
        >>> from flowsim.sim.simulation import Simulation
        >>> sim = Simulation(PRESETS["intersection"])
        >>> _ = sim.reset(seed=0)
        >>> signals = Signals(sim.kernel, yellow_time=2.0, min_green=5.0)
        >>> signals.bind()
        >>> signals.ids, signals.num_greens.tolist()
        (('center',), [2])
        >>> sim.close()
    """

    def __init__(
        self,
        kernel: Kernel,
        yellow_time: float,
        min_green: float,
        vehicle_spacing: float = DEFAULT_SPACING,
    ) -> None:
        """``vehicle_spacing`` (m per vehicle in a jam) normalises densities and queues."""
        self.kernel = kernel
        self.yellow_time = float(yellow_time)
        self.min_green = float(min_green)
        self.vehicle_spacing = float(vehicle_spacing)
        self.ids: tuple[str, ...] = ()
        #: the green states of each signal, in programme order
        self.greens: list[list[str]] = []
        #: every lane entering or leaving a signal, once each
        self.lanes: tuple[str, ...] = ()
        #: per signal: positions in :attr:`lanes` of its incoming and outgoing lanes
        self.incoming: list[np.ndarray] = []
        self.outgoing: list[np.ndarray] = []
        self.lane_length = np.zeros(0)
        #: all signals' incoming (outgoing) lanes in one array, and the signal of each entry
        self._incoming_flat = np.zeros(0, dtype=np.int64)
        self._in_owner = np.zeros(0, dtype=np.int64)
        self._outgoing_flat = np.zeros(0, dtype=np.int64)
        self._out_owner = np.zeros(0, dtype=np.int64)
        self._incoming_capacity = np.zeros(0)
        #: per signal: the green shown (or being switched to, during a yellow)
        self.phase = np.zeros(0, dtype=np.int64)
        self.is_yellow = np.zeros(0, dtype=bool)
        #: per signal: simulation time (s) of the last switch
        self.changed_at = np.zeros(0)
        self._readings: LaneReadings | None = None
        self._read_at = -1.0
        self._subscribed = False

    # -- set-up ---------------------------------------------------------------------------
    @property
    def num_greens(self) -> np.ndarray:
        """Number of green phases of each signal."""
        return np.array([len(g) for g in self.greens], dtype=np.int64)

    @property
    def num_incoming(self) -> np.ndarray:
        """Number of incoming lanes of each signal."""
        return np.array([len(i) for i in self.incoming], dtype=np.int64)

    def bind(self) -> None:
        """Read the network's signals (lanes, green phases) and take them over from SUMO."""
        kernel = self.kernel
        assert kernel.instance is not None, "bind() needs a loaded kernel"
        api = kernel.backend.api
        self.ids = tuple(kernel.instance.traffic_lights)
        if not self.ids:
            raise ConfigError(
                f"the network {kernel.instance.net_file.name} has no traffic lights to "
                "control; use scenario.type grid or intersection, or an OSM area with signals."
            )
        lanes: dict[str, int] = {}
        self.greens, self.incoming, self.outgoing = [], [], []
        states: list[str] = []
        program_phases: list[list[str]] = []
        with crash_guard("reading traffic lights"):
            for tls in self.ids:
                incoming: dict[str, None] = {}
                outgoing: dict[str, None] = {}
                for link in api.trafficlight.getControlledLinks(tls):
                    for lane_in, lane_out, _via in link:
                        incoming[lane_in] = None
                        outgoing[lane_out] = None
                for lane in (*incoming, *outgoing):
                    lanes.setdefault(lane, len(lanes))
                self.incoming.append(np.array([lanes[x] for x in incoming], dtype=np.int64))
                self.outgoing.append(np.array([lanes[x] for x in outgoing], dtype=np.int64))
                program = api.trafficlight.getProgram(tls)
                logics = api.trafficlight.getAllProgramLogics(tls)
                logic = next((g for g in logics if g.programID == program), logics[0])
                phases = [phase.state for phase in logic.phases]
                greens = green_states(phases)
                if not greens:
                    raise ConfigError(
                        f"traffic light '{tls}' has no green phase in its programme "
                        f"({', '.join(phases)}); it cannot be controlled."
                    )
                self.greens.append(greens)
                program_phases.append(phases)
                states.append(api.trafficlight.getRedYellowGreenState(tls))
            self.lanes = tuple(lanes)
            self.lane_length = np.array([api.lane.getLength(lane) for lane in self.lanes])
        self._incoming_flat = np.concatenate(self.incoming)
        self._in_owner = np.repeat(np.arange(len(self.ids)), [len(i) for i in self.incoming])
        self._outgoing_flat = np.concatenate(self.outgoing)
        self._out_owner = np.repeat(np.arange(len(self.ids)), [len(o) for o in self.outgoing])
        self._incoming_capacity = self.lane_length[self._incoming_flat] / self.vehicle_spacing
        count = len(self.ids)
        self.phase = np.zeros(count, dtype=np.int64)
        self.is_yellow = np.zeros(count, dtype=bool)
        self.changed_at = np.full(count, kernel.time)
        with crash_guard("taking over traffic lights"):
            for i, tls in enumerate(self.ids):
                self._take_over(i, tls, states[i], program_phases[i])
        self._readings = None
        self._read_at = -1.0
        self._subscribed = False
        if kernel.backend.name == "traci":
            self._subscribe()

    def _take_over(self, index: int, tls: str, state: str, phases: list[str]) -> None:
        """Hold the light's present state; a yellow goes on to the programme's next green."""
        api = self.kernel.backend.api
        greens = self.greens[index]
        if state in greens:
            self.phase[index] = greens.index(state)
        else:  # in a yellow or all-red: finish it, then show the programme's next green
            current = api.trafficlight.getPhase(tls)
            following = [phases[(current + k) % len(phases)] for k in range(1, len(phases) + 1)]
            self.phase[index] = greens.index(next(s for s in following if s in greens))
            self.is_yellow[index] = True
        api.trafficlight.setRedYellowGreenState(tls, state)

    def _subscribe(self) -> None:
        """Over TraCI: subscribe every lane to the three readings (one read per step)."""
        import traci

        tc = traci.constants
        variables = [
            tc.LAST_STEP_VEHICLE_NUMBER,
            tc.LAST_STEP_VEHICLE_HALTING_NUMBER,
            tc.VAR_WAITING_TIME,
        ]
        api = self.kernel.backend.api
        with crash_guard("subscribing to lanes"):
            for lane in self.lanes:
                api.lane.subscribe(lane, variables)
        self._subscribed = True

    # -- switching ------------------------------------------------------------------------
    def since_change(self) -> np.ndarray:
        """Seconds since each signal last switched (its yellow included)."""
        return self.kernel.time - self.changed_at

    def min_green_passed(self) -> np.ndarray:
        """Per signal: whether it may switch now (``yellow_time + min_green`` since the last)."""
        return self.since_change() >= self.yellow_time + self.min_green - 1e-9

    def set_green(self, index: int, phase: int) -> bool:
        """Ask signal ``index`` for green phase ``phase``; True if it starts switching now.

        Refused (False) while the current green has lasted less than ``yellow_time +
        min_green`` or when ``phase`` is the current green. Otherwise the transition's yellow
        is shown for ``yellow_time`` seconds first (none if no link loses its green).
        """
        greens = self.greens[index]
        if not 0 <= phase < len(greens):
            raise ValueError(f"signal {self.ids[index]} has green phases 0..{len(greens) - 1}")
        if phase == self.phase[index] or not self.min_green_passed()[index]:
            return False
        self._switch(index, phase)
        return True

    def set_greens(self, phases: np.ndarray) -> None:
        """:meth:`set_green` for every signal at once (``phases[i]`` for signal i, each a
        valid phase index)."""
        phases = np.asarray(phases, dtype=np.int64)
        wanted = (phases != self.phase) & self.min_green_passed()
        for index in np.flatnonzero(wanted).tolist():
            self._switch(index, int(phases[index]))

    def _switch(self, index: int, phase: int) -> None:
        """Start the change of signal ``index`` to green ``phase`` (its yellow first)."""
        greens = self.greens[index]
        current = greens[self.phase[index]]
        yellow = yellow_between(current, greens[phase])
        show_yellow = self.yellow_time > 0 and yellow != current
        with crash_guard("switching a traffic light"):
            self.kernel.backend.api.trafficlight.setRedYellowGreenState(
                self.ids[index], yellow if show_yellow else greens[phase]
            )
        self.phase[index] = phase
        self.is_yellow[index] = show_yellow
        self.changed_at[index] = self.kernel.time

    def tick(self) -> None:
        """End the yellow of every signal whose ``yellow_time`` is over (call before a step)."""
        if not self.is_yellow.any():
            return
        over = self.is_yellow & (self.since_change() >= self.yellow_time - 1e-9)
        if over.any():
            api = self.kernel.backend.api
            with crash_guard("ending a yellow phase"):
                for index in np.flatnonzero(over).tolist():
                    green = self.greens[index][self.phase[index]]
                    api.trafficlight.setRedYellowGreenState(self.ids[index], green)
            self.is_yellow[over] = False

    # -- readings -------------------------------------------------------------------------
    def readings(self) -> LaneReadings:
        """This step's vehicles, halted vehicles and waiting time (s) on every lane."""
        now = self.kernel.time
        if self._readings is None or self._read_at != now:
            with crash_guard("reading lanes"):
                self._readings = self._read_subscribed() if self._subscribed else self._read()
            self._read_at = now
        return self._readings

    def _read(self) -> LaneReadings:
        lane = self.kernel.backend.api.lane
        if self.kernel.backend.name == "libsumo":  # the compiled getters, without the wrapper
            from libsumo import _libsumo

            number = _libsumo.lane_getLastStepVehicleNumber
            halting = _libsumo.lane_getLastStepHaltingNumber
            waiting = _libsumo.lane_getWaitingTime
        else:
            number = lane.getLastStepVehicleNumber
            halting = lane.getLastStepHaltingNumber
            waiting = lane.getWaitingTime
        lanes, count = self.lanes, len(self.lanes)
        return LaneReadings(
            vehicles=np.fromiter(map(number, lanes), np.float64, count),
            halting=np.fromiter(map(halting, lanes), np.float64, count),
            waiting_time=np.fromiter(map(waiting, lanes), np.float64, count),
        )

    def _read_subscribed(self) -> LaneReadings:
        import traci

        tc = traci.constants
        results = self.kernel.backend.api.lane.getAllSubscriptionResults()
        rows = [results.get(lane, {}) for lane in self.lanes]
        count = len(rows)
        return LaneReadings(
            vehicles=np.fromiter(
                (r.get(tc.LAST_STEP_VEHICLE_NUMBER, 0) for r in rows), np.float64, count
            ),
            halting=np.fromiter(
                (r.get(tc.LAST_STEP_VEHICLE_HALTING_NUMBER, 0) for r in rows), np.float64, count
            ),
            waiting_time=np.fromiter(
                (r.get(tc.VAR_WAITING_TIME, 0.0) for r in rows), np.float64, count
            ),
        )

    def incoming_densities(self) -> np.ndarray:
        """Vehicles on every signal's incoming lanes over the lane's jam capacity, in [0, 1];
        signal by signal, lanes in link order (as :attr:`incoming`)."""
        vehicles = self.readings().vehicles[self._incoming_flat]
        return np.minimum(vehicles / self._incoming_capacity, 1.0)

    def incoming_queues(self) -> np.ndarray:
        """Halted vehicles on every signal's incoming lanes over the lane's jam capacity, in
        [0, 1]; ordered as :meth:`incoming_densities`."""
        halting = self.readings().halting[self._incoming_flat]
        return np.minimum(halting / self._incoming_capacity, 1.0)

    def _per_signal(self, values: np.ndarray, flat: np.ndarray, owner: np.ndarray) -> np.ndarray:
        return np.bincount(owner, weights=values[flat], minlength=len(self.ids))

    def queues(self) -> np.ndarray:
        """Halted vehicles (speed below 0.1 m/s) on each signal's incoming lanes."""
        return self._per_signal(self.readings().halting, self._incoming_flat, self._in_owner)

    def waiting_times(self) -> np.ndarray:
        """Summed waiting time (s) of the vehicles on each signal's incoming lanes (SUMO's
        waiting time: how long each has stood still since it last moved)."""
        waiting = self.readings().waiting_time
        return self._per_signal(waiting, self._incoming_flat, self._in_owner)

    def pressures(self) -> np.ndarray:
        """Vehicles on each signal's incoming lanes minus those on its outgoing lanes."""
        vehicles = self.readings().vehicles
        into = self._per_signal(vehicles, self._incoming_flat, self._in_owner)
        return into - self._per_signal(vehicles, self._outgoing_flat, self._out_owner)


__all__ = [
    "DEFAULT_SPACING",
    "LaneReadings",
    "SignalLayout",
    "Signals",
    "green_states",
    "signal_layout",
    "yellow_between",
]
