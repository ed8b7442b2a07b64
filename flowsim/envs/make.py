"""Build the env that a config's ``env.type`` names (Gymnasium ids for ``env.type: gym``)."""

from __future__ import annotations

from flowsim.envs.base import FlowsimEnv, resolve_config
from flowsim.envs.registry import ENV_TYPES, MULTIAGENT_TYPES, load_entry_point


def make_env(config, overrides: list[str] | None = None) -> FlowsimEnv:
    """The env that ``config.env.type`` names, built from a config, mapping or YAML path."""
    resolved = resolve_config(config, overrides)
    if resolved.env.type == "gym":
        return _make_gym_env(resolved.env.id or "")
    if resolved.env.type in MULTIAGENT_TYPES:
        from flowsim.errors import ConfigError

        signals = resolved.env.type == "multiagent_traffic_light_grid"
        raise ConfigError(
            f"env.type {resolved.env.type} is a multi-agent (PettingZoo) env: build it with "
            f"flowsim.envs.{'multiagent_signals' if signals else 'multiagent'}.parallel_env("
            "config); flowsim's single-agent trainers and samplers do not run it yet."
        )
    return load_entry_point(ENV_TYPES[resolved.env.type])(resolved)


def _make_gym_env(env_id: str):
    """A Gymnasium env by id (``env.type: gym``), with a clear error for an unknown id."""
    import gymnasium

    from flowsim.errors import ConfigError

    try:
        return gymnasium.make(env_id)
    except gymnasium.error.Error as error:
        raise ConfigError(f"env.id {env_id!r}: {error}; use a registered Gymnasium id.") from None
