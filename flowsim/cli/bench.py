"""``flowsim bench``: env, sampler, train, resco, suite and faults here; ``bench tune`` and
``bench imitate`` come from their packages (``flowsim/tune/cli.py``, ``flowsim/hierarchy/cli.py``).

Every kind writes its JSON result under ``--results`` (:func:`report_bench`) and shows it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flowsim.cli.common import (
    add_bench_output,
    add_config,
    add_set,
    print_json,
    report_bench,
    results_folder,
    stderr,
)
from flowsim.errors import ConfigError
from flowsim.hierarchy.cli import add_bench_parser as add_bench_imitate_parser
from flowsim.tune.cli import add_bench_parser as add_bench_tune_parser


def add_parser(commands: Any) -> None:
    """Add ``bench KIND`` with its kinds."""
    bench = commands.add_parser("bench", help="speed benchmarks")
    kinds = bench.add_subparsers(dest="kind", required=True)

    env = kinds.add_parser(
        "env", help="raw sumo vs the env on libsumo and TraCI, or beside a peer env (--peer)"
    )
    add_config(env, positional=False)
    env.add_argument(
        "--steps",
        type=int,
        help="env steps timed on libsumo (default 5000); with --peer, decisions timed per "
        "repeat (default and at most one episode)",
    )
    env.add_argument(
        "--peer",
        choices=("sumo-rl",),
        help="time a peer's own env on the same files beside flowsim's signal env, random "
        "actions, runs interleaved",
    )
    env.add_argument("--repeats", type=int, default=3, help="with --peer: runs of each env")
    add_bench_output(env)
    env.set_defaults(handler=cmd_bench_env)

    sampler = kinds.add_parser(
        "sampler", help="sampler throughput: in-process, 1 Ray worker, all cores"
    )
    add_config(sampler, positional=False)
    sampler.add_argument("--steps", type=int, default=2000, help="steps per runner per call")
    sampler.add_argument(
        "--trajectories", type=int, default=144, help="episodes timed on all cores (default 144)"
    )
    sampler.add_argument(
        "--workers",
        type=int,
        default=None,
        help="Ray workers of the widest setting (default: one per core of this machine; on a "
        "cluster, with --set sampler.address=auto, as many as it has CPUs)",
    )
    sampler.add_argument(
        "--yaml-setting",
        action="store_true",
        help="time the YAML's own action interval and horizon (default: the seed's setting, "
        "an action every 0.1 s and 3,000-step trajectories after 750 warm-up steps; --set wins)",
    )
    add_bench_output(sampler)
    sampler.set_defaults(handler=cmd_bench_sampler)

    train = kinds.add_parser(
        "train", help="time to dissolve the ring's wave: PPO, TRPO and ES against baselines"
    )
    add_config(train, positional=False)
    train.add_argument("--algos", default="ppo,trpo,es", help="comma-separated trainers")
    train.add_argument(
        "--budget-s", type=float, default=900.0, help="training seconds per algorithm"
    )
    train.add_argument("--eval-every", type=int, default=5, help="iterations between evaluations")
    train.add_argument("--episodes", type=int, default=3, help="episodes per evaluation")
    train.add_argument(
        "--final-episodes", type=int, default=5, help="episodes of the final evaluation"
    )
    train.add_argument(
        "--out", type=Path, default=Path("runs/bench"), help="folder for the run directories"
    )
    add_bench_output(train)
    train.set_defaults(handler=cmd_bench_train)

    resco = kinds.add_parser(
        "resco", help="signal baselines on RESCO's maps next to RESCO's published avg_delay"
    )
    resco.add_argument(
        "--maps", default="all", help="comma-separated maps (default all eight), e.g. cologne1"
    )
    resco.add_argument(
        "--baselines",
        default="program,greedy,max_pressure",
        help="comma-separated baselines (program = RESCO's fixed time)",
    )
    resco.add_argument("--episodes", type=int, default=1, help="episodes per map and baseline")
    resco.add_argument(
        "--folder", type=Path, default=Path("scenarios/resco"), help="folder of the maps' YAMLs"
    )
    add_set(resco, "override a value in every map's config, e.g. --set env.horizon=30")
    add_bench_output(resco)
    resco.set_defaults(handler=cmd_bench_resco)

    suite = kinds.add_parser(
        "suite",
        help="a published benchmark table trained and evaluated here (flow: Flow's, resco: "
        "RESCO's maps)",
    )
    suite.add_argument(
        "table",
        choices=("flow", "resco"),
        help="flow: Flow's CoRL 2018 table; resco: RESCO's eight maps",
    )
    suite.add_argument(
        "--rows",
        default="all",
        help="comma-separated rows (default all: Flow's eleven; RESCO's eight and flowgrid, "
        "Flow's grid with one agent per light), e.g. grid0",
    )
    suite.add_argument(
        "--budget-min", type=float, help="minutes of training per row (flow 30, resco 60)"
    )
    suite.add_argument(
        "--episodes", type=int, help="greedy episodes per policy and baseline (flow 40, resco 3)"
    )
    suite.add_argument("--seed", type=int, default=1000, help="seed of the first episode")
    suite.add_argument(
        "--folder",
        type=Path,
        help="folder of the rows (scenarios/benchmarks, scenarios/resco)",
    )
    suite.add_argument(
        "--out", type=Path, help="folder of the training runs (default runs/suite-TABLE)"
    )
    suite.add_argument(
        "--fresh", action="store_true", help="measure and train every row again from scratch"
    )
    add_set(suite, "override a value in every row's config, e.g. --set sampler.num_workers=1")
    add_bench_output(suite)
    suite.set_defaults(handler=cmd_bench_suite)

    add_bench_tune_parser(kinds)
    add_bench_imitate_parser(kinds)

    faults = kinds.add_parser(
        "faults", help="inject every kind of fault; count recoveries and anything lost"
    )
    add_config(faults, positional=False)
    faults.add_argument(
        "--soak-s", type=float, default=60.0, help="seconds of sampling under random faults"
    )
    faults.add_argument("--fuzz-examples", type=int, default=500, help="fuzzed config files loaded")
    faults.add_argument("--seed", type=int, default=0, help="seed of faults and fuzzing")
    faults.add_argument(
        "--out", type=Path, default=Path("runs/bench"), help="folder for the runs it makes"
    )
    add_bench_output(faults)
    faults.set_defaults(handler=cmd_bench_faults)


def cmd_bench_env(args: argparse.Namespace) -> int:
    """``flowsim bench env``."""
    from flowsim.bench.env import bench_env
    from flowsim.config import load_config

    if args.peer is not None:
        return _bench_env_peer(args)
    steps = 5000 if args.steps is None else args.steps
    if steps < 100:
        raise ConfigError(f"--steps {steps}: use at least 100 steps, e.g. 5000.")
    results = results_folder(args)
    config = load_config(args.config, args.overrides)
    with stderr.status("benchmarking") as status:
        result = bench_env(config, steps=steps, report=lambda phase: status.update(phase))
    return report_bench(args, result, results)


def _bench_env_peer(args: argparse.Namespace) -> int:
    """``flowsim bench env --peer sumo-rl``: both envs' decisions/s, a table or JSON."""
    from flowsim.bench.env import bench_env_peer, require_sumo_rl
    from flowsim.config import load_config

    if args.steps is not None and args.steps < 10:
        raise ConfigError(f"--steps {args.steps}: time at least 10 decisions, e.g. 720.")
    if args.repeats < 1:
        raise ConfigError(f"--repeats {args.repeats}: give at least 1, e.g. 3.")
    require_sumo_rl(f"--peer {args.peer}")
    results = results_folder(args)
    config = load_config(args.config, args.overrides)
    with stderr.status(f"flowsim beside {args.peer}") as status:
        result = bench_env_peer(
            config,
            peer=args.peer,
            decisions=args.steps,
            repeats=args.repeats,
            report=lambda phase: status.update(phase),
        )
    return report_bench(args, result, results, show=_show_peer)


def _show_peer(result: dict[str, Any]) -> None:
    """``bench env --peer`` as a table: each env's median decisions/s and its spread."""
    table = Table(
        title=f"bench env {result['config']} beside {result['peer']}",
        caption=f"{result['signals']} signal(s), a decision every {result['decision_s']} s, "
        "random actions",
        header_style="bold",
    )
    for column in ("env", "decisions/s (median)", "min - max", "runs"):
        table.add_column(column, justify="left" if column == "env" else "right")
    for who, rates in result["decisions_per_s"].items():
        table.add_row(
            who,
            f"{result['median_decisions_per_s'][who]:,.0f}",
            f"{min(rates):,.0f} - {max(rates):,.0f}",
            f"{len(rates)} x {result['decisions']}",
        )
    Console().print(table)
    Console().print(
        f"flowsim / {result['peer']}: {result['ratio_to_peer']:.2f}\n"
        f"written to {result['written_to']}"
    )


def cmd_bench_resco(args: argparse.Namespace) -> int:
    """``flowsim bench resco``: flowsim's baselines beside RESCO's figures, map by map."""
    from flowsim.bench.resco import RESCO_AGENTS, RESCO_MAPS, bench_resco, parse_choice

    maps = RESCO_MAPS if args.maps == "all" else parse_choice("--maps", args.maps, RESCO_MAPS)
    baselines = parse_choice("--baselines", args.baselines, tuple(RESCO_AGENTS))
    if args.episodes < 1:
        raise ConfigError(f"--episodes {args.episodes}: give at least 1, e.g. 3.")
    results = results_folder(args)

    def finished(row: dict[str, Any]) -> None:
        stderr.print(f"{row['map']} {row['baseline']}: {_delay_cells(row)}", highlight=False)

    with stderr.status("RESCO's maps") as status:
        result = bench_resco(
            maps,
            baselines,
            episodes=args.episodes,
            folder=args.folder,
            overrides=args.overrides,
            report=lambda phase: status.update(phase),
            finished=finished,
        )
    return report_bench(args, result, results, show=_show_resco)


def _delay_cells(row: dict[str, Any]) -> str:
    """One row's avg_delay against RESCO's, for the progress lines."""
    figure = f"avg_delay {row['avg_delay']:.2f} s ({row['avg_delay_as_resco']:.2f} s as RESCO)"
    if row["resco_avg_delay"] is None:
        return f"{figure}, RESCO has no figure"
    return f"{figure}, RESCO {row['resco_avg_delay']:.2f} s ({row['difference']:+.0%})"


def _show_resco(result: dict[str, Any]) -> None:
    """``bench resco`` as a table: flowsim's avg_delay beside RESCO's, per map and baseline."""
    table = Table(
        title=f"bench resco: avg_delay (s), {result['episodes']} episode(s) each",
        header_style="bold",
    )
    for column in ("map", "rule", "flowsim", "as RESCO", "RESCO", "median", "diff", "out"):
        text = column in ("map", "rule")
        table.add_column(column, justify="left" if text else "right", no_wrap=text)
    for row in result["rows"]:
        published = row["resco_avg_delay"] is not None
        difference = row["difference"]
        shown = "" if difference is None else f"{difference:+.0%}"
        if difference is not None and abs(difference) > result["notable_difference"]:
            shown = f"[bold]{shown}[/]"
        table.add_row(
            row["map"],
            row["baseline"],
            f"{row['avg_delay']:.2f}",
            f"{row['avg_delay_as_resco']:.2f}",
            f"{row['resco_avg_delay']:.2f}" if published else "-",
            f"{row['resco_median']:.2f}" if published else "-",
            shown,
            f"{row['never_inserted']:.0f}",
        )
    Console().print(table)
    Console().print(
        "rule: flowsim's (greedy is RESCO's MAXWAVE); flowsim: avg_delay with every vehicle "
        "due; as RESCO: the vehicles RESCO's script counted on that map (without those never "
        "inserted where its demand is trips); RESCO, median: its mean (the published figure) "
        "and median over its episodes; diff: as RESCO against RESCO's mean, above "
        f"{result['notable_difference']:.0%} in bold (docs/resco.md explains them); out: "
        "vehicles never inserted\n"
        f"written to {result['written_to']}"
    )


def cmd_bench_sampler(args: argparse.Namespace) -> int:
    """``flowsim bench sampler``."""
    from flowsim.bench.sampler import SEED_SETTING, bench_sampler
    from flowsim.config import load_config

    results = results_folder(args)
    if args.steps < 100:
        raise ConfigError(f"--steps {args.steps}: use at least 100 steps per runner, e.g. 2000.")
    if args.trajectories < 1:
        raise ConfigError(f"--trajectories {args.trajectories}: give at least 1, e.g. 144.")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: give at least 1 (or leave it out).")
    seed_setting = [] if args.yaml_setting else list(SEED_SETTING)
    config = load_config(args.config, seed_setting + list(args.overrides or []))
    with stderr.status("benchmarking the sampler") as status:
        result = bench_sampler(
            config,
            steps=args.steps,
            trajectories=args.trajectories,
            report=lambda phase: status.update(phase),
            workers=args.workers,
        )
    return report_bench(args, result, results)


def cmd_bench_train(args: argparse.Namespace) -> int:
    """``flowsim bench train``: a table of drivers, their final figures and time to target."""
    from flowsim.algos.base import TRAINERS
    from flowsim.bench.train import bench_train
    from flowsim.config import load_config

    results = results_folder(args)
    algos = tuple(a.strip() for a in args.algos.split(",") if a.strip())
    unknown = [a for a in algos if a not in TRAINERS]
    if not algos or unknown:
        raise ConfigError(f"--algos {args.algos}: choose from {', '.join(TRAINERS)}, e.g. ppo,es.")
    if args.budget_s <= 0 or args.eval_every < 1 or args.episodes < 1:
        raise ConfigError("--budget-s, --eval-every and --episodes must be positive.")
    config = load_config(args.config, args.overrides)
    with stderr.status("benchmarking training") as status:
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
    return report_bench(args, result, results, show=_show_train)


def _show_train(result: dict[str, Any]) -> None:
    """``bench train`` as a table: baselines, then each trainer's final figures."""
    table = Table(title=f"bench train {result['config']}", header_style="bold")
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
    stderr.print(f"written to {result['written_to']}")


def cmd_bench_faults(args: argparse.Namespace) -> int:
    """``flowsim bench faults``."""
    from flowsim.bench.faults import bench_faults
    from flowsim.config import load_config

    results = results_folder(args)
    if args.soak_s <= 0 or args.fuzz_examples < 1:
        raise ConfigError("--soak-s and --fuzz-examples must be positive, e.g. --soak-s 60.")
    config = load_config(args.config, args.overrides)
    with stderr.status("injecting faults") as status:
        result = bench_faults(
            config,
            out=args.out,
            soak_s=args.soak_s,
            fuzz_examples=args.fuzz_examples,
            seed=args.seed,
            report=lambda phase: status.update(phase),
        )
    return report_bench(args, result, results, show=_show_faults)


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


def cmd_bench_suite(args: argparse.Namespace) -> int:
    """``flowsim bench suite TABLE``: a published table, row by row, beside flowsim's."""
    from flowsim.bench.suite import bench_suite, parse_rows

    if args.table == "resco":
        from flowsim.bench.suite_resco import RESCO_SUITE as suite
    else:
        from flowsim.bench.suite_flow import FLOW_SUITE as suite
    rows = parse_rows(suite, args.rows)
    if (args.budget_min is not None and args.budget_min <= 0) or (
        args.episodes is not None and args.episodes < 1
    ):
        raise ConfigError(
            "--budget-min and --episodes must be positive, e.g. --budget-min "
            f"{suite.defaults.budget_min:g}."
        )
    results = results_folder(args)
    line, show = _SUITE_LINES[suite.name], _SUITE_TABLES[suite.name]

    def finished(row: dict[str, Any]) -> None:
        stderr.print(line(row), highlight=False)

    logged = {"at": 0.0, "training": False}

    def progress(phase: str, status: Any) -> None:
        status.update(phase)
        # Off a terminal (a log file) the status line is not shown: write every step of a row
        # and, while it trains, a line a minute.
        now, training = time.monotonic(), ": training " in phase
        if stderr.is_terminal:
            return
        if not training or not logged["training"] or now - logged["at"] >= 60:
            stderr.print(phase, highlight=False)
            logged["at"] = now
        logged["training"] = training

    with stderr.status(suite.title) as status:
        result = bench_suite(
            suite,
            rows,
            budget_min=args.budget_min,
            episodes=args.episodes,
            seed=args.seed,
            folder=args.folder,
            out=args.out,
            results=results,
            overrides=args.overrides,
            fresh=args.fresh,
            report=lambda phase: progress(phase, status),
            finished=finished,
        )
    if args.json:
        print_json(args, result)
    else:
        show(result)
    return 0


def _flow_line(row: dict[str, Any]) -> str:
    """A finished row of Flow's table, for the progress lines."""
    chosen = row.get("best") or row["final"]
    return (
        f"{row['row']}: humans {row['human']['mean']:.2f}, policy {chosen['mean']:.2f} "
        f"{row['unit']} (Flow: {row['flow']['human']:.2f} / {row['flow']['best_rl']:.2f})"
    )


def _resco_line(row: dict[str, Any]) -> str:
    """A finished map of RESCO's table, for the progress lines."""
    chosen = row.get("best") or row["final"]
    resco = row["resco"]
    published = (
        f"RESCO's {resco['algorithm']}: {resco['best_learner']:.2f} s"
        if resco["best_learner"] is not None
        else f"no RESCO figure; program {row['program']['mean']:.2f} s"
    )
    return (
        f"{row['row']}: avg_delay policy {chosen['mean']:.2f} s, max_pressure "
        f"{row['max_pressure']['mean']:.2f} s ({published})"
    )


def _show_suite_resco(result: dict[str, Any]) -> None:
    """``bench suite resco`` as a table: RESCO's best learner beside flowsim's baselines and
    trained policy, avg_delay per map."""
    table = Table(
        title=f"RESCO's maps: avg_delay (s), {result['episodes']} greedy hour(s) per figure, "
        f"{result['budget_min']:g} min of training per map",
        header_style="bold",
    )
    columns = ("map", "RESCO best", "max_pressure", "greedy", "fixed_cycle", "program")
    for column in (*columns, "final / best", "goal", "training"):
        text = column in ("map", "RESCO best", "goal", "training")
        table.add_column(
            column, justify="left" if text else "right", no_wrap=column == "map", min_width=4
        )
    for row in result["rows"]:
        compared, training = row["comparison"], row["training"]
        goal = (
            "met"
            if compared["goal_met"]
            else ("beats max_pressure" if compared["beats_max_pressure"] else "not met")
        )
        figures = [row["final"], row.get("best")]
        resco = row["resco"]
        published = (
            "—"
            if resco["best_learner"] is None
            else f"{resco['best_learner']:g} {resco['algorithm']}"
        )
        to_published = (
            f"{compared['to_program']:+.0%} to program"
            if compared["to_resco_best"] is None
            else f"{compared['to_resco_best']:+.0%} to RESCO"
        )
        table.add_row(
            row["row"],
            published,
            *(f"{row[name]['mean']:.2f}" for name in columns[2:]),
            " / ".join("-" if entry is None else f"{entry['mean']:.2f}" for entry in figures),
            f"{goal} ({to_published})",
            f"{training.get('env_steps') or 0:,} steps, {training.get('episodes') or 0} "
            f"episodes, {(training.get('wall_s') or 0) / 60:.1f} min",
        )
    Console().print(table)
    Console().print(
        "RESCO best: its best learner's best episode; max_pressure ... program: flowsim's "
        "rules without training; final, best: the last and the best checkpoint (best.pt, "
        "lowest avg_delay in a greedy evaluation on other seeds), means over the episodes "
        "(spreads in the JSON); goal: at or below RESCO's best learner and never above "
        "max_pressure; episodes: one-hour training episodes (RESCO trained 100 to 1,400). "
        "flowgrid: Flow's 3 x 3 grid (400 s episodes), no RESCO figure (—); its program is "
        "SUMO's actuated programme and its goal at or below it and max_pressure. "
        f"Source: {result['source']}.\nwritten to {result['written_to']}, picture "
        f"{result['figure']}",
        highlight=False,
    )


def _show_suite(result: dict[str, Any]) -> None:
    """``bench suite flow`` as a table: Flow's human and best RL beside flowsim's."""
    table = Table(
        title=f"Flow's benchmark table: {result['episodes']} greedy episodes per figure, "
        f"{result['budget_min']:g} min of training per row",
        header_style="bold",
    )
    columns = ("row", "metric", "Flow: human / RL", "human / final / best", "gain (Flow)")
    for column in (*columns, "beats Flow RL", "training"):
        text = column in ("row", "metric", "beats Flow RL", "training")
        table.add_column(
            column, justify="left" if text else "right", no_wrap=column == "row", min_width=4
        )
    for row in result["rows"]:
        compared, training = row["comparison"], row["training"]
        gain = compared["gain_over_humans"]
        beats = compared["beats_flow_rl"]
        shown = (
            f"code {'yes' if beats['code'] else 'no'}, paper {'yes' if beats['paper'] else 'no'}"
            if isinstance(beats, dict)
            else ("yes" if beats else "no")
        )
        figures = [row["human"], row["final"], row.get("best")]
        table.add_row(
            row["row"],
            f"{row['metric']} ({row['unit']})",
            f"{row['flow']['human']:g} / {row['flow']['best_rl']:g} {row['flow']['algorithm']}",
            " / ".join("-" if entry is None else f"{entry['mean']:.4g}" for entry in figures),
            f"{gain['flowsim']:+.0%} ({gain['flow']:+.0%})",
            shown,
            f"{training.get('iterations') or 0} it., {training.get('env_steps') or 0:,} steps, "
            f"{(training.get('wall_s') or 0) / 60:.1f} min",
        )
    Console().print(table)
    Console().print(
        "human: all humans (grid: SUMO's actuated programme); final, best: the last and the "
        "best checkpoint (best.pt, by a greedy evaluation on other seeds), means over the "
        "episodes (spreads in the JSON); gain: flowsim's best policy over its own humans "
        "(Flow's in brackets; grid: less delay is a gain); beats Flow RL: the grid's figure "
        "read as Flow's code (higher is better) and as the paper (a delay, lower is better). "
        "Flow's figures: "
        f"{result['source']}.\nwritten to {result['written_to']}, picture {result['figure']}",
        highlight=False,
    )


#: ``bench suite`` per table: the line of a finished row, the table shown at the end.
_SUITE_LINES = {"flow": _flow_line, "resco": _resco_line}
_SUITE_TABLES = {"flow": _show_suite, "resco": _show_suite_resco}
