"""Runners in this process, stepped one after another: the debugging path."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from flowsim.config import FlowsimConfig
from flowsim.distributed.batch import Batch, MultiBatch, concat_any
from flowsim.distributed.play import EpisodeJob, EpisodeResult, blocks
from flowsim.distributed.runner import EnvRunner, runner_seed
from flowsim.errors import ConfigError
from flowsim.policies.spec import PolicySpec

if TYPE_CHECKING:
    import gymnasium


class LocalRunnerGroup:
    """``num_runners`` EnvRunners in this process: a :class:`~flowsim.distributed.RunnerGroup`.

    Same contract and, for the same seeds and runner count, the same rollouts and episodes as
    :class:`~flowsim.distributed.ray_group.RayRunnerGroup`. Several local runners need
    ``sim.backend: traci`` (libsumo runs one simulation per process).
    """

    def __init__(
        self,
        config: FlowsimConfig,
        num_runners: int = 1,
        policy_spec: PolicySpec | None = None,
        base_seed: int | None = None,
    ) -> None:
        if num_runners > 1 and config.sim.backend == "libsumo":
            raise ConfigError(
                f"{num_runners} in-process runners need sim.backend: traci (libsumo runs one "
                "simulation per process); or set sampler.num_workers to use Ray processes."
            )
        seed = config.sim.seed if base_seed is None else base_seed
        self.runners = [
            EnvRunner(config, i, runner_seed(seed, i), policy_spec, policy_seed=seed)
            for i in range(num_runners)
        ]

    @property
    def num_runners(self) -> int:
        """Number of runners."""
        return len(self.runners)

    @property
    def observation_space(self) -> gymnasium.Space:
        """The env's observation space (a multi-agent env's: its first policy's)."""
        return self.runners[0].spaces()[0]

    @property
    def action_space(self) -> gymnasium.Space:
        """The env's action space (a multi-agent env's: its first policy's)."""
        return self.runners[0].spaces()[1]

    @property
    def policy_spec(self) -> PolicySpec:
        """The network the runners evaluate."""
        return self.runners[0].policy_spec

    @property
    def policy_spaces(self) -> dict[str, tuple[Any, Any, PolicySpec]]:
        """Each policy id's (observation space, action space, spec): one ``default`` entry for
        a single-agent env, the ``train.multiagent`` policies for a multi-agent one."""
        return self.runners[0].policy_spaces()

    @property
    def runner_restarts(self) -> int:
        """Always 0: in-process runners are not replaced (SUMO restarts are counted in batches)."""
        return 0

    def drain_replacements(self) -> list[str]:
        """Always empty: in-process runners are not replaced."""
        return []

    def set_weights(self, weights: dict[str, np.ndarray], version: int) -> None:
        """Give every runner new policy weights."""
        for runner in self.runners:
            runner.set_weights(weights, version)

    def share(self, value: Any) -> Any:
        """``value`` itself: in-process runners read the caller's object."""
        return value

    def sample(
        self,
        num_steps: int | None = None,
        num_episodes: int | None = None,
        explore: bool = True,
    ) -> Batch | MultiBatch:
        """``num_steps`` transitions (or ``num_episodes`` episodes) from every runner, merged
        (a :class:`MultiBatch` for a multi-agent env with several policies)."""
        return concat_any(
            [runner.sample(num_steps, num_episodes, explore) for runner in self.runners]
        )

    def play(self, jobs: Sequence[EpisodeJob], drop_lost: bool = False) -> list[EpisodeResult]:
        """Each job's episode, in job order; runner ``k`` plays the ``k``-th contiguous block.

        ``drop_lost`` changes nothing here: an in-process runner is never lost.
        """
        jobs = list(jobs)
        results: list[EpisodeResult] = []
        for runner, block in zip(self.runners, blocks(len(jobs), self.num_runners), strict=True):
            for index, result in zip(block, runner.play([jobs[i] for i in block]), strict=True):
                result.job_index = index
                results.append(result)
        return results

    def describe(self) -> list[dict[str, Any]]:
        """Where each runner lives."""
        return [runner.describe() for runner in self.runners]

    def close(self) -> None:
        """Close every runner's envs."""
        for runner in self.runners:
            runner.close()
