"""Proximal Policy Optimisation (Schulman et al. 2017), reading top to bottom.

One iteration: broadcast weights -> sample a batch through the sampler -> GAE -> several
epochs of minibatch updates of the clipped surrogate, the value loss and the entropy bonus.

On a multi-agent env the same code is IPPO with shared parameters (each agent's trajectory is
a stream of the batch; invalid choices masked out of the logits) and, with
``train.multiagent.critic: central``, MAPPO: the value network reads the global state the
batch carries (``Batch.state``), the policy the agent's own observation.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

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


class PPOTrainer:
    """PPO on batches from a runner group (which it never creates itself).

    Args:
        config: the experiment; ``config.train`` holds the hyper-parameters.
        group: the runners it samples from; their ``policy_spec`` is the network it learns.
    """

    #: Columns of progress.csv beyond the shared ones: none, PPO's are the shared ones.
    EXTRA_METRICS: tuple[str, ...] = ()

    def __init__(self, config: FlowsimConfig, group: RunnerGroup) -> None:
        train = config.train
        self.config, self.train, self.group = config, train, group
        torch.manual_seed(train.seed)
        obs_dim = int(np.prod(group.observation_space.shape))
        self.model = ActorCritic(group.policy_spec)  # the network the runners evaluate
        # foreach: each step of the update on all tensors at once (same values, ~25 % faster)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=train.lr, eps=1e-5, foreach=True
        )
        self.set_learning_rates(train)
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
        """Sample one batch and update the policy; return the iteration's metrics."""
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
        """GAE on ``batch``, then the epochs of minibatch updates; the mean losses."""
        with learner_threads():
            estimates = estimate_advantages(
                batch,
                self.model,
                self.normalizer,
                self.train.gamma,
                self.train.lam,
                self.critic_normalizer,
            )
            return self._update(
                estimates.obs,
                batch.actions,
                batch.logp,
                estimates.advantages,
                estimates.returns,
                estimates.values,
                critic_obs=estimates.critic_obs,
                masks=action_masks(batch),
            )

    def _update(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        old_logp: np.ndarray,
        advantages: np.ndarray,
        returns: np.ndarray,
        old_values: np.ndarray,
        critic_obs: np.ndarray | None = None,
        masks: torch.Tensor | None = None,
    ) -> dict[str, float]:
        train = self.train
        if self.lr_schedule == "linear":
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr * max(1.0 - self.iteration / train.iterations, 0.0)
        obs_t = torch.as_tensor(obs)
        critic_t = obs_t if critic_obs is None else torch.as_tensor(critic_obs)
        actions_t = self.model.action_tensor(actions)
        old_logp_t = torch.as_tensor(old_logp, dtype=torch.float32)
        adv_t = torch.as_tensor(advantages, dtype=torch.float32)
        returns_t = torch.as_tensor(returns, dtype=torch.float32)
        old_values_t = torch.as_tensor(old_values, dtype=torch.float32)
        count = len(obs)
        stats = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "kl": 0.0, "clip_frac": 0.0}
        updates = 0
        for _ in range(train.epochs):
            order = self.rng.permutation(count)
            epoch_kl = []
            for start in range(0, count, train.minibatch_size):
                index = torch.as_tensor(order[start : start + train.minibatch_size])
                obs_mb = obs_t[index]
                dist = self.model.distribution(obs_mb, None if masks is None else masks[index])
                logp = self.model.log_prob(dist, actions_t[index])
                log_ratio = logp - old_logp_t[index]
                ratio = log_ratio.exp()
                adv = adv_t[index]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)  # advantage normalisation
                surrogate = torch.min(
                    ratio * adv, ratio.clamp(1 - train.clip, 1 + train.clip) * adv
                )
                policy_loss = -surrogate.mean()
                value = self.model.value(obs_mb if critic_obs is None else critic_t[index])
                value_loss = (value - returns_t[index]) ** 2
                if train.clip_value:
                    clipped = old_values_t[index] + (value - old_values_t[index]).clamp(
                        -train.clip, train.clip
                    )
                    value_loss = torch.max(value_loss, (clipped - returns_t[index]) ** 2)
                value_loss = 0.5 * value_loss.mean()
                entropy = self.model.entropy(dist).mean()
                loss = policy_loss + train.vf_coef * value_loss - train.entropy_coef * entropy
                self.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), train.max_grad_norm)
                self.optimizer.step()
                with torch.no_grad():
                    kl = ((ratio - 1) - log_ratio).mean().item()  # the low-variance estimator
                epoch_kl.append(kl)
                stats["policy_loss"] += policy_loss.item()
                stats["value_loss"] += value_loss.item()
                stats["entropy"] += entropy.item()
                stats["kl"] += kl
                stats["clip_frac"] += ((ratio - 1).abs() > train.clip).float().mean().item()
                updates += 1
            if train.target_kl is not None and np.mean(epoch_kl) > train.target_kl:
                break  # KL early stop
        return {key: value / max(updates, 1) for key, value in stats.items()}

    # -- the Trainer protocol's other half ------------------------------------------------
    def set_learning_rates(self, train: TrainConfig) -> None:
        """Adam's step size from now on: ``train.lr`` with ``train.lr_schedule`` (a restored
        optimiser state carries the step size it was saved with)."""
        self.lr, self.lr_schedule = train.lr, train.lr_schedule
        for group in self.optimizer.param_groups:
            group["lr"] = train.lr

    def export_policy(self) -> dict[str, np.ndarray]:
        """The current policy (and observation statistics) in the runners' numpy layout."""
        return self.model.export(self.normalizer, self.critic_normalizer)

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this trainer is."""
        return {**learner_state(self), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a trainer saved by :meth:`state_dict`."""
        load_learner_state(self, state)
        self.optimizer.load_state_dict(state["optimizer"])
