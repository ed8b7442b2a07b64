"""Neural procedures: small MLPs on [observation, program counter, argument] (torch, CPU).

Each procedure of a :class:`ProgramSpec` gets one :class:`NeuralProcedure` with a shared trunk
and heads for termination (Bernoulli), the operation (categorical over its callees and, if it
may act, "emit an elementary action"), each callee's argument (categorical) and the
elementary action (one categorical per discrete part, a Gaussian per continuous part with a
learned state-independent log std). :class:`NeuralProgram` holds them all and plugs into
:class:`~flowsim.hierarchy.procedures.CallStack` as rule-based procedures do.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from flowsim.hierarchy.procedures import Act, Call, Frame, Procedure


@dataclass(frozen=True)
class ProcedureSpec:
    """One procedure's interface: who it may call, how many argument values it takes, and
    whether it may emit elementary actions. ``use_pc`` feeds it its program counter."""

    name: str
    callees: tuple[int, ...] = ()
    num_args: int = 1
    can_act: bool = True
    use_pc: bool = True


@dataclass(frozen=True)
class ProgramSpec:
    """A set of procedures over one observation and one elementary action space.

    ``discrete_actions``: the number of choices of each categorical action part;
    ``continuous_actions``: the number of real-valued parts; ``pc_cap``: program counters are
    fed as a one-hot of ``min(pc, pc_cap)`` and, with ``pc_ordinal``, also as
    ``min(pc, pc_cap) / pc_cap`` (so that "later than ever seen" generalises from "late").
    """

    procedures: tuple[ProcedureSpec, ...]
    obs_dim: int
    discrete_actions: tuple[int, ...] = ()
    continuous_actions: int = 0
    root: int = 0
    pc_cap: int = 8
    hidden: tuple[int, ...] = (64, 64)
    pc_ordinal: bool = True

    @property
    def max_args(self) -> int:
        """The largest number of argument values of any procedure."""
        return max(p.num_args for p in self.procedures)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for checkpoints and the run directory)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProgramSpec:
        """The spec saved by :meth:`to_dict`."""
        procedures = tuple(
            ProcedureSpec(**{**p, "callees": tuple(p["callees"])}) for p in data["procedures"]
        )
        return cls(
            procedures=procedures,
            obs_dim=int(data["obs_dim"]),
            discrete_actions=tuple(data["discrete_actions"]),
            continuous_actions=int(data["continuous_actions"]),
            root=int(data["root"]),
            pc_cap=int(data["pc_cap"]),
            hidden=tuple(data["hidden"]),
            pc_ordinal=bool(data.get("pc_ordinal", False)),  # absent before it existed
        )


class Standardise(nn.Module):
    """Feature standardisation ``(obs - shift) / scale``, set once from training data.

    Its buffers travel with the weights (a procedure reused on another task keeps them);
    ``fitted`` says whether :meth:`fit_to` has run (or the weights were loaded).
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.register_buffer("shift", torch.zeros(size))
        self.register_buffer("scale", torch.ones(size))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def fit_to(self, obs: torch.Tensor) -> None:
        """Mean and standard deviation of ``obs`` (rows); a constant feature keeps scale 1."""
        std = obs.std(0) if obs.shape[0] > 1 else torch.zeros(obs.shape[1])
        self.shift.copy_(obs.mean(0))
        self.scale.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
        self.fitted.fill_(True)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Standardised observations."""
        return (obs - self.shift) / self.scale


def complete_weights(weights: dict[str, Any], module: nn.Module) -> dict[str, torch.Tensor]:
    """``weights`` as tensors, with the standardisation buffers of checkpoints written before
    they existed filled in as the identity."""
    out = {k: torch.as_tensor(v) for k, v in weights.items()}
    for key, value in module.state_dict().items():
        if key not in out and key.rsplit(".", 1)[-1] in ("shift", "scale", "fitted"):
            out[key] = torch.ones_like(value) if not key.endswith("shift") else value
    return out


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with tanh between ``sizes`` (the trunk of every network here)."""
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*layers)


@dataclass
class Heads:
    """A procedure's outputs for a batch of rows (log-probabilities and Gaussian parameters)."""

    term_logit: torch.Tensor
    op_logp: torch.Tensor
    arg_logp: list[torch.Tensor] = field(default_factory=list)
    action_logp: list[torch.Tensor] = field(default_factory=list)
    mean: torch.Tensor | None = None
    log_std: torch.Tensor | None = None


class NeuralProcedure(nn.Module):
    """One procedure's MLP: input ``[obs, onehot(min(pc, cap)), onehot(arg)]`` (and the scalar
    counter with ``pc_ordinal``)."""

    def __init__(self, spec: ProcedureSpec, program: ProgramSpec) -> None:
        super().__init__()
        self.spec = spec
        self.pc_cap = program.pc_cap
        self.max_args = program.max_args
        self.pc_ordinal = program.pc_ordinal
        size = program.obs_dim + program.pc_cap + 1 + self.max_args + int(self.pc_ordinal)
        self.obs_dim = program.obs_dim
        self.standardise = Standardise(program.obs_dim)
        self.trunk = mlp([size, *program.hidden])
        width = program.hidden[-1] if program.hidden else size
        self.term = nn.Linear(width, 1)
        self.op = nn.Linear(width, len(spec.callees) + int(spec.can_act))
        self.args = nn.ModuleList(
            nn.Linear(width, program.procedures[c].num_args) for c in spec.callees
        )
        self.discrete = nn.ModuleList(
            nn.Linear(width, n) for n in (program.discrete_actions if spec.can_act else ())
        )
        continuous = program.continuous_actions if spec.can_act else 0
        self.mean = nn.Linear(width, continuous) if continuous else None
        self.log_std = nn.Parameter(torch.full((continuous,), -0.5)) if continuous else None

    def encode(self, obs: torch.Tensor, pc: torch.Tensor, arg: torch.Tensor) -> torch.Tensor:
        """The network input for rows of observations, program counters and arguments."""
        pcs = torch.clamp(pc, max=self.pc_cap)
        pc_hot = nn.functional.one_hot(pcs.long(), self.pc_cap + 1).float()
        if not self.spec.use_pc:
            pc_hot = torch.zeros_like(pc_hot)
        arg_hot = nn.functional.one_hot(arg.long().clamp(min=0), self.max_args).float()
        parts = [obs, pc_hot, arg_hot]
        if self.pc_ordinal:
            scalar = pcs.float()[:, None] / self.pc_cap if self.spec.use_pc else pc_hot[:, :1]
            parts.append(scalar)
        return torch.cat(parts, dim=-1)

    def forward(self, obs: torch.Tensor, pc: torch.Tensor, arg: torch.Tensor) -> Heads:
        """All heads for a batch of rows."""
        return self.heads(self.encode(obs, pc, arg))

    def heads(self, inputs: torch.Tensor) -> Heads:
        """All heads for rows already encoded by :meth:`encode`."""
        obs = self.standardise(inputs[:, : self.obs_dim])
        hidden = self.trunk(torch.cat([obs, inputs[:, self.obs_dim :]], dim=-1))
        heads = Heads(
            term_logit=self.term(hidden).squeeze(-1),
            op_logp=torch.log_softmax(self.op(hidden), dim=-1),
            arg_logp=[torch.log_softmax(h(hidden), dim=-1) for h in self.args],
            action_logp=[torch.log_softmax(h(hidden), dim=-1) for h in self.discrete],
        )
        if self.mean is not None:
            heads.mean = self.mean(hidden)
            heads.log_std = self.log_std.expand_as(heads.mean)
        return heads


def action_log_prob(
    heads: Heads, discrete: torch.Tensor | None, continuous: torch.Tensor | None
) -> torch.Tensor:
    """log π(action) per row: the sum over categorical and Gaussian parts."""
    total = torch.zeros(heads.term_logit.shape, dtype=heads.term_logit.dtype)
    for k, logp in enumerate(heads.action_logp):
        assert discrete is not None
        total = total + logp.gather(-1, discrete[..., k : k + 1].long()).squeeze(-1)
    if heads.mean is not None:
        assert continuous is not None and heads.log_std is not None
        z = (continuous - heads.mean) / heads.log_std.exp()
        gauss = -0.5 * z.pow(2) - heads.log_std - 0.5 * math.log(2 * math.pi)
        total = total + gauss.sum(-1)
    return total


class NeuralProgram(nn.Module):
    """Every procedure of a :class:`ProgramSpec` as a :class:`NeuralProcedure`."""

    def __init__(self, spec: ProgramSpec, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.spec = spec
        self.procedures = nn.ModuleList(NeuralProcedure(p, spec) for p in spec.procedures)

    def standardise(self, obs: torch.Tensor) -> None:
        """Set the feature standardisation of every procedure that has none yet (a reused
        skill keeps its own) from the observations ``obs`` (rows)."""
        for module in self.procedures:
            if not bool(module.standardise.fitted):
                module.standardise.fit_to(obs)

    def as_procedures(self, greedy: bool = True, seed: int = 0) -> list[Procedure]:
        """Adapters that let a :class:`CallStack` run this program (greedy or sampled)."""
        rng = np.random.default_rng(seed)
        return [_Adapter(self, k, greedy, rng) for k in range(len(self.spec.procedures))]

    def state(self) -> dict[str, Any]:
        """Spec and weights as plain data (a checkpoint entry, read with weights_only)."""
        weights = {k: v.detach().cpu().numpy() for k, v in self.state_dict().items()}
        return {"spec": self.spec.to_dict(), "weights": weights}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> NeuralProgram:
        """A program rebuilt from :meth:`state`."""
        program = cls(ProgramSpec.from_dict(state["spec"]))
        program.load_state_dict(complete_weights(state["weights"], program))
        return program


class _Adapter(Procedure):
    """One neural procedure behind the rule-based :class:`Procedure` interface."""

    def __init__(
        self, program: NeuralProgram, index: int, greedy: bool, rng: np.random.Generator
    ) -> None:
        self.module = program.procedures[index]
        self.spec = program.spec.procedures[index]
        self.name = self.spec.name
        self.greedy = greedy
        self.rng = rng

    def _heads(self, obs: np.ndarray, frame: Frame) -> Heads:
        with torch.no_grad():
            return self.module(
                torch.as_tensor(np.asarray(obs, dtype=np.float32))[None],
                torch.tensor([frame.pc]),
                torch.tensor([frame.arg]),
            )

    def _pick(self, logp: torch.Tensor) -> int:
        if self.greedy:
            return int(logp[0].argmax())
        probs = logp[0].exp().numpy().astype(np.float64)
        return int(self.rng.choice(probs.size, p=probs / probs.sum()))

    def terminate(self, obs: np.ndarray, frame: Frame) -> bool:
        """Stop when the termination probability exceeds 1/2 (greedy) or by a coin flip."""
        p = float(torch.sigmoid(self._heads(obs, frame).term_logit[0]))
        return p > 0.5 if self.greedy else bool(self.rng.random() < p)

    def operate(self, obs: np.ndarray, frame: Frame) -> Call | Act:
        """The most likely (or a sampled) operation, argument and action."""
        heads = self._heads(obs, frame)
        op = self._pick(heads.op_logp)
        if op < len(self.spec.callees):
            return Call(self.spec.callees[op], self._pick(heads.arg_logp[op]))
        discrete = tuple(self._pick(logp) for logp in heads.action_logp)
        continuous: tuple[float, ...] = ()
        if heads.mean is not None:
            assert heads.log_std is not None
            mean = heads.mean[0].numpy().astype(np.float64)
            if not self.greedy:
                mean = mean + np.exp(heads.log_std[0].numpy()) * self.rng.standard_normal(mean.size)
            continuous = tuple(float(x) for x in mean)
        return Act(discrete, continuous)
