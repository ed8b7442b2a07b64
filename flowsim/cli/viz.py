"""Commands that show an episode or a run: ``replay`` and ``plot``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from flowsim.cli.common import add_json, add_set, print_files, print_json, print_table, stderr
from flowsim.errors import ConfigError

_SET_HELP = "override the config, e.g. --set env.warmup_steps=100 (repeatable)"


def add_parser(commands: Any) -> None:
    """Add ``replay TARGET`` and ``plot TARGET``."""
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
        "pi_saturation, follower_stopper; on a signal env program (a config's default), "
        "fixed_cycle, max_pressure, greedy",
    )
    replay.add_argument(
        "--delay", type=float, default=100.0, metavar="MS", help="sumo-gui delay per step (ms)"
    )
    add_set(replay, _SET_HELP)
    add_json(replay)
    replay.set_defaults(handler=cmd_replay)

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
        "follower_stopper; on a signal env max_pressure (a config's default), fixed_cycle, greedy",
    )
    plot.add_argument("--seed", type=int, default=1000, help="episode seed (default 1000)")
    plot.add_argument(
        "--steps", type=int, help="SUMO steps after the warm-up (default: the config's episode)"
    )
    plot.add_argument(
        "--checkpoint", default="latest", help="latest, best or an iteration number of the run"
    )
    add_set(plot, _SET_HELP)
    plot.set_defaults(handler=cmd_plot)


def _frame_size(text: str) -> tuple[int, int]:
    """``WxH`` as two integers (their range is the library's check)."""
    width, _, height = text.partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise ConfigError(f"--frame-size {text}: give WIDTHxHEIGHT pixels, e.g. 800x800.")
    return int(width), int(height)


def cmd_replay(args: argparse.Namespace) -> int:
    """``flowsim replay``: one episode, headless or in sumo-gui; a summary table (or JSON)."""
    from flowsim.viz.replay import (
        check_replay_settings,
        default_driver,
        default_replay_folder,
        display_problem,
        load_source,
        replay,
    )

    frame_size = _frame_size(args.frame_size)
    check_replay_settings(frame_size=frame_size, delay_ms=args.delay)
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
        frame_size=frame_size,
        gif=args.gif,
        fcd=args.fcd,
        delay_ms=args.delay,
        show_progress=not args.json,
    )
    summary["written_to"] = str(Path(out) / "replay.json")
    if args.json:
        print_json(args, summary)
        return 0
    from flowsim.sim.trips import TRIP_METRICS

    keys = ("driver", "seed", "steps", "return", "mean_speed", "speed_std", "min_speed")
    keys += ("speed_ratio", "collisions", *TRIP_METRICS)
    rows: dict[str, Any] = {k: summary[k] for k in keys if k in summary}
    if "agent_returns" in summary:  # a multi-agent run: "return" is the team's
        rows["return (team)"] = rows.pop("return")
        for agent, value in summary["agent_returns"].items():
            rows[f"return: {agent}"] = value
    files = summary["files"]
    for name in ("fcd", "emission", "gif"):
        if name in files:
            rows[name] = str(Path(out) / files[name])  # stored relative to OUT where inside it
    if "frames" in files:
        rows["frames"] = f"{len(files['frames'])} PNG in {args.frames or Path(out) / 'frames'}"
    rows["summary"] = summary["written_to"]
    print_table(f"replay {source.origin}", rows)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    """``flowsim plot``: a run's (or a config's) figures, or a tuning directory's."""
    from flowsim.tune.results import is_tune_dir
    from flowsim.viz.plot import plot

    if is_tune_dir(args.target):
        return _plot_tune(args)
    with stderr.status("plotting") as status:
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
    print_table(f"plot {args.target}", rows)
    print_files(result["files"])
    return 0


def _plot_tune(args: argparse.Namespace) -> int:
    """``flowsim plot TUNE_DIR``: parallel coordinates and the trials' learning curves."""
    from flowsim.viz.tune import plot_tune

    if args.driver or args.steps is not None or args.overrides:
        raise ConfigError(
            f"{args.target} is a tuning directory: --driver, --steps and --set apply to run "
            "directories (e.g. TUNE_DIR/trial-<id>/run)."
        )
    with stderr.status("plotting the trials"):
        result = plot_tune(args.target, args.out)
    print_table(
        f"plot {args.target}",
        {"trials": result["trials"], "best trial": result["best_trial"] or "none"},
    )
    print_files(result["files"])
    return 0
