"""Run a scenario with its configured drivers (no learning) and summarise the traffic."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from flowsim.config import FlowsimConfig, VehicleGroup
from flowsim.controllers import CONTROLLERS, FollowingState, make_controller
from flowsim.controllers.car_following import IDM
from flowsim.errors import ConfigError
from flowsim.scenarios.base import ScenarioInstance
from flowsim.scenarios.open import OpenScenario, edge_speeds, traffic_light_ids
from flowsim.sim.kernel import Kernel
from flowsim.sim.simulation import Simulation
from flowsim.sim.trips import TRIP_METRICS, TripMeter
from flowsim.viz.progress import progress_bar

#: Seconds at the end of a run over which ``outflow`` counts arrivals when the env names no
#: window (Flow's bottleneck benchmark: the last 500 s).
OUTFLOW_WINDOW = 500.0


def _noiseless_model(group: VehicleGroup):
    """The group's car-following model without noise (SUMO's IDM mapped to flowsim's IDM)."""
    controller = group.controller
    if controller.type in CONTROLLERS:
        params = {**controller.params}
        if "noise" in params:
            params["noise"] = 0.0
        return make_controller(controller.type, params)
    return IDM(
        v0=group.max_speed, T=group.tau, a=group.accel, b=group.decel, s0=group.min_gap, noise=0.0
    )


def equilibrium_speed(config: FlowsimConfig, length: float | None = None) -> float:
    """Speed (m/s) of uniform flow on a ring of ``length`` m under the most common human model.

    Every vehicle keeps the same gap ``L·lanes / n − mean length`` and its model's acceleration
    is zero; found by bisection on the model itself, so it holds for any car-following model.
    ``length`` defaults to the scenario's (shortest) ring length.
    """
    humans = [g for g in config.vehicles if g.controller.type != "rl" and g.count > 0]
    group = max(humans or config.vehicles, key=lambda g: g.count)
    model = _noiseless_model(group)
    length = (length or config.scenario.min_length) * config.scenario.lanes
    mean_length = np.mean([g.length for g in config.vehicles for _ in range(g.count)])
    gap = length / config.num_vehicles - float(mean_length)
    model.reset(1, np.random.default_rng(0))

    def accel(speed: float) -> float:
        state = FollowingState(
            speed=np.array([speed]),
            leader_speed=np.array([speed]),
            headway=np.array([gap]),
            speed_limit=np.array([config.scenario.speed_limit]),
            step_length=config.sim.step_length,
        )
        return float(model.accelerations(state)[0])

    low, high = 0.0, min(group.max_speed, config.scenario.speed_limit)
    if accel(high) >= 0:
        return high
    for _ in range(60):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if accel(middle) > 0 else (low, middle)
    return 0.5 * (low + high)


def _top_speed_limit(instance: ScenarioInstance) -> float:
    """The highest lane speed limit of a network's normal edges (m/s)."""
    from flowsim.scenarios.open import net_edges

    speeds = edge_speeds(instance.net_file)
    return max(speeds[edge] for edge in net_edges(instance.net_file))


def signal_choices() -> tuple[str, ...]:
    """The names ``simulate --signals`` takes: the no-training signal baselines."""
    from flowsim.controllers.signals import SIGNAL_BASELINES

    return tuple(SIGNAL_BASELINES)


class SignalDriver:
    """A no-training signal rule (``program``, ``fixed_cycle``, ``max_pressure``, ``greedy``)
    driving a kernel's traffic lights as the signal env would: a decision every
    ``env.sims_per_step`` steps, with the env's yellow and minimum green, on the lights of
    ``env.signals`` (every light when empty); ``fixed_cycle`` holds each green for
    ``scenario.signals.green`` seconds. A config whose env is not a signal env takes the
    signal env's defaults for those.
    Call :meth:`bind` after each load and :meth:`before_step` before every SUMO step.
    """

    def __init__(self, config: FlowsimConfig, kernel: Kernel, name: str) -> None:
        from flowsim.config.env import TrafficLightGridEnvConfig

        env = config.env
        if not all(hasattr(env, key) for key in ("yellow_time", "min_green")):
            env = TrafficLightGridEnvConfig()
        self.config, self.kernel, self.name = config, kernel, name
        self.yellow_time, self.min_green = float(env.yellow_time), float(env.min_green)
        self.every = max(1, int(env.sims_per_step))
        self.selected = tuple(getattr(env, "signals", None) or ())
        self.signals: Any = None
        self.rule: Any = None
        self._steps = 0

    def bind(self) -> None:
        """Take the lights of the loaded episode (or hand them to SUMO, for ``program``)."""
        from flowsim.controllers.signals import signal_rule
        from flowsim.sim.signals import Signals

        spacing = min(g.length + g.min_gap for g in self.config.vehicles)
        self.signals = Signals(
            self.kernel, self.yellow_time, self.min_green, spacing, ids=self.selected
        )
        self.signals.bind()
        green = self.config.scenario.signals.green  # fixed_cycle's period per green
        self.rule = signal_rule(self.name, self.signals, green=green)
        self.rule.reset()
        self._steps = 0

    def before_step(self) -> None:
        """End finished yellows; at a decision step, switch to the rule's greens."""
        self.signals.tick()
        if self._steps % self.every == 0:
            self.signals.set_greens(self.rule.choose())
        self._steps += 1


def _signalised(simulation: Simulation) -> tuple[str, ...]:
    """The traffic lights of an open network (built, or fetched from the cache, here)."""
    scenario = simulation.scenario
    if not isinstance(scenario, OpenScenario):
        return ()
    return traffic_light_ids(scenario.network())


def _check_signals(config: FlowsimConfig, name: str, lights: tuple[str, ...]) -> None:
    """Refuse an unknown ``--signals`` name, or one on a network without traffic lights."""
    choices = signal_choices()
    if name not in choices:
        raise ConfigError(f"--signals {name!r}: unknown rule; choose from {', '.join(choices)}.")
    if not lights:
        raise ConfigError(
            f"--signals {name}: the {config.scenario.type} network of {config.name} has no "
            "traffic lights; give a network with signals (e.g. scenarios/intersection.yaml or "
            "scenarios/resco/cologne1.yaml), or leave --signals out. Choices: "
            f"{', '.join(choices)}."
        )


def simulate(
    config: FlowsimConfig, steps: int, show_progress: bool = False, signals: str | None = None
) -> dict[str, Any]:
    """Run ``steps`` steps with humans (and ``rl`` vehicles, driven by SUMO) and summarise.

    ``mean_speed`` and ``speed_std`` (across vehicles) are averaged over the second half of
    the run, once the traffic has settled; ``final_*`` are the last step's values.
    ``run_mean_speed`` averages the mean speed over every step instead (Flow's benchmark
    metric). ``sim_time_s`` includes the one step that inserts the vehicles.
    On an open network it also counts vehicles ``entered``, ``arrived`` (at their exit) and
    still ``in_network``, the ``mean_travel_time_s`` of those that arrived, and ``flow_delay``:
    Flow's grid benchmark metric, minus the sum over steps of ``dt`` times the vehicles' mean
    normalised slowdown ``(v_top - v) / v_top`` (``v_top``: the network's highest speed limit).
    ``outflow`` is the vehicles per hour that reached their exit over the last
    ``env.outflow_window`` s of the run (500 s when the env has none; Flow's bottleneck metric).

    On a network with traffic lights the lights run SUMO's own programme, or with ``signals``
    the rule of that name (:func:`signal_choices`: ``program``, ``fixed_cycle``,
    ``max_pressure``, ``greedy``) as the signal env would drive them, and the summary adds
    RESCO's trip metrics of the run (:class:`~flowsim.sim.trips.TripMeter`: ``avg_delay``,
    ``avg_trip_time``, ``avg_waiting_time``, ``throughput``) and ``signals``, the rule's name.
    """
    if steps < 1:
        raise ConfigError(f"--steps {steps}: give a positive number of steps, e.g. 3000.")
    simulation = Simulation(config, rl_as_human=True)
    lights = _signalised(simulation)
    if signals is not None:
        _check_signals(config, signals, lights)
    meter = TripMeter(simulation.kernel) if lights else None
    driver = SignalDriver(config, simulation.kernel, signals) if signals is not None else None
    started = time.perf_counter()
    try:
        instance = simulation.reset(seed=config.sim.seed)
        if driver is not None:
            driver.bind()
        settled = 0
        mean_sum = std_sum = run_sum = 0.0
        minimum = np.inf
        collisions = teleports = 0
        kernel = simulation.kernel
        entered_at = {vehicle_id: kernel.time for vehicle_id in kernel.vehicle_ids}
        travel_times: list[float] = []
        top_speed = _top_speed_limit(instance) if instance.open else 0.0
        delay = 0.0  # Flow's grid metric: sum over steps of dt * mean((v_top - v) / v_top)
        with progress_bar("simulating", steps, enabled=show_progress) as advance:
            for step in range(steps):
                if driver is not None:
                    driver.before_step()
                events = simulation.step()
                collisions += len(events.collisions)
                teleports += events.teleports
                if instance.open and kernel.vehicle_ids:
                    slowdown = (top_speed - kernel.speeds()) / top_speed
                    delay += config.sim.step_length * float(slowdown.mean())
                if events.changed and instance.open:
                    for vehicle_id in events.removed:
                        if vehicle_id in entered_at and vehicle_id not in events.collisions:
                            travel_times.append(kernel.time - entered_at.pop(vehicle_id))
                    for vehicle_id in events.added:
                        entered_at[vehicle_id] = kernel.time
                if simulation.kernel.vehicle_ids:
                    run_sum += float(simulation.kernel.speeds().mean())
                if step >= steps // 2 and simulation.kernel.vehicle_ids:
                    speeds = simulation.kernel.speeds()
                    settled += 1
                    mean_sum += float(speeds.mean())
                    std_sum += float(speeds.std())
                    minimum = min(minimum, float(speeds.min()))
                advance()
        final = simulation.metrics()
        sim_time = simulation.kernel.time
        outflow = simulation.outflow(getattr(config.env, "outflow_window", OUTFLOW_WINDOW))
        trips = meter.measure() if meter is not None else None
    finally:
        simulation.close()
    wall = time.perf_counter() - started
    summary: dict[str, Any] = {
        "name": config.name,
        "steps": steps,
        "sim_time_s": round(sim_time, 6),
        "vehicles": config.num_vehicles,
        "ring_length": instance.length,
        "mean_speed": mean_sum / settled if settled else final["mean_speed"],
        "speed_std": std_sum / settled if settled else final["speed_std"],
        "min_speed": minimum if settled else final["mean_speed"],
        "run_mean_speed": run_sum / steps if steps else final["mean_speed"],
        "final_mean_speed": final["mean_speed"],
        "final_speed_std": final["speed_std"],
        "equilibrium_speed": None if instance.open else equilibrium_speed(config, instance.length),
        "collisions": collisions,
        "teleports": teleports,
        "wall_s": wall,
        "steps_per_s": steps / wall if wall > 0 else float("inf"),
    }
    if instance.open:
        # Vehicles that entered (placed at the start or on inflows) and that reached their exit.
        summary["entered"] = len(entered_at) + len(travel_times)
        summary["arrived"] = len(travel_times)
        summary["in_network"] = len(entered_at)
        summary["mean_travel_time_s"] = float(np.mean(travel_times)) if travel_times else None
        summary["flow_delay"] = -delay
        summary["outflow"] = outflow
        del summary["ring_length"]
        summary["route_length"] = instance.length if instance.ring_edges else None
    if trips is not None:
        summary["signals"] = signals or "program"
        summary.update({key: trips[key] for key in TRIP_METRICS})
        summary["throughput"] = int(trips["throughput"])
    return summary
