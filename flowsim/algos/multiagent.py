"""Several policies on one multi-agent env: one learner per policy, fed by one sampler.

With ``train.multiagent.policies`` naming more than one policy (``per_agent``, or named
groups), the runners return a :class:`~flowsim.distributed.batch.MultiBatch`: one batch per
policy, holding its agents' streams. :class:`MultiPolicyTrainer` builds one learner of
``train.algo`` per policy (each sees its policy's spaces, as if its group sampled only its
agents), broadcasts every policy's weights at once, samples once, and lets each learner
update on its own batch. A single (shared) policy needs none of this: its batch is an
ordinary :class:`~flowsim.distributed.batch.Batch` and the plain trainer runs it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from flowsim.algos.common import batch_env_steps, iteration_row

if TYPE_CHECKING:
    from flowsim.algos.base import TrainerFactory
    from flowsim.config import FlowsimConfig, TrainConfig
    from flowsim.distributed.base import RunnerGroup


#: Each policy's figures that ``progress.csv`` keeps as ``<policy>/<metric>`` columns.
POLICY_METRICS = ("reward_mean", "policy_loss", "value_loss", "entropy")


class PolicyView:
    """One policy's side of a runner group: its spaces and spec (what a learner reads when it
    is built); sampling goes through the whole group, never through a view."""

    def __init__(self, group: RunnerGroup, policy_id: str) -> None:
        self.group, self.policy_id = group, policy_id
        self.observation_space, self.action_space, self.policy_spec = group.policy_spaces[policy_id]

    def __getattr__(self, name: str) -> Any:
        if name in ("sample", "play", "set_weights"):
            raise AttributeError(
                f"a learner of policy {self.policy_id!r} cannot {name} on its own; the "
                "multi-policy trainer does it for every policy"
            )
        return getattr(self.group, name)


class MultiPolicyTrainer:
    """One learner per policy (any trainer class with ``learn(batch)``) on one sampler.

    Args:
        config: the experiment.
        group: the runners (a multi-agent env with several policies).
        learner: the trainer class of ``train.algo``; one is built per policy.

    Metrics: the team's episodes (``return_mean``: the return summed over every agent), the
    losses averaged over the policies that learned this iteration, and per policy
    ``<policy>/reward_mean`` (its agents' mean reward per decision in the batch; NaN when
    none acted) and its own losses, ``<policy>/policy_loss`` …; :data:`POLICY_METRICS` of
    them are ``progress.csv`` columns (``EXTRA_METRICS``), which ``flowsim plot`` draws.
    """

    def __init__(self, config: FlowsimConfig, group: RunnerGroup, learner: TrainerFactory) -> None:
        self.config, self.group = config, group
        self.learners = {
            pid: learner(config, PolicyView(group, pid))  # type: ignore[arg-type]
            for pid in group.policy_spaces
        }
        self.EXTRA_METRICS: tuple[str, ...] = (
            *learner.EXTRA_METRICS,  # type: ignore[attr-defined]
            *(f"{pid}/{metric}" for pid in self.learners for metric in POLICY_METRICS),
        )
        first = next(iter(self.learners.values()))
        self.steps_per_call = first.steps_per_call  # type: ignore[attr-defined]
        self.iteration = 0
        self.env_steps = 0

    @property
    def model(self) -> Any:
        """The first policy's network (:attr:`models` has them all)."""
        return next(iter(self.learners.values())).model  # type: ignore[attr-defined]

    @property
    def models(self) -> dict[str, Any]:
        """Each policy's torch network."""
        return {pid: learner.model for pid, learner in self.learners.items()}  # type: ignore[attr-defined]

    def train_iteration(self) -> dict[str, float]:
        """Sample once for every policy, let each learner update on its agents' batch."""
        started = time.perf_counter()
        self.group.set_weights(self.export_policy(), self.iteration)  # type: ignore[arg-type]
        batch = self.group.sample(num_steps=self.steps_per_call)
        sample_s = time.perf_counter() - started
        per_policy: dict[str, dict[str, float]] = {}
        for pid, learner in self.learners.items():
            own = batch[pid]  # type: ignore[index]
            if len(own) >= 2:  # a policy whose agents did not act this time learns nothing
                per_policy[pid] = learner.learn(own)  # type: ignore[attr-defined]
            reward = float(np.mean(own.rewards)) if len(own) else float("nan")
            per_policy.setdefault(pid, {})["reward_mean"] = reward
            learner.iteration += 1
            learner.env_steps += len(own)
        self.iteration += 1
        self.env_steps += batch_env_steps(batch)
        wall = time.perf_counter() - started
        keys = {key for stats in per_policy.values() for key in stats} - {"reward_mean"}
        losses = {
            key: float(np.mean([stats[key] for stats in per_policy.values() if key in stats]))
            for key in keys
        }
        losses.update(
            {
                f"{pid}/{key}": value
                for pid, stats in per_policy.items()
                for key, value in stats.items()
            }
        )
        return iteration_row(self, batch, losses, sample_s, wall)

    def set_learning_rates(self, train: TrainConfig) -> None:
        """Every learner's step sizes from ``train``."""
        for learner in self.learners.values():
            learner.set_learning_rates(train)

    def export_policy(self) -> dict[str, dict[str, np.ndarray]]:
        """Every policy's weights in the runners' layout, by policy id."""
        return {pid: learner.export_policy() for pid, learner in self.learners.items()}

    def state_dict(self) -> dict[str, Any]:
        """Every learner's state by policy id, and the counters."""
        return {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "policies": {pid: learner.state_dict() for pid, learner in self.learners.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (every policy must be there)."""
        from flowsim.errors import ConfigError

        missing = sorted(set(self.learners) - set(state["policies"]))
        if missing:
            raise ConfigError(
                f"the checkpoint holds policies {sorted(state['policies'])}, not {missing}; "
                "train.multiagent.policies must stay as the run was started."
            )
        for pid, learner in self.learners.items():
            learner.load_state_dict(state["policies"][pid])
        self.iteration = int(state["iteration"])
        self.env_steps = int(state["env_steps"])
