"""The ``RunnerGroup`` protocol: what trainers, evaluation, tune and hierarchy may ask of runners.

Two groups implement it: runners in this process (the debugging path,
:mod:`flowsim.distributed.local`) and runner actors on Ray (:mod:`flowsim.distributed.ray_group`).
:func:`make_runner_group` picks one from ``sampler.num_workers``; it is the only place that
reads that key. The group answers the env's spaces (its runners built the env), so nobody
builds a probe env to read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import gymnasium
    import numpy as np

    from flowsim.config import FlowsimConfig
    from flowsim.distributed.batch import Batch, MultiBatch
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
    def policy_spaces(self) -> dict[str, tuple[gymnasium.Space, gymnasium.Space, PolicySpec]]:
        """Each policy id's (observation space, action space, spec): ``default`` for a
        single-agent env; ``train.multiagent``'s policies (padded spaces) for a multi-agent
        one, whose first policy the three properties above describe."""
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

    def share(self, value: Any) -> Any:
        """A handle on ``value`` that jobs can carry to the runners: the value itself
        in-process, one object-store copy on Ray (each runner fetches it once)."""
        ...

    def sample(
        self, num_steps: int | None = None, num_episodes: int | None = None, explore: bool = True
    ) -> Batch | MultiBatch:
        """``num_steps`` transitions (or ``num_episodes`` episodes) from every runner, merged;
        a multi-agent env with several policies gives a :class:`MultiBatch` (``num_steps``
        then counts env steps)."""
        ...

    def play(self, jobs: Sequence[EpisodeJob], drop_lost: bool = False) -> list[EpisodeResult]:
        """Play each job's seeded whole episode on some runner; results in job order.

        The jobs of a runner that dies are played again by another; with ``drop_lost`` they
        are left out instead (``EpisodeResult.job_index`` says which came back).
        """
        ...

    def describe(self) -> list[dict[str, Any]]:
        """Where each runner lives (node, pid, backend)."""
        ...

    def close(self) -> None:
        """Stop the runners and their simulations."""
        ...


def make_runner_group(
    config: FlowsimConfig,
    base_seed: int | None = None,
    num_workers: int | None = None,
    policy_spec: PolicySpec | None = None,
) -> RunnerGroup:
    """The group ``sampler.num_workers`` asks for: one in-process runner for 0, else Ray actors.

    Args:
        config: the experiment; every runner builds its envs from it.
        base_seed: runner ``k`` is seeded ``base_seed + k`` (default: ``sim.seed``).
        num_workers: use this instead of ``sampler.num_workers`` (evaluation plays in-process
            whatever the training used; benchmarks compare both).
        policy_spec: the runners' network (default: the one trainers learn for the env's
            action space, with ``train.hidden`` layers).
    """
    workers = config.sampler.num_workers if num_workers is None else num_workers
    if workers == 0:
        from flowsim.distributed.local import LocalRunnerGroup

        return LocalRunnerGroup(config, 1, policy_spec, base_seed)
    from flowsim.distributed.ray_group import RayRunnerGroup

    return RayRunnerGroup(config, workers, policy_spec, base_seed)
