"""One Ray Tune trial = one flowsim training run with its own runner actors.

:func:`run_trial` is a Ray Tune function trainable. It builds the trial's config from the
experiment's and the trial's parameters, makes the trainer and its runner group
(:func:`flowsim.runs.training.make_trainer`) and runs the one training loop
(:func:`flowsim.runs.loop.train_until`) with a :class:`~flowsim.tune.reporter.TuneReporter`:
after every iteration the ``progress.csv`` row goes to :func:`ray.tune.report`, and every
``tune.checkpoint_every`` iterations the loop's flowsim checkpoint (atomic, tensors only) is
handed to Tune as the trial's checkpoint, so that PBT can copy it into another trial and
ASHA / HyperBand can pause and resume trials.

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
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from flowsim.config import FlowsimConfig, parse_config
from flowsim.tune.reporter import (
    CHECKPOINT_FILE,
    ORIGIN_FILE,
    TuneReporter,
    read_trial_record,
    write_trial_record,
)

__all__ = [
    "RUN_FOLDER",
    "run_trial",
    "trial_bundles",
    "trial_config",
    "trial_dirname",
    "trial_resources",
]

#: The flowsim run directory inside a trial's folder.
RUN_FOLDER = "run"


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
    """``data[a][b][0][c] = value`` for ``a.b.0.c``; KeyError when the dump lacks the key."""
    from flowsim.config.keys import get_value, set_value
    from flowsim.errors import ConfigError

    try:
        current = get_value(data, dotted)
    except ConfigError:
        raise KeyError(dotted) from None
    set_value(data, dotted, _native(value, current))


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

    from flowsim.runs.callbacks import CSVWriter, EventsFlush
    from flowsim.runs.directory import Row, RunDirectory
    from flowsim.runs.loop import best_figure, eval_column, progress_columns, train_until
    from flowsim.runs.training import make_trainer

    context = tune.get_context()
    trial_id = context.get_trial_id()
    config = trial_config(base, params)
    directory = RunDirectory(Path(experiment_dir) / f"trial-{trial_id}" / RUN_FOLDER)
    directory.checkpoints.mkdir(parents=True, exist_ok=True)
    directory.write_config(config)
    record = read_trial_record(directory.path) or {"trial_id": trial_id, "restored_from": []}
    record["params"] = {k: _native(v, None) for k, v in params.items()}
    record.setdefault("started_at", time.time())

    state: dict[str, Any] | None = None
    own_checkpoint = False
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        state, origin = _restore(checkpoint)
        donor = origin.get("trial_id", trial_id)
        own_checkpoint = donor == trial_id
        if own_checkpoint:  # a resumed, paused or retried trial
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
    write_trial_record(directory.path, record)

    iteration = int(state["trainer"]["iteration"]) if state else 0
    trainer, group = make_trainer(config, iteration)
    try:
        rows: list[Row] = []
        best = None
        if state is not None:
            trainer.load_state_dict(state["trainer"])
            trainer.set_learning_rates(config.train)  # after a PBT exploit: this trial's
            rows = list(state["rows"])
            column = eval_column(config.train) or "return_mean"  # what best.pt was kept by
            best = (
                None if directory.drop_checkpoints_after(iteration) else best_figure(rows, column)
            )
        # Faults survived go on from the restored rows; resumes count this trial's own
        # restores (trial.json's resumed_at), whoever's checkpoint it continues.
        resumes = len(record.get("resumed_at", []))
        carried = {**(rows[-1] if rows else {}), "resumes": resumes - int(own_checkpoint)}
        events = directory.events(carried)
        if own_checkpoint:
            events.record("resumed", iteration, f"trial {trial_id} from its own checkpoint")
        callbacks = [
            CSVWriter(directory, rows, progress_columns(trainer), events),
            EventsFlush(events),
            TuneReporter(directory.path, trial_id, record, metric, rows),
        ]
        train_until(
            trainer,
            group,
            directory,
            rows,
            events,
            callbacks,
            iterations=config.train.iterations,
            keep_checkpoints=keep_checkpoints,
            checkpoint_every=checkpoint_every,
            best=best,
        )
    finally:
        group.close()


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
