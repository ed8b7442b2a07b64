"""One Ray Tune trial = one flowsim training run with its own runner actors.

:func:`run_trial` is a Ray Tune function trainable. It builds the trial's config from the
experiment's and the trial's parameters, makes the trainer and its runner group
(:func:`flowsim.runs.training.make_trainer`), and after every iteration reports the
``progress.csv`` row with :func:`ray.tune.report`. Every ``tune.checkpoint_every`` iterations
it writes a flowsim checkpoint (atomic, tensors only) and hands the same file to Tune as the
trial's checkpoint, so that PBT can copy it into another trial and ASHA / HyperBand can pause
and resume trials.

A trial's folder ``TUNE_DIR/trial-<id>/`` holds Tune's own files (``params.json``,
``result.json``, ``checkpoint_*``) and ``run/``, a flowsim run directory (``config.yaml``,
``progress.csv``, ``checkpoints/``, ``trial.json``) that ``flowsim evaluate`` and
``flowsim replay`` read like any run.

Runner actors started inside a trial land in the trial's placement group: Ray Tune creates
trial placement groups with ``placement_group_capture_child_tasks=True``, and
:func:`trial_resources` sizes the group with one bundle for the trainer and one per runner.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from flowsim.config import FlowsimConfig, dump_config, parse_config

__all__ = [
    "CHECKPOINT_FILE",
    "RUN_FOLDER",
    "TRIAL_FILE",
    "read_trial_record",
    "run_trial",
    "trial_bundles",
    "trial_config",
    "trial_dirname",
    "trial_resources",
]

#: File name of the flowsim checkpoint inside a Tune checkpoint folder.
CHECKPOINT_FILE = "checkpoint.pt"
#: Who wrote a Tune checkpoint (trial id and iteration), beside :data:`CHECKPOINT_FILE`.
ORIGIN_FILE = "origin.json"
#: The flowsim run directory inside a trial's folder.
RUN_FOLDER = "run"
#: A trial's parameters, timing and PBT lineage, inside :data:`RUN_FOLDER`.
TRIAL_FILE = "trial.json"


def trial_dirname(trial: Any) -> str:
    """Folder name of a trial inside the tuning directory: ``trial-<id>``."""
    return f"trial-{trial.trial_id}"


def _native(value: Any, current: Any) -> Any:
    """A Ray/numpy sampled value as plain Python, typed like the value it replaces."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, tuple):
        value = list(value)
    if (
        isinstance(current, int)
        and not isinstance(current, bool)
        and isinstance(value, float)
        and value.is_integer()
    ):
        return int(value)  # quniform / PBT give floats for integer keys such as train.epochs
    return value


def _set_key(data: dict[str, Any], dotted: str, value: Any) -> None:
    """``data[a][b][0][c] = value`` for ``a.b.0.c`` (the key exists in the resolved dump)."""
    parts = dotted.split(".")
    node: Any = data
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[int(part)] if int(part) < len(node) else None
        else:
            node = node.get(part)
        if node is None:
            raise KeyError(dotted)
    last = parts[-1]
    if isinstance(node, list):
        if int(last) >= len(node):
            raise KeyError(dotted)
        node[int(last)] = _native(value, node[int(last)])
    elif isinstance(node, dict):
        node[last] = _native(value, node.get(last))
    else:
        raise KeyError(dotted)


def trial_config(base: Mapping[str, Any], params: Mapping[str, Any]) -> FlowsimConfig:
    """The experiment config ``base`` (a JSON dump) with a trial's dotted ``params`` set.

    The ``tune`` section is dropped: a trial's ``run/config.yaml`` trains as it is.
    """
    data = copy.deepcopy(dict(base))
    data["tune"] = None
    for key, value in params.items():
        _set_key(data, key, value)
    shown = ", ".join(f"{k}={v}" for k, v in params.items())
    return parse_config(data, source=f"trial parameters ({shown})")


def trial_bundles(
    config: FlowsimConfig, trainer_cpus: float | None = None
) -> list[dict[str, float]]:
    """A trial's placement-group bundles: its trainer, then one bundle per runner actor.

    ``trainer_cpus`` ``None`` gives the trainer 1 CPU when it samples in-process
    (``sampler.num_workers: 0``) and 0 when runner actors sample for it: a synchronous
    trainer only waits while they run, and learns while they wait.
    """
    from flowsim.distributed.cluster import placement_bundles

    if trainer_cpus is None:
        trainer_cpus = 0.0 if config.sampler.num_workers > 0 else 1.0
    return placement_bundles(config, trainer_cpus=trainer_cpus)


def trial_resources(
    params: dict[str, Any],
    base: Mapping[str, Any],
    trainer_cpus: float | None = None,
    strategy: str = "PACK",
) -> Any:
    """Ray Tune's resource request of the trial with ``params``: a PlacementGroupFactory."""
    from ray.tune import PlacementGroupFactory

    bundles = trial_bundles(trial_config(base, params), trainer_cpus)
    return PlacementGroupFactory(bundles, strategy=strategy)


def read_trial_record(run_dir: Path) -> dict[str, Any]:
    """A trial's ``trial.json`` (parameters, timing, lineage); empty if not written yet."""
    path = Path(run_dir) / TRIAL_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    staging = path.with_suffix(".tmp")
    staging.write_text(json.dumps(data, indent=1, default=float))
    os.replace(staging, path)


def _set_learning_rates(trainer: Any, config: FlowsimConfig) -> None:
    """Give a restored trainer this trial's step sizes (an optimiser state carries its own).

    After a PBT exploit the checkpoint comes from a trial with other hyper-parameters; every
    other setting is read from ``config`` at each iteration.
    """
    for attribute, lr in (
        ("optimizer", config.train.lr),  # PPO's optimiser
        ("value_optimizer", config.train.trpo.vf_lr),  # TRPO's value function
    ):
        optimizer = getattr(trainer, attribute, None)
        for group in getattr(optimizer, "param_groups", ()):
            group["lr"] = lr


def _last_finite(rows: list[dict[str, float]], key: str) -> float | None:
    for row in reversed(rows):
        value = row.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            return float(value)
    return None


def _restore(checkpoint: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(flowsim state, origin) of the checkpoint Tune hands a trial."""
    from flowsim.runs.checkpoints import read_checkpoint

    with checkpoint.as_directory() as folder:
        state = read_checkpoint(Path(folder) / CHECKPOINT_FILE)
        try:
            origin = json.loads((Path(folder) / ORIGIN_FILE).read_text())
        except (OSError, ValueError):
            origin = {}
    return state, origin


def run_trial(
    params: dict[str, Any],
    base: dict[str, Any],
    experiment_dir: str,
    metric: str,
    checkpoint_every: int = 1,
    keep_checkpoints: int = 2,
) -> None:
    """Train one trial, reporting every iteration to Ray Tune (the function trainable).

    Args:
        params: the trial's values of ``tune.search_space`` (dotted keys), from Tune.
        base: the experiment's resolved config as JSON data.
        experiment_dir: the tuning directory (the trial writes ``trial-<id>/run/`` there).
        metric: ``tune.metric``; an iteration without a finished episode reports its last
            finite value (no value before the first one).
        checkpoint_every: iterations between checkpoints (the last one always checkpoints).
        keep_checkpoints: flowsim checkpoints kept in ``run/checkpoints`` besides ``best.pt``.
    """
    from ray import tune

    from flowsim.runs.events import FAULT_COLUMNS
    from flowsim.runs.training import (
        append_progress,
        make_trainer,
        progress_columns,
        save_iteration,
        write_progress,
    )

    context = tune.get_context()
    trial_id = context.get_trial_id()
    config = trial_config(base, params)
    run_dir = Path(experiment_dir) / f"trial-{trial_id}" / RUN_FOLDER
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(dump_config(config))
    record = read_trial_record(run_dir) or {"trial_id": trial_id, "restored_from": []}
    record["params"] = {k: _native(v, None) for k, v in params.items()}
    record.setdefault("started_at", time.time())

    state: dict[str, Any] | None = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        state, origin = _restore(checkpoint)
        donor = origin.get("trial_id", trial_id)
        if donor == trial_id:  # its own checkpoint: a resumed, paused or retried trial
            record.setdefault("resumed_at", []).append(int(state["trainer"]["iteration"]))
        else:
            # PBT exploit: another trial's weights, this trial's hyper-parameters
            record["restored_from"].append(
                {
                    "trial_id": donor,
                    "iteration": int(state["trainer"]["iteration"]),
                    "params": record["params"],
                    "at": time.time(),
                }
            )
    _write_json(run_dir / TRIAL_FILE, record)

    iteration = int(state["trainer"]["iteration"]) if state else 0
    trainer, group = make_trainer(config, iteration)
    try:
        rows: list[dict[str, float]] = []
        stale_best = False
        if state is not None:
            trainer.load_state_dict(state["trainer"])
            _set_learning_rates(trainer, config)
            rows = list(state["rows"])
            stale_best = _drop_later_checkpoints(run_dir / "checkpoints", trainer.iteration)
        columns = progress_columns(trainer)
        write_progress(run_dir / "progress.csv", rows, columns)
        best = None if stale_best else _best(rows)
        started = time.perf_counter() - (rows[-1]["wall_s"] if rows else 0.0)
        lineage = record["restored_from"]
        layer_s = float(record.get("tune_layer_s", 0.0))
        # Faults survived, as `flowsim train` counts them (a trial logs no events.jsonl).
        faults = dict.fromkeys(FAULT_COLUMNS, 0)
        for key in ("sim_restarts", "runner_restarts"):  # carried over from the checkpoint
            carried = float(rows[-1].get(key, 0)) if rows else 0.0
            faults[key] = int(carried) if math.isfinite(carried) else 0
        faults["resumes"] = len(record.get("resumed_at", []))
        replaced_before = 0
        while trainer.iteration < config.train.iterations:
            metrics = trainer.train_iteration()
            row: dict[str, float] = {key: float(metrics.get(key, math.nan)) for key in columns}
            for key in ("iteration", "env_steps", "episodes"):
                row[key] = int(row[key])
            faults["sim_restarts"] += int(metrics.get("restarts", 0))
            replaced = getattr(group, "runner_restarts", 0)
            faults["runner_restarts"] += replaced - replaced_before
            replaced_before = replaced
            row.update(faults)
            row["wall_s"] = time.perf_counter() - started
            rows.append(row)
            improved = math.isfinite(row["return_mean"]) and (
                best is None or row["return_mean"] > best
            )
            best = row["return_mean"] if improved else best
            append_progress(run_dir / "progress.csv", row, columns)

            report: dict[str, Any] = {k: v for k, v in row.items() if math.isfinite(v)}
            carried = _last_finite(rows, metric)
            if carried is not None:
                report[metric] = carried
            else:
                report.pop(metric, None)
            report["exploits"] = len(lineage)
            report["restored_from"] = lineage[-1]["trial_id"] if lineage else ""
            # Time spent on the Tune layer (trial.json, handing results and checkpoints to
            # Tune), up to the previous iteration: `flowsim bench tune` reads it.
            tick = time.perf_counter()
            record["last_report_at"] = time.time()
            record["iteration"] = trainer.iteration
            record["tune_layer_s"] = layer_s
            _write_json(run_dir / TRIAL_FILE, record)
            last = trainer.iteration >= config.train.iterations
            if trainer.iteration % checkpoint_every and not last:
                tune.report(report)
                layer_s += time.perf_counter() - tick
                continue
            paused = time.perf_counter()
            save_iteration(
                run_dir, trainer, rows, keep_checkpoints, improved
            )  # as `flowsim train` does
            tick += time.perf_counter() - paused
            saved = run_dir / "checkpoints" / f"checkpoint-{trainer.iteration:06d}.pt"
            with tempfile.TemporaryDirectory(dir=run_dir, prefix=".tune-") as folder:
                _link_or_copy(saved, Path(folder) / CHECKPOINT_FILE)
                origin = {"trial_id": trial_id, "iteration": trainer.iteration}
                (Path(folder) / ORIGIN_FILE).write_text(json.dumps(origin))
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(folder))
            layer_s += time.perf_counter() - tick
    finally:
        group.close()


def _drop_later_checkpoints(folder: Path, iteration: int) -> bool:
    """Delete this trial's checkpoints past ``iteration``, a history it no longer continues.

    After a PBT exploit or a resume from an earlier checkpoint they would sort after the new
    ones (and be kept in their place). Returns whether ``best.pt`` went with them.
    """
    from flowsim.runs.checkpoints import read_checkpoint

    for path in folder.glob("checkpoint-*.pt"):
        if int(path.stem.removeprefix("checkpoint-")) > iteration:
            path.unlink(missing_ok=True)
    best = folder / "best.pt"
    if not best.is_file():
        return False
    try:
        stale = int(read_checkpoint(best)["trainer"]["iteration"]) > iteration
    except Exception:  # unreadable: as good as stale
        stale = True
    if stale:
        best.unlink(missing_ok=True)
    return stale


def _best(rows: list[dict[str, float]]) -> float | None:
    finite = [r["return_mean"] for r in rows if math.isfinite(r["return_mean"])]
    return max(finite, default=None)


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (no second write), or copy it across file systems."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
