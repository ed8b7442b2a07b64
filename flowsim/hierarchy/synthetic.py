"""Synthetic tasks with known structure (for tests and quick checks).

**Two levels.**
Observation ``s_t = (u, w)``, both uniform in [-1, 1] and independent across steps. The root
calls ``Match`` when ``w > 0`` and ``Flip`` otherwise. ``Match`` emits action ``1[u > 0]``,
``Flip`` emits ``1[u <= 0]`` (each wrong with probability ``noise``); ``Match`` stops after 4
operations, ``Flip`` after 6. Actions alone do not say which procedure runs at a step (a noisy
step looks like the other procedure); durations and the root's choice do.
"""

from __future__ import annotations

import numpy as np

from flowsim.hierarchy.demos import Demonstration, demonstration_from_traces
from flowsim.hierarchy.neural import ProcedureSpec, ProgramSpec
from flowsim.hierarchy.procedures import Act, Call, CallStack, Frame, Procedure

ROOT, MATCH, FLIP = 0, 1, 2
DURATIONS = {MATCH: 4, FLIP: 6}


class _Root(Procedure):
    name = "Root"

    def terminate(self, obs: np.ndarray, frame: Frame) -> bool:
        return False

    def operate(self, obs: np.ndarray, frame: Frame) -> Call:
        return Call(MATCH if obs[1] > 0 else FLIP, 0)


class _Leaf(Procedure):
    def __init__(self, kind: int, rng: np.random.Generator, noise: float) -> None:
        self.kind, self.rng, self.noise = kind, rng, noise  # kind: MATCH or FLIP
        self.name = "Match" if kind == MATCH else "Flip"

    def terminate(self, obs: np.ndarray, frame: Frame) -> bool:
        return frame.pc >= DURATIONS[self.kind]

    def operate(self, obs: np.ndarray, frame: Frame) -> Act:
        action = int(obs[0] > 0) if self.kind == MATCH else int(obs[0] <= 0)
        if self.noise and self.rng.random() < self.noise:
            action = 1 - action
        return Act(discrete=(action,))


def synthetic_spec(hidden: tuple[int, ...] = (32,)) -> ProgramSpec:
    """The program shape of the synthetic task: a root calling two one-action leaves."""
    return _spec(
        ProcedureSpec("Root", callees=(MATCH, FLIP), can_act=False, use_pc=False),
        ProcedureSpec("Match"),
        ProcedureSpec("Flip"),
        hidden=hidden,
    )


def _spec(*procedures: ProcedureSpec, hidden: tuple[int, ...]) -> ProgramSpec:
    """A synthetic program: 2 observations, one binary action."""
    return ProgramSpec(
        procedures=procedures, obs_dim=2, discrete_actions=(2,), pc_cap=7, hidden=hidden
    )


def synthetic_demonstrations(
    count: int, steps: int = 200, noise: float = 0.1, seed: int = 0
) -> list[Demonstration]:
    """``count`` strong demonstrations of ``steps`` steps from the synthetic expert."""
    rng = np.random.default_rng(seed)
    return [
        _record(
            CallStack([_Root(), _Leaf(MATCH, rng, noise), _Leaf(FLIP, rng, noise)]),
            rng,
            steps,
            max_depth=2,
            episode=episode,
        )
        for episode in range(count)
    ]


def _record(
    stack: CallStack, rng: np.random.Generator, steps: int, max_depth: int, episode: int
) -> Demonstration:
    """One demonstration: ``stack`` run on ``steps`` uniform random observations."""
    obs = rng.uniform(-1.0, 1.0, size=(steps, 2)).astype(np.float32)
    traces = []
    for t in range(steps):
        stack.step(obs[t])
        assert stack.last is not None
        traces.append(stack.last)
    return demonstration_from_traces(obs, traces, max_depth=max_depth, episode=episode)


ROOT3, PAIR, TRIPLE, MATCH3, FLIP3 = range(5)
#: The leaf calls of Pair and Triple, in order (procedure indices of the three-level spec).
SEQUENCES = {PAIR: (MATCH3, FLIP3), TRIPLE: (FLIP3, MATCH3, FLIP3)}


class _Root3(Procedure):
    name = "Root"

    def terminate(self, obs: np.ndarray, frame: Frame) -> bool:
        return False

    def operate(self, obs: np.ndarray, frame: Frame) -> Call:
        return Call(PAIR if obs[1] > 0 else TRIPLE, 0)


class _Sequence(Procedure):
    def __init__(self, index: int) -> None:
        self.index, self.name = index, "Pair" if index == PAIR else "Triple"

    def terminate(self, obs: np.ndarray, frame: Frame) -> bool:
        return frame.pc >= len(SEQUENCES[self.index])

    def operate(self, obs: np.ndarray, frame: Frame) -> Call:
        return Call(SEQUENCES[self.index][frame.pc], 0)


def three_level_spec(hidden: tuple[int, ...] = (32,)) -> ProgramSpec:
    """The program shape of the three-level task: Root -> Pair / Triple -> Match / Flip."""
    return _spec(
        ProcedureSpec("Root", callees=(PAIR, TRIPLE), can_act=False, use_pc=False),
        ProcedureSpec("Pair", callees=(MATCH3, FLIP3), can_act=False),
        ProcedureSpec("Triple", callees=(MATCH3, FLIP3), can_act=False),
        ProcedureSpec("Match"),
        ProcedureSpec("Flip"),
        hidden=hidden,
    )


def three_level_demonstrations(
    count: int, steps: int = 200, noise: float = 0.1, seed: int = 0
) -> list[Demonstration]:
    """``count`` strong demonstrations of ``steps`` steps from the three-level expert."""
    rng = np.random.default_rng(seed)
    demos = []
    for episode in range(count):
        procedures = [
            _Root3(),
            _Sequence(PAIR),
            _Sequence(TRIPLE),
            _Leaf(MATCH, rng, noise),
            _Leaf(FLIP, rng, noise),
        ]
        demos.append(_record(CallStack(procedures), rng, steps, max_depth=3, episode=episode))
    return demos
