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

PRESETS: dict[str, FlowsimConfig] = {
    "ring": parse_config(RING, source="preset ring"),
    "multilane_ring": parse_config(MULTILANE_RING, source="preset multilane_ring"),
}
