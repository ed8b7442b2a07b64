"""Deeper hierarchies from weak supervision, trained level by level (Fox et al., 2017).

The two-level weak model (:mod:`flowsim.hierarchy.weak`) learns leaves under a root. A deeper
program is learned from the bottom up:

1. the bottom level: a stand-in root calls the leaves; fit on the demonstrations (states and
   actions only); segment every demonstration into leaf calls (:func:`~.weak.segment`);
2. the level above: its procedures become "leaves" whose elementary action is *which leaf
   option starts*, seen only at the steps where one starts (the derived demonstrations, one
   step per leaf call, so their program counters count calls as in the full program); a
   stand-in root calls them; fit and segment again;
3. repeat up to the real root, then assemble one :class:`NeuralProgram` of the full spec: each
   level's weights are copied in, a level's option head becoming its call head.

The spec must be *layered*: the root is alone on top, every other procedure's callees lie on
the level just below it, and procedures above the bottom call callees with one argument value.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from flowsim.hierarchy.demos import Demonstration
from flowsim.hierarchy.learn import fit
from flowsim.hierarchy.neural import NeuralProcedure, NeuralProgram, ProcedureSpec, ProgramSpec
from flowsim.hierarchy.weak import options, posteriors


def procedure_levels(spec: ProgramSpec) -> list[list[int]]:
    """The procedures level by level, bottom (the acting leaves) first, the root last.

    Raises:
        ValueError: the spec is not layered (see the module docstring).
    """
    procedures = spec.procedures
    depth: dict[int, int] = {}

    def height(k: int, seen: tuple[int, ...] = ()) -> int:
        if k in seen:
            raise ValueError(f"procedure {procedures[k].name} calls itself (through others)")
        if k not in depth:
            callees = procedures[k].callees
            depth[k] = 0 if not callees else 1 + max(height(c, (*seen, k)) for c in callees)
        return depth[k]

    top = height(spec.root)
    levels: list[list[int]] = [[] for _ in range(top + 1)]
    for k in sorted(depth):
        levels[depth[k]].append(k)
    for k, level in depth.items():
        p = procedures[k]
        if any(depth[c] != level - 1 for c in p.callees):
            raise ValueError(f"{p.name} calls procedures of several levels; not layered")
        if level and p.can_act:
            raise ValueError(f"{p.name} both calls and acts; train it with strong supervision")
        if level > 1 and any(procedures[c].num_args != 1 for c in p.callees):
            raise ValueError(f"{p.name} calls procedures with arguments above the bottom level")
    if levels[-1] != [spec.root]:
        raise ValueError("the root must be the only procedure on the top level")
    return levels


@dataclass
class LevelFit:
    """A program learned level by level and, per level below the root, the fitted two-level
    stand-in and the segmentation of every demonstration at that level (``labels``: option
    index at each step of the original demonstrations; ``starts``: where one begins)."""

    program: NeuralProgram
    stand_ins: list[NeuralProgram]
    labels: list[list[np.ndarray]]
    starts: list[list[np.ndarray]]


def _stand_in(spec: ProgramSpec, level: list[int], actions: ProgramSpec) -> ProgramSpec:
    """A two-level spec: a root calling ``level`` (as acting procedures of ``actions``' action
    space), indices 1.. in the order of ``level``."""
    leaves = tuple(
        ProcedureSpec(
            spec.procedures[k].name,
            num_args=spec.procedures[k].num_args,
            use_pc=spec.procedures[k].use_pc,
        )
        for k in level
    )
    root = replace(spec.procedures[spec.root], callees=tuple(range(1, len(level) + 1)))
    return replace(
        spec,
        procedures=(replace(root, can_act=False), *leaves),
        root=0,
        discrete_actions=actions.discrete_actions,
        continuous_actions=actions.continuous_actions,
    )


def _segment(program: NeuralProgram, demo: Demonstration) -> tuple[np.ndarray, np.ndarray]:
    """Most probable option at each step, and the steps where a new one starts."""
    post = posteriors(program, demo)
    labels = post.sum(axis=2).argmax(axis=1)
    starts = post[:, :, 0].sum(axis=1) > 0.5
    starts[0] = True
    return labels, starts


def fit_levels(
    spec: ProgramSpec,
    demos: list[Demonstration],
    epochs: int = 200,
    lr: float = 1e-2,
    seed: int = 0,
    restarts: int = 1,
) -> LevelFit:
    """Learn ``spec`` (layered, any depth) from ``demos`` without call stacks, level by level.

    Each level is fitted ``restarts`` times from different initial weights and the fit with
    the highest likelihood is kept (the likelihood has local optima, as in any EM).
    """
    levels = procedure_levels(spec)
    program = NeuralProgram(spec, seed=seed)
    stand_ins: list[NeuralProgram] = []
    all_labels: list[list[np.ndarray]] = []
    all_starts: list[list[np.ndarray]] = []
    current = [d.weak() for d in demos]
    actions = spec
    # For each original demonstration, the original step of every current (derived) step.
    steps = [np.arange(len(d)) for d in demos]
    for k, level in enumerate(levels[:-1]):
        sub = _stand_in(spec, level, actions)
        fits = []
        for attempt in range(max(restarts, 1)):
            candidate = NeuralProgram(sub, seed=seed + 1000 * k + attempt)
            rows = fit(candidate, current, epochs=epochs, lr=lr).rows
            fits.append((rows[-1]["loss"], attempt, candidate))
        model = min(fits, key=lambda item: item[:2])[2]
        stand_ins.append(model)
        derived, labels, starts, next_steps = [], [], [], []
        for demo, where, original in zip(current, steps, demos, strict=True):
            label, start = _segment(model, demo)
            # Back on the original time axis: each original step takes the label of the
            # derived step at or before it.
            position = np.searchsorted(where, np.arange(len(original)), side="right") - 1
            labels.append(label[position])
            starts.append(np.isin(np.arange(len(original)), where[start]))
            derived.append(
                Demonstration(
                    obs=demo.obs[start],
                    discrete_actions=label[start][:, None].astype(np.int64),
                    continuous_actions=np.zeros((int(start.sum()), 0), np.float32),
                    episode=demo.episode,
                    agent=demo.agent,
                )
            )
            next_steps.append(where[start])
        all_labels.append(labels)
        all_starts.append(starts)
        _copy_level(program, model, level, k)
        current, steps = derived, next_steps
        actions = replace(spec, discrete_actions=(len(options(sub)),), continuous_actions=0)
    _copy_root(program, stand_ins[-1])
    return LevelFit(program, stand_ins, all_labels, all_starts)


def _copy_level(program: NeuralProgram, model: NeuralProgram, level: list[int], k: int) -> None:
    """Copy a fitted stand-in's procedures into the full program (level ``k`` from the bottom).

    At the bottom the procedures act as in the full program; above it, the stand-in's action
    head (which option of the level below starts) becomes the call head over the callees.
    """
    for j, index in enumerate(level):
        source, target = model.procedures[1 + j], program.procedures[index]
        weights = source.state_dict()
        if k == 0:
            target.load_state_dict(weights)
            continue
        _copy_as_caller(program, target, weights, "discrete.0")


def _option_of(program: NeuralProgram, callee: int) -> int:
    """The option index of ``callee`` in its level's stand-in (its position in its level)."""
    for level in procedure_levels(program.spec):
        if callee in level:
            return level.index(callee)
    raise ValueError(f"procedure {callee} is in no level")


def _copy_root(program: NeuralProgram, model: NeuralProgram) -> None:
    """The top stand-in's root is the program's root (same callees, in level order)."""
    root = program.procedures[program.spec.root]
    weights = model.procedures[0].state_dict()
    rows = _copy_as_caller(program, root, weights, "op")
    for j, row in enumerate(rows):
        root.args[j].load_state_dict(model.procedures[0].args[row].state_dict())


def _copy_as_caller(
    program: NeuralProgram,
    target: NeuralProcedure,
    weights: dict[str, torch.Tensor],
    head: str,
) -> list[int]:
    """Copy a stand-in's trunk, termination and standardisation into ``target`` and its
    ``head`` rows (one per option) into ``target``'s call head, in ``target``'s callee order;
    return those rows."""
    rows = [_option_of(program, c) for c in target.spec.callees]
    with torch.no_grad():
        for name, value in weights.items():
            if name.startswith(("trunk.", "term.", "standardise.")):
                target.state_dict()[name].copy_(value)
        target.op.weight.copy_(weights[f"{head}.weight"][rows])
        target.op.bias.copy_(weights[f"{head}.bias"][rows])
    return rows
