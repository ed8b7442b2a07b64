"""The configs behind the registered env ids, as data (mirrored by files in ``scenarios/``)."""

from __future__ import annotations

from flowsim.config import FlowsimConfig, parse_config

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

PRESETS: dict[str, FlowsimConfig] = {
    "ring": parse_config(RING, source="preset ring"),
    "multilane_ring": parse_config(MULTILANE_RING, source="preset multilane_ring"),
    "figure_eight": parse_config(FIGURE_EIGHT, source="preset figure_eight"),
    "lane_change_ring": parse_config(LANE_CHANGE_RING, source="preset lane_change_ring"),
    "multiagent_ring": parse_config(MULTIAGENT_RING, source="preset multiagent_ring"),
    "merge": parse_config(MERGE, source="preset merge"),
}
