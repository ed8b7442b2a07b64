"""Runner groups: many EnvRunners behind one interface, in-process or on Ray actors."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from flowsim.config import FlowsimConfig
from flowsim.distributed.batch import Batch
from flowsim.distributed.policy import PolicySpec
from flowsim.distributed.runner import EnvRunner
from flowsim.errors import ConfigError, FlowsimError

logger = logging.getLogger(__name__)

#: Seeds of replacement runners move by this much per generation, so a replacement does not
#: replay the episodes its predecessor already delivered.
GENERATION_SEED_STRIDE = 100_003


def runner_seed(base_seed: int, runner_index: int, generation: int = 0) -> int:
    """Seed of runner ``runner_index``: ``base_seed + runner_index`` (plus a generation shift)."""
    return base_seed + runner_index + GENERATION_SEED_STRIDE * generation


class LocalRunnerGroup:
    """Runners in this process, stepped one after another: the debugging path.

    Same contract and, for the same seeds and runner count, the same rollouts as
    :class:`RayRunnerGroup`. Several local runners need ``sim.backend: traci`` (libsumo runs one
    simulation per process).
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
            EnvRunner(config, i, runner_seed(seed, i), policy_spec) for i in range(num_runners)
        ]

    @property
    def num_runners(self) -> int:
        """Number of runners."""
        return len(self.runners)

    def set_weights(self, weights: dict[str, np.ndarray], version: int) -> None:
        """Give every runner new policy weights."""
        for runner in self.runners:
            runner.set_weights(weights, version)

    def sample(
        self,
        num_steps: int | None = None,
        num_episodes: int | None = None,
        explore: bool = True,
    ) -> Batch:
        """``num_steps`` transitions (or ``num_episodes`` episodes) from every runner, merged."""
        return Batch.concat(
            [runner.sample(num_steps, num_episodes, explore) for runner in self.runners]
        )

    def evaluate(self, function: Callable[[EnvRunner], Any]) -> list[Any]:
        """``function(runner)`` on every runner, in runner order."""
        return [runner.evaluate(function) for runner in self.runners]

    def describe(self) -> list[dict[str, Any]]:
        """Where each runner lives."""
        return [runner.describe() for runner in self.runners]

    def close(self) -> None:
        """Close every runner's envs."""
        for runner in self.runners:
            runner.close()


class RayRunnerGroup:
    """``num_runners`` EnvRunner actors on Ray, one CPU each by default.

    Weights go to the object store once per update (``ray.put``) and every runner reads the
    same copy. ``sample`` hands each runner its share and collects with ``ray.wait``; a runner
    that dies (its actor killed, its node gone) is replaced, and its share is sampled again by a
    live runner, so the batch keeps its size and no transition is counted twice. A replacement
    joins once Ray has placed it; until then the survivors take its share.
    """

    def __init__(
        self,
        config: FlowsimConfig,
        num_runners: int,
        policy_spec: PolicySpec | None = None,
        base_seed: int | None = None,
    ) -> None:
        import ray

        from flowsim.distributed.cluster import init_ray

        if num_runners < 1:
            raise ConfigError("sampler.num_workers must be at least 1 for a Ray runner group.")
        resources = init_ray(config.sampler)
        sampler = config.sampler
        cpus = float(sampler.resources_per_worker.get("CPU", 1.0))
        needed = cpus * num_runners
        available = float(resources.get("CPU", 0.0))
        if needed > available and not sampler.allow_oversubscription:
            raise ConfigError(
                f"sampler.num_workers: {num_runners} runners x {cpus:g} CPU need {needed:g} CPUs "
                f"but the Ray cluster has {available:g}; lower sampler.num_workers, lower "
                "sampler.resources_per_worker.CPU, or set sampler.allow_oversubscription: true."
            )
        self.config = config
        self.policy_spec = policy_spec
        self.base_seed = config.sim.seed if base_seed is None else base_seed
        other = {k: v for k, v in sampler.resources_per_worker.items() if k != "CPU"}
        self._actor_class = ray.remote(EnvRunner).options(
            num_cpus=cpus, resources=other or None, max_restarts=0, max_concurrency=1
        )
        self._generation = [0] * num_runners
        self._actors = [self._spawn(i) for i in range(num_runners)]
        self._ready: list[Any] = [actor.ping.remote() for actor in self._actors]
        self._weights: tuple[Any, int] | None = None
        self.runner_restarts = 0

    # -- actors ---------------------------------------------------------------------------
    def _spawn(self, index: int) -> Any:
        seed = runner_seed(self.base_seed, index, self._generation[index])
        return self._actor_class.remote(self.config, index, seed, self.policy_spec)

    def _replace(self, index: int, reason: str) -> None:
        import ray

        if self.runner_restarts >= self.config.sampler.max_runner_restarts:
            raise FlowsimError(
                f"runner {index} died ({reason}) and sampler.max_runner_restarts "
                f"({self.config.sampler.max_runner_restarts}) replacements are used up."
            )
        logger.warning(
            "runner %d died (%s); starting a replacement (generation %d)",
            index,
            reason,
            self._generation[index] + 1,
        )
        with contextlib.suppress(Exception):
            ray.kill(self._actors[index], no_restart=True)
        self.runner_restarts += 1
        self._generation[index] += 1
        self._actors[index] = self._spawn(index)
        if self._weights is not None:
            self._actors[index].set_weights.remote(*self._weights)
        self._ready[index] = self._actors[index].ping.remote()

    def _live_runners(self, wait_s: float = 0.0) -> list[int]:
        """Indices of runners that Ray has placed and that answer; waits up to ``wait_s``."""
        import ray

        pending = [ref for ref in self._ready if ref is not True]
        if pending:
            done, _ = ray.wait(pending, num_returns=len(pending), timeout=wait_s)
            done_set = set(done)
            for index, ref in enumerate(self._ready):
                if ref is not True and ref in done_set:
                    try:
                        ray.get(ref)
                        self._ready[index] = True
                    except ray.exceptions.RayError as error:
                        self._replace(index, type(error).__name__)
        return [i for i, ref in enumerate(self._ready) if ref is True]

    @property
    def num_runners(self) -> int:
        """Number of runner slots (live or being replaced)."""
        return len(self._actors)

    # -- the contract ---------------------------------------------------------------------
    def set_weights(self, weights: dict[str, np.ndarray], version: int) -> None:
        """Put the weights in the object store once; every runner loads that copy."""
        import ray

        self._weights = (ray.put(weights), version)
        for actor in self._actors:
            actor.set_weights.remote(*self._weights)

    def sample(
        self,
        num_steps: int | None = None,
        num_episodes: int | None = None,
        explore: bool = True,
        timeout_s: float = 600.0,
    ) -> Batch:
        """One share (``num_steps`` or ``num_episodes``) per runner slot, merged in slot order."""
        import ray

        shares = self.num_runners
        live = self._live_runners(
            wait_s=timeout_s if not any(r is True for r in self._ready) else 0
        )
        if not live:
            raise FlowsimError(f"no runner could be placed within {timeout_s:g} s.")
        pending: dict[Any, tuple[int, int]] = {}
        turn = 0

        def submit(share: int) -> None:
            nonlocal turn
            live_now = self._live_runners() or self._live_runners(wait_s=timeout_s)
            if not live_now:
                raise FlowsimError(f"no runner alive to sample on within {timeout_s:g} s.")
            runner = share if share in live_now else live_now[turn % len(live_now)]
            turn += 1
            ref = self._actors[runner].sample.remote(num_steps, num_episodes, explore)
            pending[ref] = (share, runner)

        for share in range(shares):
            submit(share)
        results: dict[int, Batch] = {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=timeout_s)
            if not ready:
                raise FlowsimError(f"no runner returned a batch within {timeout_s:g} s.")
            ref = ready[0]
            share, runner = pending.pop(ref)
            try:
                results[share] = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as error:
                if self._ready[runner] is True:  # not replaced yet by another failed share
                    self._ready[runner] = None
                    self._replace(runner, type(error).__name__)
                submit(share)
        return Batch.concat([results[share] for share in range(shares)])

    def sample_async(
        self, num_steps: int, explore: bool = True, timeout_s: float = 600.0
    ) -> Iterator[Batch]:
        """Batches of ``num_steps`` as each runner finishes; the runner starts again at once.

        Each batch carries the policy version it was sampled with: a learner consuming this
        stream may be a version or two ahead of the runners (asynchronous sampling).
        """
        import ray

        pending = {
            self._actors[i].sample.remote(num_steps, None, explore): i
            for i in self._live_runners(wait_s=timeout_s)
        }
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=timeout_s)
                if not ready:
                    raise FlowsimError(f"no runner returned a batch within {timeout_s:g} s.")
                runner = pending.pop(ready[0])
                try:
                    batch = ray.get(ready[0])
                except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as e:
                    self._ready[runner] = None
                    self._replace(runner, type(e).__name__)
                    batch = None
                if self._ready[runner] is True or self._live_runners(wait_s=timeout_s):
                    target = runner if self._ready[runner] is True else self._live_runners()[0]
                    pending[self._actors[target].sample.remote(num_steps, None, explore)] = target
                if batch is not None:
                    yield batch
        finally:
            for ref in pending:
                ray.cancel(ref, force=False)

    def evaluate(self, function: Callable[[EnvRunner], Any]) -> list[Any]:
        """``function(runner)`` on every live runner, in runner order."""
        import ray

        return ray.get([self._actors[i].evaluate.remote(function) for i in self._live_runners()])

    def describe(self) -> list[dict[str, Any]]:
        """Where each live runner lives (process, host, Ray node, SUMO processes)."""
        import ray

        return ray.get([self._actors[i].describe.remote() for i in self._live_runners()])

    def actor(self, index: int) -> Any:
        """The Ray actor handle of runner ``index`` (for tests and fault injection)."""
        return self._actors[index]

    def close(self) -> None:
        """Close every runner's envs and end the actors (Ray itself keeps running)."""
        import ray

        closing = [self._actors[i].close.remote() for i in self._live_runners()]
        with contextlib.suppress(ray.exceptions.RayError):
            ray.get(closing, timeout=30)
        for actor in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)


RunnerGroup = LocalRunnerGroup | RayRunnerGroup


def make_runner_group(config: FlowsimConfig, policy_spec: PolicySpec | None = None) -> RunnerGroup:
    """The group ``sampler.num_workers`` asks for: in-process for 0, Ray actors otherwise."""
    workers = config.sampler.num_workers
    if workers == 0:
        return LocalRunnerGroup(config, 1, policy_spec)
    return RayRunnerGroup(config, workers, policy_spec)
