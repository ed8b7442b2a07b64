"""What every ``flowsim`` command shares: the parser class, the common flags, tables, JSON
output and the benchmark report.

A command's module (here or in the package that owns it, e.g. ``flowsim/tune/cli.py``) adds
its parser with these helpers, so a flag such as ``--json`` is declared once for all. This
module imports no flowsim package but ``errors``, ``jsonout`` and (to write a benchmark's
result) ``bench.results``: any package's CLI may use it.

JSON output: a handler prints its JSON to ``args.json_stream`` (set by :func:`dispatch`); while
``--json`` is given, everything else written to stdout goes to stderr instead.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flowsim import jsonout
from flowsim.errors import ConfigError, FlowsimError

#: Where progress, status lines and errors go (stdout carries only results).
stderr = Console(stderr=True)

#: The default ``--set`` help of a command that reads an experiment YAML.
SET_HELP = "override a config value, e.g. --set env.horizon=1000 (repeatable)"


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors with exit code 2 and a one-line fix."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise SystemExit(fail(f"{message} (see `{self.prog} --help`)", code=2))


def fail(message: str, code: int) -> int:
    """Print ``error: MESSAGE`` on stderr and return ``code`` (the exit code)."""
    # User text (paths, values, SUMO output) may contain [brackets]: never read it as markup.
    stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return code


class JsonFlag(argparse.Action):
    """The ``--json`` flag (a store-true flag): the command prints its result as strict JSON
    on stdout and sends everything else to stderr (see :func:`dispatch`)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=False, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, True)


def add_json(parser: argparse.ArgumentParser, what: str = "the summary") -> None:
    """Add ``--json``: print ``what`` (e.g. "the summary", "the figures") as JSON."""
    parser.add_argument("--json", action=JsonFlag, help=f"print {what} as JSON")


def add_set(parser: argparse.ArgumentParser, help_text: str = SET_HELP) -> None:
    """Add the repeatable ``--set KEY=VALUE`` config override (into ``args.overrides``)."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=help_text,
    )


def add_config(parser: argparse.ArgumentParser, positional: bool = True) -> None:
    """Add the experiment YAML (``CONFIG``, or ``--config CONFIG`` when not ``positional``) and
    ``--set``."""
    if positional:
        parser.add_argument("config", type=Path, help="experiment YAML (e.g. scenarios/ring.yaml)")
    else:
        parser.add_argument(
            "--config", type=Path, required=True, help="experiment YAML (e.g. scenarios/ring.yaml)"
        )
    add_set(parser)


def add_bench_output(parser: argparse.ArgumentParser) -> None:
    """Add what every ``flowsim bench`` kind has: ``--json`` and ``--results FOLDER``."""
    add_json(parser, "the figures")
    parser.add_argument(
        "--results", default="benchmarks/results", help="folder for the JSON result file"
    )


def dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command's handler; with ``--json``, only its JSON reaches stdout."""
    args.json_stream = sys.stdout
    if getattr(args, "json", False):
        # Only our JSON goes to stdout: libraries that print (libsumo, Ray) go to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            return int(args.handler(args))
    return int(args.handler(args))


def print_json(args: argparse.Namespace, value: Any) -> None:
    """Print ``value`` as strict JSON (NaN as null) on the command's JSON stream."""
    print(jsonout.dumps(value), file=args.json_stream)


def print_table(title: str, rows: dict[str, Any]) -> None:
    """Print ``rows`` as a two-column metric / value table on stdout."""
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in rows.items():
        if isinstance(value, float):
            shown = f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"
        elif isinstance(value, dict):
            shown = ", ".join(
                f"{k}: {v:,.0f}" if isinstance(v, float) else f"{k}: {v}" for k, v in value.items()
            )
        else:
            shown = str(value)
        table.add_row(key, shown)
    Console().print(table)


def print_files(files: dict[str, str]) -> None:
    """Print ``name: path`` lines for the files a command wrote."""
    for name, path in files.items():
        Console().print(f"{name}: {escape(path)}", highlight=False, soft_wrap=True)


def results_folder(args: argparse.Namespace) -> Path:
    """The ``--results`` folder, refused up front if it is a file (before minutes of work)."""
    results = Path(args.results)
    if results.exists() and not results.is_dir():
        raise ConfigError(f"--results {results} is a file; give a folder for the JSON results.")
    return results


def report_bench(
    args: argparse.Namespace,
    result: dict[str, Any],
    results: Path,
    show: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """Write a benchmark's JSON under ``results`` and show it: JSON, ``show(result)``, or a
    table of its figures."""
    from flowsim.bench.results import write_result

    try:
        result["written_to"] = str(write_result(result, results))
    except OSError as error:
        print_json(args, result)  # the figures are not lost with the file
        raise FlowsimError(f"could not write the result under {results}: {error}") from None
    if args.json:
        print_json(args, result)
    elif show is not None:
        show(result)
    else:
        title = f"bench {result['benchmark']} {result['config']}"
        print_table(title, {k: v for k, v in result.items() if k != "machine"})
    return 0
