"""What ``--set`` may change when a run resumes: the one rule for ``train`` and ``tune``.

A resumed run continues the learner its checkpoint holds, so only settings that change how it
goes on (how long, how big its steps, where its runners live) may differ from the run's saved
``config.yaml``. Anything that changes what it learns on or with (the env, the network, the
algorithm, observation normalisation, seeds, the batch) would make the checkpoint and the
config disagree: such a key is refused with a message, never ignored.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from flowsim.config import FlowsimConfig, apply_overrides
from flowsim.errors import ConfigError

__all__ = ["RESUMABLE_KEYS", "resume_config"]

#: Keys (and the keys under them) a resume may change, with what they set.
RESUMABLE_KEYS: dict[str, str] = {
    "train.iterations": "where the run ends (raise it to extend the run)",
    "train.time_budget_s": "the wall time that ends the run (raise it to extend the run)",
    "train.keep_checkpoints": "how many checkpoints are kept",
    "train.lr": "the learning rate",
    "train.lr_schedule": "the learning-rate schedule",
    "train.es.lr": "ES's step size",
    "train.trpo.vf_lr": "TRPO's value-function learning rate",
    "train.entropy_coef": "the entropy bonus",
    "train.trpo.entropy_coef": "TRPO's entropy bonus",
    "sampler.num_workers": "how many runner processes sample",
    "sampler.address": "the Ray cluster the runners join",
    "sampler.resources_per_worker": "what each runner reserves on Ray",
    "sampler.allow_oversubscription": "whether runners may queue for CPUs",
    "sampler.connect_timeout_s": "how long to wait for the cluster",
    "sampler.max_runner_restarts": "how many runners may be replaced",
}


def resume_config(
    saved: FlowsimConfig,
    overrides: list[str] | None,
    done: int,
    source: str,
    command: str = "flowsim train",
    refused: Mapping[str, str] | None = None,
) -> tuple[FlowsimConfig, list[str]]:
    """The saved config of a run that resumes after ``done`` iterations, with ``overrides``.

    Args:
        saved: the run's ``config.yaml``.
        overrides: ``key=value`` items (``--set``); none leaves ``saved`` as it is.
        done: iterations the run has done (its checkpoint's).
        source: the run (or tuning) directory, for messages.
        command: what starts a new run instead, for messages.
        refused: keys this kind of resume cannot change although :data:`RESUMABLE_KEYS`
            allows them, each with the reason.

    Returns:
        The config to continue with, and one ``key old -> new`` line per changed key.

    Raises:
        ConfigError: an override is invalid, changes a key a resume cannot change (named,
            with what to do instead), or sets ``train.iterations`` below ``done``.
    """
    if not overrides:
        return saved, []
    config = apply_overrides(saved, overrides, source=f"--set on --resume {source}")
    changes = dict(_differences(saved.model_dump(mode="json"), config.model_dump(mode="json")))
    for key, (old, new) in changes.items():
        reason = _match(key, refused or {})
        if reason is not None:
            raise ConfigError(
                f"--set {key}={_show(new)}: cannot change on --resume {source}: {reason}."
            )
        if _match(key, RESUMABLE_KEYS) is None:
            raise ConfigError(
                f"--set {key}={_show(new)}: {key} cannot change when a run resumes (it is "
                f"{_show(old)} in {source}; the checkpoint was trained with it). Start a new "
                f"run instead (`{command} CONFIG --set {key}=...`); a resume may change "
                f"{', '.join(k for k in RESUMABLE_KEYS if _match(k, refused or {}) is None)}."
            )
    if config.train.iterations < done:
        raise ConfigError(
            f"--set train.iterations={config.train.iterations}: {source} has already done "
            f"{done} iterations; give at least {done} (more extends the run), or start a new "
            "run."
        )
    return config, [f"{key} {_show(old)} -> {_show(new)}" for key, (old, new) in changes.items()]


def _differences(old: Any, new: Any, prefix: str = "") -> Iterator[tuple[str, tuple[Any, Any]]]:
    """``(dotted key, (old, new))`` for each value that differs between two dumps."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in dict.fromkeys([*old, *new]):
            yield from _differences(old.get(key), new.get(key), f"{prefix}{key}.")
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            yield from _differences(a, b, f"{prefix}{index}.")
    elif old != new:
        yield prefix.rstrip("."), (old, new)


def _match(key: str, table: Mapping[str, str]) -> str | None:
    """The entry of ``table`` that ``key`` is (or lies under), if any."""
    for name, value in table.items():
        if key == name or key.startswith(f"{name}."):
            return value
    return None


def _show(value: Any) -> str:
    text = "null" if value is None else str(value)
    return text if len(text) <= 40 else text[:37] + "..."
