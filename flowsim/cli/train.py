"""Commands that train and judge a policy: ``train`` and ``evaluate``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flowsim.cli.common import add_json, add_set, print_json, print_table, stderr
from flowsim.errors import ConfigError


def add_train_parser(commands: Any) -> None:
    """Add ``train CONFIG`` (or ``train --resume RUN_DIR``)."""
    train = commands.add_parser("train", help="train a policy (PPO, TRPO or ES)")
    train.add_argument("config", type=Path, nargs="?", help="experiment YAML")
    add_set(train, "override a config value, e.g. --set train.lr=0.001 (repeatable)")
    train.add_argument("--out", type=Path, default=Path("runs"), help="folder for run directories")
    train.add_argument("--resume", type=Path, help="continue the run in this directory")
    train.set_defaults(handler=cmd_train)


def add_evaluate_parser(commands: Any) -> None:
    """Add ``evaluate RUN_DIR``."""
    evaluate = commands.add_parser(
        "evaluate", help="run a trained policy deterministically against human baselines"
    )
    evaluate.add_argument("run_dir", type=Path, help="a run directory written by flowsim train")
    evaluate.add_argument("--episodes", type=int, default=5, help="episodes per driver")
    evaluate.add_argument("--seed", type=int, default=1000, help="seed of the first episode")
    evaluate.add_argument(
        "--checkpoint", choices=("latest", "best"), default="latest", help="which checkpoint"
    )
    evaluate.add_argument(
        "--baselines",
        default="human,pi_saturation",
        help="comma-separated: human, pi_saturation, follower_stopper; on a signal env "
        "program, fixed_cycle, max_pressure, greedy (all four by default) ('' for none)",
    )
    add_set(evaluate, "override the run's config for evaluation, e.g. --set env.horizon=6000")
    add_json(evaluate, "the metrics")
    evaluate.set_defaults(handler=cmd_evaluate)


def cmd_train(args: argparse.Namespace) -> int:
    """``flowsim train``: train (or resume) and show the last iteration's figures."""
    from flowsim.config import load_config
    from flowsim.runs.training import train

    if args.resume is None and args.config is None:
        raise ConfigError("flowsim train needs a CONFIG.yaml, or --resume RUN_DIR.")
    if args.resume is not None:
        # --set on a resume: the library applies the keys a resume may change, refuses others.
        run = train(None, resume=args.resume, show_progress=True, overrides=args.overrides)
    else:
        config = load_config(args.config, args.overrides)
        run = train(config, out=args.out, show_progress=True)
    last = run.rows[-1] if run.rows else {}
    print_table(
        f"trained {run.directory}",
        {
            "iterations": int(last.get("iteration", 0)),
            "env_steps": int(last.get("env_steps", 0)),
            "return_mean": last.get("return_mean", float("nan")),
            "mean_speed": last.get("mean_speed", float("nan")),
            "wall_s": last.get("wall_s", 0.0),
            "run": str(run.directory),
        },
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``flowsim evaluate``: the policy and its baselines, metrics as rows (or JSON)."""
    from flowsim.hierarchy.evaluate import evaluate_any_run
    from flowsim.sim.trips import TRIP_METRICS  # signal envs: RESCO's trip metrics

    baselines = tuple(b for b in args.baselines.split(",") if b) if args.baselines else ()
    with stderr.status("evaluating") as status:
        result = evaluate_any_run(
            args.run_dir,
            episodes=args.episodes,
            seed=args.seed,
            checkpoint=args.checkpoint,
            overrides=args.overrides,
            baselines=baselines,
            progress=lambda name: status.update(f"evaluating {name}"),
        )
    if args.json:
        print_json(args, _flat_evaluation(result))
        return 0
    # Metrics as rows and drivers as columns: stays readable on an 80-column terminal.
    title = f"evaluate {result['run_dir']} ({result['checkpoint']})"
    table = Table(title=title, header_style="bold")
    metrics = ("mean_return", "mean_speed", "speed_std", "min_speed", "speed_ratio", "collisions")
    entries = {"policy": result["policy"], **result["baselines"]}
    metrics += tuple(m for m in TRIP_METRICS if any(m in e for e in entries.values()))
    table.add_column("metric")
    for name in entries:
        table.add_column(name, justify="right")
    for metric in metrics:
        cells = [entry.get(metric) for entry in entries.values()]
        table.add_row(metric, *(f"{c:,.3f}" if isinstance(c, float) else str(c) for c in cells))
    Console().print(table)
    return 0


def _flat_evaluation(result: dict[str, Any]) -> dict[str, Any]:
    """The policy's metrics at the top level, baselines under ``baselines``."""
    return {**result["policy"], **{k: v for k, v in result.items() if k != "policy"}}
