"""Strong supervision: the call stack is visible, so every decision is a labelled example.

From consecutive stacks (:func:`~flowsim.hierarchy.procedures.decisions_from_trace`) each step
yields termination checks (frame -> stopped?) and operations (frame -> call with argument, or
elementary action). The loss is the negative log-likelihood of all of them: binary
cross-entropy for terminations, cross-entropy for operations and arguments, categorical and
Gaussian likelihood for elementary actions.

A frame's termination check and its operation at one step see the same input (observation,
program counter, argument), so :func:`decision_table` keeps each procedure's distinct inputs
once, already encoded, and :func:`strong_loss` runs each procedure's network once per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from flowsim.hierarchy.demos import Demonstration
from flowsim.hierarchy.neural import Heads, NeuralProgram, ProgramSpec, action_log_prob
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

    #: distinct (step, pc, arg) inputs, and the row of each termination check and operation
    inputs: dict[tuple[int, int, int], int] = field(default_factory=dict)
    term_row: list[int] = field(default_factory=list)
    term_label: list[float] = field(default_factory=list)
    op_row: list[int] = field(default_factory=list)
    op_choice: list[int] = field(default_factory=list)
    #: the callee's argument for a call, -1 for an action
    op_callee_arg: list[int] = field(default_factory=list)

    def row(self, step: int, frame: Frame, pc_cap: int, use_pc: bool) -> int:
        key = (step, min(frame.pc, pc_cap) if use_pc else 0, frame.arg)
        return self.inputs.setdefault(key, len(self.inputs))


@dataclass
class DecisionTable:
    """Every decision of a set of strong demonstrations, grouped by procedure, as tensors.

    ``per_procedure[k]`` holds ``input`` (the procedure's distinct encoded inputs), ``step``
    (their demonstration step), ``term_row`` / ``term_label`` (termination checks),
    ``op_row`` / ``op_choice`` / ``op_callee_arg`` (operations: callee index or "act", and the
    callee's argument).
    """

    obs: torch.Tensor
    discrete: torch.Tensor
    continuous: torch.Tensor
    per_procedure: list[dict[str, torch.Tensor]]

    @property
    def decisions(self) -> int:
        """Number of termination checks plus operations."""
        return sum(int(p["term_row"].numel() + p["op_row"].numel()) for p in self.per_procedure)


def decision_table(spec: ProgramSpec, demos: list[Demonstration]) -> DecisionTable:
    """The labelled decisions of ``demos`` (their stacks must be known)."""
    rows = [_Rows() for _ in spec.procedures]
    offset = 0
    for demo in demos:
        if demo.stacks is None:
            raise ValueError("strong supervision needs demonstrations with call stacks")
        previous: tuple[Frame, ...] = ()
        for t, (stack, kept) in enumerate(stacks_from_arrays(demo.stacks)):
            decided = decisions_from_trace(previous, Trace(stack, kept, Act()))
            step = offset + t
            for frame, stopped in decided.terminations:
                r, p = rows[frame.procedure], spec.procedures[frame.procedure]
                r.term_row.append(r.row(step, frame, spec.pc_cap, p.use_pc))
                r.term_label.append(float(stopped))
            for frame, operation in decided.operations:
                r, p = rows[frame.procedure], spec.procedures[frame.procedure]
                r.op_row.append(r.row(step, frame, spec.pc_cap, p.use_pc))
                if isinstance(operation, Act):
                    r.op_choice.append(len(p.callees))
                    r.op_callee_arg.append(-1)
                else:
                    r.op_choice.append(p.callees.index(operation.procedure))
                    r.op_callee_arg.append(operation.arg)
            previous = stack
        offset += len(demo)
    obs = torch.as_tensor(np.concatenate([d.obs for d in demos]), dtype=torch.float32)
    program = NeuralProgram(spec)  # only its encoders are used (they have no weights)
    per_procedure = []
    for module, r in zip(program.procedures, rows, strict=True):
        keys = np.array(list(r.inputs), dtype=np.int64).reshape(-1, 3)
        step = torch.as_tensor(keys[:, 0])
        table = {
            "step": step,
            "input": module.encode(
                obs[step], torch.as_tensor(keys[:, 1]), torch.as_tensor(keys[:, 2])
            ),
            "term_label": torch.tensor(r.term_label, dtype=torch.float32),
        }
        for name in ("term_row", "op_row", "op_choice", "op_callee_arg"):
            table[name] = torch.tensor(getattr(r, name), dtype=torch.long)
        per_procedure.append(table)
    return DecisionTable(
        obs=obs,
        discrete=torch.as_tensor(np.concatenate([d.discrete_actions for d in demos])),
        continuous=torch.as_tensor(
            np.concatenate([d.continuous_actions for d in demos]), dtype=torch.float32
        ),
        per_procedure=per_procedure,
    )


def _pick(heads: Heads, rows: torch.Tensor) -> Heads:
    """The heads of some rows."""
    return Heads(
        term_logit=heads.term_logit[rows],
        op_logp=heads.op_logp[rows],
        arg_logp=[a[rows] for a in heads.arg_logp],
        action_logp=[a[rows] for a in heads.action_logp],
        mean=heads.mean[rows] if heads.mean is not None else None,
        log_std=heads.log_std[rows] if heads.log_std is not None else None,
    )


def strong_loss(program: NeuralProgram, table: DecisionTable) -> tuple[torch.Tensor, int]:
    """Summed negative log-likelihood of every decision, and the number of decisions."""
    total = torch.zeros(())
    for module, rows in zip(program.procedures, table.per_procedure, strict=True):
        if not rows["step"].numel() or not any(p.requires_grad for p in module.parameters()):
            continue  # nothing to learn (or a frozen skill: its loss is a constant)
        heads = module.heads(rows["input"])
        if rows["term_row"].numel():
            total = total + torch.nn.functional.binary_cross_entropy_with_logits(
                heads.term_logit[rows["term_row"]], rows["term_label"], reduction="sum"
            )
        if not rows["op_row"].numel():
            continue
        op = _pick(heads, rows["op_row"])
        choice = rows["op_choice"]
        total = total - op.op_logp.gather(-1, choice[:, None]).sum()
        for j, arg_logp in enumerate(op.arg_logp):
            calls = choice == j
            if calls.any():
                args = rows["op_callee_arg"][calls]
                total = total - arg_logp[calls].gather(-1, args[:, None]).sum()
        acts = choice == len(module.spec.callees)
        if module.spec.can_act and acts.any():
            steps = rows["step"][rows["op_row"][acts]]
            acted = _pick(op, acts.nonzero().squeeze(-1))
            logp = action_log_prob(acted, table.discrete[steps], table.continuous[steps])
            total = total - logp.sum()
    return total, table.decisions


def decision_accuracy(program: NeuralProgram, table: DecisionTable) -> dict[str, float]:
    """Share of the expert's terminations, calls (with arguments) and discrete actions that
    the greedy program reproduces, and the mean absolute error of continuous actions."""
    hits = {"termination": [0, 0], "call": [0, 0], "action": [0, 0]}
    abs_error, count = 0.0, 0
    with torch.no_grad():
        for module, rows in zip(program.procedures, table.per_procedure, strict=True):
            if not rows["step"].numel():
                continue
            heads = module.heads(rows["input"])
            if rows["term_row"].numel():
                said = (heads.term_logit[rows["term_row"]] > 0).float()
                hits["termination"][0] += int((said == rows["term_label"]).sum())
                hits["termination"][1] += int(rows["term_label"].numel())
            if not rows["op_row"].numel():
                continue
            op = _pick(heads, rows["op_row"])
            steps = rows["step"][rows["op_row"]]
            choice = rows["op_choice"]
            ok = op.op_logp.argmax(-1) == choice
            calls = choice < len(module.spec.callees)
            for j, arg_logp in enumerate(op.arg_logp):
                mask = choice == j
                if mask.any():
                    ok[mask] &= arg_logp[mask].argmax(-1) == rows["op_callee_arg"][mask]
            hits["call"][0] += int(ok[calls].sum())
            hits["call"][1] += int(calls.sum())
            acts = ~calls
            if acts.any():
                a_ok = ok[acts].clone()
                for k, logp in enumerate(op.action_logp):
                    a_ok &= logp[acts].argmax(-1) == table.discrete[steps[acts], k]
                hits["action"][0] += int(a_ok.sum())
                hits["action"][1] += int(acts.sum())
                if op.mean is not None:
                    error = (op.mean[acts] - table.continuous[steps[acts]]).abs()
                    abs_error += float(error.sum())
                    count += int(error.numel())
    result = {f"{k}_accuracy": (h / n if n else float("nan")) for k, (h, n) in hits.items()}
    result["continuous_mae"] = abs_error / count if count else float("nan")
    return result
