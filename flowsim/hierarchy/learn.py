"""Fitting a neural program to demonstrations: strong, weak or mixed; and the flat baseline.

:func:`fit` minimises the strong loss on the demonstrations with call stacks plus the weak loss
on those without (each averaged per decision / step), full batch, with Adam. The flat
behaviour-cloning baseline (:class:`FlatPolicy`) is one MLP from observation to action trained
on the same data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from flowsim.hierarchy.demos import Demonstration
from flowsim.hierarchy.neural import (
    Heads,
    NeuralProgram,
    ProgramSpec,
    Standardise,
    action_log_prob,
    mlp,
)
from flowsim.hierarchy.strong import decision_table, strong_loss
from flowsim.hierarchy.weak import weak_loss


@dataclass
class FitResult:
    """Per-epoch losses (mean negative log-likelihood per decision / step)."""

    rows: list[dict[str, float]]


def fit(
    program: NeuralProgram,
    demos: list[Demonstration],
    epochs: int = 200,
    lr: float = 3e-3,
    weak_weight: float = 1.0,
    callback: Callable[[dict[str, float]], None] | None = None,
) -> FitResult:
    """Train ``program`` on strong (stack known) and weak (stack hidden) ``demos``.

    Procedures without a feature standardisation get one from ``demos`` first.
    """
    program.standardise(torch.as_tensor(np.concatenate([d.obs for d in demos])))
    strong = [d for d in demos if d.strong]
    weak = [d for d in demos if not d.strong]
    table = decision_table(program.spec, strong) if strong else None
    optimiser = torch.optim.Adam(program.parameters(), lr=lr)
    rows = []
    for epoch in range(1, epochs + 1):
        optimiser.zero_grad()
        loss = torch.zeros(())
        row: dict[str, float] = {"epoch": epoch}
        if table is not None:
            total, count = strong_loss(program, table)
            loss = loss + total / max(count, 1)
            row["strong_nll"] = total.item() / max(count, 1)
        if weak:
            total, count = weak_loss(program, weak)
            loss = loss + weak_weight * total / max(count, 1)
            row["weak_nll"] = total.item() / max(count, 1)
        loss.backward()
        nn.utils.clip_grad_norm_(program.parameters(), 10.0)
        optimiser.step()
        row["loss"] = loss.item()
        rows.append(row)
        if callback is not None:
            callback(row)
    return FitResult(rows)


class FlatPolicy(nn.Module):
    """Flat behaviour cloning: one MLP from observation to the elementary action's heads."""

    def __init__(self, spec: ProgramSpec, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.spec = spec
        sizes = [spec.obs_dim, *spec.hidden]
        self.standardise = Standardise(spec.obs_dim)
        self.trunk = mlp(sizes)
        self.discrete = nn.ModuleList(nn.Linear(sizes[-1], n) for n in spec.discrete_actions)
        continuous = spec.continuous_actions
        self.mean = nn.Linear(sizes[-1], continuous) if continuous else None
        self.log_std = nn.Parameter(torch.full((continuous,), -0.5)) if continuous else None

    def forward(self, obs: torch.Tensor) -> Heads:
        """Action heads for a batch of observations."""
        hidden = self.trunk(self.standardise(obs))
        heads = Heads(
            term_logit=torch.zeros(obs.shape[0]),
            op_logp=torch.zeros(obs.shape[0], 1),
            action_logp=[torch.log_softmax(h(hidden), -1) for h in self.discrete],
        )
        if self.mean is not None:
            heads.mean = self.mean(hidden)
            heads.log_std = self.log_std.expand_as(heads.mean)
        return heads

    def act(self, obs: np.ndarray) -> tuple[tuple[int, ...], tuple[float, ...]]:
        """The greedy action for one observation: (discrete parts, continuous parts)."""
        with torch.no_grad():
            heads = self(torch.as_tensor(np.asarray(obs, np.float32))[None])
        discrete = tuple(int(logp[0].argmax()) for logp in heads.action_logp)
        continuous = tuple(float(x) for x in heads.mean[0]) if heads.mean is not None else ()
        return discrete, continuous

    def state(self) -> dict:
        """Spec and weights as plain data."""
        weights = {k: v.detach().cpu().numpy() for k, v in self.state_dict().items()}
        return {"spec": self.spec.to_dict(), "weights": weights}


def fit_flat(
    policy: FlatPolicy, demos: list[Demonstration], epochs: int = 200, lr: float = 3e-3
) -> FitResult:
    """Behaviour cloning: maximise the likelihood of every demonstrated action."""
    obs = torch.as_tensor(np.concatenate([d.obs for d in demos]), dtype=torch.float32)
    discrete = torch.as_tensor(np.concatenate([d.discrete_actions for d in demos]))
    continuous = torch.as_tensor(
        np.concatenate([d.continuous_actions for d in demos]), dtype=torch.float32
    )
    if not bool(policy.standardise.fitted):
        policy.standardise.fit_to(obs)
    optimiser = torch.optim.Adam(policy.parameters(), lr=lr)
    rows = []
    for epoch in range(1, epochs + 1):
        optimiser.zero_grad()
        nll = -action_log_prob(policy(obs), discrete, continuous).mean()
        nll.backward()
        optimiser.step()
        rows.append({"epoch": epoch, "loss": nll.item()})
    return FitResult(rows)


def action_metrics(
    program: NeuralProgram | FlatPolicy, demos: list[Demonstration]
) -> dict[str, float]:
    """Held-out metrics of a model's greedy actions: discrete-action accuracy, continuous MAE
    and, for the flat policy and strong supervision alike, the mean log-likelihood per step
    (the hierarchical one from the forward pass when its root only calls, else NaN)."""
    from flowsim.hierarchy.procedures import CallStack

    correct = total = 0
    abs_error, count = 0.0, 0
    for demo in demos:
        if isinstance(program, FlatPolicy):
            actor = program.act
        else:
            stack = CallStack(program.as_procedures(greedy=True), root=program.spec.root)

            def actor(obs: np.ndarray, stack: CallStack = stack) -> tuple:
                action = stack.step(obs)
                return action.discrete, action.continuous

        for t in range(len(demo)):
            discrete, continuous = actor(demo.obs[t])
            if demo.discrete_actions.shape[1]:
                correct += int(np.array_equal(np.asarray(discrete), demo.discrete_actions[t]))
                total += 1
            if demo.continuous_actions.shape[1]:
                abs_error += float(
                    np.abs(np.asarray(continuous) - demo.continuous_actions[t]).sum()
                )
                count += demo.continuous_actions.shape[1]
    result = {
        "action_accuracy": correct / total if total else float("nan"),
        "continuous_mae": abs_error / count if count else float("nan"),
    }
    with torch.no_grad():
        if isinstance(program, FlatPolicy):
            obs = torch.as_tensor(np.concatenate([d.obs for d in demos]))
            logp = action_log_prob(
                program(obs),
                torch.as_tensor(np.concatenate([d.discrete_actions for d in demos])),
                torch.as_tensor(np.concatenate([d.continuous_actions for d in demos])),
            )
            result["log_likelihood"] = float(logp.mean())
        else:
            try:
                total_nll, steps = weak_loss(program, [d.weak() for d in demos])
                result["log_likelihood"] = -float(total_nll) / max(steps, 1)
            except ValueError:
                result["log_likelihood"] = float("nan")
    return result
