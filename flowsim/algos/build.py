"""The trainer a run uses: ``train.algo``'s class, or one learner of it per policy
(:class:`~flowsim.algos.multiagent.MultiPolicyTrainer`) on a multi-agent env with several
policies. Above both :mod:`flowsim.algos.base` (the protocol) and the multi-policy trainer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowsim.algos.base import Trainer, trainer_class
from flowsim.algos.multiagent import MultiPolicyTrainer
from flowsim.config.train import MultiAgentConfig
from flowsim.envs.registry import MULTIAGENT_TYPES
from flowsim.errors import ConfigError

if TYPE_CHECKING:
    from flowsim.config import FlowsimConfig
    from flowsim.distributed.base import RunnerGroup


def build_trainer(config: FlowsimConfig, group: RunnerGroup) -> Trainer:
    """The trainer ``train.algo`` names on ``group``; on a multi-agent env with several
    policies, one learner of it per policy (:class:`~flowsim.algos.multiagent.MultiPolicyTrainer`).

    Raises:
        ConfigError: the algorithm does not support the ``train.multiagent`` setting.
    """
    factory = trainer_class(config.train.algo)
    settings = config.train.multiagent
    if config.env.type not in MULTIAGENT_TYPES:
        if settings != MultiAgentConfig():
            raise ConfigError(
                f"train.multiagent applies to multi-agent envs ({', '.join(MULTIAGENT_TYPES)}); "
                f"env.type {config.env.type} has one agent. Remove train.multiagent."
            )
        return factory(config, group)
    several = len(group.policy_spaces) > 1
    if config.train.algo == "es" and (several or settings.critic == "central"):
        what = (
            "train.multiagent.critic: central (ES has no critic)"
            if settings.critic == "central"
            else f"{len(group.policy_spaces)} policies (train.multiagent.policies)"
        )
        raise ConfigError(
            f"train.algo es with {what}: ES trains one shared policy on the team's reward; set "
            "train.multiagent.policies: shared and critic: local, or use train.algo ppo."
        )
    if not several:
        return factory(config, group)
    return MultiPolicyTrainer(config, group, factory)  # type: ignore[return-value]
