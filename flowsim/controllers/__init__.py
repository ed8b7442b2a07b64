"""Controllers: vectorised car-following and velocity laws, fail-safes and ring routing.

A controller drives every vehicle of a group at once: it maps a :class:`FollowingState` to
accelerations. Controllers are named in YAML by registry key::

    controller: {type: idm, params: {noise: 0.2}}

``sumo`` (SUMO's own car-following) and ``rl`` (the learning agent) are also valid names; the
kernel and the env handle them, so they have no class here.

Example:
    >>> controller = make_controller("idm", {"noise": 0.2})
    >>> controller.noise, controller.v0
    (0.2, 30.0)
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from flowsim.controllers.base import Controller, FollowingState
from flowsim.controllers.car_following import (
    IDM,
    OVM,
    BandoFTL,
    CarFollowingModel,
    Gipps,
    LinearOVM,
)
from flowsim.controllers.failsafe import FAILSAFES, apply_failsafes
from flowsim.controllers.routing import ContinuousRouter, ring_route
from flowsim.controllers.velocity import FollowerStopper, PISaturation

#: Controllers with a class, by the name used in YAML.
CONTROLLERS: dict[str, type[Controller]] = {
    "idm": IDM,
    "ovm": OVM,
    "bando_ftl": BandoFTL,
    "linear_ovm": LinearOVM,
    "gipps": Gipps,
    "follower_stopper": FollowerStopper,
    "pi_saturation": PISaturation,
}

#: Names the kernel and env handle themselves: SUMO's car-following and the learning agent.
SPECIAL_CONTROLLERS: frozenset[str] = frozenset({"sumo", "rl"})


def _suggestion(word: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the choice closest to ``word`` ignoring case, or ``""``."""
    by_lower = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1)
    return f" (did you mean '{by_lower[close[0]]}'?)" if close else ""


def _controller_class(name: str) -> type[Controller]:
    """The class registered as ``name``, or a ValueError listing the valid names."""
    if name in CONTROLLERS:
        return CONTROLLERS[name]
    if name in SPECIAL_CONTROLLERS:
        raise ValueError(
            f"controller '{name}' is handled by the "
            f"{'kernel (SUMO car-following)' if name == 'sumo' else 'env (learning agent)'} "
            f"and has no controller object; flowsim controllers: {', '.join(CONTROLLERS)}"
        )
    valid = sorted([*CONTROLLERS, *SPECIAL_CONTROLLERS])
    raise ValueError(
        f"unknown controller '{name}'{_suggestion(name, valid)}; valid: {', '.join(valid)}"
    )


def _parameter_names(cls: type[Controller]) -> list[str]:
    """Parameter names of a controller class, sorted case-insensitively."""
    return sorted((spec.name for spec in fields(cls)), key=str.lower)  # type: ignore[arg-type]


def make_controller(name: str, params: Mapping[str, Any] | None = None) -> Controller:
    """Build the controller registered as ``name`` with parameters ``params``.

    Raises:
        ValueError: unknown controller, unknown parameter, or a value that is not a finite
            number or is physically meaningless (e.g. negative); the message names the
            culprit and lists the valid choices.
    """
    cls = _controller_class(name)
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise ValueError(
            f"params of controller '{name}' must be a mapping of parameter names to numbers, "
            f"got {type(params).__name__}"
        )
    valid = _parameter_names(cls)
    for key in params:
        if key not in valid:
            raise ValueError(
                f"unknown parameter '{key}' for controller '{name}'{_suggestion(str(key), valid)}; "
                f"valid: {', '.join(valid)}"
            )
    try:
        return cls(**params)
    except ValueError as error:
        raise ValueError(f"controller '{name}': {error}") from None


def controller_params(name: str) -> dict[str, float]:
    """Default parameters of the controller registered as ``name``, sorted by name."""
    cls = _controller_class(name)
    defaults = {spec.name: spec.default for spec in fields(cls)}  # type: ignore[arg-type]
    return {key: float(defaults[key]) for key in _parameter_names(cls)}


__all__ = [
    "CONTROLLERS",
    "FAILSAFES",
    "IDM",
    "OVM",
    "SPECIAL_CONTROLLERS",
    "BandoFTL",
    "CarFollowingModel",
    "ContinuousRouter",
    "Controller",
    "FollowerStopper",
    "FollowingState",
    "Gipps",
    "LinearOVM",
    "PISaturation",
    "apply_failsafes",
    "controller_params",
    "make_controller",
    "ring_route",
]
