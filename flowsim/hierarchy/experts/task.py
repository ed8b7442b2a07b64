"""What a learner needs to imitate one hierarchical expert (features, program shape, procedures)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from flowsim.hierarchy.experts.ring import RingLayout
from flowsim.hierarchy.neural import ProgramSpec
from flowsim.hierarchy.procedures import Procedure


@dataclass(frozen=True)
class ExpertTask:
    """A hierarchical expert of the multi-lane ring and what a learner needs to imitate it.

    ``featurize(obs, layout)`` gives every AV's features (names in ``features``), ``spec`` the
    program shape (hidden sizes, pc cap), ``procedures(vmax)`` the rule-based expert; with
    ``at_stop``, drivers count the stops served (``dwell`` steps standing at a stop).
    ``layout(env)`` reads the env's :class:`RingLayout` (or a subclass with more); without
    ``lane_changes`` the env takes accelerations only (one lane) and the lane choice an
    action still carries is not sent. ``scenario`` and ``env``, when given, are the
    ``scenario.type`` and ``env.type`` the expert needs (:func:`check_expert_config`).
    """

    name: str
    features: tuple[str, ...]
    featurize: Callable[[np.ndarray, RingLayout], np.ndarray]
    spec: Callable[[tuple[int, ...], int], ProgramSpec]
    procedures: Callable[[float], list[Procedure]]
    at_stop: Callable[[np.ndarray, float], np.ndarray] | None = None
    dwell: int = 0
    layout: Callable[[Any], RingLayout] = RingLayout.of
    lane_changes: bool = True
    scenario: str | None = None
    env: str | None = None
