"""The ``train:`` section: the learning algorithm, its hyper-parameters, TRPO's and ES's own.

Example:
    >>> TrainConfig(algo="es").es.perturbations
    32
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictInt

from flowsim.config.sections import Section

__all__ = ["ESConfig", "TRPOConfig", "TrainConfig"]


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
    trpo: TRPOConfig = Field(default_factory=TRPOConfig, description="TRPO settings.")
    es: ESConfig = Field(default_factory=ESConfig, description="ES settings.")
