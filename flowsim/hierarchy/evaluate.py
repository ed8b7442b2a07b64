"""``flowsim evaluate`` for any run directory: a training run's policy or an imitation run's
program, each against its baselines on the same seeds.

Evaluation knows nothing of the hierarchy; this dispatcher (which the CLI calls) does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowsim.config import apply_overrides
from flowsim.errors import ConfigError


def evaluate_any_run(
    run_dir: Path,
    episodes: int = 5,
    seed: int = 1000,
    checkpoint: str = "latest",
    overrides: list[str] | None = None,
    baselines: tuple[str, ...] = ("human", "pi_saturation"),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``run_dir`` deterministically against the baselines.

    A ``flowsim train`` run goes to :func:`flowsim.evaluation.evaluate.evaluate_run`. An
    imitation run (``flowsim imitate``) drives its program against its expert and its flat
    cloning baseline (baselines ``expert`` and ``flat``) and the requested AV baselines, in
    the same shape.
    """
    from flowsim.evaluation.evaluate import evaluate, evaluate_run, load_policy
    from flowsim.hierarchy.imitate import evaluate_imitation_run

    if episodes < 1:  # before any episode of the program (evaluate() checks it too)
        raise ConfigError(f"--episodes {episodes}: give at least 1 episode, e.g. 5.")
    config, weights = load_policy(run_dir, checkpoint)
    if weights.get("kind") != "hierarchy":
        return evaluate_run(run_dir, episodes, seed, checkpoint, overrides, baselines, progress)
    if overrides:
        config = apply_overrides(config, overrides)
    if progress is not None:
        progress("the program, its expert and the flat baseline")
    imitated = evaluate_imitation_run(Path(run_dir), episodes, seed, checkpoint, overrides)
    results = evaluate(config, None, episodes, seed, baselines, progress)
    results["policy"] = imitated["policy"]
    results["baselines"] = {**imitated["baselines"], **results["baselines"]}
    results["run_dir"] = str(run_dir)
    results["checkpoint"] = checkpoint
    return results
