"""The env section: one settings model per env.type, each taking only the keys its env reads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flowsim.config import (
    EnvConfig,
    FlowsimConfig,
    apply_overrides,
    config_schema,
    dump_config,
    load_config,
    parse_config,
)
from flowsim.config.env import (
    DEFAULT_ENV_TYPE,
    ENV_CONFIGS,
    GymEnvConfig,
    MergeEnvConfig,
    WaveAttenuationEnvConfig,
)
from flowsim.envs.registry import ENV_TYPES, MULTIAGENT_TYPES
from flowsim.errors import ConfigError

#: Keys every env type takes (read for any config: evaluation, replay, benchmarks).
COMMON = {"type", "horizon", "warmup_steps", "sims_per_step"}


def _error(data: object) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, source="exp.yaml")
    return str(caught.value)


def test_every_env_type_has_one_model() -> None:
    assert set(ENV_CONFIGS) == {*ENV_TYPES, *MULTIAGENT_TYPES, "gym"}
    for env_type, model in ENV_CONFIGS.items():
        assert issubclass(model, EnvConfig)
        assert set(model.model_fields) >= COMMON
        data = {"type": env_type, "id": "CartPole-v1"} if env_type == "gym" else {"type": env_type}
        assert type(parse_config({"env": data}).env) is model


def test_the_default_type_stays_wave_attenuation() -> None:
    assert DEFAULT_ENV_TYPE == "wave_attenuation"
    assert type(FlowsimConfig().env) is WaveAttenuationEnvConfig
    assert type(parse_config({"env": {"horizon": 5}}).env) is WaveAttenuationEnvConfig


def test_each_type_takes_the_keys_its_env_reads() -> None:
    merge = set(MergeEnvConfig.model_fields)
    assert {"num_rl", "max_accel", "target_speed", "terminate_on_collision"} <= merge
    assert not {"yellow_time", "speed_weight", "lane_change_penalty", "id"} & merge
    assert set(GymEnvConfig.model_fields) == COMMON | {"id"}
    for env_type in ("wave_attenuation", "multiagent_wave_attenuation"):
        assert {"speed_weight", "accel_penalty", "wave_penalty"} <= set(
            ENV_CONFIGS[env_type].model_fields
        )
    for env_type in ("traffic_light_grid", "multiagent_traffic_light_grid"):
        keys = set(ENV_CONFIGS[env_type].model_fields)
        assert {"yellow_time", "min_green", "signal_reward"} <= keys and "max_accel" not in keys


def test_a_key_of_another_type_names_the_type_and_its_keys() -> None:
    message = _error({"env": {"type": "merge", "yellow_time": 3}})
    assert "env.yellow_time" in message and "does not apply to env.type merge" in message
    assert "traffic_light_grid" in message  # the types that do take it
    valid = message.split("Valid keys here: ")[1].split(".")[0].split(", ")
    assert valid == list(MergeEnvConfig.model_fields)
    assert "env.id" in _error({"env": {"id": "CartPole-v1"}})  # id is for gym only


def test_an_unknown_key_still_suggests_the_closest() -> None:
    message = _error({"env": {"type": "traffic_light_grid", "min_gren": 3}})
    assert "unknown key 'env.min_gren'" in message and "did you mean 'min_green'" in message


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"type": "bogus"}, "env.type = \"bogus\": Input should be 'wave_attenuation'"),
        ("ring", 'env = "ring": Input should be a valid dictionary or instance of EnvConfig'),
        ({"type": "gym"}, "env.type gym needs env.id"),
        ({"type": "merge", "num_rl": 0}, "env.num_rl = 0"),
    ],
)
def test_bad_env_sections_name_the_key(env: object, fragment: str) -> None:
    message = _error({"env": env})
    assert fragment in message and message.count("\n") == 1


def test_check_shows_only_the_keys_of_the_type() -> None:
    for name, env_type in (("ring", "wave_attenuation"), ("grid", "traffic_light_grid")):
        config = load_config(Path(__file__).parents[2] / "scenarios" / f"{name}.yaml")
        env = yaml.safe_load(dump_config(config, effective=True))["env"]
        assert env["type"] == env_type and set(env) == set(ENV_CONFIGS[env_type].model_fields)


def test_overriding_the_type_starts_from_the_new_types_defaults(tmp_path: Path) -> None:
    config = apply_overrides(FlowsimConfig(), ["env.horizon=50", "env.type=merge"])
    assert type(config.env) is MergeEnvConfig and config.env.horizon == 50
    gym = apply_overrides(config, ["env.type=gym", "env.id=CartPole-v1"])
    assert isinstance(gym.env, GymEnvConfig) and gym.env.horizon == 50
    path = tmp_path / "exp.yaml"
    path.write_text("name: x\n")
    assert load_config(path, ["env.type=gym", "env.id=CartPole-v1"]).env.id == "CartPole-v1"
    with pytest.raises(ConfigError, match=r"'env\.speed_weight' does not apply"):
        apply_overrides(FlowsimConfig(env={"speed_weight": 2}), ["env.type=accel"])


def test_a_tuned_key_must_apply_to_the_env_type() -> None:
    tune = {"search_space": {"env.num_rl": {"grid": [1, 2]}}}
    assert parse_config({"env": {"type": "merge"}, "tune": tune}).tune is not None
    message = _error({"tune": tune})
    assert "'env.num_rl' does not apply to env.type wave_attenuation" in message
    assert "(only to merge, open_accel)" in message


def test_schema_has_one_branch_per_type_with_its_keys() -> None:
    schema = config_schema()
    assert schema["properties"]["env"] == {"$ref": "#/$defs/EnvConfig"}
    env = schema["$defs"]["EnvConfig"]
    assert set(env["properties"]) == COMMON
    assert set(env["discriminator"]["mapping"]) == set(ENV_CONFIGS)
    assert len(env["oneOf"]) == len(ENV_CONFIGS)
    for env_type, model in ENV_CONFIGS.items():
        branch = schema["$defs"][model.__name__]
        assert set(branch["properties"]) == set(model.model_fields), env_type
        assert branch["additionalProperties"] is False
        # a type other than the default must be named, so that one branch matches
        assert ("type" in branch.get("required", [])) == (env_type != DEFAULT_ENV_TYPE)


def test_an_old_runs_config_still_loads() -> None:
    """A config.yaml written when every env type shared one model holds the keys of all."""
    shared = {
        "type": "merge",
        "id": None,
        **{key: 1 for key in ("horizon", "warmup_steps", "sims_per_step", "num_rl")},
        **{key: 1.0 for key in ("max_accel", "max_decel", "target_speed", "speed_weight")},
        **{key: 1.0 for key in ("accel_penalty", "wave_penalty", "lane_change_duration")},
        **{key: 1.0 for key in ("lane_change_penalty", "yellow_time", "min_green")},
        "terminate_on_collision": True,
        "signal_reward": "queue",
    }
    env = parse_config({"env": shared}).env
    assert type(env) is MergeEnvConfig and env.num_rl == 1
    del shared["signal_reward"]  # not such a dump: every key must apply
    assert "does not apply to env.type merge" in _error({"env": shared})
