"""The configs behind the registered env ids, as data (mirrored by files in ``scenarios/``)."""

from __future__ import annotations

from pathlib import Path

from flowsim.config import FlowsimConfig, parse_config
from flowsim.scenarios.grid import entry_edges

#: ``flowsim/Ring-v0``: Flow's ring, 21 IDM humans with noise and 1 AV on 230 m (the model
#: defaults), with the task settings PPO learns in minutes (an action per 0.5 s, accel penalty
#: 1; see docs/train.md). ``scenarios/ring.yaml`` spells them out.
RING: dict[str, object] = {"env": {"sims_per_step": 5, "horizon": 600, "accel_penalty": 1.0}}

#: ``flowsim/MultiLaneRing-v0``: a two-lane ring with several AVs.
MULTILANE_RING: dict[str, object] = {
    "name": "multilane_ring",
    "scenario": {"type": "multilane_ring", "length": 460.0, "lanes": 2},
    "vehicles": [
        {"type": "human", "count": 40, "controller": {"type": "idm", "params": {"noise": 0.2}}},
        {"type": "av", "count": 4, "controller": "rl", "color": "255,0,0"},
    ],
    "env": {"type": "accel", "horizon": 1500, "warmup_steps": 750},
}

#: ``flowsim/FigureEight-v0``: Flow's figure eight benchmark (figureeight0), 13 IDM humans
#: with noise and 1 AV; reward: Flow's desired velocity (target 20 m/s).
FIGURE_EIGHT: dict[str, object] = {
    "name": "figure_eight",
    "scenario": {"type": "figure_eight", "radius": 30.0, "placement": "even"},
    "vehicles": [
        {"type": "human", "count": 13, "controller": {"type": "idm", "params": {"noise": 0.2}}},
        {"type": "av", "count": 1, "controller": "rl", "color": "255,0,0"},
    ],
    "env": {
        "type": "accel",
        "horizon": 1500,
        "warmup_steps": 0,
        "max_accel": 3.0,
        "max_decel": 3.0,
        "target_speed": 20.0,
    },
}

#: ``flowsim/LaneChangeRing-v0``: the two-lane ring where the AVs also change lanes (Flow's
#: LaneChangeAccelEnv; target speed 10 m/s as Flow's default).
LANE_CHANGE_RING: dict[str, object] = {
    **MULTILANE_RING,
    "name": "lane_change_ring",
    "env": {
        "type": "lane_change_accel",
        "horizon": 1500,
        "warmup_steps": 750,
        "target_speed": 10.0,
        "max_accel": 3.0,
        "max_decel": 3.0,
    },
}

#: ``flowsim.envs.multiagent.parallel_env()``'s default, mirrored by
#: ``scenarios/multiagent_ring.yaml``: Flow's multi-agent ring, 22 vehicles of which 3 are AVs,
#: the ring length re-drawn in [220, 270] m at every reset; the task settings of
#: ``flowsim/Ring-v0`` (an action per 0.5 s, accel penalty 1).
MULTIAGENT_RING: dict[str, object] = {
    "name": "multiagent_ring",
    "scenario": {"type": "ring", "length": [220.0, 270.0], "placement": "random"},
    "vehicles": [
        {"type": "human", "count": 19, "controller": {"type": "idm", "params": {"noise": 0.2}}},
        {"type": "av", "count": 3, "controller": "rl", "color": "255,0,0"},
    ],
    "env": {
        "type": "multiagent_wave_attenuation",
        "sims_per_step": 5,
        "horizon": 600,
        "warmup_steps": 750,
        "accel_penalty": 1.0,
    },
}

#: ``flowsim/Merge-v0``: Flow's merge benchmark (merge0), mirrored by ``scenarios/merge.yaml``:
#: 2000 veh/h on the highway of which 10 % AVs, 100 veh/h on the ramp, humans driven by SUMO's
#: IDM; the agent controls up to 5 AVs at a time, an action per second for 750 s.
MERGE: dict[str, object] = {
    "name": "merge",
    "scenario": {"type": "merge", "speed_limit": 30.0},
    "vehicles": [
        {
            "type": "human",
            "count": 5,
            "controller": "sumo",
            **{"accel": 2.6, "decel": 7.5, "min_gap": 2.5, "tau": 1.0},
        },
        {
            "type": "av",
            "count": 0,
            "controller": "rl",
            "color": "255,0,0",
            **{"accel": 2.6, "decel": 7.5, "min_gap": 2.5},
        },
    ],
    "inflows": [
        {"edge": "inflow_highway", "vehicle": "human", "rate": 1800, "speed": 10},
        {"edge": "inflow_highway", "vehicle": "av", "rate": 200, "speed": 10},
        {"edge": "inflow_merge", "vehicle": "human", "rate": 100, "speed": 7.5},
    ],
    "env": {
        "type": "merge",
        "horizon": 750,
        "sims_per_step": 2,
        "warmup_steps": 0,
        "num_rl": 5,
        "max_accel": 1.5,
        "max_decel": 1.5,
        "target_speed": 20.0,
    },
    "sim": {"step_length": 0.5},
}

#: ``flowsim/Bottleneck-v0``: Flow's bottleneck0, mirrored by
#: ``scenarios/benchmarks/bottleneck0.yaml``: 4 -> 2 -> 1 lanes, 2500 veh/h of which 10 % AVs,
#: no lane changes, 0.5 s steps, 1000 agent steps after 40 warm-up steps.
BOTTLENECK: dict[str, object] = {
    "name": "bottleneck0",
    "scenario": {"type": "bottleneck", "speed_limit": 23.0, "bottleneck": {"scaling": 1}},
    "vehicles": [
        {"type": "human", "count": 0, "controller": "sumo", "min_gap": 2.5, "speed_dev": 0.1},
        {
            "type": "av",
            "count": 0,
            "controller": "rl",
            "speed_mode": "right_of_way",
            "color": "255,0,0",
            "min_gap": 2.5,
            "speed_dev": 0.1,
        },
    ],
    "inflows": [
        {"edge": "1", "vehicle": "human", "rate": 2250, "lane": "random", "speed": 10},
        {"edge": "1", "vehicle": "av", "rate": 250, "lane": "random", "speed": 10},
    ],
    "env": {"type": "bottleneck", "horizon": 1000, "warmup_steps": 40},
    "sim": {"step_length": 0.5},
}

#: sumo-rl's signal-control task: a green-phase decision every 5 one-second steps for an hour,
#: yellow 2 s, green at least 5 s, reward the drop in accumulated waiting time.
SUMO_RL_SIGNAL_TASK: dict[str, object] = {
    "type": "traffic_light_grid",
    "sims_per_step": 5,
    "horizon": 720,
    "warmup_steps": 0,
    "yellow_time": 2.0,
    "min_green": 5.0,
    "signal_reward": "diff_waiting_time",
}

#: ``flowsim/Intersection-v0``, mirrored by ``scenarios/intersection.yaml``: sumo-rl's single
#: intersection: two lanes per arm, 720 veh/h from north and south and 1800 veh/h from east and
#: west, SUMO-driven cars, 1 s steps, a decision every 5 s, yellow 2 s, min green 5 s, an hour.
INTERSECTION: dict[str, object] = {
    "name": "intersection",
    "scenario": {
        "type": "intersection",
        "speed_limit": 13.89,
        "intersection": {
            "arm_length": 200.0,
            "lanes": 2,
            "demand": {"north": 720.0, "south": 720.0, "east": 1800.0, "west": 1800.0},
            "turns": {"left": 0.0, "straight": 1.0, "right": 0.0},
        },
        "signals": {"program": "fixed", "green": 30.0, "yellow": 2.0},
    },
    "vehicles": [
        {
            "type": "human",
            "count": 0,
            "controller": "sumo",
            "car_follow_model": "Krauss",
            "accel": 2.6,
            "decel": 4.5,
            "min_gap": 2.5,
        }
    ],
    "sim": {"step_length": 1.0},
    "env": SUMO_RL_SIGNAL_TASK,
}

#: ``flowsim/TrafficLightGrid-v0``, mirrored by ``scenarios/grid.yaml``: Flow's grid0, 3 x 3
#: actuated lights 300 m apart, 300 veh/h entering on each of the 12 boundary edges at 30 m/s,
#: speed limit 35 m/s, 1 s steps, a decision every second for 400 s.
GRID: dict[str, object] = {
    "name": "grid0",
    "scenario": {
        "type": "grid",
        "speed_limit": 35.0,
        "grid": {"rows": 3, "columns": 3, "inner_length": 300.0, "outer_length": 300.0},
        "signals": {"program": "actuated", "green": 31.0, "yellow": 6.0},
    },
    "vehicles": [
        {
            "type": "human",
            "count": 0,
            "controller": "sumo",
            "accel": 2.6,
            "decel": 7.5,
            "min_gap": 2.5,
            "max_speed": 30.0,
        }
    ],
    "inflows": [
        {"edge": edge, "vehicle": "human", "rate": 300.0, "speed": 30.0}
        for edge in entry_edges(3, 3)
    ],
    "sim": {"step_length": 1.0},
    "env": {
        "type": "traffic_light_grid",
        "sims_per_step": 1,
        "horizon": 400,
        "warmup_steps": 0,
        "yellow_time": 3.0,
        "min_green": 3.0,
        "signal_reward": "diff_waiting_time",
    },
}

#: ``flowsim/OSM-v0``: signal control on an OpenStreetMap network, mirrored by
#: ``scenarios/osm.yaml``: the synthetic town shipped with flowsim (four signals), a random
#: trip every 4 s, a decision every 5 s for an hour.
OSM: dict[str, object] = {
    "name": "osm",
    "scenario": {
        "type": "osm",
        "osm": {
            "file": str(Path(__file__).resolve().parents[1] / "data" / "town.osm"),
            "trips_period": 4.0,
            "trips_end": 3600.0,
            "min_trip_distance": 200.0,
        },
        "signals": {"program": "actuated", "green": 31.0, "yellow": 6.0},
    },
    "vehicles": [{"type": "human", "count": 0, "controller": "sumo"}],
    "env": SUMO_RL_SIGNAL_TASK,
    "sim": {"step_length": 1.0},
}

PRESETS: dict[str, FlowsimConfig] = {
    "ring": parse_config(RING, source="preset ring"),
    "multilane_ring": parse_config(MULTILANE_RING, source="preset multilane_ring"),
    "figure_eight": parse_config(FIGURE_EIGHT, source="preset figure_eight"),
    "lane_change_ring": parse_config(LANE_CHANGE_RING, source="preset lane_change_ring"),
    "multiagent_ring": parse_config(MULTIAGENT_RING, source="preset multiagent_ring"),
    "merge": parse_config(MERGE, source="preset merge"),
    "bottleneck": parse_config(BOTTLENECK, source="preset bottleneck"),
    "osm": parse_config(OSM, source="preset osm"),
    "intersection": parse_config(INTERSECTION, source="preset intersection"),
    "grid": parse_config(GRID, source="preset grid"),
}
