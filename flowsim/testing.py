"""Helpers for tests of flowsim and of projects built on it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: The repository (or installed package's parent) folder: where `scenarios/` lives in a checkout.
ROOT = Path(__file__).resolve().parents[1]


def needs_sumo_rl() -> Any:
    """A pytest mark that skips a test where the sumo-rl package (RESCO's maps, the peer env)
    is not installed, with the install line as the reason."""
    import importlib.util

    import pytest

    return pytest.mark.skipif(
        importlib.util.find_spec("sumo_rl") is None,
        reason="RESCO's maps and the sumo-rl peer come with the sumo-rl package: "
        "pip install 'flowsim[resco]' (make installs it)",
    )


def run_cli(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ``flowsim ARGS`` in a fresh Python process (default folder: the repository root)."""
    return subprocess.run(
        [sys.executable, "-m", "flowsim.cli", *args],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def short_run(
    *extra: str,
    iterations: int | None = 2,
    horizon: int | None = 100,
    warmup: int | None = 50,
    fragment: int | None = 200,
    minibatch: int | None = 64,
    workers: int | None = 0,
    epochs: int | None = None,
) -> list[str]:
    """The ``key=value`` overrides of a short training run: ``iterations`` iterations of
    ``fragment`` steps per runner on ``horizon``-step episodes after ``warmup`` warm-up steps,
    minibatches of ``minibatch``, ``workers`` runners (0: in-process), ``epochs`` epochs per
    iteration. A setting given as ``None`` is left to the configuration; ``extra`` overrides
    come last, so they win over the short-run ones."""
    settings = {
        "sampler.num_workers": workers,
        "env.horizon": horizon,
        "env.warmup_steps": warmup,
        "sampler.rollout_fragment_length": fragment,
        "train.iterations": iterations,
        "train.minibatch_size": minibatch,
        "train.epochs": epochs,
    }
    return [f"{key}={value}" for key, value in settings.items() if value is not None] + list(extra)


def cli_flags(overrides: list[str]) -> list[str]:
    """``overrides`` as command-line arguments: ``--set key=value`` for each."""
    return [part for override in overrides for part in ("--set", override)]


def fuzz_settings(examples: int, *suppress: str) -> Any:
    """Hypothesis settings for a fuzz test: ``examples`` examples, no deadline (a SUMO step or a
    first import can be slow on a busy machine), no example database written into the
    checkout, the same examples on every run (a CI run must not fail by chance: new inputs
    are explored by ``flowsim bench faults --seed`` and by raising the counts locally);
    ``suppress`` names health checks to turn off (e.g. ``"too_slow"``)."""
    from hypothesis import HealthCheck, settings

    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck[name] for name in suppress],
    )


@contextmanager
def time_limit(seconds: float, what: str = "the call") -> Iterator[None]:
    """Raise ``TimeoutError`` in the block when it runs past ``seconds`` (a hang becomes a
    failure). pytest-timeout may be using the same real-time timer: its remaining time is put
    back afterwards."""

    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"{what} ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    started = time.monotonic()
    outer_left, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left:
            left = outer_left - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))
