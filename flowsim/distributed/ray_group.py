"""Runner actors on Ray: one EnvRunner per actor, dead ones replaced, their work redone."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from flowsim.config import FlowsimConfig
from flowsim.distributed.batch import Batch, MultiBatch, concat_any
from flowsim.distributed.play import EpisodeJob, EpisodeResult, blocks
from flowsim.distributed.runner import EnvRunner, runner_seed
from flowsim.errors import ConfigError, FlowsimError
from flowsim.policies.spec import PolicySpec

if TYPE_CHECKING:
    import gymnasium

logger = logging.getLogger(__name__)


class RayRunnerGroup:
    """``num_runners`` EnvRunner actors on Ray, one CPU each by default: a
    :class:`~flowsim.distributed.RunnerGroup`.

    Weights go to the object store once per update (``ray.put``) and every runner reads the
    same copy. ``sample`` and ``play`` hand each runner slot its share and collect with
    ``ray.wait``; a runner that dies (its actor killed, its node gone) or hangs past the
    timeout is replaced, and its share is sampled (played) again by a live runner, so the batch
    keeps its size and no transition is counted twice. A replacement joins once Ray has placed
    it; until then the survivors take its share.
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
        for name, amount in sampler.resources_per_worker.items():
            needed = amount * num_runners
            available = float(resources.get(name, 0.0))
            if needed > available and not sampler.allow_oversubscription:
                raise ConfigError(
                    f"sampler.num_workers: {num_runners} runners x {amount:g} {name} need "
                    f"{needed:g} {name} but the Ray cluster has {available:g}; lower "
                    f"sampler.num_workers, lower sampler.resources_per_worker.{name}, or set "
                    "sampler.allow_oversubscription: true."
                )
        self.config = config
        self._policy_spec = policy_spec
        self._spaces: tuple[Any, Any, PolicySpec] | None = None
        self._policy_spaces: dict[str, tuple[Any, Any, PolicySpec]] | None = None
        self.base_seed = config.sim.seed if base_seed is None else base_seed
        wanted = dict(sampler.resources_per_worker)
        cpus, gpus = wanted.pop("CPU", 1.0), wanted.pop("GPU", 0.0)
        self._actor_class = ray.remote(EnvRunner).options(
            num_cpus=cpus, num_gpus=gpus, resources=wanted or None, max_restarts=0
        )
        self._generation = [0] * num_runners
        self._actors = [self._spawn(i) for i in range(num_runners)]
        self._ready: list[Any] = [actor.ping.remote() for actor in self._actors]
        self._weights: tuple[Any, int] | None = None
        self.runner_restarts = 0
        self._replacements: list[str] = []
        #: slots replaced since the last ``play`` (their blocks are lost with ``drop_lost``)
        self._lost_since_play: set[int] = set()

    # -- actors ---------------------------------------------------------------------------
    def _spawn(self, index: int) -> Any:
        seed = runner_seed(self.base_seed, index, self._generation[index])
        # Every runner starts from the same policy (seeded by the group), explores on its own.
        return self._actor_class.remote(
            self.config, index, seed, self._policy_spec, policy_seed=self.base_seed
        )

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
        with contextlib.suppress(Exception):  # it may be gone already
            ray.kill(self._actors[index], no_restart=True)
        self.runner_restarts += 1
        self._replacements.append(f"runner {index}: {reason}")
        self._lost_since_play.add(index)
        self._generation[index] += 1
        self._actors[index] = self._spawn(index)
        if self._weights is not None:
            self._actors[index].set_weights.remote(*self._weights)
        self._ready[index] = self._actors[index].ping.remote()

    def drain_replacements(self) -> list[str]:
        """Why each runner was replaced since the last call (``"runner 1: RayActorError"``)."""
        reasons, self._replacements = self._replacements, []
        return reasons

    def _check_ping(self, index: int) -> None:
        """Mark runner ``index`` ready if its start-up ping answered; replace it if it died."""
        import ray

        try:
            ray.get(self._ready[index])
        except ray.exceptions.RayError as error:
            text = str(error)
            if "creation task" in text or "__init__" in text:
                # The runner could not even start (bad config, env error): replacing it would
                # fail the same way, so say why.
                cause = text.strip().splitlines()[-1]
                if cause.startswith("flowsim.errors.ConfigError: "):  # a config to fix: exit 2
                    raise ConfigError(cause.split(": ", 1)[1]) from None
                raise FlowsimError(f"runner {index} could not start: {cause}") from None
            self._replace(index, type(error).__name__)
            return
        self._ready[index] = True

    def _wait_for_placement(self, slots: set[int], timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the runners of ``slots`` that are still starting."""
        import ray

        pending = {self._ready[i]: i for i in slots if self._ready[i] is not True}
        if pending:
            done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=timeout_s)
            for ref in done:
                self._check_ping(pending[ref])

    def _live_runners(self, wait_s: float = 0.0, want_all: bool = False) -> list[int]:
        """Runners that Ray has placed and that answer.

        Waits up to ``wait_s`` for at least one (or, with ``want_all``, for every) runner.
        """
        import ray

        pending = {ref: i for i, ref in enumerate(self._ready) if ref is not True}
        if pending:
            wanted = len(pending) if want_all or not any(r is True for r in self._ready) else 0
            if wanted:
                done, _ = ray.wait(list(pending), num_returns=wanted, timeout=wait_s)
            else:
                done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
            for ref in done:
                self._check_ping(pending[ref])
        return [i for i, ref in enumerate(self._ready) if ref is True]

    @property
    def num_runners(self) -> int:
        """Number of runner slots (live or being replaced)."""
        return len(self._actors)

    def _env_spaces(self, timeout_s: float = 600.0) -> tuple[Any, Any, PolicySpec]:
        """(observation space, action space, policy spec), asked of one runner once."""
        while self._spaces is None:
            live = self._live_runners(wait_s=timeout_s)
            if not live:
                raise FlowsimError(f"no runner could be placed within {timeout_s:g} s.")
            answers = self._gather({live[0]: self._actors[live[0]].spaces.remote()})
            if answers:
                self._spaces = answers[0]
        return self._spaces

    @property
    def policy_spaces(self) -> dict[str, tuple[Any, Any, PolicySpec]]:
        """Each policy id's (observation space, action space, spec), as a runner reports them:
        ``default`` for a single-agent env, the ``train.multiagent`` policies otherwise."""
        while self._policy_spaces is None:
            live = self._live_runners(wait_s=600.0)
            if not live:
                raise FlowsimError("no runner could be placed within 600 s.")
            answers = self._gather({live[0]: self._actors[live[0]].policy_spaces.remote()})
            if answers:
                self._policy_spaces = answers[0]
        return self._policy_spaces

    @property
    def observation_space(self) -> gymnasium.Space:
        """The env's observation space, as runner 0 (or the first live one) reports it."""
        return self._env_spaces()[0]

    @property
    def action_space(self) -> gymnasium.Space:
        """The env's action space, as the runners report it."""
        return self._env_spaces()[1]

    @property
    def policy_spec(self) -> PolicySpec:
        """The network the runners evaluate (built for the action space and ``train.hidden``)."""
        return self._env_spaces()[2]

    def share(self, value: Any) -> Any:
        """``value`` in the object store (one copy; each runner fetches it when first used)."""
        import ray

        return ray.put(value)

    # -- the contract ---------------------------------------------------------------------
    def set_weights(self, weights: dict[str, np.ndarray], version: int) -> None:
        """Put the weights in the object store once; every runner loads that copy.

        Waits until the live runners have loaded them, so bad weights fail here, loudly. A
        replacement Ray has not placed yet (its node gone, no CPU free) loads them when it
        starts; nobody waits for it.
        """
        import ray

        self._weights = (ray.put(weights), version)
        live = set(self._live_runners())
        refs = {}
        for index, actor in enumerate(self._actors):
            ref = actor.set_weights.remote(*self._weights)
            if index in live:
                refs[ref] = index
        for ref, index in refs.items():
            try:
                ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                # A dead runner gets the weights with its replacement, at the next sample.
                self._ready[index] = None
                self._replace(index, "died before loading weights")
            except ray.exceptions.RayTaskError as error:
                raise ValueError(f"runner {index} refused the weights: {error.cause}") from None

    def sample(
        self,
        num_steps: int | None = None,
        num_episodes: int | None = None,
        explore: bool = True,
        timeout_s: float = 600.0,
    ) -> Batch | MultiBatch:
        """``num_steps`` (or ``num_episodes``) from every runner slot, merged.

        Sizes are per runner slot: the batch holds ``num_runners`` shares. Shares are ordered
        by the runner that sampled them and then in time, so each env's steps stay contiguous
        and in time order even when a survivor samples a dead runner's share.
        """
        if not self._live_runners(wait_s=timeout_s):
            raise FlowsimError(f"no runner could be placed within {timeout_s:g} s.")
        pending: dict[Any, tuple[int, int, Any]] = {}
        submitted = 0
        results: list[tuple[int, int, Batch | MultiBatch]] = []

        def submit(share: int) -> None:
            nonlocal submitted
            live = self._live_runners() or self._live_runners(wait_s=timeout_s)
            if not live:
                raise FlowsimError(f"no runner alive to sample on within {timeout_s:g} s.")
            runner = share if share in live else live[submitted % len(live)]
            actor = self._actors[runner]
            pending[actor.sample.remote(num_steps, num_episodes, explore)] = (
                runner,
                submitted,
                actor,
            )
            submitted += 1

        for share in range(self.num_runners):
            submit(share)
        answers = self._answers(pending, timeout_s, "returned no batch", lambda t: submit(t[0]))
        for (runner, order, _actor), batch in answers:
            results.append((runner, order, batch))
        results.sort(key=lambda item: (item[0], item[1]))
        return concat_any([batch for _, _, batch in results])

    def _answers(
        self,
        pending: dict[Any, tuple[Any, ...]],
        timeout_s: float,
        silence: str,
        resubmit: Callable[[tuple[Any, ...]], None],
    ) -> Iterator[tuple[tuple[Any, ...], Any]]:
        """Each pending call's ``(tag, value)`` as it answers; ``tag`` is ``(runner, ...,
        actor)``. A call whose actor died replaces that runner and is handed to ``resubmit``
        (which adds its new call to ``pending``); calls that stay silent for ``timeout_s``
        replace their runners and raise, the message saying they ``silence``."""
        import ray

        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=timeout_s)
            if not ready:
                stuck = sorted({tag[0] for tag in pending.values()})
                for runner in stuck:  # hung runners will not answer later calls either
                    self._ready[runner] = None
                    self._replace(runner, f"no answer within {timeout_s:g} s")
                raise FlowsimError(
                    f"runner(s) {stuck} {silence} within {timeout_s:g} s; replaced them."
                )
            tag = pending.pop(ready[0])
            runner, actor = tag[0], tag[-1]
            try:
                value = ray.get(ready[0])
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as error:
                if self._actors[runner] is actor:  # a late failure of an old actor is ignored
                    self._ready[runner] = None
                    self._replace(runner, type(error).__name__)
                resubmit(tag)
                continue
            yield tag, value

    def play(
        self, jobs: Sequence[EpisodeJob], drop_lost: bool = False, timeout_s: float = 600.0
    ) -> list[EpisodeResult]:
        """Each job's episode, in job order; runner slot ``k`` plays the ``k``-th block.

        A slot whose runner is not placed yet hands its block to a live runner; a runner that
        dies meanwhile is replaced and its block played again elsewhere. With ``drop_lost``,
        the blocks of runners lost since the previous ``play`` (found dead by ``set_weights``,
        say) or during this one are left out instead (each result's ``job_index`` tells which
        came back), and replacements started before it are waited for, so one lost runner
        costs one call its share.
        """
        jobs = list(jobs)
        if not jobs:
            return []
        try:
            return self._play(jobs, drop_lost, timeout_s)
        finally:
            self._lost_since_play.clear()

    def _play(
        self, jobs: list[EpisodeJob], drop_lost: bool, timeout_s: float
    ) -> list[EpisodeResult]:
        if drop_lost:
            self._wait_for_placement(
                set(range(self.num_runners)) - self._lost_since_play, timeout_s
            )
        if not self._live_runners(wait_s=timeout_s):
            raise FlowsimError(f"no runner could be placed within {timeout_s:g} s.")
        pending: dict[Any, tuple[int, range, Any]] = {}
        submitted = 0

        def submit(slot: int, block: range) -> None:
            nonlocal submitted
            live = self._live_runners()
            if drop_lost and slot not in live:
                return
            live = live or self._live_runners(wait_s=timeout_s)
            if not live:
                raise FlowsimError(f"no runner alive to play on within {timeout_s:g} s.")
            runner = slot if slot in live else live[submitted % len(live)]
            actor = self._actors[runner]
            pending[actor.play.remote([jobs[i] for i in block])] = (runner, block, actor)
            submitted += 1

        for slot, block in enumerate(blocks(len(jobs), self.num_runners)):
            if block:
                submit(slot, block)
        results: dict[int, EpisodeResult] = {}
        answers = self._answers(
            pending, timeout_s, "played no episode", lambda t: submit(t[0], t[1])
        )
        for (_runner, block, _actor), played in answers:
            for index, result in zip(block, played, strict=True):
                result.job_index = index
                results[index] = result
        return [results[index] for index in sorted(results)]

    def describe(self, timeout_s: float = 600.0) -> list[dict[str, Any]]:
        """Where each runner lives (process, host, Ray node, SUMO processes).

        A runner that dies meanwhile is replaced and left out.
        """
        live = self._live_runners(wait_s=timeout_s, want_all=True)
        return self._gather({i: self._actors[i].describe.remote() for i in live})

    def _gather(self, refs: dict[int, Any]) -> list[Any]:
        """The answers of ``refs`` (runner -> call), in runner order; dead runners replaced."""
        import ray

        answers = []
        for index, ref in refs.items():
            actor = self._actors[index]
            try:
                answers.append(ray.get(ref))
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as error:
                if self._actors[index] is actor:
                    self._ready[index] = None
                    self._replace(index, type(error).__name__)
        return answers

    def actor(self, index: int) -> Any:
        """The Ray actor handle of runner ``index`` (for tests and fault injection)."""
        return self._actors[index]

    def close(self) -> None:
        """Close every runner's envs and end the actors (Ray itself keeps running)."""
        import ray

        live = [i for i, ready in enumerate(self._ready) if ready is True]
        closing = [self._actors[i].close.remote() for i in live]
        with contextlib.suppress(ray.exceptions.RayError):
            ray.get(closing, timeout=30)
        for actor in self._actors:
            with contextlib.suppress(Exception):  # it may be gone already
                ray.kill(actor, no_restart=True)
