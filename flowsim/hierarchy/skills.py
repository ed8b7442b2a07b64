"""Shared skills: procedures learned on one task, reused on another.

``imitation.skills_from`` names an earlier ``flowsim imitate`` run and ``imitation.skills``
lists its procedures to reuse, each with a mode:

- ``frozen``: load the procedure and keep its weights fixed while the rest is trained;
- ``retrain``: load it as the starting point and train it on the new demonstrations;
- ``recreate``: start it afresh (the same name and interface, new weights).

The two tasks may see different features: a procedure's inputs are matched by feature name
(the run's checkpoint lists them), features the source never saw get zero weights (so the
loaded procedure computes what it computed before), and features the new task lacks are
dropped. Program counter cap, argument count and heads must agree.
"""

from __future__ import annotations

from pathlib import Path

import torch

from flowsim.config.imitation import ImitationConfig
from flowsim.errors import ConfigError
from flowsim.hierarchy.neural import NeuralProcedure, NeuralProgram


def reuse_skills(
    program: NeuralProgram, imitation: ImitationConfig, features: tuple[str, ...]
) -> list[str]:
    """Load ``imitation.skills`` from the ``skills_from`` run into ``program`` (whose inputs are
    ``features``); freeze the frozen ones. Returns the names of the frozen procedures."""
    if not imitation.skills:
        return []
    from flowsim.hierarchy.state import load_hierarchy_state

    assert imitation.skills_from is not None
    folder = Path(imitation.skills_from)
    if not folder.is_dir():
        raise ConfigError(
            f"imitation.skills_from: {folder} is not a directory; give the run directory of an "
            "earlier `flowsim imitate` run (e.g. runs/imitate_lane_change-20261124-103600)."
        )
    try:
        state, _ = load_hierarchy_state(folder, "latest")
    except ConfigError as error:
        raise ConfigError(f"imitation.skills_from: {error}") from None
    source = NeuralProgram.from_state(state["program"])
    source_features = tuple(state.get("features") or ())
    names = [p.name for p in source.spec.procedures]
    targets = [p.name for p in program.spec.procedures]
    listed = [skill.procedure for skill in imitation.skills]
    repeated = sorted({name for name in listed if listed.count(name) > 1})
    if repeated:
        raise ConfigError(
            f"imitation.skills lists {repeated} more than once; give each procedure one mode."
        )
    frozen = []
    for skill in imitation.skills:
        if skill.procedure not in names or skill.procedure not in targets:
            raise ConfigError(
                f"imitation.skills: procedure {skill.procedure!r} is not in both programs "
                f"({folder} has {names}, this task has {targets}); name one of "
                f"{sorted(set(names) & set(targets))}."
            )
        if skill.mode == "recreate":
            continue
        module = program.procedures[targets.index(skill.procedure)]
        copy_procedure(
            source.procedures[names.index(skill.procedure)],
            module,
            source_features,
            features,
        )
        if skill.mode == "frozen":
            for parameter in module.parameters():
                parameter.requires_grad_(False)
            frozen.append(skill.procedure)
    return frozen


def copy_procedure(
    source: NeuralProcedure,
    target: NeuralProcedure,
    source_features: tuple[str, ...],
    target_features: tuple[str, ...],
) -> None:
    """Give ``target`` the weights of ``source``, matching observation inputs by feature name
    (argument one-hots by value; the two programs may differ in their largest argument count).

    Raises:
        ConfigError: the two procedures differ in anything else (program counter cap, their
            own argument count, heads).
    """
    name = source.spec.name
    if source.pc_cap != target.pc_cap:
        raise ConfigError(
            f"imitation.skills: {name} was learned with pc_cap {source.pc_cap}, this task has "
            f"pc_cap {target.pc_cap}. Set imitation.pc_cap to {source.pc_cap} or use mode: "
            "recreate."
        )
    if source.spec.num_args != target.spec.num_args:
        raise ConfigError(
            f"imitation.skills: {name} takes {source.spec.num_args} argument value(s) in "
            f"skills_from and {target.spec.num_args} here; use mode: recreate."
        )
    if source.pc_ordinal != target.pc_ordinal:
        raise ConfigError(
            f"imitation.skills: {name} in skills_from sees its program counter "
            f"{'also' if source.pc_ordinal else 'only'} as a number "
            "(ProgramSpec.pc_ordinal); imitate that task again with this flowsim, or use "
            "mode: recreate."
        )
    if source.obs_dim != target.obs_dim or (source_features and source_features != target_features):
        if not source_features:
            raise ConfigError(
                f"imitation.skills: {name} sees {source.obs_dim} features in skills_from and "
                f"{target.obs_dim} here, and that run's checkpoint does not name them; "
                "use mode: recreate."
            )
    else:
        source_features = target_features = tuple(str(k) for k in range(source.obs_dim))
    weights = _remap_inputs(
        {k: v.detach().clone() for k, v in source.state_dict().items()},
        source,
        target,
        source_features,
        target_features,
    )
    try:
        target.load_state_dict(weights)
    except RuntimeError as error:
        raise ConfigError(
            f"imitation.skills: {name} has other heads here (callees, actions) than in "
            f"skills_from ({str(error).splitlines()[0]}); use mode: recreate."
        ) from None


def _remap_inputs(
    weights: dict[str, torch.Tensor],
    source: NeuralProcedure,
    target: NeuralProcedure,
    source_features: tuple[str, ...],
    target_features: tuple[str, ...],
) -> dict[str, torch.Tensor]:
    """``weights`` with the first layer's input columns and the standardisation moved from
    ``source``'s input layout to ``target``'s (inputs the source lacks: zero weight)."""
    first = "trunk.0.weight"
    if first not in weights:
        raise ConfigError(
            f"imitation.skills: {source.spec.name} has no hidden layer to adapt to new "
            "inputs; use mode: recreate."
        )
    old = weights[first]
    counters = source.pc_cap + 1
    # Target column -> source column: features by name, counters as they are, arguments by value.
    columns: dict[int, int] = {}
    for column, feature in enumerate(target_features):
        if feature in source_features:
            columns[column] = source_features.index(feature)
    for k in range(counters):
        columns[target.obs_dim + k] = source.obs_dim + k
    for k in range(min(source.max_args, target.max_args)):
        columns[target.obs_dim + counters + k] = source.obs_dim + counters + k
    if source.pc_ordinal:
        columns[target.obs_dim + counters + target.max_args] = old.shape[1] - 1
    width = target.obs_dim + counters + target.max_args + int(target.pc_ordinal)
    new = torch.zeros(old.shape[0], width)
    shift = torch.zeros(target.obs_dim)
    scale = torch.ones(target.obs_dim)
    for column, origin in columns.items():
        new[:, column] = old[:, origin]
        if column < target.obs_dim:
            shift[column] = weights["standardise.shift"][origin]
            scale[column] = weights["standardise.scale"][origin]
    weights[first] = new
    weights["standardise.shift"], weights["standardise.scale"] = shift, scale
    return weights
