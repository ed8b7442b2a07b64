"""The ``flowsim`` command: a thin switchboard over the library.

Each command group adds its own parser: ``experiment`` (simulate, schema, check, scenarios,
envs), ``train`` (train, evaluate), ``viz`` (replay, plot), ``bench``, and the packages that
own a command, ``flowsim.tune.cli`` (tune) and ``flowsim.hierarchy.cli`` (imitate). Shared
flags, tables and JSON output live in :mod:`flowsim.cli.common`.

Exit codes: 0 success, 1 a runtime failure (e.g. SUMO crashed), 2 bad input (config, flags),
130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys

from flowsim.cli.common import Parser, dispatch, fail
from flowsim.errors import ConfigError, FlowsimError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``flowsim`` command."""
    # Imported here: the packages' CLI modules import flowsim.cli.common, which loads this
    # package first; importing them at the top would go round in a circle.
    from flowsim.cli import bench, experiment, train, viz
    from flowsim.hierarchy.cli import add_imitate_parser
    from flowsim.tune.cli import add_tune_parser

    parser = Parser(prog="flowsim", description="Mixed-autonomy traffic RL on SUMO.")
    commands = parser.add_subparsers(dest="command", required=True)
    # In the order `flowsim --help` lists them.
    experiment.add_simulate_parser(commands)
    bench.add_parser(commands)
    train.add_train_parser(commands)
    add_imitate_parser(commands)
    add_tune_parser(commands)
    train.add_evaluate_parser(commands)
    viz.add_parser(commands)
    experiment.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``flowsim`` command; returns the exit code."""
    parser = build_parser()
    try:
        return dispatch(parser.parse_args(argv))
    except SystemExit as exit_:
        return int(exit_.code or 0) if isinstance(exit_.code, int) else 2
    except ConfigError as error:
        return fail(str(error), code=2)
    except FlowsimError as error:
        return fail(str(error), code=1)
    except KeyboardInterrupt:
        return fail("interrupted", code=130)
    except BrokenPipeError:  # e.g. `flowsim schema | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
