"""The one dotted-key walker: plain data (get / set, the --set engine) and the model tree."""

from __future__ import annotations

import pytest

from flowsim.config import FlowsimConfig
from flowsim.config.keys import Shape, get_value, key_problem, locate, set_value
from flowsim.errors import ConfigError


def _data() -> dict:
    return {
        "env": {"horizon": 10},
        "vehicles": [{"type": "human", "count": 3, "controller": "idm"}],
    }


def test_get_walks_dicts_and_lists() -> None:
    data = _data()
    assert get_value(data, "env.horizon") == 10
    assert get_value(data, "vehicles.0.count") == 3
    assert get_value(data, "vehicles.0") == data["vehicles"][0]


def test_set_walks_dicts_and_lists() -> None:
    data = _data()
    set_value(data, "env.horizon", 20)
    set_value(data, "vehicles.0.count", 5)
    set_value(data, "sim.seed", 3)  # a missing mapping is created
    set_value(data, "inflows.0", {"edge": "a"}, defaults={"inflows": [{}]})  # ... from defaults
    assert data["env"] == {"horizon": 20}
    assert data["vehicles"][0]["count"] == 5
    assert data["sim"] == {"seed": 3}
    assert data["inflows"] == [{"edge": "a"}]


def test_set_into_a_missing_branch_starts_from_its_default() -> None:
    data: dict = {}
    defaults = {"vehicles": [{"type": "human", "count": 21}, {"type": "av", "count": 1}]}
    set_value(data, "vehicles.1.count", 2, defaults)
    assert data == {"vehicles": [{"type": "human", "count": 21}, {"type": "av", "count": 2}]}
    assert defaults["vehicles"][1]["count"] == 1  # the defaults are copied, never changed


def test_set_expands_the_controller_shorthand() -> None:
    data = _data()
    set_value(data, "vehicles.0.controller.params.v0", 15)
    assert data["vehicles"][0]["controller"] == {"type": "idm", "params": {"v0": 15}}


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("vehicles.1.count", "'1' is not an index of a list of 1 items"),
        ("vehicles.x.count", "'x' is not an index of a list of 1 items"),
        ("vehicles.\u00b2.count", "'\u00b2' is not an index"),  # int() reads it; an index does not
        ("vehicles.-1.count", "'-1' is not an index"),
        ("env.horizon.x", "the parent of 'x' is not a mapping"),
        ("env.horizon.x.y", "'x' is not inside a mapping"),
    ],
)
def test_bad_keys_are_config_errors_naming_the_key(key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        set_value(_data(), key, 1)
    assert str(caught.value).startswith(f"--set {key}: ") and fragment in str(caught.value)
    with pytest.raises(ConfigError, match=r"^key "):  # get names the key the same way
        get_value(_data(), key)


def test_get_names_the_keys_of_a_mapping_without_the_key() -> None:
    with pytest.raises(ConfigError, match=r"no key 'horizn' here; keys: horizon"):
        get_value(_data(), "env.horizn")


# -- the model tree ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "train.lr",
        "train.trpo.max_kl",
        "vehicles.0.count",
        "vehicles.3.controller.params.v0",
        "env.horizon",
        "env.num_rl",  # some env type takes it
        "scenario.intersection.demand.north",
    ],
)
def test_model_keys_that_exist(key: str) -> None:
    assert key_problem(FlowsimConfig, key) is None


def test_model_key_problems_say_where_and_why() -> None:
    unknown = key_problem(FlowsimConfig, "train.lrr")
    assert unknown is not None and unknown.kind == "unknown"
    assert (unknown.where, unknown.part, unknown.close) == ("train", "lrr", "lr")
    assert "lr" in unknown.valid and "gamma" in unknown.valid
    index = key_problem(FlowsimConfig, "vehicles.x.count")
    assert index is not None and (index.kind, index.where) == ("index", "vehicles")
    value = key_problem(FlowsimConfig, "train.lr.x")
    assert value is not None and (value.kind, value.where) == ("value", "train.lr")
    empty = key_problem(FlowsimConfig, "train..lr")
    assert empty is not None and empty.kind == "empty"


def test_model_keys_of_a_picked_env_type() -> None:
    assert key_problem(FlowsimConfig, "env.num_rl", {"env": "merge"}) is None
    problem = key_problem(FlowsimConfig, "env.num_rl", {"env": "accel"})
    assert problem is not None and problem.kind == "variant"
    owners = ("merge", "open_accel")
    assert (problem.tag_key, problem.tag, problem.owners) == ("env.type", "accel", owners)
    assert "num_rl" not in problem.valid and "target_speed" in problem.valid


def test_shape_of_the_env_section() -> None:
    env = Shape.of_model(FlowsimConfig).child("env")
    assert env is not None and env.tagged and env.tag == "type"
    assert env.tags()[0] == "wave_attenuation" and "gym" in env.tags()
    merge = env.variant("merge")
    assert merge is not None and merge.picked == "merge" and merge.family is env
    assert "num_rl" in merge.valid_keys() and "yellow_time" not in merge.valid_keys()
    assert env.owners("yellow_time") == [
        "traffic_light_grid",
        "flow_traffic_light_grid",
        "multiagent_traffic_light_grid",
    ]


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        (("vehicles", 0, "count"), ("vehicles", 0, "count")),
        (("env", "wave_attenuation", "horizn"), ("env", "horizn")),  # the union's tag dropped
        (("scenario", "length", "tuple[float, float]", 0), ("scenario", "length", 0)),
        (
            ("scenario", "intersection", "demand", "up", "[key]"),  # a mapping's key slot
            ("scenario", "intersection", "demand", "up"),
        ),
        ((), ()),
    ],
)
def test_locate_names_the_key_a_user_wrote(loc: tuple, path: tuple) -> None:
    assert locate(FlowsimConfig, loc).path == path


def test_locate_gives_the_section_that_holds_the_key() -> None:
    place = locate(FlowsimConfig, ("env", "merge", "yellow_time"))
    assert place.container is not None and place.container.picked == "merge"
    assert "num_rl" in place.container.valid_keys() and place.shape is None
