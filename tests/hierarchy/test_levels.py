"""Three levels learned level by level from demonstrations without call stacks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from flowsim.hierarchy.learn import action_metrics
from flowsim.hierarchy.levels import fit_levels, procedure_levels
from flowsim.hierarchy.neural import ProcedureSpec
from flowsim.hierarchy.synthetic import (
    FLIP3,
    MATCH3,
    PAIR,
    TRIPLE,
    three_level_demonstrations,
    three_level_spec,
)
from flowsim.hierarchy.weak import recovery_accuracy


def test_levels_of_a_layered_spec_and_refusals() -> None:
    spec = three_level_spec()
    assert procedure_levels(spec) == [[MATCH3, FLIP3], [PAIR, TRIPLE], [0]]
    skipping = replace(
        spec,
        procedures=(
            ProcedureSpec("Root", callees=(PAIR, MATCH3), can_act=False, use_pc=False),
            *spec.procedures[1:],
        ),
    )
    with pytest.raises(ValueError, match="several levels"):
        procedure_levels(skipping)


def test_three_levels_recovered_level_by_level_without_stacks() -> None:
    torch.set_num_threads(1)
    spec = three_level_spec()
    demos = three_level_demonstrations(6, steps=150, noise=0.05, seed=2)
    # The likelihood has local optima (as in any EM): the best of three fits per level.
    learned = fit_levels(spec, [d.weak() for d in demos], epochs=100, lr=1e-2, restarts=3)
    # Each level's procedures, read off the segmentation, match the expert's call stacks
    # (stack depth 2: the leaf; depth 1: Pair or Triple), up to the names of the labels.
    for level, depth in ((0, 2), (1, 1)):
        predicted = np.concatenate(learned.labels[level])
        truth = np.concatenate([d.stacks["stack_procedure"][:, depth] for d in demos])
        assert recovery_accuracy(predicted, truth - truth.min(), 2) >= 0.9, level
    # The assembled three-level program runs with its own call stack and acts as the expert
    # far above chance on new noise-free episodes.
    clean = three_level_demonstrations(2, steps=150, noise=0.0, seed=9)
    assert action_metrics(learned.program, clean)["action_accuracy"] >= 0.75
