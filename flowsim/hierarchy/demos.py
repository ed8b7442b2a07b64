"""Demonstrations: one agent's observations, actions and (strong ones) call stacks per step.

On disk a set of demonstrations is one ``.npz`` file (``numpy.savez_compressed``, read with
``allow_pickle=False``). Steps of all demonstrations are concatenated; ``lengths`` cuts them:

=====================  ==============  ==========================================================
key                    shape / dtype   meaning
=====================  ==============  ==========================================================
``format``             () int          format version (1)
``meta_json``          () str          JSON: expert, env id, seeds, feature names, ...
``lengths``            (N,) int64      steps of each demonstration
``episode``            (N,) int64      episode the demonstration comes from
``agent``              (N,) int64      agent (e.g. AV slot) within that episode
``strong``             (N,) bool       call stacks recorded (strong supervision)
``obs``                (S, F) float32  the agent's observation (procedure input) at each step
``discrete_actions``   (S, Kd) int64   categorical action parts
``continuous_actions`` (S, Kc) float32 real action parts
``stack_procedure``    (S, D) int16    procedure of each frame, root first (-1 pads)
``stack_arg``          (S, D) int16    argument of each frame
``stack_pc``           (S, D) int32    program counter of each frame after the step
``stack_depth``        (S,) int16      frames on the stack after the step
``stack_kept``         (S,) int16      frames of the previous stack that continued
=====================  ==============  ==========================================================

A weak demonstration's stack rows are padding (-1, depth 0). See
:mod:`flowsim.hierarchy.procedures` for the execution semantics behind ``stack_kept``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from flowsim.errors import ConfigError

FORMAT_VERSION = 1
STACK_KEYS = ("stack_procedure", "stack_arg", "stack_pc", "stack_depth", "stack_kept")


@dataclass
class Demonstration:
    """One agent's trajectory; ``stacks`` (the :func:`stack_arrays` layout) when strong."""

    obs: np.ndarray
    discrete_actions: np.ndarray
    continuous_actions: np.ndarray
    stacks: dict[str, np.ndarray] | None = None
    episode: int = 0
    agent: int = 0

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    @property
    def strong(self) -> bool:
        """True when the call stack of every step is known."""
        return self.stacks is not None

    def weak(self) -> Demonstration:
        """The same demonstration with its call stacks hidden."""
        return replace(self, stacks=None)


def save_demonstrations(
    path: Path, demos: list[Demonstration], meta: dict[str, Any] | None = None
) -> Path:
    """Write ``demos`` to one compressed ``.npz`` (layout in the module docstring)."""
    if not demos:
        raise ValueError("no demonstrations to save")
    depth = max(
        (int(d.stacks["stack_procedure"].shape[1]) for d in demos if d.stacks is not None),
        default=1,
    )
    stacks: dict[str, list[np.ndarray]] = {key: [] for key in STACK_KEYS}
    for demo in demos:
        steps = len(demo)
        if demo.stacks is None:
            stacks["stack_procedure"].append(np.full((steps, depth), -1, np.int16))
            stacks["stack_arg"].append(np.full((steps, depth), -1, np.int16))
            stacks["stack_pc"].append(np.full((steps, depth), -1, np.int32))
            stacks["stack_depth"].append(np.zeros(steps, np.int16))
            stacks["stack_kept"].append(np.zeros(steps, np.int16))
            continue
        for key in STACK_KEYS:
            array = demo.stacks[key]
            if array.ndim == 2 and array.shape[1] < depth:
                pad = np.full((steps, depth - array.shape[1]), -1, array.dtype)
                array = np.concatenate([array, pad], axis=1)
            stacks[key].append(array)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        format=np.int64(FORMAT_VERSION),
        meta_json=np.str_(json.dumps(meta or {})),
        lengths=np.array([len(d) for d in demos], dtype=np.int64),
        episode=np.array([d.episode for d in demos], dtype=np.int64),
        agent=np.array([d.agent for d in demos], dtype=np.int64),
        strong=np.array([d.strong for d in demos], dtype=bool),
        obs=np.concatenate([d.obs for d in demos]).astype(np.float32),
        discrete_actions=np.concatenate([d.discrete_actions for d in demos]).astype(np.int64),
        continuous_actions=np.concatenate([d.continuous_actions for d in demos]).astype(np.float32),
        **{key: np.concatenate(parts) for key, parts in stacks.items()},
    )
    return path


def load_demonstrations(path: Path) -> tuple[list[Demonstration], dict[str, Any]]:
    """The demonstrations and metadata of a file written by :func:`save_demonstrations`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such demonstrations file; collect some with imitate.")
    with np.load(path, allow_pickle=False) as data:
        version = int(data["format"])
        if version != FORMAT_VERSION:
            raise ConfigError(
                f"{path}: demonstrations format {version}, this flowsim reads {FORMAT_VERSION}."
            )
        arrays = {key: data[key] for key in data.files}
    meta = json.loads(str(arrays["meta_json"]))
    ends = np.cumsum(arrays["lengths"])
    demos = []
    for k, end in enumerate(ends):
        part = slice(int(end - arrays["lengths"][k]), int(end))
        stacks = None
        if arrays["strong"][k]:
            stacks = {key: arrays[key][part] for key in STACK_KEYS}
        demos.append(
            Demonstration(
                obs=arrays["obs"][part],
                discrete_actions=arrays["discrete_actions"][part],
                continuous_actions=arrays["continuous_actions"][part],
                stacks=stacks,
                episode=int(arrays["episode"][k]),
                agent=int(arrays["agent"][k]),
            )
        )
    return demos, meta


def demonstration_from_traces(
    obs: list[np.ndarray] | np.ndarray,
    traces: list[Any],
    max_depth: int = 4,
    episode: int = 0,
    agent: int = 0,
) -> Demonstration:
    """A strong demonstration from per-step observations and :class:`Trace` records."""
    from flowsim.hierarchy.procedures import stack_arrays

    discrete = np.array([t.action.discrete for t in traces], dtype=np.int64).reshape(
        len(traces), -1
    )
    continuous = np.array([t.action.continuous for t in traces], dtype=np.float32).reshape(
        len(traces), -1
    )
    return Demonstration(
        obs=np.asarray(obs, dtype=np.float32),
        discrete_actions=discrete,
        continuous_actions=continuous,
        stacks=stack_arrays(traces, max_depth),
        episode=episode,
        agent=agent,
    )
