"""Time to target on the ring: each trainer against the wave, evaluated as it learns."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from flowsim.algos.base import Trainer
from flowsim.bench.results import machine_description
from flowsim.config import FlowsimConfig, apply_overrides

TARGET_SPEED_RATIO = 0.95
TARGET_SPEED_STD = 0.5


def _reaches_target(metrics: dict[str, Any]) -> bool:
    return (
        metrics.get("speed_ratio", 0.0) >= TARGET_SPEED_RATIO
        and metrics["speed_std"] < TARGET_SPEED_STD
        and metrics["collisions"] == 0
    )


class _TargetTracker:
    """A training callback: evaluates the policy now and then and notes when it hits the target."""

    def __init__(
        self,
        algo: str,
        config: FlowsimConfig,
        budget_s: float,
        eval_every: int,
        episodes: int,
        seed: int,
        report: Callable[[str], None],
    ) -> None:
        self.algo, self.config, self.budget_s = algo, config, budget_s
        self.eval_every, self.episodes, self.seed, self.report = eval_every, episodes, seed, report
        self.eval_s = 0.0
        self.target: dict[str, Any] | None = None
        self.curve: list[dict[str, Any]] = []

    def __call__(self, row: dict[str, float], trainer: Trainer) -> bool:
        """Evaluate every ``eval_every`` iterations; False (stop) once the budget is spent."""
        from flowsim.evaluation.evaluate import evaluate

        train_s = row["wall_s"] - self.eval_s
        iteration = int(row["iteration"])
        last = iteration >= self.config.train.iterations or train_s >= self.budget_s
        if iteration % self.eval_every == 0 or last:
            started = time.perf_counter()
            policy = trainer.export_policy()
            # On the trainer's own runners: no second simulation in this process.
            metrics = evaluate(
                self.config, policy, self.episodes, self.seed, baselines=(), group=trainer.group
            )
            metrics = metrics["policy"]
            self.eval_s += time.perf_counter() - started
            self.curve.append(
                {
                    "iteration": iteration,
                    "env_steps": int(row["env_steps"]),
                    "train_s": train_s,
                    "speed_ratio": metrics.get("speed_ratio"),
                    "speed_std": metrics["speed_std"],
                    "mean_return": metrics["mean_return"],
                }
            )
            if self.target is None and _reaches_target(metrics):
                self.target = {"wall_s": train_s, "env_steps": int(row["env_steps"])}
            ratio = metrics.get("speed_ratio", float("nan"))
            self.report(
                f"{self.algo}: iteration {iteration}, {train_s:.0f} s, speed ratio {ratio:.3f}, "
                f"speed std {metrics['speed_std']:.2f} m/s"
            )
        return not last


def bench_train(
    config: FlowsimConfig,
    algos: tuple[str, ...] = ("ppo", "trpo", "es"),
    budget_s: float = 900.0,
    eval_every: int = 5,
    episodes: int = 3,
    final_episodes: int = 5,
    seed: int = 1000,
    out: Path = Path("runs/bench"),
    report: Callable[[str], None] = lambda phase: None,
) -> dict[str, Any]:
    """Train each algorithm on ``config`` and time how long the AV takes to dissolve the wave.

    Every ``eval_every`` iterations the current policy runs deterministically on ``episodes``
    fixed evaluation seeds; the target is a mean speed of at least 95 % of the equilibrium speed
    with a speed std below 0.5 m/s and no collision. ``wall_s_to_target`` counts training time
    only (evaluation pauses are subtracted). Each algorithm trains for ``train.iterations`` or
    until ``budget_s`` of training time, then a final evaluation on ``final_episodes`` seeds is
    compared with the all-human ring and a PISaturation AV on the same seeds.
    """
    from flowsim.evaluation.evaluate import evaluate
    from flowsim.runs.training import train

    report("baselines: all-human ring and a PISaturation AV")
    baselines = evaluate(config, None, final_episodes, seed)["baselines"]
    results: dict[str, Any] = {}
    for algo in algos:
        algo_config = apply_overrides(config, [f"train.algo={algo}"])
        tracker = _TargetTracker(algo, algo_config, budget_s, eval_every, episodes, seed, report)
        run = train(algo_config, out=out, callback=tracker)
        report(f"{algo}: final evaluation on {final_episodes} episodes")
        final = evaluate(
            algo_config,
            run.trainer.export_policy(),
            final_episodes,
            seed,
            baselines=(),
        )["policy"]
        target = tracker.target or {}
        pi_speed = baselines["pi_saturation"]["mean_speed"]
        results[algo] = {
            "iterations": run.trainer.iteration,
            "env_steps": run.trainer.env_steps,
            "train_s": run.rows[-1]["wall_s"] - tracker.eval_s if run.rows else 0.0,
            "wall_s_to_target": target.get("wall_s"),
            "env_steps_to_target": target.get("env_steps"),
            "final": final,
            "reaches_target": _reaches_target(final),
            # "at least matching" PISaturation: within 1 % of its mean speed, or faster
            "matches_pi_saturation": final["mean_speed"] >= 0.99 * pi_speed,
            "curve": tracker.curve,
            "run_dir": str(run.directory),
        }
    return {
        "benchmark": "train",
        "config": config.name,
        "target": {
            "speed_ratio": TARGET_SPEED_RATIO,
            "speed_std": TARGET_SPEED_STD,
            "budget_s": budget_s,
        },
        "evaluation_seeds": list(range(seed, seed + final_episodes)),
        "baselines": baselines,
        "algos": results,
        "machine": machine_description(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
