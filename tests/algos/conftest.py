"""Learning tests stop once the greedy policy reaches its threshold, within the run's budget."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from flowsim.algos.base import Trainer
from flowsim.evaluation.evaluate import evaluate


@dataclass
class GreedyStop:
    """A ``train(callback=...)`` that evaluates the greedy policy every ``every`` iterations
    (and after the last) on ``episodes`` episodes from ``seed``, and stops the run at the first
    evaluation whose mean return reaches ``threshold``.

    The iterations before the stop are the ones the whole run would have trained (the
    learning-rate schedule still spans ``train.iterations``); a run that never gets there
    trains its whole budget and leaves ``mean_return`` below ``threshold``.
    """

    threshold: float
    every: int
    episodes: int = 10
    seed: int = 123
    mean_return: float = -math.inf
    reached_at: int | None = None

    def __call__(self, row: dict[str, Any], trainer: Trainer) -> bool:
        last = trainer.iteration >= trainer.config.train.iterations  # type: ignore[attr-defined]
        if trainer.iteration % self.every and not last:
            return True
        greedy = evaluate(
            trainer.config,  # type: ignore[attr-defined]
            trainer.export_policy(),
            episodes=self.episodes,
            seed=self.seed,
            baselines=(),
        )["policy"]
        self.mean_return = greedy["mean_return"]
        print(f"iteration {trainer.iteration}: greedy mean return {self.mean_return:.1f}")
        if self.mean_return >= self.threshold:
            self.reached_at = trainer.iteration
            return False
        return True


@pytest.fixture
def greedy_stop() -> Callable[..., GreedyStop]:
    """``greedy_stop(threshold, every)``: a :class:`GreedyStop` for one learning run."""
    return GreedyStop
