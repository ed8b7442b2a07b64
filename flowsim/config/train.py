"""The ``train:`` section: the learning algorithm, its hyper-parameters, TRPO's and ES's own.

Example:
    >>> TrainConfig(algo="es").es.perturbations
    32
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, StrictInt, field_validator, model_validator

from flowsim.config.sections import Section

__all__ = ["ESConfig", "MultiAgentConfig", "PolicyGroupConfig", "TRPOConfig", "TrainConfig"]

#: A policy name: letters, digits, ``_`` and ``-`` (it names checkpoint entries and columns).
_POLICY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


class TRPOConfig(Section):
    """TRPO's trust region and its separately fitted value function."""

    max_kl: float = Field(0.01, gt=0, le=1, description="KL bound of each policy step.")
    cg_iters: StrictInt = Field(10, ge=1, le=1000, description="Conjugate-gradient iterations.")
    cg_damping: float = Field(0.1, ge=0, description="Damping added to Fisher-vector products.")
    backtrack_iters: StrictInt = Field(
        10,
        ge=1,
        le=100,
        description="Line-search shrinks (by backtrack_coef) before the step is reverted.",
    )
    backtrack_coef: float = Field(0.8, gt=0, lt=1, description="Line-search shrink factor.")
    vf_epochs: StrictInt = Field(5, ge=1, le=1000, description="Value-function epochs per batch.")
    vf_lr: float = Field(1e-3, gt=0, le=1, description="Value-function Adam learning rate.")
    entropy_coef: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Entropy bonus in TRPO's surrogate; keeps the natural gradient from "
        "collapsing a Gaussian policy's std.",
    )


class ESConfig(Section):
    """Evolution strategies (Salimans et al. 2017): antithetic noise from a shared table."""

    sigma: float = Field(0.02, gt=0, le=10, description="Std of parameter perturbations.")
    lr: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Adam step size of the ES update; null uses train.lr. ES wants steps of "
        "about 1e-2, gradient methods about 3e-4, so a config that trains both sets this.",
    )
    perturbations: StrictInt = Field(
        32, ge=1, le=1_000_000, description="Antithetic pairs evaluated per iteration."
    )
    episodes_per_perturbation: StrictInt = Field(
        1, ge=1, le=1000, description="Episodes averaged per perturbed policy."
    )
    noise_table_size: StrictInt = Field(
        25_000_000,
        ge=1_000,
        le=2_000_000_000,
        description="float32 entries in the shared noise table (25M = 100 MB in Ray's store).",
    )
    weight_decay: float = Field(0.005, ge=0, description="L2 coefficient in the Adam update.")
    eval_episodes: StrictInt = Field(
        0, ge=0, le=1000, description="Unperturbed episodes per iteration for the metrics."
    )


class PolicyGroupConfig(Section):
    """One named policy of a multi-agent env and the agents it drives.

    An agent belongs to the group if its id matches one of ``agents`` (fnmatch patterns:
    ``center*``, ``av_[01]``) or its type is one of ``types`` (an agent's type is its id
    without a trailing ``_<number>``: ``av`` for ``av_0``; ids without one are their own type).
    """

    agents: list[str] = Field(
        default_factory=list, description="fnmatch patterns of the agent ids it drives."
    )
    types: list[str] = Field(
        default_factory=list, description="Agent types it drives (av for av_0, av_1 ...)."
    )

    @model_validator(mode="after")
    def _drives_someone(self) -> PolicyGroupConfig:
        if not self.agents and not self.types:
            raise ValueError("give agents (id patterns) or types, or both")
        return self


class MultiAgentConfig(Section):
    """How the agents of a multi-agent (PettingZoo) env map onto policies, and the critic.

    ``policies``: ``shared`` (one policy for every agent: parameter sharing, the default),
    ``per_agent`` (one policy per agent, named by its id), or named groups
    ``{name: {agents: [patterns], types: [types]}}``; every agent must fall in exactly one
    group and every pattern must match some agent (checked when the env is built).
    """

    policies: Literal["shared", "per_agent"] | dict[str, PolicyGroupConfig] = Field(
        "shared",
        description="shared (one policy, parameter sharing), per_agent, or named groups "
        "{name: {agents: [fnmatch patterns], types: [agent types]}}.",
    )
    agent_index_in_obs: bool = Field(
        False,
        description="Append the agent's one-hot index among its policy's agents to its "
        "observation (IPPO with an agent indicator).",
    )
    critic: Literal["local", "central"] = Field(
        "local",
        description="local: the value sees the agent's observation (IPPO); central: it sees "
        "the global state, the env's state() or else all observations (MAPPO; train.algo ppo).",
    )

    @field_validator("policies")
    @classmethod
    def _named_groups(
        cls, policies: str | dict[str, PolicyGroupConfig]
    ) -> str | dict[str, PolicyGroupConfig]:
        if isinstance(policies, dict):
            if not policies:
                raise ValueError("give at least one named policy, or shared / per_agent")
            for name in policies:
                if not _POLICY_NAME.match(name):
                    raise ValueError(
                        f"policy name {name!r}: use letters, digits, _ and - (starting with a "
                        "letter)"
                    )
        return policies


class TrainConfig(Section):
    """The learning algorithm and its hyper-parameters."""

    algo: Literal["ppo", "trpo", "es"] = Field("ppo", description="Trainer: ppo, trpo or es.")
    iterations: StrictInt = Field(100, ge=1, le=10_000_000, description="Training iterations.")
    seed: StrictInt = Field(0, ge=0, le=2**31 - 1, description="Seed of the learner.")
    lr: float = Field(3e-4, gt=0, le=1, description="Adam learning rate.")
    lr_schedule: Literal["constant", "linear"] = Field(
        "constant", description="Learning rate over iterations: constant or linear to 0."
    )
    gamma: float = Field(0.99, gt=0, le=1, description="Discount factor.")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda.")
    clip: float = Field(0.2, gt=0, le=1, description="PPO ratio clip range.")
    clip_value: bool = Field(False, description="Clip the value loss like the policy loss.")
    epochs: StrictInt = Field(10, ge=1, le=1000, description="Passes over each batch.")
    minibatch_size: StrictInt = Field(64, ge=1, description="Transitions per gradient step.")
    entropy_coef: float = Field(0.0, ge=0, description="Entropy bonus weight.")
    vf_coef: float = Field(0.5, ge=0, description="Value loss weight.")
    max_grad_norm: float = Field(0.5, gt=0, description="Gradient norm clip.")
    target_kl: float | None = Field(
        None, gt=0, description="Stop an update's epochs once the KL exceeds this."
    )
    hidden: tuple[StrictInt, ...] = Field((64, 64), description="Hidden layer sizes.")
    init_log_std: float = Field(
        0.0, ge=-10, le=5, description="Initial log std of Gaussian policies (exploration)."
    )
    normalize_obs: bool = Field(True, description="Running mean/std observation normalisation.")
    keep_checkpoints: StrictInt = Field(3, ge=1, description="Latest checkpoints kept.")
    time_budget_s: float | None = Field(
        None,
        gt=0,
        description="Stop at the end of the iteration that reaches this many seconds of "
        "training (progress.csv's wall_s, evaluations included; a resumed run goes on from "
        "its wall_s); null: only train.iterations ends the run.",
    )
    best_by: Literal["return", "eval"] = Field(
        "return",
        description="What picks best.pt: return (the iteration's mean training return, with "
        "exploration noise) or eval (a deterministic evaluation every train.eval_every "
        "iterations and at the last).",
    )
    eval_every: StrictInt = Field(
        10, ge=1, le=1_000_000, description="best_by eval: iterations between evaluations."
    )
    eval_episodes: StrictInt = Field(
        4, ge=1, le=10_000, description="best_by eval: episodes per evaluation (fixed seeds)."
    )
    eval_metric: Literal["return", "mean_speed", "outflow", "avg_delay"] = Field(
        "return",
        description="best_by eval: the figure best.pt is the best of: return, mean_speed (m/s, "
        "averaged over every step: Flow's average speed), outflow (veh/h, the bottleneck's), "
        "all highest best, or avg_delay (s, RESCO's, on a signal env), lowest best.",
    )
    trpo: TRPOConfig = Field(default_factory=TRPOConfig, description="TRPO settings.")
    es: ESConfig = Field(default_factory=ESConfig, description="ES settings.")
    multiagent: MultiAgentConfig = Field(
        default_factory=MultiAgentConfig,
        description="Multi-agent envs: agents to policies, agent index, central critic.",
    )
