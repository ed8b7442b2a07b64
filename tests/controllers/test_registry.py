"""The controller registry: names, defaults, and errors that name the fix."""

from __future__ import annotations

import ast
import doctest
import importlib
import math
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

import flowsim.controllers as controllers
from flowsim.controllers import (
    CONTROLLERS,
    IDM,
    SPECIAL_CONTROLLERS,
    Controller,
    FollowingState,
    controller_params,
    make_controller,
)

PACKAGE = Path(controllers.__file__).parent


def test_registry_names() -> None:
    assert set(CONTROLLERS) == {
        "idm",
        "ovm",
        "bando_ftl",
        "linear_ovm",
        "gipps",
        "follower_stopper",
        "pi_saturation",
    }
    assert set(SPECIAL_CONTROLLERS) == {"sumo", "rl"}
    assert not set(CONTROLLERS) & set(SPECIAL_CONTROLLERS)
    assert all(issubclass(cls, Controller) for cls in CONTROLLERS.values())


@pytest.mark.parametrize("name", sorted(CONTROLLERS))
def test_defaults_build_a_working_controller(name: str) -> None:
    controller = make_controller(name, {})
    assert type(controller) is CONTROLLERS[name]
    assert controller_params(name) == {
        f.name: getattr(controller, f.name) for f in fields(controller)
    }
    controller.reset(3, np.random.default_rng(0))
    state = FollowingState(
        speed=np.array([0.0, 5.0, 10.0]),
        leader_speed=np.array([0.0, 4.0, 10.0]),
        headway=np.array([np.inf, 8.0, 0.0]),
        speed_limit=np.full(3, 30.0),
        step_length=0.1,
    )
    accel = controller.accelerations(state)
    assert accel.shape == (3,)
    assert np.all(np.isfinite(accel))


def test_controller_params_lists_the_documented_defaults() -> None:
    assert controller_params("idm") == {
        "a": 1.0,
        "b": 1.5,
        "delta": 4.0,
        "noise": 0.0,
        "s0": 2.0,
        "T": 1.0,
        "v0": 30.0,
    }
    assert controller_params("pi_saturation")["history_seconds"] == 38.0
    assert controller_params("follower_stopper")["v_des"] == 15.0


def test_params_reach_the_controller() -> None:
    idm = make_controller("idm", {"noise": 0.2, "v0": 25})
    assert isinstance(idm, IDM)
    assert (idm.noise, idm.v0, idm.T) == (0.2, 25.0, 1.0)
    assert isinstance(make_controller("gipps", None), Controller)


def test_unknown_parameter_names_it_and_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError) as error:
        make_controller("idm", {"vo": 30})
    assert str(error.value) == (
        "unknown parameter 'vo' for controller 'idm'; valid: a, b, delta, noise, s0, T, v0"
    )


def test_close_misspellings_get_a_suggestion() -> None:
    with pytest.raises(ValueError, match=r"'nosie'.*did you mean 'noise'"):
        make_controller("idm", {"nosie": 0.2})
    with pytest.raises(ValueError, match=r"unknown controller 'IDM' \(did you mean 'idm'\?\)"):
        make_controller("IDM", {})


def test_unknown_controller_lists_every_valid_name() -> None:
    with pytest.raises(ValueError) as error:
        make_controller("krauss", {})
    message = str(error.value)
    assert "'krauss'" in message
    assert all(name in message for name in [*CONTROLLERS, *SPECIAL_CONTROLLERS])


@pytest.mark.parametrize("name", sorted(SPECIAL_CONTROLLERS))
def test_special_controllers_have_no_object(name: str) -> None:
    with pytest.raises(ValueError, match=f"controller '{name}' is handled by the"):
        make_controller(name, {})
    with pytest.raises(ValueError, match=f"controller '{name}' is handled by the"):
        controller_params(name)


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("idm", {"a": -1.0}, "'a' of IDM must be > 0"),
        ("idm", {"T": -0.5}, "'T' of IDM must be >= 0"),
        ("idm", {"noise": -0.1}, "'noise' of IDM must be >= 0"),
        ("idm", {"v0": "fast"}, "'v0' of IDM must be a number, got 'fast'"),
        ("idm", {"v0": True}, "'v0' of IDM must be a number"),
        ("idm", {"v0": math.nan}, "'v0' of IDM must be finite"),
        ("ovm", {"h_go": 1.0}, "'h_go' of OVM must exceed h_st"),
        ("gipps", {"tau": 0.0}, "'tau' of Gipps must be > 0"),
        ("linear_ovm", {"adaptation": 0.0}, "'adaptation' of LinearOVM must be > 0"),
        ("follower_stopper", {"v_des": -3.0}, "'v_des' of FollowerStopper must be >= 0"),
        ("pi_saturation", {"g_u": 5.0}, "'g_u' of PISaturation must exceed g_l"),
        ("pi_saturation", {"history_seconds": 0}, "'history_seconds' of PISaturation"),
    ],
)
def test_meaningless_values_are_rejected(name: str, params: dict, expected: str) -> None:
    with pytest.raises(ValueError, match=f"^controller '{name}': .*{expected}"):
        make_controller(name, params)


def test_params_must_be_a_mapping() -> None:
    with pytest.raises(ValueError, match="params of controller 'idm' must be a mapping"):
        make_controller("idm", [("noise", 0.2)])  # type: ignore[arg-type]


def test_controllers_import_only_numpy_and_the_standard_library() -> None:
    allowed = {"numpy", "flowsim"}
    forbidden = {"traci", "libsumo", "sumolib", "ray", "torch"}
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert not roots & forbidden, f"{path.name} imports {roots & forbidden}"
            third_party = {r for r in roots if r not in allowed and not _is_stdlib(r)}
            assert not third_party, f"{path.name} imports {third_party}"


def _is_stdlib(module: str) -> bool:
    return module in sys.stdlib_module_names or module == "__future__"


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_docstring_examples_run(path: Path) -> None:
    module = importlib.import_module(f"flowsim.controllers.{path.stem}".removesuffix(".__init__"))
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
