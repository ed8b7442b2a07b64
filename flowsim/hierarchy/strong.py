"""Strong supervision: the call stack is visible, so every decision is a labelled example.

From consecutive stacks (:func:`~flowsim.hierarchy.procedures.decisions_from_trace`) each step
yields termination checks (frame -> stopped?) and operations (frame -> call with argument, or
elementary action). The loss is the negative log-likelihood of all of them: binary
cross-entropy for terminations, cross-entropy for operations and arguments, categorical and
Gaussian likelihood for elementary actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from flowsim.hierarchy.demos import Demonstration
from flowsim.hierarchy.neural import NeuralProgram, ProgramSpec, action_log_prob
from flowsim.hierarchy.procedures import (
    Act,
    Frame,
    Trace,
    decisions_from_trace,
    stacks_from_arrays,
)


@dataclass
class _Rows:
    """Decisions of one procedure, as growing lists, then tensors."""

    term_step: list[int] = field(default_factory=list)
    term_pc: list[int] = field(default_factory=list)
    term_arg: list[int] = field(default_factory=list)
    term_label: list[float] = field(default_factory=list)
    op_step: list[int] = field(default_factory=list)
    op_pc: list[int] = field(default_factory=list)
    op_arg: list[int] = field(default_factory=list)
    op_choice: list[int] = field(default_factory=list)
    #: the callee's argument for a call, -1 for an action
    op_callee_arg: list[int] = field(default_factory=list)


@dataclass
class DecisionTable:
    """Every decision of a set of strong demonstrations, grouped by procedure, as tensors."""

    obs: torch.Tensor
    discrete: torch.Tensor
    continuous: torch.Tensor
    per_procedure: list[dict[str, torch.Tensor]]

    @property
    def decisions(self) -> int:
        """Number of termination checks plus operations."""
        return sum(int(p["term_step"].numel() + p["op_step"].numel()) for p in self.per_procedure)


def decision_table(spec: ProgramSpec, demos: list[Demonstration]) -> DecisionTable:
    """The labelled decisions of ``demos`` (their stacks must be known)."""
    rows = [_Rows() for _ in spec.procedures]
    offset = 0
    for demo in demos:
        if demo.stacks is None:
            raise ValueError("strong supervision needs demonstrations with call stacks")
        previous: tuple[Frame, ...] = ()
        for t, (stack, kept) in enumerate(stacks_from_arrays(demo.stacks)):
            trace = Trace(stack, kept, Act())
            decided = decisions_from_trace(previous, trace)
            step = offset + t
            for frame, stopped in decided.terminations:
                r = rows[frame.procedure]
                r.term_step.append(step)
                r.term_pc.append(frame.pc)
                r.term_arg.append(frame.arg)
                r.term_label.append(float(stopped))
            for frame, operation in decided.operations:
                r = rows[frame.procedure]
                callees = spec.procedures[frame.procedure].callees
                r.op_step.append(step)
                r.op_pc.append(frame.pc)
                r.op_arg.append(frame.arg)
                if isinstance(operation, Act):
                    r.op_choice.append(len(callees))
                    r.op_callee_arg.append(-1)
                else:
                    r.op_choice.append(callees.index(operation.procedure))
                    r.op_callee_arg.append(operation.arg)
            previous = stack
        offset += len(demo)
    per_procedure = [
        {
            name: torch.tensor(
                np.asarray(getattr(r, name), dtype=np.float32 if name == "term_label" else np.int64)
            )
            for name in _Rows.__dataclass_fields__
        }
        for r in rows
    ]
    return DecisionTable(
        obs=torch.as_tensor(np.concatenate([d.obs for d in demos]), dtype=torch.float32),
        discrete=torch.as_tensor(np.concatenate([d.discrete_actions for d in demos])),
        continuous=torch.as_tensor(
            np.concatenate([d.continuous_actions for d in demos]), dtype=torch.float32
        ),
        per_procedure=per_procedure,
    )


def strong_loss(program: NeuralProgram, table: DecisionTable) -> tuple[torch.Tensor, int]:
    """Summed negative log-likelihood of every decision, and the number of decisions."""
    total = torch.zeros(())
    for module, rows in zip(program.procedures, table.per_procedure, strict=True):
        if rows["term_step"].numel():
            heads = module(table.obs[rows["term_step"]], rows["term_pc"], rows["term_arg"])
            total = total + torch.nn.functional.binary_cross_entropy_with_logits(
                heads.term_logit, rows["term_label"], reduction="sum"
            )
        if not rows["op_step"].numel():
            continue
        steps = rows["op_step"]
        heads = module(table.obs[steps], rows["op_pc"], rows["op_arg"])
        choice = rows["op_choice"]
        total = total - heads.op_logp.gather(-1, choice[:, None]).sum()
        callees = module.spec.callees
        for j, arg_logp in enumerate(heads.arg_logp):
            calls = choice == j
            if calls.any():
                args = rows["op_callee_arg"][calls]
                total = total - arg_logp[calls].gather(-1, args[:, None]).sum()
        acts = choice == len(callees)
        if module.spec.can_act and acts.any():
            act_heads = module(table.obs[steps[acts]], rows["op_pc"][acts], rows["op_arg"][acts])
            total = (
                total
                - action_log_prob(
                    act_heads, table.discrete[steps[acts]], table.continuous[steps[acts]]
                ).sum()
            )
    return total, table.decisions


def decision_accuracy(program: NeuralProgram, table: DecisionTable) -> dict[str, float]:
    """Share of the expert's terminations, calls (with arguments) and discrete actions that
    the greedy program reproduces, and the mean absolute error of continuous actions."""
    hits = {"termination": [0, 0], "call": [0, 0], "action": [0, 0]}
    abs_error, count = 0.0, 0
    with torch.no_grad():
        for module, rows in zip(program.procedures, table.per_procedure, strict=True):
            if rows["term_step"].numel():
                heads = module(table.obs[rows["term_step"]], rows["term_pc"], rows["term_arg"])
                said = (heads.term_logit > 0).float()
                hits["termination"][0] += int((said == rows["term_label"]).sum())
                hits["termination"][1] += int(rows["term_label"].numel())
            if not rows["op_step"].numel():
                continue
            steps = rows["op_step"]
            heads = module(table.obs[steps], rows["op_pc"], rows["op_arg"])
            choice = rows["op_choice"]
            chosen = heads.op_logp.argmax(-1)
            ok = chosen == choice
            calls = choice < len(module.spec.callees)
            for j, arg_logp in enumerate(heads.arg_logp):
                mask = choice == j
                if mask.any():
                    ok[mask] &= arg_logp[mask].argmax(-1) == rows["op_callee_arg"][mask]
            hits["call"][0] += int(ok[calls].sum())
            hits["call"][1] += int(calls.sum())
            acts = ~calls
            if acts.any():
                a_ok = ok[acts].clone()
                for k, logp in enumerate(heads.action_logp):
                    a_ok &= logp[acts].argmax(-1) == table.discrete[steps[acts], k]
                hits["action"][0] += int(a_ok.sum())
                hits["action"][1] += int(acts.sum())
                if heads.mean is not None:
                    error = (heads.mean[acts] - table.continuous[steps[acts]]).abs()
                    abs_error += float(error.sum())
                    count += int(error.numel())
    result = {f"{k}_accuracy": (h / n if n else float("nan")) for k, (h, n) in hits.items()}
    result["continuous_mae"] = abs_error / count if count else float("nan")
    return result
