"""Fault injection on real processes: kill SUMO or a runner, fill the disk, cut a checkpoint.

These are the faults a long run on a shared machine meets. The fault-injection tests
(``tests/faults``) and ``flowsim bench faults`` use them to show that sampling and training
survive: :func:`soak` samples batches while faults land at random moments and counts what was
delivered and what was lost.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from flowsim.algos.base import Trainer
from flowsim.config import FlowsimConfig, apply_overrides

#: Kinds of fault :func:`soak` injects.
SOAK_FAULTS = ("sumo_killed", "runner_killed")


def child_sumo_pids(parent: int) -> list[int]:
    """Process ids of the SUMO processes whose parent is ``parent`` (Linux ``/proc``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields_after = stat[stat.rindex(")") + 2 :].split()
        if "sumo" in name and int(fields_after[1]) == parent:
            found.append(int(entry.name))
    return found


def kill_process(pid: int) -> bool:
    """SIGKILL ``pid``; False if it had already gone."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def full_disk() -> Iterator[None]:
    """While active, every checkpoint write fails with ``OSError(ENOSPC)`` part way through.

    Half of the checkpoint reaches the disk before the error, as when a real disk fills, so
    the writer's clean-up of its staging file is exercised too.
    """
    import flowsim.runs.checkpoints as checkpoints

    def save(obj: Any, stream: Any, *args: Any, **kwargs: Any) -> None:
        stream.write(b"\0" * 4096)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with mock.patch.object(checkpoints.torch, "save", save):
        yield


def truncate(path: Path, keep: float = 0.5) -> None:
    """Cut the file at ``path`` to ``keep`` (a fraction) of its length, as a crash might."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep)])


@dataclass
class SoakReport:
    """What :func:`soak` saw: batches delivered in full or lost, faults injected and survived."""

    duration_s: float = 0.0
    batch_steps: int = 0
    batches_delivered: int = 0
    batches_lost: int = 0
    steps: int = 0
    injected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOAK_FAULTS, 0))
    sim_restarts: int = 0
    runner_restarts: int = 0
    sumo_kills_absorbed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def recovered(self) -> int:
        """Faults the sampler recovered from: SUMO restarts plus runner replacements."""
        return self.sim_restarts + self.runner_restarts

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "duration_s": self.duration_s,
            "batch_steps": self.batch_steps,
            "batches_delivered": self.batches_delivered,
            "batches_lost": self.batches_lost,
            "steps": self.steps,
            "injected": dict(self.injected),
            "injected_total": sum(self.injected.values()),
            "sim_restarts": self.sim_restarts,
            "runner_restarts": self.runner_restarts,
            "sumo_kills_absorbed": self.sumo_kills_absorbed,
            "recovered": self.recovered,
            "errors": list(self.errors),
        }


def soak_config(base: FlowsimConfig | None = None, runners: int = 2) -> FlowsimConfig:
    """The ring on TraCI (so SUMO is a process of its own that can be killed), ``runners``
    Ray runners, replacements without limit."""
    return apply_overrides(
        base or FlowsimConfig(),
        [
            "sim.backend=traci",
            "env.warmup_steps=10",
            "env.horizon=400",
            f"sampler.num_workers={runners}",
            "sampler.max_runner_restarts=1000000",
        ],
    )


def soak(
    config: FlowsimConfig,
    duration_s: float,
    batch_steps: int = 200,
    mean_interval_s: float = 2.0,
    seed: int = 0,
    on_batch: Any = None,
) -> SoakReport:
    """Sample ``batch_steps`` per runner again and again for ``duration_s`` while faults land.

    A thread waits an exponential time (mean ``mean_interval_s``) and then kills, at random,
    one runner's SUMO process or one runner's whole process; sampling goes on regardless. A
    batch counts as delivered when it holds exactly ``runners x batch_steps`` transitions and
    as lost otherwise (or when sampling raised). A SUMO kill whose runner process is killed
    too before the driver saw the restart counts as absorbed by that runner's replacement (a
    kill landing just after the runner returned its batch counts both as restarted and as
    absorbed). Needs Ray initialised (or starts it).
    ``on_batch(report)`` runs after each batch (a progress bar, say).
    """
    from flowsim.distributed import make_runner_group

    report = SoakReport(batch_steps=batch_steps)
    group = make_runner_group(config)
    rng = np.random.default_rng(seed)
    actor_pids: dict[int, int] = {}
    lock = threading.Lock()
    stop = threading.Event()
    unreported: dict[int, int] = {}  # runner pid -> SUMO kills it has not reported yet

    def refresh_pids() -> None:
        described = group.describe()
        with lock:
            actor_pids.clear()
            actor_pids.update({d["runner_index"]: d["pid"] for d in described})

    def inject() -> None:
        while not stop.wait(float(rng.exponential(mean_interval_s))):
            with lock:
                pids = dict(actor_pids)
            if not pids:
                continue
            runner = int(rng.choice(sorted(pids)))
            kind = SOAK_FAULTS[int(rng.integers(len(SOAK_FAULTS)))]
            pid = pids[runner]
            if kind == "sumo_killed":
                targets = child_sumo_pids(pid)
                with lock:
                    if targets and kill_process(targets[0]):
                        report.injected[kind] += 1
                        unreported[pid] = unreported.get(pid, 0) + 1
            else:
                with lock:
                    if kill_process(pid):
                        report.injected[kind] += 1
                        actor_pids.pop(runner, None)
                        report.sumo_kills_absorbed += unreported.pop(pid, 0)

    expected = batch_steps * group.num_runners

    def sample_one() -> None:
        try:
            batch = group.sample(num_steps=batch_steps)
        except Exception as error:  # counted as a lost batch; the soak goes on
            report.batches_lost += 1
            report.errors.append(f"{type(error).__name__}: {error}")
            return
        if len(batch) == expected:
            report.batches_delivered += 1
            report.steps += len(batch)
        else:
            report.batches_lost += 1
        report.sim_restarts += int(batch.metrics.get("restarts", 0))
        with lock:
            for runner in batch.metrics.get("runners", []):
                pid = runner.get("pid")
                if pid in unreported:
                    unreported[pid] = max(unreported[pid] - int(runner.get("restarts", 0)), 0)
        if on_batch is not None:
            on_batch(report)

    started = time.perf_counter()
    injector = threading.Thread(target=inject, name="fault-injector", daemon=True)
    try:
        refresh_pids()
        injector.start()
        while time.perf_counter() - started < duration_s:
            sample_one()
            refresh_pids()
        stop.set()
        injector.join(timeout=30)
        # One batch after the last fault: the group notices a runner killed at the very end.
        sample_one()
    finally:
        stop.set()
        report.runner_restarts = group.runner_restarts
        report.duration_s = time.perf_counter() - started
        group.close()
    return report


# -- config fuzzing without hypothesis (for the benchmark; the tests use hypothesis) --------

#: Values a mutated config may receive: wrong types, extremes, non-numbers, huge text.
_ODD_VALUES: tuple[Any, ...] = (
    None,
    True,
    -1,
    0,
    10**30,
    -(10**400),
    1e308,
    float("nan"),
    float("inf"),
    "",
    "x" * 10_000,
    "../../etc/passwd",
    [],
    {},
    [1, "two", None],
    {"nested": {"deeper": [float("-inf")]}},
)


def _mutate(data: Any, rng: np.random.Generator) -> Any:
    """``data`` with one random node replaced, deleted or given an unknown key."""
    import copy

    data = copy.deepcopy(data)
    node, parent, slot = data, None, None
    for _ in range(int(rng.integers(0, 4))):
        if isinstance(node, dict) and node:
            parent, slot = node, list(node)[int(rng.integers(len(node)))]
        elif isinstance(node, list) and node:
            parent, slot = node, int(rng.integers(len(node)))
        else:
            break
        node = parent[slot]
    choice = int(rng.integers(3))
    value = _ODD_VALUES[int(rng.integers(len(_ODD_VALUES)))]
    if parent is None:
        return value if choice == 0 else {**data, f"unknown_{int(rng.integers(99))}": value}
    if choice == 0 or not isinstance(parent, dict):
        parent[slot] = value
    elif choice == 1:
        del parent[slot]
    else:
        parent[f"unknown_{int(rng.integers(99))}"] = value
    return data


def random_config_file(base_text: str, rng: np.random.Generator) -> bytes:
    """One fuzzed config file: a mutated config, cut text, random bytes, an alias bomb, a
    Python object tag, or nothing."""
    import yaml

    kind = int(rng.integers(10))
    if kind <= 4:
        mutated = _mutate(yaml.safe_load(base_text), rng)
        return yaml.safe_dump(mutated, allow_unicode=True).encode()
    if kind == 5:
        return base_text.encode()[: int(rng.integers(len(base_text)))]
    if kind == 6:
        return rng.integers(0, 256, int(rng.integers(1, 400)), dtype=np.uint8).tobytes()
    if kind == 7:
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
        lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
        return ("\n".join(lines) + "\n").encode()
    if kind == 8:
        return b"name: !!python/object/apply:os.system ['true']\n"
    return b""


def fuzz_configs(
    examples: int, folder: Path, seed: int = 0, base: Path | None = None
) -> dict[str, Any]:
    """Load ``examples`` fuzzed config files; count loads, clear refusals and tracebacks.

    A traceback is any exception other than :class:`~flowsim.errors.ConfigError` (the CLI
    would print it as a crash); the first few are kept for the report.
    """
    from flowsim.config import load_config
    from flowsim.errors import ConfigError
    from flowsim.testing import ROOT

    text = (base or ROOT / "scenarios" / "ring.yaml").read_text()
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    counts = {"examples": 0, "loaded": 0, "refused": 0, "tracebacks": 0}
    samples: list[str] = []
    path = folder / "fuzzed.yaml"
    for _ in range(examples):
        path.write_bytes(random_config_file(text, rng))
        counts["examples"] += 1
        try:
            load_config(path)
        except ConfigError:
            counts["refused"] += 1
        except Exception as error:  # what the fuzzing is looking for
            counts["tracebacks"] += 1
            if len(samples) < 5:
                samples.append(f"{type(error).__name__}: {str(error)[:200]}")
        else:
            counts["loaded"] += 1
    return {**counts, "traceback_samples": samples}


# -- the benchmark ---------------------------------------------------------------------------

#: Steps per iteration of the training runs the benchmark hurts.
_FRAGMENT = 200


def _training_config(base: FlowsimConfig, iterations: int, *overrides: str) -> FlowsimConfig:
    return apply_overrides(
        base,
        [
            "env.warmup_steps=10",
            "env.horizon=500",
            "sampler.num_workers=0",
            f"sampler.rollout_fragment_length={_FRAGMENT}",
            f"train.iterations={iterations}",
            "train.algo=ppo",
            "train.epochs=1",
            "train.minibatch_size=50",
            "train.keep_checkpoints=2",
            *overrides,
        ],
    )


def _progress(run_dir: Path) -> list[dict[str, str]]:
    import csv

    with open(Path(run_dir) / "progress.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def iterations_lost(run_dir: Path, iterations: int) -> int:
    """Iterations missing from, or repeated in, a run's ``progress.csv`` (target 0)."""
    seen = [int(row["iteration"]) for row in _progress(run_dir)]
    missing = len(set(range(1, iterations + 1)) - set(seen))
    return missing + (len(seen) - len(set(seen)))


def short_batches(run_dir: Path, steps_per_iteration: int) -> int:
    """Iterations of a run whose batch held fewer (or more) steps than asked (target 0)."""
    steps = [0] + [int(row["env_steps"]) for row in _progress(run_dir)]
    return sum(b - a != steps_per_iteration for a, b in itertools.pairwise(steps))


def _outcome(run_dir: Path, iterations: int, kind: str) -> dict[str, Any]:
    from flowsim.runs.events import read_events

    counted = sum(e["count"] for e in read_events(run_dir) if e["kind"] == kind)
    return {
        "injected": 1,
        "recovered": 1,
        "batches_lost": short_batches(run_dir, _FRAGMENT),
        "iterations_lost": iterations_lost(run_dir, iterations),
        "events_logged": counted,
    }


def _trainer_killed(base: FlowsimConfig, out: Path) -> dict[str, Any]:
    """SIGKILL a ``flowsim train`` process mid-iteration, then ``--resume`` it."""
    import subprocess
    import sys

    from flowsim.config import dump_config
    from flowsim.testing import ROOT

    config_path = out / "killed.yaml"
    config_path.write_text(dump_config(_training_config(base, 8)))
    runs = out / "killed"
    command = [sys.executable, "-m", "flowsim.cli", "train", str(config_path), "--out", str(runs)]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if list(runs.glob("*/checkpoints/checkpoint-000003.pt")):
            break
        time.sleep(0.02)
    time.sleep(0.1)
    kill_process(process.pid)
    process.wait()
    (run_dir,) = list(runs.iterdir())
    resumed = subprocess.run(
        [sys.executable, "-m", "flowsim.cli", "train", "--resume", str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if resumed.returncode != 0:
        return {
            "injected": 1,
            "recovered": 0,
            "batches_lost": None,
            "iterations_lost": None,
            "events_logged": 0,
            "error": resumed.stderr.strip().splitlines()[-1:],
        }
    return _outcome(run_dir, 8, "resumed")


def _disk_full(base: FlowsimConfig, out: Path) -> dict[str, Any]:
    """Two checkpoint writes fail with ENOSPC; training goes on."""
    from flowsim.runs.training import train

    disk = full_disk()

    def fill_then_free(row: dict[str, float], trainer: Trainer) -> None:
        if row["iteration"] == 2:
            disk.__enter__()
        if row["iteration"] == 4:
            disk.__exit__(None, None, None)

    try:
        run = train(_training_config(base, 6), out=out / "disk-full", callback=fill_then_free)
    finally:
        disk.__exit__(None, None, None)
    result = _outcome(run.directory, 6, "write_failed")
    result["injected"] = 2
    result["recovered"] = 2 if result["iterations_lost"] == 0 else 0
    return result


def _checkpoint_truncated(base: FlowsimConfig, out: Path) -> dict[str, Any]:
    """The newest checkpoint cut in half on disk; the resume takes the previous one."""
    from flowsim.runs.training import train

    run = train(_training_config(base, 3), out=out / "truncated")
    truncate(run.directory / "checkpoints" / "checkpoint-000003.pt")
    config_file = run.directory / "config.yaml"
    config_file.write_text(config_file.read_text().replace("iterations: 3", "iterations: 5"))
    train(None, resume=run.directory)
    return _outcome(run.directory, 5, "checkpoint_damaged")


def _sumo_killed_in_training(base: FlowsimConfig, out: Path) -> dict[str, Any]:
    """SUMO (a TraCI process) killed mid-episode inside the trainer's runner."""
    from flowsim.runs.training import train

    killed: list[bool] = []

    def kill(row: dict[str, float], trainer: Trainer) -> None:
        if row["iteration"] == 2:
            for described in trainer.group.describe():
                killed.extend(kill_process(pid) for pid in described["sumo_pids"])

    config = _training_config(base, 4, "sim.backend=traci")
    run = train(config, out=out / "sumo-killed", callback=kill)
    result = _outcome(run.directory, 4, "sim_restart")
    result["injected"] = sum(killed)
    result["recovered"] = result["events_logged"]
    return result


def bench_faults(
    config: FlowsimConfig,
    out: Path,
    soak_s: float = 60.0,
    fuzz_examples: int = 500,
    seed: int = 0,
    report: Any = None,
) -> dict[str, Any]:
    """Inject every kind of fault once (the sampler's for ``soak_s`` seconds) and count.

    Per kind: faults injected, recovered, batches lost and iterations lost (targets 0), and
    events logged; then ``fuzz_examples`` fuzzed configs and the tracebacks they caused.
    ``report(phase)`` is told what runs.
    """
    import ray

    from flowsim.bench.results import machine_description

    say = report or (lambda phase: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, dict[str, Any]] = {}
    for name, campaign in (
        ("trainer_killed_and_resumed", _trainer_killed),
        ("disk_full_at_checkpoint", _disk_full),
        ("checkpoint_truncated", _checkpoint_truncated),
        ("sumo_killed_in_training", _sumo_killed_in_training),
    ):
        say(f"injecting {name.replace('_', ' ')}")
        kinds[name] = campaign(config, out)
    say(f"soaking the sampler for {soak_s:g} s with random faults")
    soaked = soak(soak_config(config), soak_s, seed=seed)
    ray.shutdown()
    for kind in SOAK_FAULTS:  # no training in the soak: no iterations to lose
        kinds[f"soak_{kind}"] = {"injected": soaked.injected[kind], "iterations_lost": None}
    # A SUMO kill is recovered when sampling goes on with full batches: its runner restarted
    # SUMO, or the runner was killed too and replaced. The split is approximate (a runner
    # killed just after it reported a restart counts both ways), so it is shown, not summed.
    whole = soaked.batches_lost == 0 and not soaked.errors
    kinds["soak_sumo_killed"].update(
        recovered=soaked.injected["sumo_killed"] if whole else soaked.sim_restarts,
        restarted_in_runner=soaked.sim_restarts,
        absorbed_by_runner_replacement=soaked.sumo_kills_absorbed,
        events_logged=None,
    )
    kinds["soak_runner_killed"].update(recovered=soaked.runner_restarts, events_logged=None)
    kinds["soak_sumo_killed"]["batches_lost"] = soaked.batches_lost
    kinds["soak_runner_killed"]["batches_lost"] = 0  # a lost batch is counted once, above
    say(f"loading {fuzz_examples} fuzzed configs")
    fuzzed = fuzz_configs(fuzz_examples, out / "fuzz", seed=seed)
    totals = {
        key: sum(int(v.get(key) or 0) for v in kinds.values())
        for key in ("injected", "recovered", "batches_lost", "iterations_lost")
    }
    return {
        "benchmark": "faults",
        "config": config.name,
        "faults": kinds,
        "totals": totals,
        "soak": soaked.as_dict(),
        "config_fuzz": fuzzed,
        "machine": machine_description(),
    }
