"""The one rollout contract: a batch of transitions as numpy arrays, plus episode statistics."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from flowsim.sim.trips import TRIP_METRICS

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
#: Per-transition arrays that only some batches carry (None otherwise): multi-agent policies':
#: action masks and a centralised critic's global state before and after each step.
OPTIONAL_STEP_FIELDS = ("action_mask", "state", "next_state")
#: Per-completed-episode arrays.
EPISODE_FIELDS = (
    "episode_returns",
    "episode_lengths",
    "episode_mean_speeds",
    "episode_collisions",
    "episode_trips",
)


def no_trips(episodes: int) -> np.ndarray:
    """Trip metrics of ``episodes`` episodes whose env reports none: NaN, (episodes, 4)."""
    return np.full((episodes, len(TRIP_METRICS)), np.nan)


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
        env_index: global id of each step's stream, shape (T,): runner and env; in a
            multi-agent batch runner, env and agent slot (each agent's trajectory is its own
            stream, ended by its own ``terminated`` / ``truncated``).
        action_mask: multi-agent policies whose agents have different numbers of choices:
            the valid choices of each step's agent, bool (T, n); None otherwise.
        state, next_state: a centralised critic's input (the env's global state) before and
            after each step, (T, state_dim); None without one.
        episode_*: statistics of the episodes that ended in this batch (in a multi-agent
            batch the team's: the return summed over agents, the length in env steps);
            ``episode_trips`` (E, 4) holds each episode's trip metrics in
            :data:`~flowsim.sim.trips.TRIP_METRICS` order (a signal env's), NaN where the env
            reports none.
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
    action_mask: np.ndarray | None = None
    state: np.ndarray | None = None
    next_state: np.ndarray | None = None
    episode_returns: np.ndarray = field(default_factory=lambda: np.zeros(0))
    episode_lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    episode_mean_speeds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    episode_collisions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    episode_trips: np.ndarray = field(default_factory=lambda: no_trips(0))
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
        arrays = {}
        for spec in fields(Batch):
            if spec.name in ("policy_version", "metrics"):
                continue
            parts = [getattr(b, spec.name) for b in batches]
            if spec.name in OPTIONAL_STEP_FIELDS and all(part is None for part in parts):
                arrays[spec.name] = None
                continue
            if any(part is None for part in parts):
                raise ValueError(f"Batch.concat: some batches carry {spec.name} and some not")
            arrays[spec.name] = np.concatenate(parts)
        metrics = merged_metrics([b.metrics for b in batches])
        versions = {b.policy_version for b in batches}
        return Batch(**arrays, policy_version=min(versions), metrics=metrics)


def merged_metrics(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Runner metrics of several batches: counts summed, wall time the longest, each runner's
    own kept under ``runners``. ``env_steps`` counts env steps (a multi-agent env step gives
    one transition per agent; ``steps`` counts transitions)."""
    runners = [m for part in parts for m in part.get("runners", [part])]
    summed = {
        key: sum(m.get(key, 0) for m in runners)
        for key in ("steps", "restarts", "episodes", "sim_s", "inference_s")
    }
    summed["env_steps"] = sum(m.get("env_steps", m.get("steps", 0)) for m in runners)
    wall = max((m.get("wall_s", 0.0) for m in runners), default=0.0)
    return {
        **summed,
        "wall_s": wall,
        "steps_per_s": summed["steps"] / wall if wall > 0 else 0.0,
        "runners": runners,
    }


@dataclass
class MultiBatch:
    """What runners of a multi-agent env with several policies return: one :class:`Batch`
    per policy id (its agents' streams), plus the team's episode statistics.

    The per-policy batches hold no episode statistics (an episode belongs to the team); they
    are here: the return summed over every agent, the length in env steps.
    """

    batches: dict[str, Batch]
    episode_returns: np.ndarray = field(default_factory=lambda: np.zeros(0))
    episode_lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    episode_mean_speeds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    episode_collisions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    episode_trips: np.ndarray = field(default_factory=lambda: no_trips(0))
    policy_version: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(batch) for batch in self.batches.values())

    def __getitem__(self, policy_id: str) -> Batch:
        return self.batches[policy_id]

    @property
    def num_episodes(self) -> int:
        """Team episodes that ended in this batch."""
        return int(self.episode_returns.shape[0])

    @staticmethod
    def concat(batches: list[MultiBatch]) -> MultiBatch:
        """One multi-batch holding ``batches`` in order, policy by policy."""
        if not batches:
            raise ValueError("MultiBatch.concat needs at least one batch")
        ids = list(batches[0].batches)
        episodes = {
            name: np.concatenate([getattr(b, name) for b in batches]) for name in EPISODE_FIELDS
        }
        return MultiBatch(
            batches={pid: Batch.concat([b.batches[pid] for b in batches]) for pid in ids},
            **episodes,
            policy_version=min(b.policy_version for b in batches),
            metrics=merged_metrics([b.metrics for b in batches]),
        )


def concat_any(batches: list[Any]) -> Any:
    """:meth:`Batch.concat` or :meth:`MultiBatch.concat`, whichever the runners returned."""
    if batches and isinstance(batches[0], MultiBatch):
        return MultiBatch.concat(batches)
    return Batch.concat(batches)
