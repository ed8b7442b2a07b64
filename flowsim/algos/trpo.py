"""Trust Region Policy Optimisation (Schulman et al. 2015), reading top to bottom.

One iteration: broadcast weights -> sample a batch through the sampler -> GAE -> one natural
gradient step of the policy (conjugate gradient on Fisher-vector products, scaled to the KL
bound, then a backtracking line search) -> several epochs of minibatch regression of the
value function on the GAE returns, with its own Adam optimiser.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from flowsim.algos.common import (
    RunningMeanStd,
    action_masks,
    batch_env_steps,
    critic_normalizer_for,
    estimate_advantages,
    iteration_row,
    learner_state,
    learner_threads,
    load_learner_state,
)
from flowsim.config import FlowsimConfig, TrainConfig
from flowsim.distributed.base import RunnerGroup
from flowsim.distributed.batch import Batch
from flowsim.policies.torch import ActorCritic


def conjugate_gradient(
    matrix_vector: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    iters: int,
    tolerance: float = 1e-10,
) -> torch.Tensor:
    """Approximate solution ``x`` of ``A x = b`` for a symmetric positive-definite ``A``.

    ``A`` is given only through ``matrix_vector(v) = A v``; at most ``iters`` products are used
    (``len(b)`` of them solve the system exactly in exact arithmetic).
    """
    x = torch.zeros_like(b)
    residual = b.clone()  # b - A x with x = 0
    direction = residual.clone()
    residual_sq = residual @ residual
    for _ in range(iters):
        if residual_sq <= tolerance:
            break
        product = matrix_vector(direction)
        alpha = residual_sq / (direction @ product)
        x = x + alpha * direction
        residual = residual - alpha * product
        new_residual_sq = residual @ residual
        direction = residual + (new_residual_sq / residual_sq) * direction
        residual_sq = new_residual_sq
    return x


def line_search(
    params: list[torch.nn.Parameter],
    full_step: torch.Tensor,
    evaluate: Callable[[], tuple[float, float]],
    surrogate_before: float,
    max_kl: float,
    backtrack_iters: int,
    backtrack_coef: float,
) -> tuple[bool, int]:
    """Move ``params`` by the largest fraction ``backtrack_coef**k`` of ``full_step`` that
    improves the surrogate and keeps the KL within ``max_kl``.

    ``evaluate()`` returns ``(surrogate, kl)`` at the current parameters. Returns whether a
    step was accepted and how many fractions were tried; when none is accepted, ``params``
    are restored to their values on entry.
    """
    old = parameters_to_vector(params).detach().clone()
    for tried in range(1, backtrack_iters + 1):
        fraction = backtrack_coef ** (tried - 1)
        vector_to_parameters(old + fraction * full_step, params)
        surrogate, kl = evaluate()
        if kl <= max_kl and surrogate > surrogate_before:
            return True, tried
    vector_to_parameters(old, params)
    return False, backtrack_iters


def mean_kl(
    old: torch.distributions.Distribution, new: torch.distributions.Distribution
) -> torch.Tensor:
    """Mean over samples of KL(old || new), summed over the action dimensions."""
    kl = torch.distributions.kl_divergence(old, new)
    return (kl if kl.dim() == 1 else kl.sum(-1)).mean()


class TRPOTrainer:
    """TRPO on batches from a runner group (which it never creates itself).

    Args:
        config: the experiment; ``config.train`` holds the hyper-parameters and
            ``config.train.trpo`` the trust region and value-function settings.
        group: the runners it samples from; their ``policy_spec`` is the network it learns.
    """

    #: Columns of progress.csv beyond the shared ones.
    EXTRA_METRICS = ("line_search_failed", "line_search_steps")

    def __init__(self, config: FlowsimConfig, group: RunnerGroup) -> None:
        train = config.train
        self.config, self.train, self.trpo, self.group = config, train, train.trpo, group
        torch.manual_seed(train.seed)
        obs_dim = int(np.prod(group.observation_space.shape))
        self.model = ActorCritic(group.policy_spec)  # the network the runners evaluate
        # the policy: its network and, for a Gaussian, the shared log std
        self.policy_params = list(self.model.pi.parameters())
        if self.model.log_std is not None:
            self.policy_params.append(self.model.log_std)
        self.value_optimizer = torch.optim.Adam(
            self.model.vf.parameters(), lr=self.trpo.vf_lr, eps=1e-5
        )
        self.normalizer = RunningMeanStd((obs_dim,)) if train.normalize_obs else None
        self.critic_normalizer = critic_normalizer_for(self.model, train.normalize_obs)
        self.rng = np.random.default_rng(train.seed)
        self.iteration = 0
        self.env_steps = 0
        self.steps_per_call = (
            config.sampler.rollout_fragment_length * config.sampler.envs_per_worker
        )

    # -- one iteration --------------------------------------------------------------------
    def train_iteration(self) -> dict[str, float]:
        """Sample one batch and update the policy and value function; return the metrics.

        Besides PPO's keys: ``line_search_failed`` (1.0 when no step was accepted and the
        policy kept its parameters) and ``line_search_steps`` (step sizes tried).
        """
        started = time.perf_counter()
        self.group.set_weights(self.export_policy(), self.iteration)
        batch = self.group.sample(num_steps=self.steps_per_call)
        sample_s = time.perf_counter() - started

        losses = self.learn(batch)
        self.iteration += 1
        self.env_steps += batch_env_steps(batch)
        wall = time.perf_counter() - started
        return iteration_row(self, batch, losses, sample_s, wall)

    def learn(self, batch: Batch) -> dict[str, float]:
        """GAE on ``batch``, one trust-region policy step, the value regression; the losses
        (torch on the learner's threads, :func:`~flowsim.algos.common.learner_threads`)."""
        with learner_threads():
            return self._learn(batch)

    def _learn(self, batch: Batch) -> dict[str, float]:
        """:meth:`learn`'s body."""
        estimates = estimate_advantages(
            batch,
            self.model,
            self.normalizer,
            self.train.gamma,
            self.train.lam,
            self.critic_normalizer,
        )
        obs_t = torch.as_tensor(estimates.obs)
        policy_stats = self._policy_step(
            obs_t, batch.actions, estimates.advantages, action_masks(batch)
        )
        value_loss = self._fit_value(torch.as_tensor(estimates.critic_obs), estimates.returns)
        return {
            **policy_stats,
            "value_loss": value_loss,
            "clip_frac": 0.0,  # TRPO bounds the step by KL and clips nothing
        }

    # -- the policy: one natural-gradient step inside the trust region ----------------------
    def _policy_step(
        self,
        obs: torch.Tensor,
        actions: np.ndarray,
        advantages: np.ndarray,
        masks: torch.Tensor | None = None,
    ) -> dict[str, float]:
        trpo = self.trpo
        actions_t = self.model.action_tensor(actions)
        adv = torch.as_tensor(advantages, dtype=torch.float32)
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)  # advantage normalisation
        # The sampling policy, re-evaluated in torch (the weights the runners had) so the
        # ratio is exactly 1 and the KL exactly 0 before the step.
        with torch.no_grad():
            old_dist = self.model.distribution(obs, masks)
            old_logp = self.model.log_prob(old_dist, actions_t)
            entropy = self.model.entropy(old_dist).mean().item()

        def surrogate() -> torch.Tensor:
            """E[pi(a|s) / pi_old(a|s) * A] (+ an entropy bonus): the objective's model."""
            dist = self.model.distribution(obs, masks)
            logp = self.model.log_prob(dist, actions_t)
            objective = (torch.exp(logp - old_logp) * adv).mean()
            if trpo.entropy_coef:
                objective = objective + trpo.entropy_coef * self.model.entropy(dist).mean()
            return objective

        # g: the policy gradient at the sampling policy
        surrogate_before = surrogate()
        gradient = parameters_to_vector(
            torch.autograd.grad(surrogate_before, self.policy_params)
        ).detach()

        # F v: the Hessian of the mean KL times v (double backprop), plus damping
        kl_gradient = parameters_to_vector(
            torch.autograd.grad(
                mean_kl(old_dist, self.model.distribution(obs, masks)),
                self.policy_params,
                create_graph=True,
            )
        )

        def fisher_vector(vector: torch.Tensor) -> torch.Tensor:
            hessian_vector = torch.autograd.grad(
                kl_gradient @ vector, self.policy_params, retain_graph=True
            )
            return parameters_to_vector(hessian_vector).detach() + trpo.cg_damping * vector

        def evaluate() -> tuple[float, float]:
            """(surrogate, mean KL from the sampling policy) at the current parameters."""
            with torch.no_grad():
                return surrogate().item(), mean_kl(
                    old_dist, self.model.distribution(obs, masks)
                ).item()

        # s = F^-1 g, scaled so that the quadratic model of the KL, 1/2 s'Fs, equals max_kl
        direction = conjugate_gradient(fisher_vector, gradient, trpo.cg_iters)
        shs = float(direction @ fisher_vector(direction))
        if not math.isfinite(shs) or shs <= 0.0:  # a zero gradient: nothing to step along
            accepted, tried = False, 0
        else:
            accepted, tried = line_search(
                self.policy_params,
                math.sqrt(2.0 * trpo.max_kl / shs) * direction,
                evaluate,
                surrogate_before.item(),
                trpo.max_kl,
                trpo.backtrack_iters,
                trpo.backtrack_coef,
            )
        surrogate_after, kl = evaluate()
        return {
            "policy_loss": -surrogate_after,
            "entropy": entropy,
            "kl": kl,
            "line_search_failed": float(not accepted),
            "line_search_steps": float(tried),
        }

    # -- the value function: regression on the GAE returns -----------------------------------
    def _fit_value(self, obs: torch.Tensor, returns: np.ndarray) -> float:
        returns_t = torch.as_tensor(returns, dtype=torch.float32)
        count, size = len(obs), self.train.minibatch_size
        total, updates = 0.0, 0
        for _ in range(self.trpo.vf_epochs):
            order = self.rng.permutation(count)
            for start in range(0, count, size):
                index = torch.as_tensor(order[start : start + size])
                value_loss = 0.5 * ((self.model.value(obs[index]) - returns_t[index]) ** 2).mean()
                self.value_optimizer.zero_grad()
                value_loss.backward()
                self.value_optimizer.step()
                total += value_loss.item()
                updates += 1
        return total / max(updates, 1)

    # -- the Trainer protocol's other half ------------------------------------------------
    def set_learning_rates(self, train: TrainConfig) -> None:
        """The value function's Adam step size from now on: ``train.trpo.vf_lr`` (a restored
        optimiser state carries the step size it was saved with; the policy step is sized by
        the trust region, not a learning rate)."""
        for group in self.value_optimizer.param_groups:
            group["lr"] = train.trpo.vf_lr

    def export_policy(self) -> dict[str, np.ndarray]:
        """The current policy (and observation statistics) in the runners' numpy layout."""
        return self.model.export(self.normalizer, self.critic_normalizer)

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this trainer is."""
        return {**learner_state(self), "value_optimizer": self.value_optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a trainer saved by :meth:`state_dict`."""
        load_learner_state(self, state)
        self.value_optimizer.load_state_dict(state["value_optimizer"])
