"""Build the env that a config's ``env.type`` names (Gymnasium ids for ``env.type: gym``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowsim.envs.base import FlowsimEnv, resolve_config
from flowsim.envs.registry import ENV_TYPES, MULTIAGENT_TYPES, load_entry_point

if TYPE_CHECKING:
    from flowsim.envs.multiagent_adapter import MultiAgentAdapter


def make_env(config, overrides: list[str] | None = None) -> FlowsimEnv:
    """The env that ``config.env.type`` names, built from a config, mapping or YAML path."""
    resolved = resolve_config(config, overrides)
    if resolved.env.type == "gym":
        return _make_gym_env(resolved.env.id or "")
    if resolved.env.type in MULTIAGENT_TYPES:
        from flowsim.errors import ConfigError

        raise ConfigError(
            f"env.type {resolved.env.type} is a multi-agent (PettingZoo) env, not a Gymnasium "
            f"one: build it with {MULTIAGENT_TYPES[resolved.env.type]}.parallel_env(config), "
            "or make_multiagent_env(config) for the agents as policies see them; flowsim "
            "train samples it through its runners (train.multiagent, docs/multiagent.md)."
        )
    return load_entry_point(ENV_TYPES[resolved.env.type])(resolved)


def is_multiagent(config) -> bool:
    """Whether ``config.env.type`` names a multi-agent (PettingZoo) env."""
    return resolve_config(config).env.type in MULTIAGENT_TYPES


def make_multiagent_env(config, overrides: list[str] | None = None) -> MultiAgentAdapter:
    """The PettingZoo env that ``config.env.type`` names, wrapped for flowsim's policies
    (agents mapped onto policies by ``train.multiagent``, spaces padded and masked).

    Raises:
        ConfigError: ``env.type`` is not multi-agent, or ``train.multiagent`` does not fit
            the env's agents.
    """
    from flowsim.envs.multiagent_adapter import MultiAgentAdapter
    from flowsim.errors import ConfigError

    resolved = resolve_config(config, overrides)
    module = MULTIAGENT_TYPES.get(resolved.env.type)
    if module is None:
        raise ConfigError(
            f"env.type {resolved.env.type} is a single-agent env; make it with make_env(config)."
        )
    env = load_entry_point(f"{module}:parallel_env")(resolved)
    try:
        return MultiAgentAdapter(env, resolved.train.multiagent)
    except BaseException:
        env.close()
        raise


def _make_gym_env(env_id: str):
    """A Gymnasium env by id (``env.type: gym``), with a clear error for an unknown id."""
    import gymnasium

    from flowsim.errors import ConfigError

    try:
        return gymnasium.make(env_id)
    except gymnasium.error.Error as error:
        raise ConfigError(f"env.id {env_id!r}: {error}; use a registered Gymnasium id.") from None
