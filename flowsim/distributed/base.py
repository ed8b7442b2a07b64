"""The ``RunnerGroup`` protocol: what trainers, evaluation, tune and hierarchy may ask of runners.

Two groups implement it: runners in this process (the debugging path) and runner actors on
Ray. :func:`flowsim.distributed.make_runner_group` picks one from ``sampler.num_workers``; it
is the only place that reads that key. The group answers the env's spaces (its runners built
the env), so nobody builds a probe env to read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import gymnasium
    import numpy as np

    from flowsim.distributed.batch import Batch
    from flowsim.distributed.play import EpisodeJob, EpisodeResult
    from flowsim.policies.spec import PolicySpec


@runtime_checkable
class RunnerGroup(Protocol):
    """A set of env runners that sample batches and play whole episodes."""

    @property
    def num_runners(self) -> int:
        """Runners in the group (live or being replaced)."""
        ...

    @property
    def observation_space(self) -> gymnasium.Space:
        """The env's observation space, as the runners' envs report it."""
        ...

    @property
    def action_space(self) -> gymnasium.Space:
        """The env's action space, as the runners' envs report it."""
        ...

    @property
    def policy_spec(self) -> PolicySpec:
        """The network the runners evaluate (built from the action space and train.hidden)."""
        ...

    @property
    def runner_restarts(self) -> int:
        """Runners replaced so far (a dead actor, a lost node); 0 in-process."""
        ...

    def drain_replacements(self) -> list[str]:
        """Why each runner was replaced since the last call (then forgotten)."""
        ...

    def set_weights(self, weights: dict[str, np.ndarray], version: int) -> None:
        """Give every runner new policy weights."""
        ...

    def sample(
        self, num_steps: int | None = None, num_episodes: int | None = None, explore: bool = True
    ) -> Batch:
        """``num_steps`` transitions (or ``num_episodes`` episodes) from every runner, merged."""
        ...

    def play(self, jobs: Sequence[EpisodeJob]) -> list[EpisodeResult]:
        """Play each job's seeded whole episode on some runner; results in job order."""
        ...

    def describe(self) -> list[dict[str, Any]]:
        """Where each runner lives (node, pid, backend)."""
        ...

    def close(self) -> None:
        """Stop the runners and their simulations."""
        ...
