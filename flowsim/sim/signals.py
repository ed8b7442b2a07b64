"""Traffic lights under an agent's control: green phases, yellow and all-red transitions,
lane readings.

:class:`Signals` binds to a loaded kernel and takes its traffic lights (all, or a chosen few)
over from SUMO's programme. Each signal keeps the green phases of its own programme in the
files (sumo-rl's ``TrafficSignal``, RESCO's ``Signal``): switching from one green to another
shows a yellow state for ``yellow_time`` seconds (every link that loses its green turns
yellow), then, where the programme has an all-red phase, that all-red state for the phase's
duration in the file; a green must have lasted ``yellow_time + all-red + min_green`` seconds
before it may change. :meth:`Signals.follow_program` hands the lights back to SUMO's own
programme (fixed or actuated) instead.

Lane readings (vehicles, halted vehicles, waiting time) are read lazily: each kind at most
once per simulation step and only for the lanes asked for (the incoming lanes come first in
:attr:`Signals.lanes`, so outgoing lanes are read only by the pressure reward and rules). On
libsumo they are direct calls to the compiled getters (a fraction of a microsecond each; a lane
subscription would cost SUMO work at every step, read or not, and its result dictionaries cost
more to read); over TraCI one lane subscription read per step.

The hot path (issue 21): everything a decision needs that does not change within an episode
(getters, yellow states, minimum-green holds, lane capacities) is prepared at :meth:`bind`, and
:meth:`Signals.tick` returns at once until the next yellow or all-red is due.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flowsim.errors import ConfigError
from flowsim.sim.kernel import Kernel, crash_guard

#: Road one vehicle takes in a jam when no vehicle groups are known (m): 5 m car + 2.5 m gap,
#: as sumo-rl normalises densities.
DEFAULT_SPACING = 7.5

#: Guards for the calls made at every step or decision, built once (see ``crash_guard``).
_READING_LANES = crash_guard("reading lanes")
_SWITCHING = crash_guard("switching a traffic light")
_ENDING_YELLOW = crash_guard("ending a yellow phase")


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


def is_all_red(state: str) -> bool:
    """Whether ``state`` stops every link (red, or right-turn-on-red stop)."""
    return all(c in "rs" for c in state)


def green_states(phases: list[str]) -> list[str]:
    """The distinct green states of a programme: no yellow or red-yellow, and not all red.

    States that differ only in ``G`` against ``g`` (priority against yielding green) are
    distinct greens, as in the programme.
    """
    greens: list[str] = []
    for state in phases:
        lowered = state.lower()
        if "y" in lowered or "u" in lowered or is_all_red(state) or state in greens:
            continue
        greens.append(state)
    return greens


def all_red_phase(phases: list[str], durations: list[float]) -> tuple[str, float] | None:
    """The programme's all-red phase between two greens (its state and duration, s), or None
    when the programme goes from yellow straight to the next green."""
    count = len(phases)
    for k, state in enumerate(phases):
        if not is_all_red(state) or count < 2:
            continue
        before, after = phases[(k - 1) % count], phases[(k + 1) % count]
        if not is_all_red(before) and not is_all_red(after):
            return state, float(durations[k])
    return None


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
    """Traffic lights of the kernel's network, switched between their green phases.

    Call :meth:`bind` after each load (it takes the lights over from SUMO's programme),
    :meth:`tick` before every simulation step (it ends yellow and all-red transitions), and
    :meth:`set_green` to ask for a green phase; or :meth:`follow_program` to let SUMO's own
    programme run until the next :meth:`bind`.

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
        ids: Sequence[str] = (),
    ) -> None:
        """``vehicle_spacing`` (m per vehicle in a jam) normalises densities and queues;
        ``ids`` are the traffic lights to control (``env.signals``; empty: every one)."""
        self.kernel = kernel
        self.yellow_time = float(yellow_time)
        self.min_green = float(min_green)
        self.vehicle_spacing = float(vehicle_spacing)
        self.selected: tuple[str, ...] = tuple(ids)
        self.ids: tuple[str, ...] = ()
        #: the green states of each signal, in programme order
        self.greens: list[list[str]] = []
        #: every lane entering or leaving a signal, once each: all incoming lanes first
        self.lanes: tuple[str, ...] = ()
        #: how many of :attr:`lanes` are incoming lanes (the first ones)
        self.num_incoming_lanes = 0
        #: per signal: positions in :attr:`lanes` of its incoming and outgoing lanes
        self.incoming: list[np.ndarray] = []
        self.outgoing: list[np.ndarray] = []
        #: per signal, per controlled connection (in link-index order; a link index may
        #: control several): positions in :attr:`lanes` of its incoming and outgoing lane,
        #: and its link index (its position in the signal's state string)
        self.link_in: list[np.ndarray] = []
        self.link_out: list[np.ndarray] = []
        self.link_index: list[np.ndarray] = []
        #: per signal: (green phases x connections) whether the connection's link is green
        #: (G or g) in that phase
        self.green_links: list[np.ndarray] = []
        #: per signal: the all-red state shown after a yellow (None where the programme has
        #: none) and its duration (s, 0 where none)
        self.all_red: list[str | None] = []
        self.red_time = np.zeros(0)
        self.lane_length = np.zeros(0)
        #: all signals' incoming (outgoing) lanes in one array, and the signal of each entry
        self._incoming_flat = np.zeros(0, dtype=np.int64)
        self._in_owner = np.zeros(0, dtype=np.int64)
        self._outgoing_flat = np.zeros(0, dtype=np.int64)
        self._out_owner = np.zeros(0, dtype=np.int64)
        self._incoming_capacity = np.zeros(0)
        #: per signal: the green shown (or being switched to, during a transition)
        self.phase = np.zeros(0, dtype=np.int64)
        #: per signal: whether a yellow or all-red transition is shown
        self.is_yellow = np.zeros(0, dtype=bool)
        #: per signal: simulation time (s) of the last switch
        self.changed_at = np.zeros(0)
        #: per signal: True while the all-red of a transition is shown
        self._in_red = np.zeros(0, dtype=bool)
        #: per signal: when the transition's present stage (yellow or all-red) ends (s)
        self._stage_end = np.zeros(0)
        #: whether SUMO's programme drives the lights (:meth:`follow_program`)
        self.following = False
        self._programs: list[str] = []
        #: each light's programme id in the files, kept across binds
        self._program_of: dict[str, str] = {}
        #: per signal: for each programme phase, the green it shows or leads to
        self._program_green: list[list[int]] = []
        #: per signal: for each programme phase, whether it is one of the greens
        self._program_shows_green: list[list[bool]] = []
        self._program_phase = np.zeros(0, dtype=np.int64)
        self._cache: dict[str, Any] = {}
        self._read_at = -1.0
        self._subscribed = False
        #: per signal: seconds a green must have lasted before it may change, less 1e-9
        self._hold = np.zeros(0)
        #: per signal: the yellow state shown between greens [from][to]
        self._yellow: list[list[list[str]]] = []
        #: simulation time (less 1e-9) at which the first running transition stage ends
        self._due = math.inf
        #: the lane getters of the running backend, by reading kind
        self._getters: dict[str, Any] = {}
        self._set_state: Any = None

    # -- set-up ---------------------------------------------------------------------------
    @property
    def num_greens(self) -> np.ndarray:
        """Number of green phases of each signal."""
        return np.array([len(g) for g in self.greens], dtype=np.int64)

    @property
    def num_incoming(self) -> np.ndarray:
        """Number of incoming lanes of each signal."""
        return np.array([len(i) for i in self.incoming], dtype=np.int64)

    def _chosen_ids(self) -> tuple[str, ...]:
        """The lights to control: :attr:`selected`, checked against the network, or all."""
        instance = self.kernel.instance
        assert instance is not None
        present = tuple(instance.traffic_lights)
        if not present:
            raise ConfigError(
                f"the network {instance.net_file.name} has no traffic lights to control; give "
                "a network with signals (scenario.type grid, intersection, an OSM area with "
                "signals, or scenario.type sumo with your own files)."
            )
        unknown = [tls for tls in self.selected if tls not in present]
        if unknown:
            raise ConfigError(
                f"env.signals: {', '.join(map(repr, unknown))} not among the traffic lights "
                f"of {instance.net_file.name}; choose from {', '.join(sorted(present))} "
                "(or leave env.signals empty for all)."
            )
        return tuple(dict.fromkeys(self.selected)) if self.selected else present

    def bind(self) -> None:
        """Read the signals' lanes, links and green phases, and take them over from SUMO."""
        kernel = self.kernel
        assert kernel.instance is not None, "bind() needs a loaded kernel"
        api = kernel.backend.api
        self.ids = self._chosen_ids()
        self.greens, self.all_red, self._programs, self._program_green = [], [], [], []
        self._program_shows_green = []
        red_times: list[float] = []
        links_of: list[list[tuple[int, str, str]]] = []
        states: list[str] = []
        program_phases: list[list[str]] = []
        with crash_guard("reading traffic lights"):
            for tls in self.ids:
                links_of.append(
                    [
                        (index, lane_in, lane_out)
                        for index, link in enumerate(api.trafficlight.getControlledLinks(tls))
                        for lane_in, lane_out, _via in link
                    ]
                )
                program = api.trafficlight.getProgram(tls)
                if program == "online":  # bound again in the same run: its programme is known
                    program = self._program_of.get(tls, program)
                self._program_of[tls] = program
                logics = api.trafficlight.getAllProgramLogics(tls)
                logic = next((g for g in logics if g.programID == program), logics[0])
                phases = [phase.state for phase in logic.phases]
                greens = green_states(phases)
                if not greens:
                    raise ConfigError(
                        f"traffic light '{tls}' has no green phase in its programme "
                        f"({', '.join(phases)}); it cannot be controlled: leave it out of "
                        "env.signals."
                    )
                red = all_red_phase(phases, [phase.duration for phase in logic.phases])
                self.greens.append(greens)
                self.all_red.append(red[0] if red else None)
                red_times.append(red[1] if red else 0.0)
                self._programs.append(logic.programID)
                self._program_green.append(_leads_to(phases, greens))
                self._program_shows_green.append([state in greens for state in phases])
                program_phases.append(phases)
                states.append(api.trafficlight.getRedYellowGreenState(tls))
            self._index_lanes(links_of)
            self.lane_length = np.array([api.lane.getLength(lane) for lane in self.lanes])
        self.red_time = np.array(red_times)
        self._incoming_capacity = self.lane_length[self._incoming_flat] / self.vehicle_spacing
        self._hold = self.yellow_time + self.red_time + self.min_green - 1e-9
        self._yellow = [
            [[yellow_between(a, b) for b in greens] for a in greens] for greens in self.greens
        ]
        self._bind_calls(kernel.backend.name, api)
        count = len(self.ids)
        self.phase = np.zeros(count, dtype=np.int64)
        self.is_yellow = np.zeros(count, dtype=bool)
        self._in_red = np.zeros(count, dtype=bool)
        self._stage_end = np.zeros(count)
        self.changed_at = np.full(count, kernel.time)
        self._program_phase = np.full(count, -1, dtype=np.int64)
        self.following = False
        with crash_guard("taking over traffic lights"):
            for i, tls in enumerate(self.ids):
                self._take_over(i, tls, states[i], program_phases[i])
        self._refresh_due()
        self._cache = {}
        self._read_at = -1.0
        self._subscribed = False
        if kernel.backend.name == "traci":
            self._subscribe()

    def _bind_calls(self, backend: str, api: Any) -> None:
        """The calls made at every step: libsumo's compiled functions (without the Python
        wrapper, half the cost of a call) on libsumo, the connection's methods over TraCI."""
        if backend == "libsumo":
            from libsumo import _libsumo

            self._getters = {
                "vehicles": _libsumo.lane_getLastStepVehicleNumber,
                "halting": _libsumo.lane_getLastStepHaltingNumber,
                "waiting": _libsumo.lane_getWaitingTime,
            }
            self._set_state = _libsumo.trafficlight_setRedYellowGreenState
        else:
            self._getters = {
                "vehicles": api.lane.getLastStepVehicleNumber,
                "halting": api.lane.getLastStepHaltingNumber,
                "waiting": api.lane.getWaitingTime,
            }
            self._set_state = api.trafficlight.setRedYellowGreenState

    def _index_lanes(self, links_of: list[list[tuple[int, str, str]]]) -> None:
        """Number the lanes (incoming ones first) and the connections of every signal."""
        incoming: dict[str, None] = {}
        outgoing: dict[str, None] = {}
        for links in links_of:
            for _, lane_in, lane_out in links:
                incoming[lane_in] = None
                outgoing[lane_out] = None
        position = {lane: k for k, lane in enumerate(incoming)}
        self.num_incoming_lanes = len(position)
        for lane in outgoing:
            position.setdefault(lane, len(position))
        self.lanes = tuple(position)
        self.incoming, self.outgoing, self.link_in, self.link_out = [], [], [], []
        self.link_index, self.green_links = [], []
        for links, greens in zip(links_of, self.greens, strict=True):
            index = np.array([k for k, _, _ in links], dtype=np.int64)
            ins = np.array([position[lane] for _, lane, _ in links], dtype=np.int64)
            outs = np.array([position[lane] for _, _, lane in links], dtype=np.int64)
            self.link_index.append(index)
            self.link_in.append(ins)
            self.link_out.append(outs)
            self.incoming.append(np.array(list(dict.fromkeys(ins.tolist())), dtype=np.int64))
            self.outgoing.append(np.array(list(dict.fromkeys(outs.tolist())), dtype=np.int64))
            green = np.array([[c in "Gg" for c in state] for state in greens], dtype=bool)
            self.green_links.append(green[:, index])
        sizes_in = [len(i) for i in self.incoming]
        sizes_out = [len(o) for o in self.outgoing]
        self._incoming_flat = np.concatenate(self.incoming)
        self._in_owner = np.repeat(np.arange(len(self.ids)), sizes_in)
        self._outgoing_flat = np.concatenate(self.outgoing)
        self._out_owner = np.repeat(np.arange(len(self.ids)), sizes_out)

    def _take_over(self, index: int, tls: str, state: str, phases: list[str]) -> None:
        """Hold the light's present state; a transition goes on to the programme's next green."""
        api = self.kernel.backend.api
        greens = self.greens[index]
        if state in greens:
            self.phase[index] = greens.index(state)
        else:  # in a yellow or all-red: finish it, then show the programme's next green
            current = api.trafficlight.getPhase(tls)
            self.phase[index] = self._program_green[index][current % len(phases)]
            self.is_yellow[index] = True
            self._stage_end[index] = self.kernel.time + self.yellow_time
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
        """Per signal: whether it may switch now (``yellow_time + all-red + min_green`` s since
        the last switch)."""
        return self.kernel.time - self.changed_at >= self._hold

    def set_green(self, index: int, phase: int) -> bool:
        """Ask signal ``index`` for green phase ``phase``; True if it starts switching now.

        Refused (False) while the current green has lasted less than ``yellow_time +
        all-red + min_green``, when ``phase`` is the current green, or while SUMO's programme
        runs (:meth:`follow_program`). Otherwise the transition's yellow is shown for
        ``yellow_time`` seconds first (none if no link loses its green), then the programme's
        all-red where it has one.
        """
        greens = self.greens[index]
        if not 0 <= phase < len(greens):
            raise ValueError(f"signal {self.ids[index]} has green phases 0..{len(greens) - 1}")
        if self.following or phase == self.phase[index] or not self.min_green_passed()[index]:
            return False
        self._switch(index, phase)
        self._refresh_due()
        return True

    def set_greens(self, phases: np.ndarray) -> None:
        """:meth:`set_green` for every signal at once (``phases[i]`` for signal i, each a
        valid phase index)."""
        if self.following:
            return
        phases = np.asarray(phases, dtype=np.int64)
        wanted = (phases != self.phase) & self.min_green_passed()
        if wanted.any():
            for index in np.flatnonzero(wanted).tolist():
                self._switch(index, int(phases[index]))
            self._refresh_due()

    def _switch(self, index: int, phase: int) -> None:
        """Start the change of signal ``index`` to green ``phase`` (yellow, all-red first);
        call :meth:`_refresh_due` after the last switch of a step."""
        greens = self.greens[index]
        current = greens[self.phase[index]]
        yellow = self._yellow[index][self.phase[index]][phase]
        loses_green = yellow != current
        red = self.all_red[index] if loses_green else None
        now = self.kernel.time
        if loses_green and self.yellow_time > 0:
            shown, in_red, end = yellow, False, now + self.yellow_time
        elif red is not None:
            shown, in_red, end = red, True, now + self.red_time[index]
        else:
            shown, in_red, end = greens[phase], False, now
        with _SWITCHING:
            self._set_state(self.ids[index], shown)
        self.phase[index] = phase
        self.is_yellow[index] = shown != greens[phase]
        self._in_red[index] = in_red
        self._stage_end[index] = end
        self.changed_at[index] = now

    def tick(self) -> None:
        """End the yellow (then all-red) of every signal whose time is over (call before a
        step); while SUMO's programme runs, only track its green in :attr:`phase`."""
        if self.following:
            self._track_program()
            return
        due = self._due
        if due == math.inf:  # no transition running (the common case)
            return
        now = self.kernel.time
        if now < due:  # nor does one end now
            return
        over = self.is_yellow & (now >= self._stage_end - 1e-9)
        if over.any():
            set_state = self._set_state
            with _ENDING_YELLOW:
                for index in np.flatnonzero(over).tolist():
                    red = self.all_red[index]
                    if red is not None and not self._in_red[index]:
                        set_state(self.ids[index], red)
                        self._in_red[index] = True
                        self._stage_end[index] += self.red_time[index]
                        continue
                    green = self.greens[index][self.phase[index]]
                    set_state(self.ids[index], green)
                    self.is_yellow[index] = False
                    self._in_red[index] = False
        self._refresh_due()

    def _refresh_due(self) -> None:
        """When :meth:`tick` next has work: the earliest end of a running transition stage
        (less 1e-9, as ``tick`` compares), or never."""
        ends = self._stage_end[self.is_yellow]
        self._due = float((ends - 1e-9).min()) if ends.size else math.inf

    def follow_program(self) -> None:
        """Hand the lights back to SUMO's own programme from the files (fixed or actuated)
        until the next :meth:`bind`: :meth:`set_green`, :meth:`set_greens` and :meth:`tick`
        then switch nothing, and :attr:`phase` follows the programme's green."""
        api = self.kernel.backend.api
        with crash_guard("handing traffic lights back to their programme"):
            for tls, program in zip(self.ids, self._programs, strict=True):
                api.trafficlight.setProgram(tls, program)
        self.following = True
        self._in_red[:] = False
        self._track_program()

    def _track_program(self) -> None:
        """Read each light's programme phase; the green it shows or leads to becomes phase."""
        api = self.kernel.backend.api
        with crash_guard("reading traffic light phases"):
            current = np.array([api.trafficlight.getPhase(tls) for tls in self.ids], np.int64)
        moved = current != self._program_phase
        if not moved.any():
            return
        for index in np.flatnonzero(moved).tolist():
            leads = self._program_green[index]
            step = int(current[index]) % len(leads)
            green = leads[step]
            if green != self.phase[index]:
                self.changed_at[index] = self.kernel.time
            self.phase[index] = green
            self.is_yellow[index] = not self._program_shows_green[index][step]
        self._program_phase = current

    # -- readings -------------------------------------------------------------------------
    def _values(self, kind: str, count: int) -> np.ndarray:
        """This step's ``kind`` reading of (at least) the first ``count`` lanes."""
        now = self.kernel.time
        if self._read_at != now:
            self._cache = {}
            self._read_at = now
        values = self._cache.get(kind)
        if values is None or len(values) < count:
            with _READING_LANES:
                if self._subscribed:
                    values = self._read_subscribed(kind)
                else:
                    lanes = self.lanes[:count]
                    values = np.fromiter(map(self._getters[kind], lanes), np.float64, count)
            self._cache[kind] = values
        return values

    def _read_subscribed(self, kind: str) -> np.ndarray:
        import traci

        tc = traci.constants
        variable, default = {
            "vehicles": (tc.LAST_STEP_VEHICLE_NUMBER, 0),
            "halting": (tc.LAST_STEP_VEHICLE_HALTING_NUMBER, 0),
            "waiting": (tc.VAR_WAITING_TIME, 0.0),
        }[kind]
        rows = self._cache.get("rows")
        if rows is None:  # one read of the step's subscription results serves every kind
            results = self.kernel.backend.api.lane.getAllSubscriptionResults()
            rows = [results.get(lane, {}) for lane in self.lanes]
            self._cache["rows"] = rows
        return np.fromiter((r.get(variable, default) for r in rows), np.float64, len(rows))

    def readings(self) -> LaneReadings:
        """This step's vehicles, halted vehicles and waiting time (s) on every lane."""
        count = len(self.lanes)
        return LaneReadings(
            vehicles=self._values("vehicles", count)[:count],
            halting=self._values("halting", count)[:count],
            waiting_time=self._values("waiting", count)[:count],
        )

    def incoming_densities(self) -> np.ndarray:
        """Vehicles on every signal's incoming lanes over the lane's jam capacity, in [0, 1];
        signal by signal, lanes in link order (as :attr:`incoming`)."""
        vehicles = self._values("vehicles", self.num_incoming_lanes)[self._incoming_flat]
        return np.minimum(vehicles / self._incoming_capacity, 1.0)

    def incoming_queues(self) -> np.ndarray:
        """Halted vehicles on every signal's incoming lanes over the lane's jam capacity, in
        [0, 1]; ordered as :meth:`incoming_densities`."""
        halting = self._values("halting", self.num_incoming_lanes)[self._incoming_flat]
        return np.minimum(halting / self._incoming_capacity, 1.0)

    def _per_signal(self, values: np.ndarray, flat: np.ndarray, owner: np.ndarray) -> np.ndarray:
        return np.bincount(owner, weights=values[flat], minlength=len(self.ids))

    def queues(self) -> np.ndarray:
        """Halted vehicles (speed below 0.1 m/s) on each signal's incoming lanes."""
        halting = self._values("halting", self.num_incoming_lanes)
        return self._per_signal(halting, self._incoming_flat, self._in_owner)

    def waiting_times(self) -> np.ndarray:
        """Summed waiting time (s) of the vehicles on each signal's incoming lanes (SUMO's
        waiting time: how long each has stood still since it last moved)."""
        waiting = self._values("waiting", self.num_incoming_lanes)
        return self._per_signal(waiting, self._incoming_flat, self._in_owner)

    def pressures(self) -> np.ndarray:
        """Vehicles on each signal's incoming lanes minus those on its outgoing lanes."""
        vehicles = self._values("vehicles", len(self.lanes))
        into = self._per_signal(vehicles, self._incoming_flat, self._in_owner)
        return into - self._per_signal(vehicles, self._outgoing_flat, self._out_owner)

    def average_speeds(self) -> np.ndarray:
        """Per signal: the mean over the vehicles on its incoming lanes of speed / the speed
        they are allowed there (sumo-rl's average speed), 1 where no vehicle is there."""
        api = self.kernel.backend.api
        total = np.zeros(len(self.ids))
        count = np.zeros(len(self.ids))
        with crash_guard("reading vehicle speeds"):
            vehicle_ids = api.lane.getLastStepVehicleIDs
            speed, allowed = api.vehicle.getSpeed, api.vehicle.getAllowedSpeed
            for lane, owner in zip(
                self._incoming_flat.tolist(), self._in_owner.tolist(), strict=True
            ):
                for vehicle in vehicle_ids(self.lanes[lane]):
                    total[owner] += speed(vehicle) / max(allowed(vehicle), 1e-6)
                    count[owner] += 1
        return np.divide(total, count, out=np.ones(len(self.ids)), where=count > 0)

    def near_stop_line(self, lanes: np.ndarray, distance: float) -> tuple[np.ndarray, np.ndarray]:
        """For each lane position in ``lanes``: the vehicles within ``distance`` m of the lane's
        end, and how many of them are queued (have stood still: SUMO waiting time above 0),
        as RESCO's detectors count queue and approach."""
        api = self.kernel.backend.api
        vehicles = np.zeros(len(lanes))
        queued = np.zeros(len(lanes))
        with crash_guard("reading vehicles near the lights"):
            position, waiting = api.vehicle.getLanePosition, api.vehicle.getWaitingTime
            for k, lane in enumerate(np.asarray(lanes).tolist()):
                start = self.lane_length[lane] - distance
                for vehicle in api.lane.getLastStepVehicleIDs(self.lanes[lane]):
                    if position(vehicle) >= start:
                        vehicles[k] += 1
                        queued[k] += waiting(vehicle) > 0
        return vehicles, queued


def _leads_to(phases: list[str], greens: list[str]) -> list[int]:
    """For each programme phase: the green it shows, or the next green the programme shows."""
    count = len(phases)
    leads = []
    for k in range(count):
        following = (phases[(k + j) % count] for j in range(count))
        leads.append(greens.index(next(s for s in following if s in greens)))
    return leads


__all__ = [
    "DEFAULT_SPACING",
    "LaneReadings",
    "SignalLayout",
    "Signals",
    "all_red_phase",
    "green_states",
    "is_all_red",
    "signal_layout",
    "yellow_between",
]
