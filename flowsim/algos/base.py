"""The ``Trainer`` protocol that PPO, TRPO and ES implement, and the ``train.algo`` registry.

The training loop (:mod:`flowsim.runs`) knows trainers only through this protocol: it calls
:meth:`Trainer.train_iteration`, checkpoints :meth:`Trainer.state_dict`, hands
:meth:`Trainer.export_policy` to evaluation, and reads the counters. A trainer never creates
its runner group: it samples from the one it is given (:mod:`flowsim.distributed`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from flowsim.config import FlowsimConfig, TrainConfig
    from flowsim.distributed.base import RunnerGroup


@runtime_checkable
class Trainer(Protocol):
    """One learning algorithm's state and update, fed by a runner group."""

    #: progress.csv columns beyond the shared ones (``flowsim.runs``), in order
    EXTRA_METRICS: tuple[str, ...]
    #: iterations done (a resumed trainer continues from its checkpoint's)
    iteration: int
    #: env steps sampled so far
    env_steps: int
    #: the runner group it samples from (given, never created, by the trainer)
    group: RunnerGroup

    def train_iteration(self) -> dict[str, float]:
        """Sample from the group, update once; the iteration's metrics (progress.csv keys)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: network, optimiser, normaliser, RNGs."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        ...

    def set_learning_rates(self, train: TrainConfig) -> None:
        """Use ``train``'s step sizes from now on (a restored optimiser carries its own)."""
        ...

    def export_policy(self) -> dict[str, np.ndarray]:
        """The current policy in the runners' numpy layout (:mod:`flowsim.policies`)."""
        ...


class TrainerFactory(Protocol):
    """A trainer class: built from the experiment and the runner group it samples from."""

    def __call__(self, config: FlowsimConfig, group: RunnerGroup) -> Trainer: ...


#: ``train.algo`` -> ``"module:class"``; imported on demand (torch is loaded then).
TRAINERS: dict[str, str] = {
    "ppo": "flowsim.algos.ppo:PPOTrainer",
    "trpo": "flowsim.algos.trpo:TRPOTrainer",
    "es": "flowsim.algos.es:ESTrainer",
}


def trainer_class(algo: str) -> TrainerFactory:
    """The trainer class ``train.algo`` names (config validation has checked the name)."""
    import importlib

    module, name = TRAINERS[algo].split(":")
    return getattr(importlib.import_module(module), name)
