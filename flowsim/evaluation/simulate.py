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
from flowsim.scenarios.open import edge_speeds
from flowsim.sim.simulation import Simulation
from flowsim.viz.progress import progress_bar


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


def simulate(config: FlowsimConfig, steps: int, show_progress: bool = False) -> dict[str, Any]:
    """Run ``steps`` steps with humans (and ``rl`` vehicles, driven by SUMO) and summarise.

    ``mean_speed`` and ``speed_std`` (across vehicles) are averaged over the second half of
    the run, once the traffic has settled; ``final_*`` are the last step's values.
    ``run_mean_speed`` averages the mean speed over every step instead (Flow's benchmark
    metric). ``sim_time_s`` includes the one step that inserts the vehicles.
    On an open network it also counts vehicles ``entered``, ``arrived`` (at their exit) and
    still ``in_network``, the ``mean_travel_time_s`` of those that arrived, and ``flow_delay``:
    Flow's grid benchmark metric, minus the sum over steps of ``dt`` times the vehicles' mean
    normalised slowdown ``(v_top - v) / v_top`` (``v_top``: the network's highest speed limit).
    """
    if steps < 1:
        raise ConfigError(f"--steps {steps}: give a positive number of steps, e.g. 3000.")
    simulation = Simulation(config, rl_as_human=True)
    started = time.perf_counter()
    try:
        instance = simulation.reset(seed=config.sim.seed)
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
        del summary["ring_length"]
        summary["route_length"] = instance.length if instance.ring_edges else None
    return summary
