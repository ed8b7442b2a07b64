"""The hierarchical experts ``imitation.expert`` may name: multi-lane ring, bus, figure eight.

Each expert module defines its features, program shape and rule-based procedures; this
registry turns a name into an :class:`~flowsim.hierarchy.experts.task.ExpertTask`.
"""

from __future__ import annotations

from typing import Any

from flowsim.errors import ConfigError
from flowsim.hierarchy.experts import bus, figure_eight, ring
from flowsim.hierarchy.experts.task import ExpertTask


def check_expert_config(config: Any, task: ExpertTask) -> None:
    """Raise a :class:`~flowsim.errors.ConfigError` naming the key and the fix when the
    experiment's ``scenario.type`` or ``env.type`` is not the one ``task``'s expert drives."""
    for key, wanted, actual in (
        ("scenario.type", task.scenario, config.scenario.type),
        ("env.type", task.env, config.env.type),
    ):
        if wanted is not None and actual != wanted:
            raise ConfigError(
                f"imitation.expert {task.name} drives {key} {wanted}, got {actual}; set "
                f"{key}: {wanted} (e.g. scenarios/imitate_{task.name}.yaml) or choose another "
                f"imitation.expert from {list(EXPERTS)}."
            )


#: Experts ``imitation.expert`` may name.
EXPERTS = ("ring", "bus", "figure_eight")


def expert_task(name: str = "ring") -> ExpertTask:
    """The expert task called ``name`` (one of :data:`EXPERTS`)."""
    if name == "ring":
        return ExpertTask(
            "ring",
            ring.FEATURES,
            ring.ring_features,
            ring.ring_spec,
            ring.expert_procedures,
            scenario="multilane_ring",
            env="lane_change_accel",
        )
    if name == "bus":
        return ExpertTask(
            "bus",
            bus.FEATURES,
            bus.bus_features,
            bus.bus_spec,
            bus.bus_procedures,
            at_stop=bus.at_stop,
            dwell=bus.DWELL_STEPS,
            scenario="multilane_ring",
            env="lane_change_accel",
        )
    if name == "figure_eight":
        return ExpertTask(
            "figure_eight",
            figure_eight.FEATURES,
            figure_eight.figure_eight_features,
            figure_eight.figure_eight_spec,
            figure_eight.figure_eight_procedures,
            layout=figure_eight.FigureEightLayout.of,
            lane_changes=False,
            scenario="figure_eight",
            env="accel",
        )
    raise ValueError(f"unknown expert {name!r}; choose from {list(EXPERTS)}")
