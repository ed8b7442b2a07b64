"""``flowsim imitate`` and ``flowsim bench imitate``: parsers and handlers, added by flowsim.cli.

``flowsim/cli/__init__.py`` and ``flowsim/cli/bench.py`` wire them with one call each::

    add_imitate_parser(commands)
    add_bench_parser(bench_kinds)
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from flowsim.cli.common import add_bench_output, add_json, add_set, print_json
from flowsim.errors import ConfigError

_SET_HELP = "override a value, e.g. --set imitation.strong_demos=3 (repeatable)"


def add_imitate_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``imitate CONFIG.yaml`` to the ``flowsim`` subcommands."""
    parser = commands.add_parser(
        "imitate", help="learn hierarchical procedures from expert demonstrations"
    )
    parser.add_argument("config", type=Path, help="experiment YAML with an imitation: section")
    add_set(parser, _SET_HELP)
    parser.add_argument("--out", type=Path, default=Path("runs"), help="folder for run directories")
    add_json(parser)
    parser.set_defaults(handler=cmd_imitate)
    return parser


def add_bench_parser(bench_kinds: Any) -> argparse.ArgumentParser:
    """Add ``bench imitate`` (data efficiency) to ``flowsim bench``."""
    parser = bench_kinds.add_parser(
        "imitate", help="data efficiency: hierarchical imitation vs flat behaviour cloning"
    )
    parser.add_argument("--config", type=Path, required=True, help="experiment YAML")
    add_set(parser, _SET_HELP)
    parser.add_argument(
        "--counts", default="1,3,10,30", help="strong demonstrations per point (default 1,3,10,30)"
    )
    parser.add_argument("--episodes", type=int, default=3, help="closed-loop episodes per point")
    parser.add_argument(
        "--weak",
        type=int,
        default=0,
        metavar="N",
        help="also fit N episodes without call stacks and score procedure recovery (default 0)",
    )
    add_bench_output(parser)
    parser.set_defaults(handler=cmd_bench_imitate)
    return parser


def cmd_imitate(args: argparse.Namespace) -> int:
    """Handler of ``flowsim imitate``."""
    from rich.console import Console

    from flowsim.hierarchy.imitate import imitate, load_imitation

    config, imitation = load_imitation(args.config, args.overrides)
    console = Console(stderr=True)
    with console.status("imitating") as status:
        run = imitate(config, imitation, out=args.out, report=status.update)
    if args.json:
        print_json(args, {"run": str(run.directory), **run.summary})
        return 0
    loop = run.summary.get("closed_loop", {})
    console.print(f"imitated into {run.directory}")
    for name in ("expert", "program", "flat"):
        if name in loop:
            entry = loop[name]
            console.print(
                f"  {name:8s} AV speed {entry['av_speed']:.2f} m/s, all {entry['mean_speed']:.2f}"
                f" m/s, collisions {entry['collisions']}"
            )
    return 0


def cmd_bench_imitate(args: argparse.Namespace) -> int:
    """Handler of ``flowsim bench imitate``."""
    from rich.console import Console

    from flowsim.bench.imitate import bench_imitate
    from flowsim.hierarchy.imitate import load_imitation

    try:
        counts = tuple(int(c) for c in args.counts.split(",") if c)
    except ValueError:
        raise ConfigError(f"--counts {args.counts}: give integers, e.g. 1,3,10,30") from None
    if not counts or min(counts) < 1 or args.episodes < 1:
        raise ConfigError("--counts and --episodes must be positive, e.g. --counts 1,3,10.")
    if args.weak < 0:
        raise ConfigError(f"--weak {args.weak}: give a number of episodes, 0 or more, e.g. 3.")
    config, imitation = load_imitation(args.config, args.overrides)
    console = Console(stderr=True)
    with console.status("benchmarking imitation") as status:
        result = bench_imitate(
            config,
            imitation,
            counts,
            args.episodes,
            Path(args.results),
            status.update,
            weak_demos=args.weak,
        )
    if args.json:
        print_json(args, result)
        return 0
    Console(width=max(Console().width, 120)).print(curve_table(result))
    for level, reached in result["threshold"].items():
        console.print(
            f"fewest demonstrations reaching {float(level):.0%} of the expert's "
            f"{result['score']}: hierarchical {reached['program']}, flat {reached['flat']}"
            " (None: not reached)"
        )
    if "weak" in result:
        weak = result["weak"]
        recovered = weak["recovery"]
        console.print(
            f"weak supervision ({weak['weak_demos']} episodes, no call stacks): procedure "
            f"recovery {recovered['procedure_accuracy']:.3f}, boundary recall "
            f"{recovered['boundary_recall']:.3f}, precision {recovered['boundary_precision']:.3f}; "
            f"{result['score']} vs expert {weak['program']['score_vs_expert']:.3f}"
        )
    console.print(f"written to {result['written_to']}")
    return 0


def curve_table(result: dict[str, Any]) -> Any:
    """The data-efficiency curve of ``bench imitate`` as a rich table (H: hierarchical
    program, F: flat behaviour cloning)."""
    from rich.table import Table

    score = result["score"]
    expert = result["expert"]
    title = (
        f"bench imitate {result['config']}: expert {score} {expert[score]:.2f}, "
        f"{result['epochs']} epochs, {len(result['eval_seeds'])} closed-loop episodes"
    )
    table = Table(title=title, header_style="bold")
    table.add_column("demos", justify="right")
    metrics = (
        ("score", "score_vs_expert", "{:.2f}"),
        ("AV spd", "av_speed_vs_expert", "{:.2f}"),
        ("acc", "action_accuracy", "{:.3f}"),
        ("MAE", "continuous_mae", "{:.2f}"),
        ("fit s", "fit_s", "{:.0f}"),
    )
    for header, _, _ in metrics:
        for model in ("H", "F"):
            table.add_column(f"{header} {model}", justify="right")
    for entry in result["curve"]:
        cells = [str(entry["strong_demos"])]
        for _, key, form in metrics:
            cells += [form.format(entry[model][key]) for model in ("program", "flat")]
        table.add_row(*cells)
    table.caption = (
        f"H: hierarchical program, F: flat cloning; score: {score}, AV spd: AV speed, both "
        "over the expert's; acc: held-out discrete actions; MAE: held-out acceleration (m/s²)"
    )
    return table
