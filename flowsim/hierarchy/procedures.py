"""Procedures and the call-stack executor (PHP semantics, Fox et al., ICLR 2018).

A *procedure* has an operation policy (emit an elementary action, or call a sub-procedure
with an argument) and a termination policy. The agent's state is its *call stack*: one
:class:`Frame` per active procedure, each with its argument and program counter (the number
of operations the frame has made so far).

One agent step of :class:`CallStack`:

1. **pop**: from the top down, every frame whose termination policy says "stop" is popped;
   the first frame that continues stops the popping (an emptied stack re-pushes the root);
2. **choose**: that frame chooses an operation; a call pushes the callee, which chooses in
   turn (with program counter 0), until some frame emits an elementary action;
3. every frame that chose increments its program counter.

The step's :class:`Trace` records the stack after the step and how many frames of the previous
stack continued (``kept``); both are enough to recover every decision (see
:func:`decisions_from_trace`).

Example:
    >>> class Leaf(Procedure):
    ...     def terminate(self, obs, frame):
    ...         return frame.pc >= 2
    ...     def operate(self, obs, frame):
    ...         return Act(discrete=(frame.arg,))
    >>> class Root(Procedure):
    ...     def terminate(self, obs, frame):
    ...         return False
    ...     def operate(self, obs, frame):
    ...         return Call(procedure=1, arg=frame.pc % 2)
    >>> stack = CallStack([Root(), Leaf()], root=0)
    >>> [stack.step(None).discrete[0] for _ in range(6)]
    [0, 0, 1, 1, 0, 0]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Frame:
    """An active procedure: its index, its argument and its program counter."""

    procedure: int
    arg: int = 0
    pc: int = 0


@dataclass(frozen=True)
class Call:
    """Operation: call ``procedure`` with argument ``arg``."""

    procedure: int
    arg: int = 0


@dataclass(frozen=True)
class Act:
    """Operation: emit an elementary action (categorical parts, then continuous parts)."""

    discrete: tuple[int, ...] = ()
    continuous: tuple[float, ...] = ()


class Procedure:
    """A procedure's two policies; subclass it (rule-based) or use a neural program.

    ``obs`` is whatever the agent observes (a feature vector for neural procedures).
    """

    name: str = "procedure"

    def terminate(self, obs: Any, frame: Frame) -> bool:
        """Whether the frame stops before this step (``frame.pc`` operations done so far)."""
        raise NotImplementedError

    def operate(self, obs: Any, frame: Frame) -> Call | Act:
        """The frame's next operation (``frame.pc`` operations done so far)."""
        raise NotImplementedError


@dataclass
class Trace:
    """One step of a call stack: the stack after the step, and the action it emitted.

    ``stack`` lists the frames bottom (root) to top (the frame that acted), with their
    program counters *after* the step; ``kept`` is the number of frames of the previous stack
    that continued (0 at the first step and whenever the root itself terminated).
    """

    stack: tuple[Frame, ...]
    kept: int
    action: Act


class CallStack:
    """Executes procedures with a call stack (PHP semantics, see the module docstring).

    Args:
        procedures: the procedures, indexed by position (a :class:`Call` names an index).
        root: the procedure pushed on an empty stack (with argument 0).
        max_depth: a guard against procedures calling each other forever.
    """

    def __init__(self, procedures: list[Procedure], root: int = 0, max_depth: int = 16) -> None:
        self.procedures = procedures
        self.root = root
        self.max_depth = max_depth
        self.frames: list[Frame] = []
        self.last: Trace | None = None

    def reset(self) -> None:
        """Empty the stack: the next step starts with a fresh root."""
        self.frames = []
        self.last = None

    def step(self, obs: Any) -> Act:
        """Pop terminating frames, let the first continuing frame choose, push until an action."""
        frames = self.frames
        while frames and self.procedures[frames[-1].procedure].terminate(obs, frames[-1]):
            frames.pop()
        kept = len(frames)
        if not frames:
            frames.append(Frame(self.root, 0, 0))
        while True:
            top = frames[-1]
            operation = self.procedures[top.procedure].operate(obs, top)
            frames[-1] = Frame(top.procedure, top.arg, top.pc + 1)
            if isinstance(operation, Act):
                break
            if len(frames) >= self.max_depth:
                raise RuntimeError(
                    f"call stack deeper than {self.max_depth}: procedure {top.procedure} keeps "
                    "calling; check the procedures' operation policies."
                )
            frames.append(Frame(operation.procedure, operation.arg, 0))
        self.last = Trace(tuple(frames), kept, operation)
        return operation


@dataclass
class Decisions:
    """The decisions of one step, recovered from its trace (strong supervision targets).

    ``terminations``: (frame checked, stopped?) top-down; ``operations``: (frame as it chose,
    operation) bottom-up, the last one being the elementary action.
    """

    terminations: list[tuple[Frame, bool]] = field(default_factory=list)
    operations: list[tuple[Frame, Call | Act]] = field(default_factory=list)


def decisions_from_trace(previous: tuple[Frame, ...], trace: Trace) -> Decisions:
    """Every termination check and operation of a step, from the previous stack and its trace.

    The previous stack's frames above ``kept`` stopped, the one at ``kept - 1`` continued (it
    is checked and says no); the continuing frame and every frame pushed after it chose one
    operation each, with its program counter before the step.
    """
    decided = Decisions()
    kept = trace.kept
    for frame in reversed(previous[kept:]):
        decided.terminations.append((frame, True))
    if kept:
        decided.terminations.append((previous[kept - 1], False))
    first = max(kept - 1, 0)
    stack = trace.stack
    for depth in range(first, len(stack)):
        frame = stack[depth]
        before = Frame(frame.procedure, frame.arg, frame.pc - 1)
        if depth + 1 < len(stack):
            callee = stack[depth + 1]
            decided.operations.append((before, Call(callee.procedure, callee.arg)))
        else:
            decided.operations.append((before, trace.action))
    return decided


def stack_arrays(traces: list[Trace], max_depth: int) -> dict[str, np.ndarray]:
    """Traces as padded arrays: ``stack_procedure``, ``stack_arg``, ``stack_pc`` (T, D; -1
    pads), ``stack_depth`` (T,) and ``stack_kept`` (T,)."""
    steps = len(traces)
    procedure = np.full((steps, max_depth), -1, dtype=np.int16)
    arg = np.full((steps, max_depth), -1, dtype=np.int16)
    pc = np.full((steps, max_depth), -1, dtype=np.int32)
    depth = np.zeros(steps, dtype=np.int16)
    kept = np.zeros(steps, dtype=np.int16)
    for t, trace in enumerate(traces):
        depth[t], kept[t] = len(trace.stack), trace.kept
        for d, frame in enumerate(trace.stack):
            procedure[t, d], arg[t, d], pc[t, d] = frame.procedure, frame.arg, frame.pc
    return {
        "stack_procedure": procedure,
        "stack_arg": arg,
        "stack_pc": pc,
        "stack_depth": depth,
        "stack_kept": kept,
    }


def stacks_from_arrays(arrays: dict[str, np.ndarray]) -> list[tuple[tuple[Frame, ...], int]]:
    """The (stack, kept) of every step from :func:`stack_arrays`' layout."""
    out = []
    for t in range(arrays["stack_depth"].shape[0]):
        depth = int(arrays["stack_depth"][t])
        frames = tuple(
            Frame(
                int(arrays["stack_procedure"][t, d]),
                int(arrays["stack_arg"][t, d]),
                int(arrays["stack_pc"][t, d]),
            )
            for d in range(depth)
        )
        out.append((frames, int(arrays["stack_kept"][t])))
    return out
