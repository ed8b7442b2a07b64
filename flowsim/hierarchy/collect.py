"""Demonstrations and closed-loop driving through the runners' ``play``.

Every episode is a play job (:class:`flowsim.distributed.EpisodeJob`) whose actor factory,
:class:`DriverFactory`, builds the driver on the runner (in-process or in its Ray actor)
against the runner's own env. No second rollout loop is started: the runner plays it with the
episode loop ``flowsim evaluate`` uses, so expert, learned program and baselines are measured
alike, and the driver hands back its demonstrations and AV figures when the episode ends
(:meth:`HierarchicalDriver.finish_episode`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flowsim.config import FlowsimConfig
from flowsim.distributed import EpisodeJob, RunnerGroup, make_runner_group
from flowsim.hierarchy.demos import Demonstration
from flowsim.hierarchy.driver import DrivenEpisode, HierarchicalDriver
from flowsim.hierarchy.experts import expert_task
from flowsim.hierarchy.experts.ring import RingLayout


def make_driver(
    kind: str,
    state: dict[str, Any] | None = None,
    record: bool = False,
    expert: str = "ring",
    noise: float = 0.0,
    seed: int = 0,
) -> Any:
    """A driver for ``expert``'s task: ``expert`` (its executed accelerations perturbed by
    ``noise``, see :class:`HierarchicalDriver`), ``program`` (a neural program's state) or
    ``flat`` (a :class:`~flowsim.hierarchy.learn.FlatPolicy`'s state)."""
    task = expert_task(expert)
    if kind == "expert":
        return HierarchicalDriver(
            lambda layout: task.procedures(layout.max_speed),
            record=record,
            task=task,
            noise=noise,
            seed=seed,
        )
    if kind == "program":
        from flowsim.hierarchy.neural import NeuralProgram

        assert state is not None
        program = NeuralProgram.from_state(state)

        def procedures(_layout: RingLayout) -> list[Any]:
            return program.as_procedures(greedy=True)

        return HierarchicalDriver(procedures, record=record, task=task)
    if kind == "flat":
        from flowsim.hierarchy.learn import FlatPolicy
        from flowsim.hierarchy.neural import ProgramSpec, complete_weights

        assert state is not None
        policy = FlatPolicy(ProgramSpec.from_dict(state["spec"]))
        policy.load_state_dict(complete_weights(state["weights"], policy))
        return HierarchicalDriver(flat=policy.act, task=task)
    raise ValueError(f"unknown driver {kind!r}: expert, program or flat")


def policy_driver(policy: dict[str, Any]) -> Any:
    """The actor of a run's ``policy`` checkpoint entry when it is a hierarchy
    (``{"kind": "hierarchy", "program": ..., "expert": ...}``): what ``flowsim evaluate`` /
    ``replay`` drive."""
    if policy.get("kind") != "hierarchy":
        raise ValueError("not a hierarchical policy (kind is not 'hierarchy')")
    return make_driver("program", policy["program"], expert=policy.get("expert", "ring"))


@dataclass(frozen=True)
class DriverFactory:
    """Builds a :func:`make_driver` driver on a runner (picklable: it travels in play jobs)."""

    kind: str
    state: dict[str, Any] | None
    record: bool
    expert: str
    noise: float
    seed: int

    def __call__(self, _env: Any) -> HierarchicalDriver:
        """A fresh driver for one episode."""
        return make_driver(self.kind, self.state, self.record, self.expert, self.noise, self.seed)


def play(
    config: FlowsimConfig,
    seeds: list[int],
    kind: str = "expert",
    state: dict[str, Any] | None = None,
    record: bool = False,
    group: RunnerGroup | None = None,
    expert: str = "ring",
    noise: float = 0.0,
) -> tuple[list[Demonstration], list[dict[str, float]]]:
    """Play one episode per seed with a driver of ``expert``'s task on the config's runners.

    Returns the demonstrations (one per AV and episode, if ``record``; ``episode`` is the seed)
    and each episode's metrics (:func:`flowsim.evaluation.evaluate.episode_stats` plus
    ``av_speed``, ``lane_changes`` and, with stops, ``stops_served``). A ``group`` given is
    reused (and left open); otherwise one is made from ``config.sampler`` and closed.
    ``noise`` perturbs the expert's executed accelerations (demonstrations that show
    recoveries), drawn from a stream seeded by the episode's seed.
    """
    from flowsim.evaluation.evaluate import episode_stats

    jobs = [
        EpisodeJob(seed, actor=DriverFactory(kind, state, record, expert, noise, seed))
        for seed in seeds
    ]
    own = group is None
    group = group if group is not None else make_runner_group(config)
    try:
        played = group.play(jobs)
    finally:
        if own:
            group.close()
    demos: list[Demonstration] = []
    stats = []
    for result in played:
        driven: DrivenEpisode = result.actor_output
        for demo in driven.demonstrations:
            demo.episode = result.seed  # the seed names the episode
            demos.append(demo)
        stats.append({**episode_stats(result, config), **driven.metrics})
    demos.sort(key=lambda d: (d.episode, d.agent))
    return demos, stats


def summarise(stats: list[dict[str, float]]) -> dict[str, float]:
    """:func:`flowsim.evaluation.evaluate.summarise_episodes` (return, ``mean_speed``,
    ``speed_std``, worst speed, collisions, equilibrium speed on rings) plus the means over
    episodes of the AVs' speed (``av_speed``, whole episode), the lane changes commanded and,
    when the driver served stops, the stops served (``stops_served``, per AV and episode)."""
    from flowsim.evaluation.evaluate import summarise_episodes

    if not stats:
        return {}
    summary = summarise_episodes(stats)
    for key in ("av_speed", "lane_changes", "stops_served"):
        if all(key in s for s in stats):
            summary[key] = float(np.mean([s[key] for s in stats]))
    return summary
