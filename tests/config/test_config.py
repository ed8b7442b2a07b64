"""Config models: defaults, YAML, overrides, path resolution and the errors users see."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from flowsim.config import (
    FlowsimConfig,
    apply_overrides,
    config_schema,
    dump_config,
    load_config,
    parse_config,
)
from flowsim.envs.presets import PRESETS
from flowsim.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_flows_ring() -> None:
    cfg = FlowsimConfig()
    assert cfg.scenario.length == 230.0
    assert [(g.type, g.count, g.controller.type) for g in cfg.vehicles] == [
        ("human", 21, "idm"),
        ("av", 1, "rl"),
    ]
    assert cfg.vehicles[0].controller.params == {"noise": 0.2}
    assert (cfg.env.horizon, cfg.env.warmup_steps) == (3000, 750)
    assert (cfg.sim.step_length, cfg.sim.backend) == (0.1, "libsumo")


@pytest.mark.parametrize(
    "name",
    [
        "ring",
        "multilane_ring",
        "figure_eight",
        "lane_change_ring",
        "merge",
        "intersection",
        "grid",
        "osm",
    ],
)
def test_shipped_yaml_matches_env_preset(name: str) -> None:
    shipped, preset = load_config(ROOT / "scenarios" / f"{name}.yaml"), PRESETS[name]
    for section in ("name", "scenario", "vehicles", "inflows", "env", "sim"):  # the env's own
        assert getattr(shipped, section) == getattr(preset, section), section


def test_precedence_defaults_yaml_overrides(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("env: {horizon: 500}\nsim: {seed: 3}\n")
    cfg = load_config(path, ["env.horizon=700", "vehicles.0.count=10"])
    assert cfg.env.horizon == 700  # override beats YAML
    assert cfg.sim.seed == 3  # YAML beats default
    assert cfg.env.warmup_steps == 750  # default stays
    assert cfg.vehicles[0].count == 10


def test_length_range_and_multilane_default() -> None:
    cfg = parse_config({"scenario": {"type": "multilane_ring", "length": [220, 270]}})
    assert cfg.scenario.length == (220.0, 270.0)
    assert cfg.scenario.lanes == 2
    assert cfg.scenario.min_length == 220.0


def test_controller_shorthand_string() -> None:
    cfg = parse_config({"vehicles": [{"type": "human", "count": 22, "controller": "sumo"}]})
    assert cfg.vehicles[0].controller.type == "sumo"


def test_paths_resolve_relative_to_yaml(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "detectors.add.xml").write_text("<additional/>")
    path = tmp_path / "exp.yaml"
    path.write_text("sim: {additional_files: [sub/detectors.add.xml]}\n")
    cfg = load_config(path)
    assert cfg.sim.additional_files == [(tmp_path / "sub" / "detectors.add.xml").resolve()]


def test_round_trips_through_yaml_and_pickle(tmp_path: Path) -> None:
    cfg = apply_overrides(FlowsimConfig(), ["scenario.length=[220, 270]", "sim.seed=9"])
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg
    assert pickle.loads(pickle.dumps(cfg)) == cfg


def test_schema_names_the_documented_keys() -> None:
    schema = config_schema()
    assert {"name", "scenario", "vehicles", "env", "sim", "sampler"} <= set(schema["properties"])
    defs = schema["$defs"]
    assert {"length", "lanes", "type"} <= set(defs["ScenarioConfig"]["properties"])
    assert {"horizon", "warmup_steps"} <= set(defs["EnvConfig"]["properties"])
    assert {"step_length", "backend", "seed"} <= set(defs["SimConfig"]["properties"])


# -- errors: each names the key, the value and the fix ------------------------------------


def _error(data: object) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, source="exp.yaml")
    return str(caught.value)


def test_unknown_key_suggests_the_right_one() -> None:
    message = _error({"env": {"horizn": 10}})
    assert "env.horizn" in message and "did you mean 'horizon'" in message


def test_wrong_type_names_key_and_value() -> None:
    message = _error({"env": {"horizon": "long"}})
    assert "env.horizon" in message and '"long"' in message and "Fix" in message


def test_negative_length() -> None:
    message = _error({"scenario": {"length": -5}})
    assert "scenario.length" in message and "-5" in message and "between 20" in message


def test_too_many_vehicles_for_the_ring() -> None:
    message = _error({"vehicles": [{"type": "human", "count": 40}]})
    assert "40 vehicles" in message and "scenario.length" in message and "lower" in message
    assert "(top level)" not in message and "{" not in message


def test_unknown_controller_lists_valid_ones() -> None:
    message = _error({"vehicles": [{"type": "h", "count": 5, "controller": "idn"}]})
    assert "idn" in message and "idm" in message and "vehicles[0].controller" in message


def test_unknown_controller_param() -> None:
    controller = {"type": "idm", "params": {"vo": 3}}
    message = _error({"vehicles": [{"type": "h", "count": 5, "controller": controller}]})
    assert "vo" in message and "v0" in message


def test_gui_needs_traci() -> None:
    assert "backend: traci" in _error({"sim": {"gui": True}})


def test_missing_additional_file(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("sim: {additional_files: [nope.xml]}\n")
    with pytest.raises(ConfigError, match=r"sim.additional_files\[0\].*file not found"):
        load_config(path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("env: [1, 2\n", "not valid YAML at line"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("!!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ],
)
def test_bad_yaml_files(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_config(path)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(path)


@pytest.mark.parametrize("override", ["env.horizon", "=3", "vehicles.9.count=1"])
def test_bad_overrides(override: str) -> None:
    with pytest.raises(ConfigError, match="--set"):
        apply_overrides(FlowsimConfig(), [override])


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"sim": {"step_length": 0.0001}}, "sim.step_length"),
        ({"sim": {"teleport_time": float("inf")}}, "sim.teleport_time"),
        ({"sim": {"teleport_time": float("nan")}}, "sim.teleport_time"),
        ({"env": {"speed_weight": float("inf")}}, "env.speed_weight"),
        ({"vehicles": [{"type": "h", "count": 3, "color": "purple"}]}, "r,g,b"),
        ({"vehicles": [{"type": "h", "count": 3, "color": "300,0,0"}]}, "0-255"),
        ({"vehicles": [{"type": "h", "count": True}]}, "vehicles[0].count"),
        ({"vehicles": [{"type": "h", "count": "5"}]}, "vehicles[0].count"),
        ({"scenario": {"type": "ring", "lanes": 3}}, "multilane_ring"),
        ({"scenario": {"length": "long"}}, "a length in metres or a range"),
    ],
)
def test_values_sumo_would_reject_are_config_errors(data: dict, fragment: str) -> None:
    message = _error(data)
    assert fragment in message
    assert message.count("\n") == 1  # one line per bad key, no duplicates from unions


def test_capacity_is_checked_per_lane() -> None:
    # Two lanes hold 2 x 40 m, but vehicles are dealt to lanes in turn: 3 long ones share lane 0.
    groups = [
        {"type": "long", "count": 3, "length": 17, "min_gap": 2},
        {"type": "short", "count": 3, "length": 3, "min_gap": 2},
    ]
    message = _error({"scenario": {"type": "multilane_ring", "length": 40}, "vehicles": groups})
    assert "fullest of 2 lanes" in message


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("scenario:\n  length: 230\n  length: 240\n")
    with pytest.raises(ConfigError, match="'length' appears twice"):
        load_config(path)


def test_set_into_controller_shorthand() -> None:
    cfg = apply_overrides(FlowsimConfig(), ["vehicles.0.controller=pi_saturation"])
    cfg = apply_overrides(cfg, ["vehicles.0.controller.params.v_catch=2"])
    assert cfg.vehicles[0].controller.params == {"v_catch": 2.0}


def test_folder_is_not_an_additional_file(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("sim: {additional_files: [.]}\n")
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(path)


def test_a_config_cannot_make_gymnasium_import_a_module() -> None:
    with pytest.raises(ConfigError, match=r"module:Env"):
        parse_config({"env": {"type": "gym", "id": "os:Foo-v0"}})


def test_a_path_too_long_for_the_file_system_is_a_config_error() -> None:
    """A name longer than the file system allows is refused by key, not an OSError."""
    with pytest.raises(ConfigError, match=r"scenario\.osm\.routes_file.*cannot be a file here"):
        apply_overrides(FlowsimConfig(), ["scenario.osm.routes_file=" + "a" * 400])
