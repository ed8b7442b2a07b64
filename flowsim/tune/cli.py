"""``flowsim tune`` and ``flowsim bench tune``: parsers and handlers, added by flowsim.cli.

``flowsim/cli/__init__.py`` and ``flowsim/cli/bench.py`` wire them with one call each::

    add_tune_parser(commands)
    add_bench_parser(bench_kinds)
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from flowsim.cli.common import (
    add_bench_output,
    add_config,
    add_json,
    add_set,
    print_json,
    report_bench,
    results_folder,
    stderr,
)
from flowsim.errors import ConfigError, FlowsimError


def add_tune_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``tune CONFIG.yaml`` (or ``tune --resume TUNE_DIR``) to the ``flowsim`` subcommands."""
    parser = commands.add_parser(
        "tune", help="search hyper-parameters on Ray Tune (the YAML's tune: section)"
    )
    parser.add_argument("config", type=Path, nargs="?", help="experiment YAML with a tune: section")
    add_set(parser, "override a config value, e.g. --set tune.num_samples=8 (repeatable)")
    parser.add_argument(
        "--out", type=Path, default=Path("runs"), help="folder for the tuning directory"
    )
    parser.add_argument(
        "--resume", type=Path, metavar="TUNE_DIR", help="continue an interrupted tuning run"
    )
    parser.add_argument(
        "--address", help="Ray cluster to run on: auto, host:port or ray://host:port"
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the plots at the end")
    add_json(parser)
    parser.set_defaults(handler=cmd_tune)
    return parser


def add_bench_parser(bench_kinds: Any) -> argparse.ArgumentParser:
    """Add ``bench tune`` (the Tune layer's overhead) to ``flowsim bench``."""
    parser = bench_kinds.add_parser(
        "tune", help="the Tune layer's overhead per trial against flowsim train, trials per hour"
    )
    add_config(parser, positional=False)
    parser.add_argument(
        "--iterations", type=int, help="iterations per trial (default: the config's)"
    )
    parser.add_argument(
        "--trials", type=int, default=4, help="trials of the throughput run (default 4)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="alternating train / one-trial runs (median)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/bench"), help="folder for the runs it makes"
    )
    add_bench_output(parser)
    parser.set_defaults(handler=cmd_bench_tune)
    return parser


def cmd_tune(args: argparse.Namespace) -> int:
    """Handler of ``flowsim tune``: exit 0 with a best trial, 130 if interrupted, else 1."""
    from flowsim.config import load_config
    from flowsim.tune.run import resume_tune, run_tune, show

    if (args.resume is None) == (args.config is None):
        raise ConfigError("flowsim tune needs a CONFIG.yaml with a tune: section, or --resume DIR.")
    if args.resume is not None:
        # --set on a resume: the library applies the keys a resume may change, refuses others.
        run = resume_tune(
            args.resume,
            address=args.address,
            show_progress=not args.json,
            plots=not args.no_plots,
            overrides=args.overrides,
        )
    else:
        address = [f"sampler.address={args.address}"] if args.address else []
        config = load_config(args.config, [*args.overrides, *address])
        run = run_tune(config, out=args.out, show_progress=not args.json, plots=not args.no_plots)
    if args.json:
        print_json(args, run.summary)
    else:
        show(run)
    if run.summary["interrupted"]:
        return 130
    if run.best is None:
        raise FlowsimError(f"no trial reported {run.summary['metric']}; see {run.directory}.")
    return 0


def cmd_bench_tune(args: argparse.Namespace) -> int:
    """Handler of ``flowsim bench tune``."""
    from flowsim.bench.tune import bench_tune
    from flowsim.config import load_config

    results = results_folder(args)
    if args.trials < 1 or args.repeats < 1 or (args.iterations is not None and args.iterations < 1):
        raise ConfigError("--trials, --repeats and --iterations must be positive, e.g. --trials 4.")
    config = load_config(args.config, args.overrides)
    with stderr.status("benchmarking tuning") as status:
        result = bench_tune(
            config,
            iterations=args.iterations,
            trials=args.trials,
            out=args.out,
            repeats=args.repeats,
            report=lambda phase: status.update(phase),
        )
    return report_bench(args, result, results)
