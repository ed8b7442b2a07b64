"""A synthetic two-procedure task with known structure (for tests and quick checks).

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
    def __init__(self, index: int, rng: np.random.Generator, noise: float) -> None:
        self.index, self.rng, self.noise = index, rng, noise
        self.name = "Match" if index == MATCH else "Flip"

    def terminate(self, obs: np.ndarray, frame: Frame) -> bool:
        return frame.pc >= DURATIONS[self.index]

    def operate(self, obs: np.ndarray, frame: Frame) -> Act:
        action = int(obs[0] > 0) if self.index == MATCH else int(obs[0] <= 0)
        if self.noise and self.rng.random() < self.noise:
            action = 1 - action
        return Act(discrete=(action,))


def synthetic_spec(hidden: tuple[int, ...] = (32,)) -> ProgramSpec:
    """The program shape of the synthetic task: a root calling two one-action leaves."""
    return ProgramSpec(
        procedures=(
            ProcedureSpec("Root", callees=(MATCH, FLIP), can_act=False, use_pc=False),
            ProcedureSpec("Match"),
            ProcedureSpec("Flip"),
        ),
        obs_dim=2,
        discrete_actions=(2,),
        pc_cap=7,
        hidden=hidden,
    )


def synthetic_demonstrations(
    count: int, steps: int = 200, noise: float = 0.1, seed: int = 0
) -> list[Demonstration]:
    """``count`` strong demonstrations of ``steps`` steps from the synthetic expert."""
    rng = np.random.default_rng(seed)
    demos = []
    for episode in range(count):
        stack = CallStack([_Root(), _Leaf(MATCH, rng, noise), _Leaf(FLIP, rng, noise)])
        obs = rng.uniform(-1.0, 1.0, size=(steps, 2)).astype(np.float32)
        traces = []
        for t in range(steps):
            stack.step(obs[t])
            assert stack.last is not None
            traces.append(stack.last)
        demos.append(demonstration_from_traces(obs, traces, max_depth=2, episode=episode))
    return demos
