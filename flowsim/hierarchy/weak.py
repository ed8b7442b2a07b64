"""Weak supervision: states and actions only; the procedure and program counter are latent.

Two levels: a root that only calls, and leaf procedures (with arguments) that only act. The
latent state at step ``t`` is ``z_t = (o, d)``: the active *option* ``o`` (a leaf with one
argument value) and the program counter ``d`` it decided with, capped at ``P = pc_cap``. Between
steps the option either terminates (probability ``β_o(s_t, min(d + 1, P))``, the frame having
made ``d + 1`` operations) and the root calls a new option with ``π_root(o' | s_t)``
(``d' = 0``), or continues with ``d' = min(d + 1, P)``. Each step emits the action with
``π_o(a_t | s_t, d')``.

The forward pass computes ``log p(a_{1:T} | s_{1:T})`` in log space (``logsumexp``, no
underflow on episodes of thousands of steps). Its gradient is the expectation-gradient
``E_{z | a}[∇ log p(a, z)]`` (the E and M steps of EM in one), which autograd computes through
the forward recursion; :func:`posteriors` runs the explicit backward pass for the marginals
``p(z_t | a_{1:T})`` used to label procedures. Deeper hierarchies are trained level by level:
fix the trained leaves, treat the level above as the new leaves (left for later).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from flowsim.hierarchy.demos import Demonstration
from flowsim.hierarchy.neural import NeuralProgram, ProgramSpec, action_log_prob


def options(spec: ProgramSpec) -> list[tuple[int, int]]:
    """The latent options ``(leaf, argument)`` of a two-level program, in a fixed order."""
    root = spec.procedures[spec.root]
    if root.can_act:
        raise ValueError(f"weak supervision needs a root that only calls ({root.name} acts)")
    for leaf in root.callees:
        if spec.procedures[leaf].callees:
            raise ValueError(
                f"weak supervision is two-level: {spec.procedures[leaf].name} calls others; "
                "train deeper levels one at a time."
            )
    return [(leaf, arg) for leaf in root.callees for arg in range(spec.procedures[leaf].num_args)]


#: A finite stand-in for log 0: ``-inf`` would turn logsumexp's gradient into NaN.
_LOG_ZERO = -1e9


@dataclass
class _Terms:
    """Per-step log-probabilities of B sequences of T steps (K options, P + 1 counters)."""

    root: torch.Tensor  # (T, B, K): log π_root(o | s_t)
    emit: torch.Tensor  # (T, B, K, P+1): log π_o(a_t | s_t, pc = d)
    stop: torch.Tensor  # (T, B, K, P+1): log β_o(s_t, pc = min(d + 1, P)) for a frame at d
    stay: torch.Tensor  # (T, B, K, P+1): log(1 - β) likewise


def _terms(program: NeuralProgram, demos: list[Demonstration]) -> _Terms:
    """The log-probabilities of sequences of equal length, evaluated in one batch."""
    spec = program.spec
    cap = spec.pc_cap
    steps, batch = len(demos[0]), len(demos)
    # Time-major rows: row t * B + b is step t of sequence b.
    obs = torch.as_tensor(np.stack([d.obs for d in demos], 1), dtype=torch.float32)
    obs = obs.reshape(steps * batch, -1)
    discrete = torch.as_tensor(np.stack([d.discrete_actions for d in demos], 1))
    discrete = discrete.reshape(steps * batch, -1)
    continuous = torch.as_tensor(np.stack([d.continuous_actions for d in demos], 1))
    continuous = continuous.reshape(steps * batch, -1).float()
    rows = steps * batch
    root_spec = spec.procedures[spec.root]
    zeros = torch.zeros(rows, dtype=torch.long)
    heads = program.procedures[spec.root](obs, zeros, zeros)
    root_columns = []
    for leaf, arg in options(spec):
        j = root_spec.callees.index(leaf)
        root_columns.append(heads.op_logp[:, j] + heads.arg_logp[j][:, arg])
    root = torch.stack(root_columns, dim=1).view(steps, batch, -1)
    pcs = torch.arange(cap + 1)
    after = torch.clamp(pcs + 1, max=cap)  # a frame that decided at d has made d + 1 ops
    emit, stop, stay = [], [], []
    for leaf, arg in options(spec):
        rows_pc = pcs.repeat_interleave(rows)  # (P+1) * rows, pc-major
        leaf_heads = program.procedures[leaf](
            obs.repeat(cap + 1, 1), rows_pc, torch.full_like(rows_pc, arg)
        )
        logp = action_log_prob(
            leaf_heads, discrete.repeat(cap + 1, 1), continuous.repeat(cap + 1, 1)
        )
        emit.append(logp.view(cap + 1, rows).T)
        logit = leaf_heads.term_logit.view(cap + 1, rows).T  # column c: pc input c
        stop.append(torch.nn.functional.logsigmoid(logit[:, after]))
        stay.append(torch.nn.functional.logsigmoid(-logit[:, after]))

    def shaped(parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(parts, 1).view(steps, batch, len(parts), cap + 1)

    return _Terms(root, shaped(emit), shaped(stop), shaped(stay))


def _advance(alpha: torch.Tensor, stay: torch.Tensor) -> torch.Tensor:
    """Continuing frames: mass at counter d moves to min(d + 1, P)."""
    cont = alpha + stay
    moved = torch.cat([torch.full_like(cont[..., :1], _LOG_ZERO), cont[..., :-1]], dim=-1)
    last = torch.logaddexp(moved[..., -1], cont[..., -1])
    return torch.cat([moved[..., :-1], last[..., None]], dim=-1)


def _forward(terms: _Terms) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """log p(actions) of each sequence (B,) and the forward messages log α_t (B, K, P + 1)."""
    steps, batch, count, width = terms.emit.shape
    first = terms.root[0] + terms.emit[0, :, :, 0]
    alpha = torch.cat([first[..., None], torch.full((batch, count, width - 1), _LOG_ZERO)], -1)
    alphas = [alpha]
    for t in range(1, steps):
        stopped = torch.logsumexp((alpha + terms.stop[t]).reshape(batch, -1), 1)
        fresh = stopped[:, None] + terms.root[t] + terms.emit[t, :, :, 0]
        kept = _advance(alpha, terms.stay[t])
        alpha = torch.cat([fresh[..., None], kept[..., 1:] + terms.emit[t, :, :, 1:]], dim=-1)
        alphas.append(alpha)
    return torch.logsumexp(alpha.reshape(batch, -1), 1), alphas


def _by_length(demos: list[Demonstration]) -> list[list[Demonstration]]:
    groups: dict[int, list[Demonstration]] = {}
    for demo in demos:
        groups.setdefault(len(demo), []).append(demo)
    return list(groups.values())


def log_likelihood(program: NeuralProgram, demo: Demonstration) -> torch.Tensor:
    """``log p(a_{1:T} | s_{1:T})`` with the procedures and counters summed out (differentiable)."""
    return _forward(_terms(program, [demo]))[0][0]


def weak_loss(program: NeuralProgram, demos: list[Demonstration]) -> tuple[torch.Tensor, int]:
    """Summed negative log-likelihood of ``demos`` and their number of steps.

    Sequences of equal length run through the recursion together (one batch per length).
    """
    total = torch.zeros(())
    for group in _by_length(demos):
        total = total - _forward(_terms(program, group))[0].sum()
    return total, sum(len(d) for d in demos)


def posteriors(program: NeuralProgram, demo: Demonstration) -> np.ndarray:
    """``p(z_t = (o, d) | a_{1:T}, s_{1:T})`` as an array (T, K, P + 1), by forward-backward."""
    with torch.no_grad():
        terms = _terms(program, [demo])
        log_z, alphas = _forward(terms)
        beta = torch.zeros_like(alphas[-1])
        betas = [beta]
        for t in range(len(demo) - 1, 0, -1):
            # Successor of a continuing (o, d) is (o, min(d + 1, P)); of a stopping one, (o', 0).
            ahead = terms.emit[t] + beta
            shifted = torch.cat([ahead[..., 1:], ahead[..., -1:]], dim=-1)
            cont = terms.stay[t] + shifted
            restart = torch.logsumexp(terms.root[t] + ahead[..., 0], -1)
            beta = torch.logaddexp(cont, terms.stop[t] + restart[:, None, None])
            betas.append(beta)
        betas.reverse()
        post = torch.stack([a + b for a, b in zip(alphas, betas, strict=True)]) - log_z[0]
        return post[:, 0].exp().numpy()


def segment(program: NeuralProgram, demo: Demonstration) -> tuple[np.ndarray, np.ndarray]:
    """The most probable option at each step and the probability that a new one starts there."""
    post = posteriors(program, demo)
    return post.sum(axis=2).argmax(axis=1), post[:, :, 0].sum(axis=1)


def true_segments(spec: ProgramSpec, demo: Demonstration) -> tuple[np.ndarray, np.ndarray]:
    """The expert's option (index in :func:`options`) at each step and where new ones start."""
    assert demo.stacks is not None
    table = {option: k for k, option in enumerate(options(spec))}
    depth = demo.stacks["stack_depth"].astype(np.int64) - 1
    rows = np.arange(len(demo))
    leaf = demo.stacks["stack_procedure"][rows, depth]
    arg = demo.stacks["stack_arg"][rows, depth]
    labels = np.array([table[(int(p), int(a))] for p, a in zip(leaf, arg, strict=True)])
    starts = demo.stacks["stack_pc"][rows, depth] == 1
    return labels, starts


def recovery_accuracy(predicted: np.ndarray, truth: np.ndarray, count: int) -> float:
    """Per-step accuracy of ``predicted`` labels under the best permutation of label names."""
    confusion = np.zeros((count, count), dtype=np.int64)
    np.add.at(confusion, (predicted, truth), 1)
    try:
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(-confusion)
        best = int(confusion[rows, cols].sum())
    except ImportError:  # small label sets: try every permutation
        best = max(
            int(confusion[np.arange(count), list(p)].sum())
            for p in itertools.permutations(range(count))
        )
    return best / max(int(truth.size), 1)


def boundary_scores(
    predicted: np.ndarray, truth: np.ndarray, tolerance: int = 1
) -> dict[str, float]:
    """Recall and precision of procedure starts, a start counting within ``tolerance`` steps."""
    found = np.flatnonzero(predicted)
    real = np.flatnonzero(truth)

    def near(points: np.ndarray, targets: np.ndarray) -> float:
        if points.size == 0:
            return 1.0
        if targets.size == 0:
            return 0.0
        distance = np.abs(points[:, None] - targets[None, :]).min(axis=1)
        return float(np.mean(distance <= tolerance))

    return {"boundary_recall": near(real, found), "boundary_precision": near(found, real)}
