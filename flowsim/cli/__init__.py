"""The ``flowsim`` command: a thin layer over the library.

Exit codes: 0 success, 1 a runtime failure (e.g. SUMO crashed), 2 bad input (config, flags).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flowsim import jsonout
from flowsim.errors import ConfigError, FlowsimError

_stderr = Console(stderr=True)


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors with exit code 2 and a one-line fix."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise SystemExit(_fail(f"{message} (see `{self.prog} --help`)", code=2))


def _fail(message: str, code: int) -> int:
    # User text (paths, values, SUMO output) may contain [brackets]: never read it as markup.
    _stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return code


def _add_set(parser: argparse.ArgumentParser, help_text: str) -> None:
    """The repeatable ``--set KEY=VALUE`` config override."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=help_text,
    )


def _add_config_args(parser: argparse.ArgumentParser, positional: bool = True) -> None:
    if positional:
        parser.add_argument("config", type=Path, help="experiment YAML (e.g. scenarios/ring.yaml)")
    else:
        parser.add_argument(
            "--config", type=Path, required=True, help="experiment YAML (e.g. scenarios/ring.yaml)"
        )
    _add_set(
        parser,
        "override a config value, e.g. --set env.horizon=1000 (repeatable)",
    )


def _print_table(title: str, rows: dict[str, Any]) -> None:
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


def _cmd_simulate(args: argparse.Namespace) -> int:
    from flowsim.config import load_config
    from flowsim.evaluation.simulate import simulate

    if args.steps < 1:
        raise ConfigError(f"--steps {args.steps}: give a positive number of steps, e.g. 3000.")
    config = load_config(args.config, args.overrides)
    result = simulate(config, args.steps, show_progress=not args.json)
    if args.json:
        print(jsonout.dumps(result), file=args.json_stream)
    else:
        _print_table(f"simulate {config.name}", result)
    return 0


def _results_folder(args: argparse.Namespace) -> Path:
    """The ``--results`` folder, refused up front if it is a file (before minutes of work)."""
    results = Path(args.results)
    if results.exists() and not results.is_dir():
        raise ConfigError(f"--results {results} is a file; give a folder for the JSON results.")
    return results


def _report_bench(
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
        print(jsonout.dumps(result), file=args.json_stream)
        raise FlowsimError(f"could not write the result under {results}: {error}") from None
    if args.json:
        print(jsonout.dumps(result), file=args.json_stream)
    elif show is not None:
        show(result)
    else:
        title = f"bench {result['benchmark']} {result['config']}"
        _print_table(title, {k: v for k, v in result.items() if k != "machine"})
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from flowsim.bench.env import bench_env
    from flowsim.config import load_config

    if args.steps < 100:
        raise ConfigError(f"--steps {args.steps}: use at least 100 steps, e.g. 5000.")
    results = _results_folder(args)
    config = load_config(args.config, args.overrides)
    with _stderr.status("benchmarking") as status:
        result = bench_env(config, steps=args.steps, report=lambda phase: status.update(phase))
    return _report_bench(args, result, results)


def _cmd_bench_sampler(args: argparse.Namespace) -> int:
    from flowsim.bench.sampler import bench_sampler
    from flowsim.config import load_config

    results = _results_folder(args)
    if args.steps < 100:
        raise ConfigError(f"--steps {args.steps}: use at least 100 steps per runner, e.g. 2000.")
    if args.trajectories < 1:
        raise ConfigError(f"--trajectories {args.trajectories}: give at least 1, e.g. 144.")
    config = load_config(args.config, args.overrides)
    with _stderr.status("benchmarking the sampler") as status:
        result = bench_sampler(
            config,
            steps=args.steps,
            trajectories=args.trajectories,
            report=lambda phase: status.update(phase),
        )
    return _report_bench(args, result, results)


def _cmd_bench_train(args: argparse.Namespace) -> int:
    from flowsim.bench.results import write_result
    from flowsim.bench.train import bench_train
    from flowsim.config import load_config
    from flowsim.runs.training import TRAINERS

    results = _results_folder(args)
    algos = tuple(a.strip() for a in args.algos.split(",") if a.strip())
    unknown = [a for a in algos if a not in TRAINERS]
    if not algos or unknown:
        raise ConfigError(f"--algos {args.algos}: choose from {', '.join(TRAINERS)}, e.g. ppo,es.")
    if args.budget_s <= 0 or args.eval_every < 1 or args.episodes < 1:
        raise ConfigError("--budget-s, --eval-every and --episodes must be positive.")
    config = load_config(args.config, args.overrides)
    with _stderr.status("benchmarking training") as status:
        result = bench_train(
            config,
            algos=algos,
            budget_s=args.budget_s,
            eval_every=args.eval_every,
            episodes=args.episodes,
            final_episodes=args.final_episodes,
            out=args.out,
            report=lambda phase: status.update(phase),
        )
    try:
        result["written_to"] = str(write_result(result, results))
    except OSError as error:
        print(jsonout.dumps(result), file=args.json_stream)
        raise FlowsimError(f"could not write the result under {results}: {error}") from None
    if args.json:
        print(jsonout.dumps(result), file=args.json_stream)
        return 0
    table = Table(title=f"bench train {config.name}", header_style="bold")
    for column in ("driver", "speed / equilibrium", "speed std", "collisions", "to target"):
        table.add_column(column, justify="left" if column == "driver" else "right")
    for name, entry in result["baselines"].items():
        table.add_row(
            name,
            f"{entry['speed_ratio']:.3f}",
            f"{entry['speed_std']:.2f}",
            str(entry["collisions"]),
            "",
        )
    for name, entry in result["algos"].items():
        final = entry["final"]
        to_target = entry["wall_s_to_target"]
        table.add_row(
            name,
            f"{final['speed_ratio']:.3f}",
            f"{final['speed_std']:.2f}",
            str(final["collisions"]),
            "not reached"
            if to_target is None
            else f"{to_target:.0f} s, {entry['env_steps_to_target']:,} steps",
        )
    Console().print(table)
    _stderr.print(f"written to {result['written_to']}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from flowsim.config import load_config
    from flowsim.runs.training import train

    if args.resume is None and args.config is None:
        raise ConfigError("flowsim train needs a CONFIG.yaml, or --resume RUN_DIR.")
    if args.resume is not None:
        run = train(None, resume=args.resume, show_progress=True)
    else:
        config = load_config(args.config, args.overrides)
        run = train(config, out=args.out, show_progress=True)
    last = run.rows[-1] if run.rows else {}
    _print_table(
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


def _cmd_tune(args: argparse.Namespace) -> int:
    from flowsim.config import load_config
    from flowsim.tune.run import resume_tune, run_tune, show

    if (args.resume is None) == (args.config is None):
        raise ConfigError("flowsim tune needs a CONFIG.yaml with a tune: section, or --resume DIR.")
    if args.resume is not None and args.overrides:
        raise ConfigError("--set applies to a new tuning run; --resume continues it as it was.")
    if args.resume is not None:
        run = resume_tune(
            args.resume, address=args.address, show_progress=not args.json, plots=not args.no_plots
        )
    else:
        address = [f"sampler.address={args.address}"] if args.address else []
        config = load_config(args.config, [*args.overrides, *address])
        run = run_tune(config, out=args.out, show_progress=not args.json, plots=not args.no_plots)
    if args.json:
        print(jsonout.dumps(run.summary), file=args.json_stream)
    else:
        show(run)
    if run.summary["interrupted"]:
        return 130
    if run.best is None:
        raise FlowsimError(f"no trial reported {run.summary['metric']}; see {run.directory}.")
    return 0


def _cmd_bench_tune(args: argparse.Namespace) -> int:
    from flowsim.bench.tune import bench_tune
    from flowsim.config import load_config

    results = _results_folder(args)
    if args.trials < 1 or args.repeats < 1 or (args.iterations is not None and args.iterations < 1):
        raise ConfigError("--trials, --repeats and --iterations must be positive, e.g. --trials 4.")
    config = load_config(args.config, args.overrides)
    with _stderr.status("benchmarking tuning") as status:
        result = bench_tune(
            config,
            iterations=args.iterations,
            trials=args.trials,
            out=args.out,
            repeats=args.repeats,
            report=lambda phase: status.update(phase),
        )
    return _report_bench(args, result, results)


def _cmd_bench_faults(args: argparse.Namespace) -> int:
    from flowsim.bench.faults import bench_faults
    from flowsim.config import load_config

    results = _results_folder(args)
    if args.soak_s <= 0 or args.fuzz_examples < 1:
        raise ConfigError("--soak-s and --fuzz-examples must be positive, e.g. --soak-s 60.")
    config = load_config(args.config, args.overrides)
    with _stderr.status("injecting faults") as status:
        result = bench_faults(
            config,
            out=args.out,
            soak_s=args.soak_s,
            fuzz_examples=args.fuzz_examples,
            seed=args.seed,
            report=lambda phase: status.update(phase),
        )
    return _report_bench(args, result, results, show=_show_faults)


def _show_faults(result: dict[str, Any]) -> None:
    """``bench faults`` as a table: each fault kind, then the soak and the config fuzzing."""
    table = Table(title="bench faults", header_style="bold")
    for column in ("fault", "injected", "recovered", "batches lost", "iterations lost", "logged"):
        table.add_column(column, justify="left" if column == "fault" else "right")
    labels = {
        "trainer_killed_and_resumed": "trainer SIGKILL + resume",
        "disk_full_at_checkpoint": "disk full (checkpoint)",
        "checkpoint_truncated": "checkpoint truncated",
        "sumo_killed_in_training": "SUMO killed (training)",
        "soak_sumo_killed": "SUMO killed (soak)",
        "soak_runner_killed": "runner killed (soak)",
    }
    for kind, row in result["faults"].items():
        cells = [row.get(key) for key in ("batches_lost", "iterations_lost", "events_logged")]
        table.add_row(
            labels.get(kind, kind),
            str(row["injected"]),
            str(row["recovered"]),
            *("-" if cell is None else str(cell) for cell in cells),
        )
    Console().print(table)
    fuzz, soaked = result["config_fuzz"], result["soak"]
    Console().print(
        f"soak: {soaked['batches_delivered']} full batches in {soaked['duration_s']:.0f} s, "
        f"{soaked['batches_lost']} lost, {soaked['injected_total']} faults survived\n"
        f"config fuzz: {fuzz['examples']} files, {fuzz['loaded']} loaded, "
        f"{fuzz['refused']} refused with a message, {fuzz['tracebacks']} tracebacks\n"
        f"written to {result['written_to']}"
    )


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from flowsim.evaluation.evaluate import evaluate_run

    if args.episodes < 1:
        raise ConfigError(f"--episodes {args.episodes}: give at least 1 episode, e.g. 5.")
    baselines = tuple(b for b in args.baselines.split(",") if b) if args.baselines else ()
    with _stderr.status("evaluating") as status:
        result = evaluate_run(
            args.run_dir,
            episodes=args.episodes,
            seed=args.seed,
            checkpoint=args.checkpoint,
            overrides=args.overrides,
            baselines=baselines,
            progress=lambda name: status.update(f"evaluating {name}"),
        )
    if args.json:
        print(jsonout.dumps(_flat_evaluation(result)), file=args.json_stream)
        return 0
    # Metrics as rows and drivers as columns: stays readable on an 80-column terminal.
    title = f"evaluate {result['run_dir']} ({result['checkpoint']})"
    table = Table(title=title, header_style="bold")
    metrics = ("mean_return", "mean_speed", "speed_std", "min_speed", "speed_ratio", "collisions")
    entries = {"policy": result["policy"], **result["baselines"]}
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


def _cmd_replay(args: argparse.Namespace) -> int:
    from flowsim.viz.replay import (
        default_driver,
        default_replay_folder,
        display_problem,
        load_source,
        replay,
    )

    if args.delay < 0:
        raise ConfigError(f"--delay {args.delay}: give milliseconds per step, 0 or more.")
    width, _, height = args.frame_size.partition("x")
    if not (width.isdigit() and height.isdigit() and min(int(width), int(height)) >= 16):
        raise ConfigError(
            f"--frame-size {args.frame_size}: give WIDTHxHEIGHT pixels, e.g. 800x800."
        )
    if args.gui and display_problem():  # before loading a checkpoint: the fix is in the shell
        raise ConfigError(str(display_problem()))
    source = load_source(args.target, args.checkpoint, args.overrides)
    driver = args.driver or default_driver(source)
    out = args.out or default_replay_folder(source, driver)
    summary = replay(
        source,
        out,
        driver=driver,
        seed=args.seed,
        steps=args.steps,
        gui=args.gui,
        frames=args.frames,
        frame_every=args.frame_every,
        frame_size=(int(width), int(height)),
        gif=args.gif,
        fcd=args.fcd,
        delay_ms=args.delay,
        show_progress=not args.json,
    )
    summary["written_to"] = str(Path(out) / "replay.json")
    if args.json:
        print(jsonout.dumps(summary), file=args.json_stream)
        return 0
    keys = ("driver", "seed", "steps", "mean_speed", "speed_std", "min_speed", "speed_ratio")
    rows: dict[str, Any] = {k: summary[k] for k in (*keys, "collisions") if k in summary}
    files = summary["files"]
    for name in ("fcd", "emission", "gif"):
        if name in files:
            rows[name] = str(Path(out) / files[name])  # stored relative to OUT where inside it
    if "frames" in files:
        rows["frames"] = f"{len(files['frames'])} PNG in {args.frames or Path(out) / 'frames'}"
    rows["summary"] = summary["written_to"]
    _print_table(f"replay {source.origin}", rows)
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from flowsim.tune.results import is_tune_dir
    from flowsim.viz.plot import plot

    if is_tune_dir(args.target):
        return _cmd_plot_tune(args)
    with _stderr.status("plotting") as status:
        result = plot(
            args.target,
            args.out,
            driver=args.driver,
            seed=args.seed,
            steps=args.steps,
            checkpoint=args.checkpoint,
            overrides=args.overrides,
            report=lambda phase: status.update(phase),
        )
    rows: dict[str, Any] = {}
    for name, value in result["wave_strength"].items():
        rows[f"wave strength: {name} (m²/s²)"] = value
    for name, value in result["mean_speed"].items():
        rows[f"mean speed: {name} (m/s)"] = value
    _print_table(f"plot {args.target}", rows)
    for name, path in result["files"].items():
        Console().print(f"{name}: {escape(path)}", highlight=False, soft_wrap=True)
    return 0


def _cmd_plot_tune(args: argparse.Namespace) -> int:
    """``flowsim plot TUNE_DIR``: parallel coordinates and the trials' learning curves."""
    from flowsim.viz.tune import plot_tune

    if args.driver or args.steps is not None or args.overrides:
        raise ConfigError(
            f"{args.target} is a tuning directory: --driver, --steps and --set apply to run "
            "directories (e.g. TUNE_DIR/trial-<id>/run)."
        )
    with _stderr.status("plotting the trials"):
        result = plot_tune(args.target, args.out)
    _print_table(
        f"plot {args.target}",
        {"trials": result["trials"], "best trial": result["best_trial"] or "none"},
    )
    for name, path in result["files"].items():
        Console().print(f"{name}: {escape(path)}", highlight=False, soft_wrap=True)
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from flowsim.config import config_schema

    print(jsonout.dumps(config_schema()))
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from flowsim.config import dump_config, load_config

    config = load_config(args.config, args.overrides)
    print(dump_config(config, effective=True), end="")
    return 0


def _cmd_envs(args: argparse.Namespace) -> int:
    from flowsim.envs import ENV_IDS

    table = Table(title="registered envs", header_style="bold")
    table.add_column("id")
    table.add_column("class")
    table.add_column("preset")
    for env_id, (entry_point, preset) in ENV_IDS.items():
        table.add_row(env_id, entry_point, preset)
    Console().print(table)
    return 0


def _cmd_scenarios(args: argparse.Namespace) -> int:
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


def _cmd_scenarios_build(args: argparse.Namespace) -> int:
    from flowsim.config import load_config
    from flowsim.scenarios.build import build_scenario

    config = load_config(args.config, args.overrides)
    summary = build_scenario(config, args.out, seed=args.seed)
    if args.json:
        print(jsonout.dumps(summary), file=args.json_stream)
        return 0
    rows = {k: v for k, v in summary.items() if k != "additional_files" or v}
    _print_table(f"scenarios build {config.name}", rows)
    _stderr.print(f"run it: sumo-gui -c {escape(summary['sumocfg'])}", highlight=False)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``flowsim`` command."""
    parser = _Parser(prog="flowsim", description="Mixed-autonomy traffic RL on SUMO.")
    from flowsim.hierarchy.cli import add_bench_parser as add_bench_imitate_parser
    from flowsim.hierarchy.cli import add_imitate_parser

    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    simulate = commands.add_parser("simulate", help="run a scenario with its drivers, no learning")
    _add_config_args(simulate)
    simulate.add_argument(
        "--steps", type=int, default=3000, help="steps to simulate (default 3000)"
    )
    simulate.add_argument("--json", action="store_true", help="print the summary as JSON")
    simulate.set_defaults(handler=_cmd_simulate)

    bench = commands.add_parser("bench", help="speed benchmarks")
    bench_kinds = bench.add_subparsers(dest="kind", required=True, parser_class=_Parser)
    bench_env = bench_kinds.add_parser("env", help="raw sumo vs the env on libsumo and TraCI")
    _add_config_args(bench_env, positional=False)
    bench_env.add_argument("--steps", type=int, default=5000, help="env steps timed (libsumo)")
    bench_env.add_argument("--json", action="store_true", help="print the figures as JSON")
    bench_env.add_argument(
        "--results", default="benchmarks/results", help="folder for the JSON result file"
    )
    bench_env.set_defaults(handler=_cmd_bench)
    bench_sampler = bench_kinds.add_parser(
        "sampler", help="sampler throughput: in-process, 1 Ray worker, all cores"
    )
    _add_config_args(bench_sampler, positional=False)
    bench_sampler.add_argument("--steps", type=int, default=2000, help="steps per runner per call")
    bench_sampler.add_argument(
        "--trajectories", type=int, default=144, help="episodes timed on all cores (default 144)"
    )
    bench_sampler.add_argument("--json", action="store_true", help="print the figures as JSON")
    bench_sampler.add_argument(
        "--results", default="benchmarks/results", help="folder for the JSON result file"
    )
    bench_sampler.set_defaults(handler=_cmd_bench_sampler)

    bench_train = bench_kinds.add_parser(
        "train", help="time to dissolve the ring's wave: PPO, TRPO and ES against baselines"
    )
    _add_config_args(bench_train, positional=False)
    bench_train.add_argument("--algos", default="ppo,trpo,es", help="comma-separated trainers")
    bench_train.add_argument(
        "--budget-s", type=float, default=900.0, help="training seconds per algorithm"
    )
    bench_train.add_argument(
        "--eval-every", type=int, default=5, help="iterations between evaluations"
    )
    bench_train.add_argument("--episodes", type=int, default=3, help="episodes per evaluation")
    bench_train.add_argument(
        "--final-episodes", type=int, default=5, help="episodes of the final evaluation"
    )
    bench_train.add_argument(
        "--out", type=Path, default=Path("runs/bench"), help="folder for the run directories"
    )
    bench_train.add_argument("--json", action="store_true", help="print the figures as JSON")
    bench_train.add_argument(
        "--results", default="benchmarks/results", help="folder for the JSON result file"
    )
    bench_train.set_defaults(handler=_cmd_bench_train)

    bench_tune = bench_kinds.add_parser(
        "tune", help="the Tune layer's overhead per trial against flowsim train, trials per hour"
    )
    _add_config_args(bench_tune, positional=False)
    bench_tune.add_argument(
        "--iterations", type=int, help="iterations per trial (default: the config's)"
    )
    bench_tune.add_argument(
        "--trials", type=int, default=4, help="trials of the throughput run (default 4)"
    )
    bench_tune.add_argument(
        "--repeats", type=int, default=3, help="alternating train / one-trial runs (median)"
    )
    bench_tune.add_argument(
        "--out", type=Path, default=Path("runs/bench"), help="folder for the runs it makes"
    )
    bench_tune.add_argument("--json", action="store_true", help="print the figures as JSON")
    bench_tune.add_argument(
        "--results", default="benchmarks/results", help="folder for the JSON result file"
    )
    bench_tune.set_defaults(handler=_cmd_bench_tune)
    add_bench_imitate_parser(bench_kinds)
    bench_faults = bench_kinds.add_parser(
        "faults", help="inject every kind of fault; count recoveries and anything lost"
    )
    _add_config_args(bench_faults, positional=False)
    bench_faults.add_argument(
        "--soak-s", type=float, default=60.0, help="seconds of sampling under random faults"
    )
    bench_faults.add_argument(
        "--fuzz-examples", type=int, default=500, help="fuzzed config files loaded"
    )
    bench_faults.add_argument("--seed", type=int, default=0, help="seed of faults and fuzzing")
    bench_faults.add_argument(
        "--out", type=Path, default=Path("runs/bench"), help="folder for the runs it makes"
    )
    bench_faults.add_argument("--json", action="store_true", help="print the figures as JSON")
    bench_faults.add_argument(
        "--results", default="benchmarks/results", help="folder for the JSON result file"
    )
    bench_faults.set_defaults(handler=_cmd_bench_faults)

    train = commands.add_parser("train", help="train a policy (PPO, TRPO or ES)")
    train.add_argument("config", type=Path, nargs="?", help="experiment YAML")
    _add_set(
        train,
        "override a config value, e.g. --set train.lr=0.001 (repeatable)",
    )
    train.add_argument("--out", type=Path, default=Path("runs"), help="folder for run directories")
    train.add_argument("--resume", type=Path, help="continue the run in this directory")
    train.set_defaults(handler=_cmd_train)
    add_imitate_parser(commands)

    tune = commands.add_parser(
        "tune", help="search hyper-parameters on Ray Tune (the YAML's tune: section)"
    )
    tune.add_argument("config", type=Path, nargs="?", help="experiment YAML with a tune: section")
    _add_set(tune, "override a config value, e.g. --set tune.num_samples=8 (repeatable)")
    tune.add_argument(
        "--out", type=Path, default=Path("runs"), help="folder for the tuning directory"
    )
    tune.add_argument(
        "--resume", type=Path, metavar="TUNE_DIR", help="continue an interrupted tuning run"
    )
    tune.add_argument("--address", help="Ray cluster to run on: auto, host:port or ray://host:port")
    tune.add_argument("--no-plots", action="store_true", help="skip the plots at the end")
    tune.add_argument("--json", action="store_true", help="print the summary as JSON")
    tune.set_defaults(handler=_cmd_tune)

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
        help="comma-separated: human, pi_saturation, follower_stopper ('' for none)",
    )
    _add_set(
        evaluate,
        "override the run's config for evaluation, e.g. --set env.horizon=6000",
    )
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.set_defaults(handler=_cmd_evaluate)

    replay = commands.add_parser(
        "replay",
        help="replay one episode: sumo-gui, screenshots and a GIF, or FCD/emission outputs",
    )
    replay.add_argument(
        "target", type=Path, help="a run directory (its policy) or an experiment YAML (no policy)"
    )
    replay.add_argument("--gui", action="store_true", help="watch it in sumo-gui (needs a display)")
    replay.add_argument("--frames", type=Path, metavar="DIR", help="save sumo-gui screenshots here")
    replay.add_argument(
        "--frame-every", type=int, default=10, metavar="K", help="SUMO steps between screenshots"
    )
    replay.add_argument(
        "--frame-size", default="800x800", metavar="WxH", help="screenshot size in pixels"
    )
    replay.add_argument("--gif", type=Path, metavar="FILE", help="assemble the screenshots here")
    replay.add_argument(
        "--fcd", type=Path, metavar="FILE", help="FCD output file (default OUT/fcd.xml headless)"
    )
    replay.add_argument(
        "--out", type=Path, help="folder for replay.json and outputs (default RUN_DIR/replay-*)"
    )
    replay.add_argument(
        "--steps", type=int, help="SUMO steps after the warm-up (default: the config's episode)"
    )
    replay.add_argument(
        "--checkpoint", default="latest", help="latest, best or an iteration number of the run"
    )
    replay.add_argument("--seed", type=int, default=1000, help="episode seed (default 1000)")
    replay.add_argument(
        "--driver",
        help="who drives the AVs: policy (a run's default), human (a config's default), "
        "pi_saturation, follower_stopper",
    )
    replay.add_argument(
        "--delay", type=float, default=100.0, metavar="MS", help="sumo-gui delay per step (ms)"
    )
    _add_set(
        replay,
        "override the config, e.g. --set env.warmup_steps=100 (repeatable)",
    )
    replay.add_argument("--json", action="store_true", help="print the summary as JSON")
    replay.set_defaults(handler=_cmd_replay)

    plot = commands.add_parser(
        "plot", help="learning curves and time-space diagrams (humans vs the trained AV)"
    )
    plot.add_argument(
        "target",
        type=Path,
        help="a run directory, a tuning directory (flowsim tune) or an experiment YAML",
    )
    plot.add_argument("--out", type=Path, help="folder for the PNGs (default RUN_DIR/plots)")
    plot.add_argument(
        "--driver",
        help="right panel: policy (a run's default), pi_saturation (a config's default), "
        "follower_stopper",
    )
    plot.add_argument("--seed", type=int, default=1000, help="episode seed (default 1000)")
    plot.add_argument(
        "--steps", type=int, help="SUMO steps after the warm-up (default: the config's episode)"
    )
    plot.add_argument(
        "--checkpoint", default="latest", help="latest, best or an iteration number of the run"
    )
    _add_set(
        plot,
        "override the config, e.g. --set env.warmup_steps=100 (repeatable)",
    )
    plot.set_defaults(handler=_cmd_plot)

    schema = commands.add_parser("schema", help="print the JSON Schema of experiment YAML files")
    schema.set_defaults(handler=_cmd_schema)

    check = commands.add_parser("check", help="validate a config and print it fully resolved")
    _add_config_args(check)
    check.set_defaults(handler=_cmd_check)

    scenarios = commands.add_parser(
        "scenarios", help="list scenario types and shipped YAMLs (the default), or build one"
    )
    scenarios.add_argument("--folder", default="scenarios", help="folder of experiment YAMLs")
    scenarios.set_defaults(handler=_cmd_scenarios)
    scenario_actions = scenarios.add_subparsers(dest="action", parser_class=_Parser)
    scenarios_list = scenario_actions.add_parser(
        "list", help="list scenario types and shipped YAMLs (as plain `flowsim scenarios`)"
    )
    # SUPPRESS: `flowsim scenarios --folder X list` keeps X instead of the default.
    scenarios_list.add_argument(
        "--folder", default=argparse.SUPPRESS, help="folder of experiment YAMLs (default scenarios)"
    )
    scenarios_list.set_defaults(handler=_cmd_scenarios)
    scenarios_build = scenario_actions.add_parser(
        "build", help="write a scenario's .net.xml, .rou.xml and .sumocfg for sumo-gui or netedit"
    )
    _add_config_args(scenarios_build)
    scenarios_build.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="folder for the SUMO files"
    )
    scenarios_build.add_argument(
        "--seed",
        type=int,
        help="episode seed: ring length, placement, SUMO seed (default: sim.seed)",
    )
    scenarios_build.add_argument("--json", action="store_true", help="print the summary as JSON")
    scenarios_build.set_defaults(handler=_cmd_scenarios_build)

    envs = commands.add_parser("envs", help="list the registered Gymnasium env ids")
    envs.set_defaults(handler=_cmd_envs)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``flowsim`` command; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.json_stream = sys.stdout
        if getattr(args, "json", False):
            # Only our JSON goes to stdout: libraries that print (libsumo, Ray) go to stderr.
            with contextlib.redirect_stdout(sys.stderr):
                return int(args.handler(args))
        return int(args.handler(args))
    except SystemExit as exit_:
        return int(exit_.code or 0) if isinstance(exit_.code, int) else 2
    except ConfigError as error:
        return _fail(str(error), code=2)
    except FlowsimError as error:
        return _fail(str(error), code=1)
    except KeyboardInterrupt:
        return _fail("interrupted", code=130)
    except BrokenPipeError:  # e.g. `flowsim schema | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
