"""The one rollout contract: a batch of transitions as numpy arrays, plus episode statistics."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

#: Per-transition arrays, all with the same first dimension (steps).
STEP_FIELDS = (
    "obs",
    "actions",
    "rewards",
    "terminated",
    "truncated",
    "logp",
    "values",
    "next_obs",
    "env_index",
)
#: Per-completed-episode arrays.
EPISODE_FIELDS = (
    "episode_returns",
    "episode_lengths",
    "episode_mean_speeds",
    "episode_collisions",
)


@dataclass
class Batch:
    """Transitions sampled by one or more runners, in runner then env order.

    Steps of one env are contiguous and in time order; ``env_index`` (a global id: runner and
    env) tells streams apart. An episode ends where ``terminated`` or ``truncated`` is set; a
    stream cut by the fragment length while its episode goes on has ``fragment_end`` set.
    ``next_obs`` lets a learner bootstrap a truncated episode or a cut fragment.

    Attributes:
        obs, next_obs: observations before and after each step, shape (T, *obs_shape).
        actions: actions sent (before the env's clipping), shape (T, *action_shape); for
            ``Discrete`` and ``MultiDiscrete`` spaces the integer choices (start included).
        rewards, logp, values: float32, shape (T,).
        terminated, truncated: episode ended by the task / by a time limit or crash.
        fragment_end: the stream was cut here by the fragment length (not an episode end).
        env_index: global env id of each step, shape (T,).
        episode_*: statistics of the episodes that ended in this batch.
        policy_version: version of the weights the batch was sampled with.
        metrics: runner metrics (steps, wall and split times, steps/s, restarts, node, …).
    """

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    logp: np.ndarray
    values: np.ndarray
    next_obs: np.ndarray
    env_index: np.ndarray
    fragment_end: np.ndarray
    episode_returns: np.ndarray = field(default_factory=lambda: np.zeros(0))
    episode_lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    episode_mean_speeds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    episode_collisions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    policy_version: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def num_episodes(self) -> int:
        """Episodes that ended in this batch."""
        return int(self.episode_returns.shape[0])

    @staticmethod
    def concat(batches: list[Batch]) -> Batch:
        """One batch holding ``batches`` in order; metrics are kept per runner and summed."""
        if not batches:
            raise ValueError("Batch.concat needs at least one batch")
        arrays = {
            spec.name: np.concatenate([getattr(b, spec.name) for b in batches])
            for spec in fields(Batch)
            if spec.name not in ("policy_version", "metrics")
        }
        runners = [m for b in batches for m in b.metrics.get("runners", [b.metrics])]
        summed = {
            key: sum(m.get(key, 0) for m in runners)
            for key in ("steps", "restarts", "episodes", "sim_s", "inference_s")
        }
        wall = max((m.get("wall_s", 0.0) for m in runners), default=0.0)
        metrics = {
            **summed,
            "wall_s": wall,
            "steps_per_s": summed["steps"] / wall if wall > 0 else 0.0,
            "runners": runners,
        }
        versions = {b.policy_version for b in batches}
        return Batch(**arrays, policy_version=min(versions), metrics=metrics)
