"""Commands about an experiment YAML itself: ``simulate``, ``schema``, ``check``, ``scenarios``
(list, build) and ``envs``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flowsim import jsonout
from flowsim.cli.common import add_config, add_json, print_json, print_table, stderr
from flowsim.errors import ConfigError


def add_simulate_parser(commands: Any) -> None:
    """Add ``simulate CONFIG``: the scenario with its drivers, no learning."""
    simulate = commands.add_parser("simulate", help="run a scenario with its drivers, no learning")
    add_config(simulate)
    simulate.add_argument(
        "--steps", type=int, default=3000, help="steps to simulate (default 3000)"
    )
    simulate.add_argument(
        "--signals",
        metavar="NAME",
        help="drive the traffic lights by a no-training rule: program (the network's own), "
        "fixed_cycle, max_pressure or greedy; adds RESCO's trip metrics (avg_delay ...)",
    )
    add_json(simulate)
    simulate.set_defaults(handler=cmd_simulate)


def add_parser(commands: Any) -> None:
    """Add ``schema``, ``check``, ``scenarios`` (``list``, ``build``) and ``envs``."""
    schema = commands.add_parser("schema", help="print the JSON Schema of experiment YAML files")
    schema.set_defaults(handler=cmd_schema)

    check = commands.add_parser("check", help="validate a config and print it fully resolved")
    add_config(check)
    check.set_defaults(handler=cmd_check)

    scenarios = commands.add_parser(
        "scenarios", help="list scenario types and shipped YAMLs (the default), or build one"
    )
    scenarios.add_argument("--folder", default="scenarios", help="folder of experiment YAMLs")
    scenarios.set_defaults(handler=cmd_scenarios)
    actions = scenarios.add_subparsers(dest="action")
    scenarios_list = actions.add_parser(
        "list", help="list scenario types and shipped YAMLs (as plain `flowsim scenarios`)"
    )
    # SUPPRESS: `flowsim scenarios --folder X list` keeps X instead of the default.
    scenarios_list.add_argument(
        "--folder", default=argparse.SUPPRESS, help="folder of experiment YAMLs (default scenarios)"
    )
    scenarios_list.set_defaults(handler=cmd_scenarios)
    build = actions.add_parser(
        "build", help="write a scenario's .net.xml, .rou.xml and .sumocfg for sumo-gui or netedit"
    )
    add_config(build)
    build.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="folder for the SUMO files"
    )
    build.add_argument(
        "--seed",
        type=int,
        help="episode seed: ring length, placement, SUMO seed (default: sim.seed)",
    )
    add_json(build)
    build.set_defaults(handler=cmd_scenarios_build)

    envs = commands.add_parser("envs", help="list the registered Gymnasium env ids")
    envs.set_defaults(handler=cmd_envs)


def cmd_simulate(args: argparse.Namespace) -> int:
    """``flowsim simulate``: a summary table, or JSON."""
    from flowsim.config import load_config
    from flowsim.evaluation.simulate import simulate

    config = load_config(args.config, args.overrides)
    result = simulate(config, args.steps, show_progress=not args.json, signals=args.signals)
    if args.json:
        print_json(args, result)
    else:
        print_table(f"simulate {config.name}", result)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """``flowsim schema``: the JSON Schema of experiment YAML files on stdout."""
    from flowsim.config import config_schema

    print(jsonout.dumps(config_schema()))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """``flowsim check``: the config fully resolved, as YAML."""
    from flowsim.config import dump_config, load_config

    config = load_config(args.config, args.overrides)
    print(dump_config(config, effective=True), end="")
    return 0


def cmd_envs(args: argparse.Namespace) -> int:
    """``flowsim envs``: the registered Gymnasium env ids."""
    from flowsim.envs import ENV_IDS

    table = Table(title="registered envs", header_style="bold")
    table.add_column("id")
    table.add_column("class")
    table.add_column("preset")
    for env_id, (entry_point, preset) in ENV_IDS.items():
        table.add_row(env_id, entry_point, preset)
    Console().print(table)
    return 0


def cmd_scenarios(args: argparse.Namespace) -> int:
    """``flowsim scenarios [list]``: scenario types, then the YAMLs in ``--folder``."""
    from flowsim.config import load_config
    from flowsim.scenarios import SCENARIO_DESCRIPTIONS, SCENARIOS

    table = Table(title="scenario types", header_style="bold")
    table.add_column("scenario.type")
    table.add_column("generator")
    for name in SCENARIOS:
        table.add_row(name, SCENARIO_DESCRIPTIONS[name])
    Console().print(table)
    folder = Path(args.folder)
    files = sorted(folder.rglob("*.yaml")) if folder.is_dir() else []
    if files:
        shipped = Table(title=f"experiments in {folder}/", header_style="bold")
        shipped.add_column("file", no_wrap=True)
        for column in ("scenario", "vehicles", "env", "description"):
            shipped.add_column(column)
        for path in files:
            name = str(path.relative_to(folder))
            try:
                config = load_config(path)
            except ConfigError as error:
                reason = escape(str(error).splitlines()[-1])
                shipped.add_row(escape(name), "[red]invalid[/]", "", "", reason)
                continue
            groups = ", ".join(
                f"{g.count} {g.type} ({g.controller.type})" for g in config.vehicles if g.count
            )
            if config.inflows:
                per_hour = sum(i.rate for i in config.inflows if i.rate is not None)
                entering = f"{per_hour:g} veh/h" if per_hour else f"{len(config.inflows)} flows"
                groups = f"{groups} + inflows {entering}" if groups else f"inflows {entering}"
            scenario = config.scenario.type
            if config.env.type == "gym":  # no SUMO network: the vehicles section is unused
                scenario, groups = "-", f"Gymnasium {config.env.id}"
            cells = (name, scenario, groups, config.env.type, _yaml_summary(path))
            shipped.add_row(*(escape(cell) for cell in cells))
        Console().print(shipped)
    return 0


def _yaml_summary(path: Path) -> str:
    """The first sentence of a YAML file's leading comment, or ''."""
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = " ".join(lines)
    end = text.find(". ")
    sentence = text[: end + 1] if end >= 0 else text
    return sentence if len(sentence) <= 70 else sentence[:69].rstrip() + "…"


def cmd_scenarios_build(args: argparse.Namespace) -> int:
    """``flowsim scenarios build``: the SUMO files of one episode, for sumo-gui or netedit."""
    from flowsim.config import load_config
    from flowsim.scenarios.build import build_scenario

    config = load_config(args.config, args.overrides)
    summary = build_scenario(config, args.out, seed=args.seed)
    if args.json:
        print_json(args, summary)
        return 0
    rows = {k: v for k, v in summary.items() if k != "additional_files" or v}
    print_table(f"scenarios build {config.name}", rows)
    stderr.print(f"run it: sumo-gui -c {escape(summary['sumocfg'])}", highlight=False)
    return 0
