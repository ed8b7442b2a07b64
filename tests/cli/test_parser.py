"""The switchboard's shape, in-process: every command's flags come from one place, and checks
that a Python user also needs live in the library."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowsim.cli import build_parser, main
from flowsim.cli.common import JsonFlag
from flowsim.config import load_config
from flowsim.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

#: Commands that print their result as JSON with --json (all others have no such flag).
JSON_COMMANDS = {
    "simulate", "tune", "evaluate", "replay", "imitate", "scenarios build",
    "bench env", "bench sampler", "bench train", "bench tune", "bench imitate", "bench faults",
    "bench resco", "bench suite",
}  # fmt: skip


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every (sub)command of ``parser`` as ("bench env", its parser)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                path = f"{prefix} {name}".strip()
                yield path, sub
                yield from _commands(sub, path)


def test_json_flag_is_declared_once_through_common() -> None:
    found = {}
    for name, parser in _commands(build_parser()):
        flags = [a for a in parser._actions if "--json" in a.option_strings]
        if flags:
            found[name] = flags[0]
    assert set(found) == JSON_COMMANDS
    for name, action in found.items():
        assert isinstance(action, JsonFlag), name
        assert action.help is not None and action.help.startswith("print "), name


def test_help_lists_the_commands_in_their_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    listed = capsys.readouterr().out.split("{", 1)[1].split("}", 1)[0]
    assert listed == (
        "simulate,bench,train,imitate,tune,evaluate,replay,plot,schema,check,scenarios,envs"
    )


def test_bench_kinds_share_results_and_json() -> None:
    kinds = {
        name: parser for name, parser in _commands(build_parser()) if name.startswith("bench ")
    }
    assert set(kinds) == {
        f"bench {k}"
        for k in ("env", "sampler", "train", "tune", "imitate", "faults", "resco", "suite")
    }
    for name, parser in kinds.items():
        options = [a.option_strings[-1] for a in parser._actions if a.option_strings]
        assert options[-2:] == ["--json", "--results"], name


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench"]) == 2
    assert main(["simulate", "scenarios/ring.yaml", "--steps", "many"]) == 2
    assert "see `flowsim simulate --help`" in capsys.readouterr().err


def test_train_resume_passes_set_to_the_library(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`train --resume RUN --set train.iterations=N` extends the run; an unsafe key exits 2."""
    from flowsim.runs.training import train

    config = load_config(ROOT / "scenarios" / "cartpole.yaml", ["train.iterations=1"])
    run_dir = train(config, out=tmp_path).directory
    assert main(["train", "--resume", str(run_dir), "--set", "train.iterations=2"]) == 0
    assert len((run_dir / "progress.csv").read_text().splitlines()) == 1 + 2  # header + rows
    assert "iterations: 2" in (run_dir / "config.yaml").read_text()
    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir), "--set", "env.horizon=5"]) == 2
    assert "env.horizon" in capsys.readouterr().err


def test_tune_resume_passes_set_to_the_library(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tune --resume DIR --set ...` reaches resume_tune (it refuses what trials cannot change)."""
    from flowsim.config import dump_config
    from flowsim.tune.results import TUNE_CONFIG_FILE

    config = load_config(ROOT / "scenarios" / "tune_cartpole.yaml")
    (tmp_path / TUNE_CONFIG_FILE).write_text(dump_config(config))
    (tmp_path / "tuner.pkl").write_bytes(b"")  # refused before Ray Tune reads it
    code = main(["tune", "--resume", str(tmp_path), "--set", "tune.num_samples=9"])
    assert code == 2
    assert "tune.num_samples cannot change when a run resumes" in capsys.readouterr().err


def test_library_refuses_what_the_cli_refused() -> None:
    from flowsim.evaluation.evaluate import evaluate
    from flowsim.evaluation.simulate import simulate
    from flowsim.hierarchy.evaluate import evaluate_any_run
    from flowsim.viz.replay import check_replay_settings

    config = load_config(ROOT / "scenarios" / "ring.yaml")
    with pytest.raises(ConfigError, match="--steps 0: give a positive number of steps"):
        simulate(config, 0)
    with pytest.raises(ConfigError, match="--delay -1"):
        check_replay_settings(delay_ms=-1)
    with pytest.raises(ConfigError, match="--frame-size 10x800"):
        check_replay_settings(frame_size=(10, 800))
    check_replay_settings(frame_size=(16, 16), delay_ms=0)
    with pytest.raises(ConfigError, match="--episodes 0: give at least 1 episode"):
        evaluate(config, None, episodes=0)
    with pytest.raises(ConfigError, match="--episodes 0"):  # before the run is even read
        evaluate_any_run(ROOT / "no-such-run", episodes=0)
