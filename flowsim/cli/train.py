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
    entries = {"policy": result["policy"], **result["baselines"]}
    metrics = ("mean_return", "agent_return_mean", "mean_speed", "speed_std", "min_speed")
    metrics += ("speed_ratio", "collisions", *TRIP_METRICS)
    team = any("agents" in entry for entry in entries.values())
    if team:  # a multi-agent run: the figures above are the team's, then each agent's return
        title += ": the team"
    shown = tuple(m for m in metrics if any(m in e for e in entries.values()))
    _print_columns(title, "metric", entries, {m: m for m in shown})
    if team:
        agents = list(dict.fromkeys(a for e in entries.values() for a in e.get("agents", {})))
        per_agent = {
            name: {agent: figures["return"] for agent, figures in entry.get("agents", {}).items()}
            for name, entry in entries.items()
        }
        _print_columns("each agent's mean return", "agent", per_agent, {a: a for a in agents})
    return 0


def _print_columns(
    title: str, label: str, columns: dict[str, dict[str, Any]], rows: dict[str, str]
) -> None:
    """A table with one row per ``rows`` key (shown as its value) and one column per driver."""
    table = Table(title=title, header_style="bold")
    table.add_column(label)
    for name in columns:
        table.add_column(name, justify="right")
    for key, shown in rows.items():
        cells = [entry.get(key) for entry in columns.values()]
        table.add_row(shown, *(_cell(cell) for cell in cells))
    Console().print(table)


def _cell(value: Any) -> str:
    """A figure as a table shows it: floats to three decimals, ``-`` where there is none."""
    if value is None:
        return "-"
    return f"{value:,.3f}" if isinstance(value, float) else str(value)


def _flat_evaluation(result: dict[str, Any]) -> dict[str, Any]:
    """The policy's metrics at the top level, baselines under ``baselines``."""
    return {**result["policy"], **{k: v for k, v in result.items() if k != "policy"}}
