"""``flowsim imitate``: demonstrations, learning and closed-loop evaluation in a run directory.

A run directory (like ``flowsim train``'s) holds:

- ``config.yaml``: the resolved config, with the ``imitation:`` settings;
- ``demos/train.npz`` and ``demos/held_out.npz``: the demonstrations
  (:mod:`flowsim.hierarchy.demos`); weak ones have their stacks removed;
- ``progress.csv``: one row per epoch (``epoch, wall_s, loss, strong_nll, weak_nll``);
- ``checkpoints/checkpoint-NNNNNN.pt`` and ``best.pt`` (atomic, ``weights_only``):
  ``{"kind": "hierarchy", "program": ..., "flat": ..., "policy": ..., "rows": [...]}``, where
  ``policy`` is what :func:`flowsim.hierarchy.collect.policy_driver` turns into an actor;
- ``summary.json``: held-out accuracy and likelihood, procedure recovery, closed-loop speed of
  the program, the flat baseline and the expert.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from flowsim.config import FlowsimConfig, apply_overrides, parse_config
from flowsim.config.imitation import ImitationConfig
from flowsim.errors import ConfigError
from flowsim.hierarchy.state import load_hierarchy_state
from flowsim.runs.directory import RunDirectory

PROGRESS_COLUMNS = ("epoch", "wall_s", "loss", "strong_nll", "weak_nll")
#: Shares of the expert's score at which ``bench imitate`` reports the demonstrations needed.
THRESHOLDS = (0.5, 0.8, 0.95)


def load_imitation(
    path: Path, overrides: list[str] | None = None
) -> tuple[FlowsimConfig, ImitationConfig]:
    """An experiment YAML with an ``imitation:`` section: the config and the section.

    ``--set imitation.KEY=VALUE`` overrides the section; other keys override the config. Works
    whether :class:`FlowsimConfig` has an ``imitation`` field or still keeps the settings in
    its ``hierarchy`` mapping (run directories written then say ``hierarchy:``).
    """
    from flowsim.config import load_config

    path = Path(path)
    if "imitation" in FlowsimConfig.model_fields:
        config = load_config(path, overrides)
        section = getattr(config, "imitation", None)
        return config, section if isinstance(section, ImitationConfig) else ImitationConfig()
    if not path.is_file():
        raise ConfigError(f"{path}: no such file; give an experiment YAML.")
    raw = yaml.safe_load(path.read_text()) or {}
    section = raw.pop("imitation", None) or dict(raw.get("hierarchy") or {})
    raw.pop("hierarchy", None)
    own = [o for o in overrides or [] if o.startswith("imitation.")]
    rest = [o for o in overrides or [] if not o.startswith("imitation.")]
    for item in own:
        key, _, value = item.partition("=")
        section[key.split(".", 1)[1]] = yaml.safe_load(value)
    try:
        imitation = ImitationConfig.model_validate(section)
    except ValueError as error:
        raise ConfigError(f"invalid imitation section in {path}: {error}") from None
    config = parse_config(raw, source=str(path), base_dir=path.resolve().parent)
    if rest:
        config = apply_overrides(config, rest)
    return config, imitation


def _with_section(config: FlowsimConfig, imitation: ImitationConfig) -> FlowsimConfig:
    """The config carrying the imitation settings (saved with the run)."""
    data = imitation.model_dump(mode="json")
    if "imitation" in FlowsimConfig.model_fields:
        return config.model_copy(update={"imitation": imitation})
    return config.model_copy(update={"hierarchy": data})


@dataclass
class ImitationRun:
    """A finished ``flowsim imitate`` run."""

    directory: Path
    summary: dict[str, Any]
    rows: list[dict[str, float]] = field(default_factory=list)


def _seeds(imitation: ImitationConfig) -> tuple[list[int], list[int], list[int]]:
    """Training, held-out and evaluation episode seeds (disjoint)."""
    base = imitation.seed * 100_000
    train = imitation.strong_demos + imitation.weak_demos
    held = imitation.held_out_demos
    return (
        list(range(base, base + train)),
        list(range(base + train, base + train + held)),
        list(range(1000, 1000 + imitation.eval_episodes)),
    )


def imitate(
    config: FlowsimConfig,
    imitation: ImitationConfig,
    out: Path | None = None,
    report: Any = None,
) -> ImitationRun:
    """Collect demonstrations, fit the hierarchical program (and the flat baseline), evaluate.

    ``report(text)`` is told each phase (a progress line).
    """
    import torch

    from flowsim.hierarchy.collect import play, summarise
    from flowsim.hierarchy.demos import save_demonstrations
    from flowsim.hierarchy.experts import check_expert_config, expert_task
    from flowsim.hierarchy.learn import FlatPolicy, action_metrics, fit, fit_flat
    from flowsim.hierarchy.neural import NeuralProgram
    from flowsim.hierarchy.skills import reuse_skills
    from flowsim.hierarchy.strong import decision_accuracy, decision_table

    say = report or (lambda text: None)
    torch.set_num_threads(1)
    check_expert_config(config, expert_task(imitation.expert))
    config = _with_section(config, imitation)
    run_dir = RunDirectory.create(config, out)
    directory = run_dir.path
    started = time.perf_counter()

    train_seeds, held_seeds, eval_seeds = _seeds(imitation)
    say(f"collecting {len(train_seeds) + len(held_seeds)} expert episodes")
    task = expert_task(imitation.expert)
    demos, expert_train = play(
        config,
        train_seeds + held_seeds,
        "expert",
        record=True,
        expert=task.name,
        noise=imitation.demo_noise,
    )
    strong_seeds = set(train_seeds[: imitation.strong_demos])
    train = [
        d if d.episode in strong_seeds else d.weak() for d in demos if d.episode in train_seeds
    ]
    held_out = [d for d in demos if d.episode in held_seeds]
    meta = {"expert": task.name, "env": config.env.type, "features": list(task.features)}
    save_demonstrations(directory / "demos" / "train.npz", train, meta)
    if held_out:
        save_demonstrations(directory / "demos" / "held_out.npz", held_out, meta)

    spec = task.spec(tuple(imitation.hidden), imitation.pc_cap)
    program = NeuralProgram(spec, seed=imitation.seed)
    frozen = reuse_skills(program, imitation, task.features)
    say(f"fitting {len(train)} demonstrations ({imitation.epochs} epochs)")
    rows: list[dict[str, float]] = []

    def log(row: dict[str, float]) -> None:
        rows.append({**row, "wall_s": time.perf_counter() - started})

    fit(program, train, epochs=imitation.epochs, lr=imitation.lr, callback=log)
    flat = None
    if imitation.baseline:
        flat = FlatPolicy(spec, seed=imitation.seed)
        fit_flat(flat, train, epochs=imitation.epochs, lr=imitation.lr)
    run_dir.write_progress(rows, PROGRESS_COLUMNS)
    state = {
        "kind": "hierarchy",
        "program": program.state(),
        # what flowsim.evaluation.evaluate.load_policy hands to policy_actor (see policy_driver)
        "policy": {"kind": "hierarchy", "program": program.state(), "expert": task.name},
        "flat": flat.state() if flat is not None else None,
        "rows": rows,
        "frozen": frozen,
        "expert": task.name,
        "features": list(task.features),
    }
    run_dir.save_checkpoint(state, imitation.epochs, keep=1, best=True)

    summary: dict[str, Any] = {
        "train_demos": len(train),
        "strong_episodes": imitation.strong_demos,
        "weak_episodes": imitation.weak_demos,
        "epochs": imitation.epochs,
        "final_loss": rows[-1]["loss"] if rows else None,
        "frozen_procedures": frozen,
        "expert_train_mean_speed": summarise(expert_train).get("mean_speed"),
    }
    strong_train = [d for d in train if d.strong]
    if strong_train:
        summary["train_decisions"] = decision_accuracy(program, decision_table(spec, strong_train))
    if held_out:
        say("scoring held-out demonstrations")
        summary["held_out"] = {"program": action_metrics(program, held_out)}
        if flat is not None:
            summary["held_out"]["flat"] = action_metrics(flat, held_out)
        summary["procedure_recovery"] = recovery(program, held_out)
    if imitation.eval_episodes:
        say(f"closed loop: {len(eval_seeds)} episodes each")
        summary["closed_loop"] = closed_loop(config, program.state(), flat, eval_seeds, task.name)
    summary["wall_s"] = time.perf_counter() - started
    run_dir.write_summary(summary)
    return ImitationRun(directory, summary, rows)


def recovery(program: Any, demos: list[Any]) -> dict[str, float]:
    """Procedure recovery on demonstrations with known stacks (best label permutation)."""
    from flowsim.hierarchy.weak import (
        boundary_scores,
        options,
        recovery_accuracy,
        segment,
        true_segments,
    )

    spec = program.spec
    predicted, truth, found, real = [], [], [], []
    for demo in demos:
        labels, starts = segment(program, demo.weak())
        true_labels, true_starts = true_segments(spec, demo)
        predicted.append(labels)
        truth.append(true_labels)
        found.append(starts > 0.5)
        real.append(true_starts)
    scores = boundary_scores(np.concatenate(found), np.concatenate(real))
    scores["procedure_accuracy"] = recovery_accuracy(
        np.concatenate(predicted), np.concatenate(truth), len(options(spec))
    )
    return scores


def closed_loop(
    config: FlowsimConfig,
    program_state: dict[str, Any] | None,
    flat: Any,
    seeds: list[int],
    expert: str = "ring",
) -> dict[str, Any]:
    """The program, the flat baseline and ``expert`` driving on the same seeds."""
    from flowsim.hierarchy.collect import play, summarise

    results: dict[str, Any] = {"seeds": seeds}
    _, expert_stats = play(config, seeds, "expert", expert=expert)
    results["expert"] = summarise(expert_stats)
    drivers = []
    if program_state is not None:
        drivers.append(("program", "program", program_state))
    if flat is not None:
        drivers.append(("flat", "flat", flat.state() if hasattr(flat, "state") else flat))
    for name, kind, state in drivers:
        _, stats = play(config, seeds, kind, state, expert=expert)
        results[name] = versus_expert(summarise(stats), results["expert"])
    return results


def _ratio(value: float, reference: float) -> float:
    return value / reference if reference else float("nan")


def versus_expert(entry: dict[str, Any], expert: dict[str, Any]) -> dict[str, Any]:
    """``entry`` with its ratios to the expert's figures: ``speed_vs_expert`` (all vehicles),
    ``av_speed_vs_expert`` and, on tasks with stops, ``stops_served_vs_expert``; and
    ``score_vs_expert``, the task's own measure (stops served where there are stops, AV
    speed otherwise)."""
    entry = dict(entry)
    entry["speed_vs_expert"] = _ratio(entry["mean_speed"], expert["mean_speed"])
    entry["av_speed_vs_expert"] = _ratio(entry["av_speed"], expert["av_speed"])
    entry["score_vs_expert"] = entry["av_speed_vs_expert"]
    if "stops_served" in entry and "stops_served" in expert:
        entry["stops_served_vs_expert"] = _ratio(entry["stops_served"], expert["stops_served"])
        entry["score_vs_expert"] = entry["stops_served_vs_expert"]
    return entry


def evaluate_imitation_run(
    run_dir: Path,
    episodes: int = 5,
    seed: int = 1000,
    checkpoint: str = "latest",
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """``flowsim evaluate`` for an imitation run: the program (``policy``) against the expert
    and the flat baseline (``baselines``), in :func:`flowsim.evaluation.evaluate_run`'s shape."""
    run_dir = Path(run_dir)
    config, imitation = load_imitation(run_dir / "config.yaml", overrides)
    state, _ = load_hierarchy_state(run_dir, checkpoint)
    seeds = [seed + k for k in range(episodes)]
    result = closed_loop(config, state["program"], state.get("flat"), seeds, imitation.expert)
    baselines = {"expert": result["expert"]}
    if "flat" in result:
        baselines["flat"] = result["flat"]
    return {
        "policy": result["program"],
        "baselines": baselines,
        "seeds": seeds,
        "run_dir": str(run_dir),
        "checkpoint": checkpoint,
    }
