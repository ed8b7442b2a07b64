"""RESCO's trip metrics of the episode running in a kernel: delay, trip time, waiting, throughput.

RESCO (Ault & Sharon, NeurIPS 2021) scores signal control by ``avg_delay``: over every vehicle of
the episode, its ``timeLoss + departDelay`` as SUMO's tripinfo output reports them (vehicles still
driving at the end included, with the values they have reached), plus, for each vehicle that
never got into the network, the time it has waited to be inserted. Its table script adds the
trip duration and waiting time averaged the same way.

:class:`TripMeter` reads them from SUMO itself at the end of an episode, never per step: SUMO's
tripinfo device (switched on for every vehicle by :data:`TRIP_OPTIONS`, with no output file)
keeps the totals of finished trips, and the vehicles still driving or waiting to be inserted are
read one by one. The totals come back from SUMO as averages to the millisecond, so the metrics
equal those computed from SUMO's tripinfo file of the same run to SUMO's millisecond resolution.
A kernel that nobody measures runs without the device.
"""

from __future__ import annotations

import math

from flowsim.errors import ConfigError
from flowsim.sim.kernel import Kernel, crash_guard

#: The metrics :meth:`TripMeter.measure` returns, in the order tables and progress.csv show them.
TRIP_METRICS = ("avg_delay", "avg_trip_time", "avg_waiting_time", "throughput")

#: SUMO options that equip every vehicle with a tripinfo device (no output file) and print the
#: device's averages with enough digits to hold SUMO's millisecond times.
TRIP_OPTIONS = ("--device.tripinfo.probability", "1", "--precision", "6")

_READING_TRIPS = crash_guard("reading trip statistics")


class TripMeter:
    """RESCO's trip metrics of the episode loaded in ``kernel``, measured on demand.

    Building it adds :data:`TRIP_OPTIONS` to the kernel's SUMO options; it takes effect at the
    kernel's next load, so build the meter before the episode's ``reset``.

    Example:
        >>> from flowsim.envs.presets import PRESETS
        >>> from flowsim.sim.simulation import Simulation
        >>> sim = Simulation(PRESETS["intersection"])
        >>> meter = TripMeter(sim.kernel)
        >>> _ = sim.reset(seed=0)
        >>> for _ in range(300):
        ...     _ = sim.step()
        >>> sorted(meter.measure())
        ['avg_delay', 'avg_trip_time', 'avg_waiting_time', 'throughput']
        >>> sim.close()
    """

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        if not _has_options(kernel.extra_args):
            kernel.extra_args = [*kernel.extra_args, *TRIP_OPTIONS]

    def measure(self) -> dict[str, float]:
        """The episode so far, from its first step to now.

        ``avg_delay`` (s): the mean over every vehicle due to depart by now of ``timeLoss +
        departDelay`` (finished trips, and vehicles still driving with what they have lost so
        far), where a vehicle not yet inserted counts the time since its planned departure.
        ``avg_trip_time`` and ``avg_waiting_time`` (s): the mean ``duration`` and tripinfo
        ``waitingTime`` (time spent below 0.1 m/s) of the vehicles that departed, those still
        driving included. ``throughput``: vehicles that finished their trip. Averages are NaN
        where there is no vehicle to average over.
        """
        api = self.kernel.backend.api
        if api is None:
            raise ConfigError("TripMeter.measure() needs a running simulation: reset it first.")
        with _READING_TRIPS:
            try:
                finished = _device_statistics(api)
            except Exception as error:  # TraCIException from either backend
                if "not supported" not in str(error) and "tripinfo" not in str(error):
                    raise
                raise ConfigError(
                    "trip metrics need SUMO's tripinfo device from the start of the episode: "
                    "build the TripMeter before the simulation's reset."
                ) from None
            now = float(api.simulation.getTime())
            running = api.vehicle.getIDList()
            vehicle = api.vehicle
            delay = finished["delay"]
            duration = finished["duration"]
            waiting = finished["waiting"]
            for vehicle_id in running:
                delay += vehicle.getTimeLoss(vehicle_id) + vehicle.getDepartDelay(vehicle_id)
                duration += now - vehicle.getDeparture(vehicle_id)
                waiting += float(vehicle.getParameter(vehicle_id, "device.tripinfo.waitingTime"))
            pending = api.simulation.getPendingVehicles()
            for vehicle_id in pending:
                delay += vehicle.getDepartDelay(vehicle_id)
        count = finished["count"]
        departed = count + len(running)
        due = departed + len(pending)
        return {
            "avg_delay": delay / due if due else math.nan,
            "avg_trip_time": duration / departed if departed else math.nan,
            "avg_waiting_time": waiting / departed if departed else math.nan,
            "throughput": float(count),
        }


def _has_options(args: list[str]) -> bool:
    """Whether ``args`` already hold :data:`TRIP_OPTIONS`."""
    size = len(TRIP_OPTIONS)
    return any(tuple(args[k : k + size]) == TRIP_OPTIONS for k in range(len(args) - size + 1))


def _device_statistics(api: object) -> dict[str, float]:
    """Totals over finished trips kept by SUMO's tripinfo device: ``count`` and the sums of
    ``timeLoss + departDelay`` (``delay``), ``duration`` and ``waitingTime`` (s)."""

    def read(key: str) -> float:
        return float(api.simulation.getParameter("", f"device.tripinfo.{key}"))  # type: ignore[attr-defined]

    count = read("count")
    if count == 0:
        return {"count": 0.0, "delay": 0.0, "duration": 0.0, "waiting": 0.0}
    return {
        "count": count,
        "delay": read("timeLoss") * count + read("totalDepartDelay"),
        "duration": read("totalTravelTime"),
        "waiting": read("waitingTime") * count,
    }


__all__ = ["TRIP_METRICS", "TRIP_OPTIONS", "TripMeter"]
