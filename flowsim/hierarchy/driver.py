"""Drivers built from procedures: one call stack per AV, an actor for the runners' episodes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from flowsim.hierarchy.demos import Demonstration, demonstration_from_traces
from flowsim.hierarchy.experts import expert_task
from flowsim.hierarchy.experts.ring import RingLayout
from flowsim.hierarchy.experts.task import ExpertTask
from flowsim.hierarchy.procedures import CallStack, Procedure, Trace


@dataclass
class DrivenEpisode:
    """What a driver hands back after an episode (:meth:`HierarchicalDriver.finish_episode`)."""

    #: one per AV when the driver records, else none
    demonstrations: list[Demonstration]
    #: ``av_speed`` (mean AV speed, m/s), ``lane_changes`` (commanded) and, on a task with
    #: stops, ``stops_served`` (per AV)
    metrics: dict[str, float]


class HierarchicalDriver:
    """An actor for :func:`flowsim.distributed.play.play_episode`: one call stack per AV.

    ``task`` (default: the ring expert's) turns observations into features and, where it has
    stops, counts the stops served. ``noise`` (m/s²) perturbs the accelerations sent to the
    env but not the ones recorded (DART, Laskey et al. 2017): demonstrations then show how the
    expert recovers from small mistakes.

    ``make_procedures(layout)`` gives the procedures (the expert's, or a neural program's
    adapters); ``flat`` instead maps one AV's features to ``(discrete, continuous)``. With
    ``record=True`` every step's features and traces are kept for :meth:`demonstrations`.
    """

    def __init__(
        self,
        make_procedures: Callable[[RingLayout], list[Procedure]] | None = None,
        flat: Callable[[np.ndarray], tuple[tuple[int, ...], tuple[float, ...]]] | None = None,
        record: bool = False,
        max_depth: int = 4,
        task: ExpertTask | None = None,
        noise: float = 0.0,
        seed: int = 0,
    ) -> None:
        if (make_procedures is None) == (flat is None):
            raise ValueError("give make_procedures or flat")
        self.make_procedures, self.flat = make_procedures, flat
        self.task = task if task is not None else expert_task("ring")
        self.noise, self.rng = noise, np.random.default_rng(seed)
        self.record, self.max_depth = record, max_depth
        self._episode: Any = None
        self.layout: RingLayout | None = None
        self.stacks: list[CallStack] = []
        self.features: list[list[np.ndarray]] = []
        self.traces: list[list[Trace]] = []
        self.finished: list[Demonstration] = []
        self.episodes = 0
        #: every step's mean AV speed (m/s) and lane changes commanded, across episodes
        self.av_speeds: list[float] = []
        self.lane_changes: list[int] = []
        #: every step's stops served (all AVs; with a task that has stops)
        self.stops_served: list[int] = []
        self._standing = np.zeros(0, dtype=np.int64)
        #: where the current episode starts in the per-step lists and in ``finished``
        self._since = (0, 0, 0, 0)

    def _start(self, env: Any) -> None:
        self.flush()
        self.layout = self.task.layout(env)
        procedures = self.make_procedures(self.layout) if self.make_procedures else []
        count = len(self.layout.av_slots)
        self.stacks = [CallStack(procedures) for _ in range(count)] if procedures else []
        self.features = [[] for _ in range(count)]
        self.traces = [[] for _ in range(count)]
        self._standing = np.zeros(count, dtype=np.int64)
        self._episode = env.unwrapped.simulation.instance

    def flush(self) -> None:
        """Turn the recorded episode (if any) into demonstrations, one per AV."""
        if self.record and self.traces and self.traces[0]:
            for agent, (features, traces) in enumerate(
                zip(self.features, self.traces, strict=True)
            ):
                self.finished.append(
                    demonstration_from_traces(
                        features, traces, self.max_depth, episode=self.episodes, agent=agent
                    )
                )
            self.episodes += 1
        self.traces = []

    def finish_episode(self) -> DrivenEpisode:
        """The episode's demonstrations (if recorded) and AV figures; the next starts afresh."""
        self.flush()
        speeds, lanes, stops, demos = self._since
        metrics = {
            "av_speed": float(np.mean(self.av_speeds[speeds:])),
            "lane_changes": float(np.sum(self.lane_changes[lanes:])),
        }
        if self.task.at_stop is not None:
            assert self.layout is not None
            served = float(np.sum(self.stops_served[stops:]))
            metrics["stops_served"] = served / len(self.layout.av_slots)
        episode = DrivenEpisode(self.finished[demos:], metrics)
        self._since = (
            len(self.av_speeds),
            len(self.lane_changes),
            len(self.stops_served),
            len(self.finished),
        )
        return episode

    def __call__(self, obs: np.ndarray, env: Any) -> np.ndarray:
        """The env action: every AV's acceleration, then (with lane changes) its lane-change
        direction."""
        if env.unwrapped.simulation.instance is not self._episode:
            self._start(env)
        assert self.layout is not None
        features = self.task.featurize(obs, self.layout)
        count = features.shape[0]
        self.av_speeds.append(float(features[:, 0].mean()) * self.layout.max_speed)
        if self.task.at_stop is not None:
            standing = self.task.at_stop(features, self.layout.max_speed)
            self._standing = np.where(standing, self._standing + 1, 0)
            self.stops_served.append(int(np.count_nonzero(self._standing == self.task.dwell)))
        lanes = self.task.lane_changes
        action = np.zeros(2 * count if lanes else count, dtype=np.float32)
        for k in range(count):
            if self.flat is not None:
                discrete, continuous = self.flat(features[k])
            else:
                act = self.stacks[k].step(features[k])
                discrete, continuous = act.discrete, act.continuous
                if self.record:
                    assert self.stacks[k].last is not None
                    self.features[k].append(features[k])
                    self.traces[k].append(self.stacks[k].last)
            action[k] = continuous[0]
            if self.noise:  # the env gets a perturbed acceleration, the record the intended one
                action[k] += self.noise * self.rng.standard_normal()
            if lanes:
                action[count + k] = discrete[0] - 1
        self.lane_changes.append(int(np.count_nonzero(action[count:])))
        return action
