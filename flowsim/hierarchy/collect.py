"""Demonstrations and closed-loop evaluation through the sampler's runners.

The expert's call stacks are not part of the rollout contract (``runner.sample`` returns the
numpy policy's batches, with no room for per-step stacks), so the hierarchy uses the runners'
other entry point, ``group.evaluate(function)``: the function runs on each runner (in-process
or in its Ray actor) against the runner's own env and returns plain data. No second rollout
loop is started: episodes are played by :func:`flowsim.evaluation.run_episode`, the loop that
``flowsim evaluate`` uses, so expert, learned program and baselines are measured alike.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from flowsim.config import FlowsimConfig
from flowsim.hierarchy.demos import Demonstration
from flowsim.hierarchy.expert import HierarchicalDriver, RingLayout, expert_procedures


def make_driver(kind: str, state: dict[str, Any] | None = None, record: bool = False) -> Any:
    """A ring driver: ``expert``, ``program`` (a neural program's state) or ``flat``."""
    if kind == "expert":
        return HierarchicalDriver(lambda layout: expert_procedures(layout.max_speed), record=record)
    if kind == "program":
        from flowsim.hierarchy.neural import NeuralProgram

        assert state is not None
        program = NeuralProgram.from_state(state)

        def procedures(_layout: RingLayout) -> list[Any]:
            return program.as_procedures(greedy=True)

        return HierarchicalDriver(procedures, record=record)
    if kind == "flat":
        from flowsim.hierarchy.learn import FlatPolicy
        from flowsim.hierarchy.neural import ProgramSpec

        assert state is not None
        policy = FlatPolicy(ProgramSpec.from_dict(state["spec"]))
        policy.load_state_dict({k: _tensor(v) for k, v in state["weights"].items()})
        return HierarchicalDriver(flat=policy.act)
    raise ValueError(f"unknown driver {kind!r}: expert, program or flat")


def policy_driver(policy: dict[str, Any]) -> Any:
    """The actor of a run's ``policy`` checkpoint entry when it is a hierarchy
    (``{"kind": "hierarchy", "program": ...}``): what ``flowsim evaluate`` / ``replay`` drive."""
    if policy.get("kind") != "hierarchy":
        raise ValueError("not a hierarchical policy (kind is not 'hierarchy')")
    return make_driver("program", policy["program"])


def _tensor(value: np.ndarray) -> Any:
    import torch

    return torch.as_tensor(value)


def _play_share(
    shares: list[list[int]], kind: str, state: dict[str, Any] | None, record: bool, runner: Any
) -> tuple[list[Demonstration], list[dict[str, float]]]:
    """Runs on a runner: its share of the seeds, with the driver; demos if recorded."""
    from flowsim.evaluation import run_episode

    seeds = shares[runner.runner_index]
    driver = make_driver(kind, state, record)
    stats = []
    for seed in seeds:
        start = len(driver.av_speeds)
        episode = run_episode(runner.envs[0], driver, seed)
        episode["av_speed"] = float(np.mean(driver.av_speeds[start:]))
        episode["lane_changes"] = float(np.sum(driver.lane_changes[start:]))
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
) -> tuple[list[Demonstration], list[dict[str, float]]]:
    """Play one episode per seed with a driver on the config's runner group.

    Returns the demonstrations (one per AV and episode, if ``record``) and each episode's
    metrics (:func:`flowsim.evaluation.run_episode`). A ``group`` given is reused (and left
    open); otherwise one is made from ``config.sampler`` and closed.
    """
    from flowsim.distributed import make_runner_group

    own = group is None
    group = group if group is not None else make_runner_group(config)
    try:
        count = group.num_runners
        shares = [seeds[k::count] for k in range(count)]
        results = group.evaluate(functools.partial(_play_share, shares, kind, state, record))
    finally:
        if own:
            group.close()
    demos = [d for part, _ in results for d in part]
    stats = [s for _, part in results for s in part]
    demos.sort(key=lambda d: (d.episode, d.agent))
    return demos, stats


def summarise(stats: list[dict[str, float]]) -> dict[str, float]:
    """Means over episodes of the return, the speed of all vehicles (``mean_speed``, second
    half of each episode) and of the AVs (``av_speed``, whole episode) and the lane changes
    commanded; the worst speed and the total collisions."""
    if not stats:
        return {}
    return {
        "episodes": len(stats),
        "mean_return": float(np.mean([s["return"] for s in stats])),
        "mean_speed": float(np.mean([s["mean_speed"] for s in stats])),
        "av_speed": float(np.mean([s["av_speed"] for s in stats])),
        "lane_changes": float(np.mean([s["lane_changes"] for s in stats])),
        "min_speed": float(np.min([s["min_speed"] for s in stats])),
        "collisions": int(sum(s["collisions"] for s in stats)),
    }
