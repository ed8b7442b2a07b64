"""Demonstrations and closed-loop evaluation through the sampler's runners.

The expert's call stacks are not part of the rollout contract (``runner.sample`` returns the
numpy policy's batches, with no room for per-step stacks), so the hierarchy uses the runners'
other entry point, ``group.evaluate(function)``: the function runs on each runner (in-process
or in its Ray actor) against the runner's own env and returns plain data. No second rollout
loop is started: episodes are played by
:func:`flowsim.evaluation.evaluate.run_episode`, the loop that
``flowsim evaluate`` uses, so expert, learned program and baselines are measured alike.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from flowsim.config import FlowsimConfig
from flowsim.hierarchy.demos import Demonstration
from flowsim.hierarchy.driver import HierarchicalDriver
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


def _play_share(
    shares: list[list[int]],
    kind: str,
    state: dict[str, Any] | None,
    record: bool,
    expert: str,
    noise: float,
    runner: Any,
) -> tuple[list[Demonstration], list[dict[str, float]]]:
    """Runs on a runner: its share of the seeds, with the driver; demos if recorded."""
    from flowsim.evaluation.evaluate import run_episode

    seeds = shares[runner.runner_index]
    driver = make_driver(kind, state, record, expert, noise, seeds[0] if seeds else 0)
    stats = []
    for seed in seeds:
        start, served = len(driver.av_speeds), len(driver.stops_served)
        episode = run_episode(runner.envs[0], driver, seed)
        episode["av_speed"] = float(np.mean(driver.av_speeds[start:]))
        episode["lane_changes"] = float(np.sum(driver.lane_changes[start:]))
        if driver.task.at_stop is not None:
            assert driver.layout is not None
            buses = len(driver.layout.av_slots)
            episode["stops_served"] = float(np.sum(driver.stops_served[served:])) / buses
        stats.append(episode)
    driver.flush()
    demos = driver.finished
    for demo in demos:
        demo.episode = seeds[demo.episode]  # the seed names the episode
    return demos, stats


def play(
    config: FlowsimConfig,
    seeds: list[int],
    kind: str = "expert",
    state: dict[str, Any] | None = None,
    record: bool = False,
    group: Any = None,
    expert: str = "ring",
    noise: float = 0.0,
) -> tuple[list[Demonstration], list[dict[str, float]]]:
    """Play one episode per seed with a driver of ``expert``'s task on the config's runners.

    Returns the demonstrations (one per AV and episode, if ``record``) and each episode's
    metrics (:func:`flowsim.evaluation.evaluate.run_episode`). A ``group`` given is reused (and left
    open); otherwise one is made from ``config.sampler`` and closed. ``noise`` perturbs the
    expert's executed accelerations (demonstrations that show recoveries).
    """
    from flowsim.distributed import make_runner_group

    own = group is None
    group = group if group is not None else make_runner_group(config)
    try:
        count = group.num_runners
        shares = [seeds[k::count] for k in range(count)]
        results = group.evaluate(
            functools.partial(_play_share, shares, kind, state, record, expert, noise)
        )
    finally:
        if own:
            group.close()
    demos = [d for part, _ in results for d in part]
    stats = [s for _, part in results for s in part]
    demos.sort(key=lambda d: (d.episode, d.agent))
    return demos, stats


def summarise(stats: list[dict[str, float]]) -> dict[str, float]:
    """:func:`flowsim.evaluation.evaluate.summarise_episodes` (return, ``mean_speed``,
    ``speed_std``, worst speed, collisions, equilibrium speed on rings) plus the means over episodes of the
    AVs' speed (``av_speed``, whole episode), the lane changes commanded and, when the driver
    served stops, the stops served (``stops_served``, per AV and episode)."""
    from flowsim.evaluation.evaluate import summarise_episodes

    if not stats:
        return {}
    summary = summarise_episodes(stats)
    for key in ("av_speed", "lane_changes", "stops_served"):
        if all(key in s for s in stats):
            summary[key] = float(np.mean([s[key] for s in stats]))
    return summary
