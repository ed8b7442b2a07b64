"""``flowsim replay``: one episode of a trained policy, or of the uncontrolled scenario.

The episode runs through the same env, actors, episode loop and metrics as ``flowsim evaluate``
(:func:`flowsim.distributed.play.play_episode`), on one seed, in one of two ways:

- headless: SUMO's FCD output (position and speed of every vehicle at every step) and emission
  output, plus ``replay.json`` (mean speed, speed std, collisions, the route for time-space
  diagrams, the AVs' ids);
- ``gui``: sumo-gui over TraCI, the whole network in view, AVs in red, a delay per step so a
  person can follow, optionally a PNG screenshot every K steps and a GIF of them.

A run directory replays its policy (``driver="policy"``); a config replays the scenario with
the AVs driven like the humans (``driver="human"``), so the wave shows before any training; a
controller baseline (``pi_saturation``, ``follower_stopper``) drives the AVs on request. On a
signal env the drivers are evaluate's signal baselines (``program``, the default for a config;
``fixed_cycle``, ``max_pressure``, ``greedy``). A multi-agent run replays every agent with its
own policy, and a baseline drives every agent through the single-agent task, as in evaluate.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowsim import jsonout
from flowsim.config import FlowsimConfig, apply_overrides, load_config
from flowsim.controllers.signals import SIGNAL_BASELINES
from flowsim.distributed.play import TaskActor, play_agents_episode, play_episode
from flowsim.errors import ConfigError, FlowsimError, SimulationCrashed
from flowsim.evaluation.evaluate import (
    BASELINES,
    BaselineActor,
    agent_returns,
    agents_policy_actor,
    applicable_baselines,
    check_seed,
    episode_stats,
    is_multiagent_config,
    load_policy,
    policy_actor,
)
from flowsim.sim.trips import TRIP_METRICS

__all__ = [
    "DRIVERS",
    "ReplaySource",
    "check_replay_settings",
    "default_driver",
    "default_replay_folder",
    "display_problem",
    "episode_config",
    "load_source",
    "replay",
    "replay_drivers",
]

#: Who drives the AVs in a replay: the run's policy or one of evaluate's baselines.
DRIVERS = ("policy", *BASELINES)
#: The seed of a replay by default: the first episode of ``flowsim evaluate``.
DEFAULT_SEED = 1000
_NO_DISPLAY = (
    "set DISPLAY (e.g. DISPLAY=:0), or run under a virtual display: "
    "`xvfb-run -a flowsim replay ... --gui` (apt-get install xvfb)."
)


@dataclass
class ReplaySource:
    """What to replay: a config and, for a trained run, its policy weights."""

    config: FlowsimConfig
    #: the policy's exported weights; None for a config without a run
    weights: dict[str, Any] | None
    #: the run directory or YAML file it came from
    origin: Path
    #: the checkpoint the weights came from (``latest``, ``best`` or an iteration)
    checkpoint: str | None = None

    @property
    def run_dir(self) -> Path | None:
        """The run directory, or None for a plain config."""
        return self.origin if self.weights is not None else None


def load_source(
    target: str | Path, checkpoint: str = "latest", overrides: list[str] | None = None
) -> ReplaySource:
    """A run directory (its config and policy) or an experiment YAML (no policy) to replay.

    ``overrides`` (``key=value``) apply on top of the run's or the file's config.
    """
    target = Path(target)
    if target.is_dir():
        if not (target / "config.yaml").is_file():
            raise ConfigError(
                f"{target}: not a run directory (no config.yaml); give a folder written by "
                "`flowsim train` or an experiment YAML such as scenarios/ring.yaml."
            )
        config = load_config(target / "config.yaml", overrides)
        _check_replayable(config, target)
        return ReplaySource(config, load_policy(target, checkpoint)[1], target, checkpoint)
    if not target.exists():
        raise ConfigError(
            f"{target} does not exist; give a run directory (runs/ring-...) or an experiment "
            "YAML (scenarios/ring.yaml)."
        )
    config = load_config(target, overrides)
    _check_replayable(config, target)
    return ReplaySource(config, None, target)


def _check_replayable(config: FlowsimConfig, origin: Path) -> None:
    """Refuse a config without a SUMO scenario (a Gymnasium env)."""
    if config.env.type == "gym":
        raise ConfigError(
            f"{origin}: env.type gym ({config.env.id}) has no SUMO scenario to replay; replay "
            "shows traffic scenarios such as scenarios/ring.yaml."
        )


def default_replay_folder(source: ReplaySource, driver: str) -> Path:
    """Default output folder: ``RUN_DIR/replay-<driver>``, or ``runs/replay-<name>-<driver>``."""
    if source.run_dir is not None:
        return source.run_dir / f"replay-{driver}"
    return Path("runs") / f"replay-{source.config.name}-{driver}"


def default_driver(source: ReplaySource) -> str:
    """``policy`` for a trained run; for a config, the uncontrolled scenario: ``human`` (the
    AVs driven like the humans), or on a signal env ``program`` (the network's own)."""
    if source.weights is not None:
        return "policy"
    return "program" if _signal_env(source.config) else "human"


def _signal_env(config: FlowsimConfig) -> bool:
    """Whether the config's env controls traffic lights (its drivers are signal rules)."""
    from flowsim.config.env import SIGNAL_ENV_TYPES

    return config.env.type in SIGNAL_ENV_TYPES


def replay_drivers(config: FlowsimConfig) -> tuple[str, ...]:
    """The baselines that can drive a replay of ``config``: evaluate's baselines that apply
    to its env (the AV controllers, or the signal rules on a signal env)."""
    return applicable_baselines(config, BASELINES)


def display_problem() -> str | None:
    """Why sumo-gui cannot open a window here (a message naming the fix), or None."""
    if os.environ.get("DISPLAY"):
        return None
    return "--gui needs a display and DISPLAY is not set: " + _NO_DISPLAY


def check_replay_settings(
    frame_size: tuple[int, int] = (800, 800), delay_ms: float = 100.0
) -> None:
    """Refuse a sumo-gui delay below 0 ms or screenshots under 16 pixels a side."""
    if delay_ms < 0:
        raise ConfigError(f"--delay {delay_ms}: give milliseconds per step, 0 or more.")
    if min(frame_size) < 16:
        width, height = frame_size
        raise ConfigError(f"--frame-size {width}x{height}: give WIDTHxHEIGHT pixels, e.g. 800x800.")


def episode_config(
    config: FlowsimConfig, driver: str, steps: int | None = None, gui: bool = False
) -> FlowsimConfig:
    """The config of a replayed episode: ``steps`` SUMO steps after the warm-up, optionally GUI.

    The policy and the signal rules act every ``env.sims_per_step`` steps as in training; the
    AV baselines act at every SUMO step over the same simulated time, as in ``flowsim
    evaluate``. ``steps`` defaults to the config's episode (``env.horizon × env.sims_per_step``).
    """
    repeat = config.env.sims_per_step
    total = steps if steps is not None else config.env.horizon * repeat
    if total < 1:
        raise ConfigError(f"--steps {total}: give a positive number of SUMO steps, e.g. 3000.")
    if driver == "policy" or driver in SIGNAL_BASELINES:
        overrides = [f"env.horizon={max(1, math.ceil(total / repeat))}"]
    else:
        overrides = ["env.sims_per_step=1", f"env.horizon={total}"]
    if gui:
        overrides += ["sim.backend=traci", "sim.gui=true"]
    return apply_overrides(config, overrides)


def _make_actor(source: ReplaySource, driver: str, env: Any) -> Callable:
    """The episode's driver on ``env`` (a multi-agent env's adapter: every agent's)."""
    multiagent = is_multiagent_config(source.config)
    if driver == "policy":
        assert source.weights is not None
        if multiagent:
            return agents_policy_actor(source.weights, env, source.config)
        if source.weights.get("kind") == "hierarchy":  # a `flowsim imitate` program
            from flowsim.hierarchy.collect import policy_driver

            return policy_driver(source.weights)
        return policy_actor(source.weights, env, tuple(source.config.train.hidden))
    # evaluate's baselines: a multi-agent env's drive every agent through its single-agent task
    if multiagent:
        return TaskActor(env, BaselineActor(driver)(env.task))
    return BaselineActor(driver)(env)


class _Watched:
    """An env seen through two hooks: after ``reset`` (warm-up done) and after every ``step``."""

    def __init__(self, env: Any, on_reset: Callable[[], None], on_step: Callable[[], None]) -> None:
        self._env = env
        self._on_reset = on_reset
        self._on_step = on_step

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    def reset(self, **kwargs: Any) -> Any:
        result = self._env.reset(**kwargs)
        self._on_reset()
        return result

    def step(self, action: Any) -> Any:
        result = self._env.step(action)
        self._on_step()
        return result


@dataclass
class _Camera:
    """Requests a sumo-gui screenshot every ``every`` SUMO steps of the controlled episode."""

    kernel: Any
    folder: Path
    every: int
    size: tuple[int, int]
    files: list[Path] = field(default_factory=list)
    start_time: float = 0.0
    next_step: int = 0
    #: a screenshot was requested and no step has written it yet
    pending: bool = False

    def start(self, primer: Path) -> None:
        """Count steps from now; the first frame follows the first step.

        sumo-gui draws the first screenshot of a size other than the view's with the view's
        proportions (stretched): a throwaway one to ``primer`` comes first.
        """
        self.start_time = self.kernel.time
        self.next_step = 0
        self.kernel.screenshot(str(primer), *self.size)

    def after_step(self) -> None:
        done = round((self.kernel.time - self.start_time) / self.kernel.sim.step_length)
        self.pending = False  # the step just taken wrote the last request
        if done >= self.next_step:
            path = self.folder / f"frame-{len(self.files):05d}.png"
            self.kernel.screenshot(str(path), *self.size)
            self.files.append(path)
            self.pending = True
            self.next_step = (done // self.every + 1) * self.every

    def flush(self) -> None:
        """Take one more step if the last screenshot is still waiting for one."""
        if self.pending:
            self.kernel.step()
            self.pending = False


def _gui_settings(folder: Path) -> Path:
    """A sumo-gui settings file: the 'real world' scheme, vehicles in their own colours."""
    path = folder / "gui-settings.xml"
    # No delay of sumo-gui's own (a user's saved settings may have one): replay paces the steps.
    path.write_text(
        '<viewsettings>\n    <scheme name="real world"/>\n    <delay value="0"/>\n</viewsettings>\n'
    )
    return path


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt, so that a killed replay still closes sumo-gui."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _relative(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder`` where it lies inside it, else absolute."""
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(folder.resolve()))
    return str(path.resolve())


@dataclass
class _Episode:
    """What one played episode left: metrics, times, the scenario instance and the frames."""

    metrics: dict[str, float]
    start_time: float
    end_time: float
    instance: Any
    frames: list[Path]
    wall_s: float
    #: a multi-agent episode's return of each agent (None for a single-agent env)
    agent_returns: dict[str, float] | None = None


def _check_request(
    source: ReplaySource,
    driver: str | None,
    gui: bool,
    screenshots: bool,
    frame_every: int,
) -> str:
    """The driver to use; refuses requests that cannot work, naming the fix."""
    driver = driver or default_driver(source)
    drivers = replay_drivers(source.config)
    if driver not in DRIVERS:
        raise ConfigError(f"--driver {driver}: choose from {', '.join(DRIVERS)}.")
    if driver == "policy" and source.weights is None:
        raise ConfigError(
            f"--driver policy needs a trained run; {source.origin} is a config. Give a run "
            f"directory, or a baseline driver: {', '.join(drivers)}."
        )
    if driver != "policy" and driver not in drivers:
        raise ConfigError(
            f"--driver {driver} does not apply to env.type {source.config.env.type} of "
            f"{source.origin}; choose from {', '.join(('policy', *drivers))}."
        )
    if frame_every < 1:
        raise ConfigError(f"--frame-every {frame_every}: give a positive number of steps.")
    if screenshots and not gui:
        raise ConfigError("screenshots (--frames, --gif) are drawn by sumo-gui: add --gui.")
    problem = display_problem() if gui else None
    if problem:
        raise ConfigError(problem)
    return driver


def _play(
    source: ReplaySource,
    config: FlowsimConfig,
    driver: str,
    seed: int,
    sumo_args: list[str],
    camera: tuple[Path, int, tuple[int, int]] | None,
    scratch: Path,
    delay_ms: float,
    show_progress: bool,
) -> _Episode:
    """Run the episode; in sumo-gui, frame the network, pace the steps and take screenshots."""
    from flowsim.envs import make_env
    from flowsim.envs.make import make_multiagent_env
    from flowsim.viz.progress import progress_bar

    gui = config.sim.gui
    multiagent = is_multiagent_config(config)
    # a multi-agent env (its adapter: agents mapped onto the run's policies) runs SUMO through
    # the single-agent task it wraps
    env = make_multiagent_env(config) if multiagent else make_env(config)
    task = env.task if multiagent else env
    kernel = task.simulation.kernel
    kernel.extra_args = [*kernel.extra_args, *sumo_args]
    shooter = _Camera(kernel, *camera) if camera is not None else None
    hooks = _Hooks(task, gui, shooter, scratch / "primer.png", delay_ms)

    started = time.perf_counter()
    try:
        with progress_bar(
            f"replaying ({driver})", config.env.horizon, enabled=show_progress
        ) as advance:
            hooks.advance = advance
            actor = _make_actor(source, driver, env)
            watched = _Watched(env, hooks.after_reset, hooks.after_step)
            if multiagent:  # recorded: each agent's rewards give its own return
                played = play_agents_episode(watched, actor, seed, record=True)
            else:
                played = play_episode(watched, actor, seed)
            metrics = episode_stats(played, config)
            returns = agent_returns(played) if multiagent else None
        end_time = kernel.time
        if shooter is not None:
            shooter.flush()
    except SimulationCrashed as error:
        if gui:
            raise _gui_failure(error) from None
        raise
    finally:
        env.close()  # closes sumo-gui and waits for it (kills it if it hangs)
    frames = [p for p in shooter.files if p.is_file()] if shooter is not None else []
    return _Episode(
        metrics=metrics,
        start_time=hooks.start_time,
        end_time=end_time,
        instance=hooks.instance,
        frames=frames,
        wall_s=time.perf_counter() - started,
        agent_returns=returns,
    )


class _Hooks:
    """What a replay does around its env: after the warm-up, note where the controlled episode
    starts, frame the network in sumo-gui and start the camera; after every step, take the
    screenshot due, hold sumo-gui to ``delay_ms`` per SUMO step and advance the progress bar.
    """

    def __init__(
        self, task: Any, gui: bool, shooter: _Camera | None, primer: Path, delay_ms: float
    ) -> None:
        self.task = task
        self.kernel = task.simulation.kernel
        self.gui = gui
        self.shooter = shooter
        self.primer = primer
        self.delay_ms = delay_ms
        #: the progress bar's step (set once the bar is drawn)
        self.advance: Callable[[], None] = lambda: None
        self.start_time = 0.0
        self.instance: Any = None
        self.clock = 0.0

    def after_reset(self) -> None:
        """The warm-up is done: the controlled episode starts now."""
        self.start_time = self.kernel.time
        self.instance = self.task.simulation.instance
        self.clock = time.perf_counter()
        if self.gui:
            self.kernel.show_network()
        if self.shooter is not None:
            self.shooter.start(self.primer)

    def after_step(self) -> None:
        """One step of the controlled episode is done."""
        if self.shooter is not None:
            self.shooter.after_step()
        if self.gui and self.delay_ms > 0:
            # TraCI cannot change sumo-gui's own delay: pace the steps here, after a warm-up
            # that ran at full speed.
            done = (self.kernel.time - self.start_time) / self.kernel.sim.step_length
            wait = self.clock + done * self.delay_ms / 1000.0 - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        self.advance()


def _gui_failure(error: SimulationCrashed) -> FlowsimError:
    """What to tell a user whose sumo-gui crashed: no display (a ConfigError naming the fix),
    or a window closed or crashed mid-replay."""
    if "display" in str(error).lower():
        where = os.environ.get("DISPLAY", "")
        return ConfigError(f"sumo-gui could not open a window on DISPLAY={where}: {_NO_DISPLAY}")
    return FlowsimError(
        f"sumo-gui closed or crashed during the replay ({error}); outputs are partial."
    )


def replay(
    source: ReplaySource,
    out: str | Path,
    *,
    driver: str | None = None,
    seed: int = DEFAULT_SEED,
    steps: int | None = None,
    gui: bool = False,
    frames: str | Path | None = None,
    frame_every: int = 10,
    frame_size: tuple[int, int] = (800, 800),
    gif: str | Path | None = None,
    gif_frame_ms: float = 100.0,
    fcd: str | Path | None = None,
    delay_ms: float = 100.0,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Replay one episode from ``seed`` and write ``out/replay.json``; return its summary.

    ``driver`` is ``policy`` (the default for a run) or a baseline (``human``, the default for
    a config; ``pi_saturation``; ``follower_stopper``; on a signal env ``program``, the default
    for a config, ``fixed_cycle``, ``max_pressure``, ``greedy``). ``steps`` are SUMO steps
    after the warm-up (default: the config's episode; the policy and the signal rules play
    whole agent steps, so up to ``env.sims_per_step - 1`` more). Headless, SUMO writes
    ``out/fcd.xml`` (or ``fcd``) and ``out/emission.xml``. With ``gui``, sumo-gui shows the
    episode with ``delay_ms`` per step, writes FCD only to ``fcd``, and takes a
    ``frame_size`` screenshot into ``frames`` every ``frame_every`` SUMO steps (at most one
    per agent step), assembled into ``gif`` if given (``gif_frame_ms`` per frame).
    ``show_progress`` draws a progress bar on a terminal.

    The summary holds ``mean_speed``, ``speed_std``, ``min_speed`` (second half of the replayed
    steps), ``collisions``, the ``route`` for time-space diagrams, ``av_ids`` and ``files``; on
    a signal env RESCO's trip metrics; for the policy and the signal rules ``return``.
    """
    check_replay_settings(frame_size, delay_ms)
    screenshots = frames is not None or gif is not None
    check_seed(seed)
    driver = _check_request(source, driver, gui, screenshots, frame_every)
    config = episode_config(source.config, driver, steps, gui)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    outputs = _sumo_outputs(out, fcd, gui)
    sumo_args = [arg for name, path in outputs.items() for arg in (f"--{name}-output", str(path))]
    frames_dir = Path(frames) if frames is not None else (out / "frames" if gif else None)
    camera = None
    if frames_dir is not None:
        frames_dir.mkdir(parents=True, exist_ok=True)
        for stale in frames_dir.glob("frame-*.png"):  # a GIF of two replays would mislead
            stale.unlink()
        camera = (frames_dir, frame_every, frame_size)

    with tempfile.TemporaryDirectory(prefix="flowsim-replay-") as folder, _terminate_as_interrupt():
        scratch = Path(folder)
        if gui:
            sumo_args += ["--gui-settings-file", str(_gui_settings(scratch))]
            sumo_args += ["--window-size", f"{frame_size[0]},{frame_size[1]}"]
        episode = _play(
            source, config, driver, seed, sumo_args, camera, scratch, delay_ms, show_progress
        )

    files: dict[str, Any] = {name: _relative(path, out) for name, path in outputs.items()}
    if camera is not None:
        files["frames"] = [_relative(p, out) for p in episode.frames]
    if gif is not None and episode.frames:
        from flowsim.viz.animation import frames_to_gif

        files["gif"] = _relative(frames_to_gif(episode.frames, gif, frame_ms=gif_frame_ms), out)
    summary = _summary(source, config, driver, seed, episode)
    summary["files"] = files
    (out / "replay.json").write_text(jsonout.dumps(summary) + "\n")
    return summary


def _sumo_outputs(out: Path, fcd: str | Path | None, gui: bool) -> dict[str, Path]:
    """SUMO's output files by kind (``fcd``, ``emission``), their folders made: headless both
    in ``out`` (FCD at ``fcd`` if given); in sumo-gui only FCD, and only to ``fcd``."""
    outputs: dict[str, Path] = {}
    if fcd is not None or not gui:
        outputs["fcd"] = (Path(fcd) if fcd is not None else out / "fcd.xml").resolve()
        outputs["fcd"].parent.mkdir(parents=True, exist_ok=True)
    if not gui:
        outputs["emission"] = (out / "emission.xml").resolve()
    return outputs


def _summary(
    source: ReplaySource, config: FlowsimConfig, driver: str, seed: int, episode: _Episode
) -> dict[str, Any]:
    """The figures of ``replay.json``."""
    from flowsim.viz.timespace import Route

    metrics = episode.metrics
    rl_groups = {g.type for g in config.vehicles if g.controller.type == "rl"}
    summary: dict[str, Any] = {
        "source": str(source.origin),
        "checkpoint": source.checkpoint,
        "driver": driver,
        "seed": seed,
        "gui": config.sim.gui,
        "steps": round((episode.end_time - episode.start_time) / config.sim.step_length),
        "agent_steps": int(metrics["length"]),
        "warmup_steps": config.env.warmup_steps,
        "step_length": config.sim.step_length,
        "control_start_s": episode.start_time,
        "end_s": episode.end_time,
        "mean_speed": metrics["mean_speed"],
        "speed_std": metrics["speed_std"],
        "min_speed": metrics["min_speed"],
        "collisions": int(metrics["collisions"]),
        "metrics_over": "second half of the replayed steps (collisions: all of them)",
    }
    if driver == "policy" or driver in SIGNAL_BASELINES:  # at the env's own pace
        summary["return"] = metrics["return"]
        if episode.agent_returns is not None:  # the team's return above; each agent's here
            summary["agent_returns"] = episode.agent_returns
    for key in TRIP_METRICS:
        if key in metrics:  # a signal env: RESCO's trip metrics of the replayed episode
            summary[key] = metrics[key]
    if "equilibrium_speed" in metrics:
        summary["equilibrium_speed"] = metrics["equilibrium_speed"]
        summary["speed_ratio"] = metrics["mean_speed"] / metrics["equilibrium_speed"]
    summary["scenario"] = {"type": config.scenario.type, "length": episode.instance.length}
    summary["av_ids"] = [v.vehicle_id for v in episode.instance.vehicles if v.group in rl_groups]
    summary["wall_s"] = episode.wall_s
    instance = episode.instance
    # Open networks without a main route (OSM areas, your own files) have no time-space axis.
    route = Route.from_net(instance.net_file, instance.ring_edges) if instance.ring_edges else None
    summary["route"] = route.to_json() if route is not None else None
    return summary
