"""Deterministic evaluation of a trained policy against controller baselines on the same seeds.

Every candidate (the policy, the all-human ring, a PISaturation AV, a max-pressure rule for the
traffic lights, ...) drives the same env through the same action interface, episode ``k`` on
seed ``seed + k``, so ring lengths, human noise and demand match across candidates. The
episodes are play jobs for a runner group (:meth:`flowsim.distributed.RunnerGroup.play`): the
policy is the runners' own, a baseline an actor the runner builds (:class:`BaselineActor`).
Traffic metrics are measured over the second half of each episode: the wave needs time to
dissolve, and the result that matters is the traffic the AV leaves behind, not the transient.
On a signal env every candidate also gets RESCO's trip metrics of its whole episodes
(``avg_delay``, ``avg_trip_time``, ``avg_waiting_time``, ``throughput``:
:mod:`flowsim.sim.trips`).

On a multi-agent env (one agent per AV or per traffic light) the figures above are the team's
(``mean_return`` sums every agent's rewards; the speeds and trip metrics are the network's),
``agent_return_mean`` is the return averaged over the agents, and ``agents`` holds each agent's
own mean return: the policies play every agent, and a baseline written for the single-agent
task drives every agent through it (:class:`~flowsim.distributed.play.TaskActor`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flowsim.config import ControllerConfig, FlowsimConfig, apply_overrides, load_config
from flowsim.config.env import SIGNAL_ENV_TYPES
from flowsim.controllers.signals import SIGNAL_BASELINES, signal_rule
from flowsim.distributed import EpisodeJob, EpisodeResult, RunnerGroup, make_runner_group
from flowsim.distributed.play import Actor, AgentsPolicyActor, PolicyActor
from flowsim.envs.registry import MULTIAGENT_TYPES
from flowsim.errors import ConfigError
from flowsim.sim.trips import TRIP_METRICS

if TYPE_CHECKING:
    from flowsim.runs.directory import RunDirectory

#: Baselines that drive AVs: they apply only where a vehicle group is driven by ``rl``.
AV_BASELINES = ("human", "pi_saturation", "follower_stopper")
#: Baselines `evaluate` knows: the AV driven by the humans' own model, or by a controller;
#: for signal control, the no-training rules of :mod:`flowsim.controllers.signals` (the
#: network's own programme, a fixed cycle, max-pressure, greedy).
BASELINES = (*AV_BASELINES, *SIGNAL_BASELINES)


def fixed_cycle_actor(config: FlowsimConfig, space: Any) -> Callable[[int], Any]:
    """Signal phases that cycle every ``scenario.signals.green`` seconds: action at step k.

    A fixed-time programme through the agent's own action interface (a ``Discrete`` or
    ``MultiDiscrete`` choice of green phase per signal).
    """
    import gymnasium

    seconds = config.sim.step_length * config.env.sims_per_step
    hold = max(1, round(config.scenario.signals.green / seconds))
    if isinstance(space, gymnasium.spaces.Discrete):
        return lambda step: int(space.start + (step // hold) % space.n)
    if isinstance(space, gymnasium.spaces.MultiDiscrete):
        nvec, start = np.asarray(space.nvec), np.asarray(space.start)
        return lambda step: start + (step // hold) % nvec
    raise ConfigError(
        f"the fixed_cycle baseline needs a discrete action space (signal phases); "
        f"env.type {config.env.type} has {space}."
    )


def signal_actor(name: str, env: Any) -> Actor:
    """The signal rule ``name`` (one of ``SIGNAL_BASELINES``) choosing the env's green phases.

    The rule reads the env's own :class:`~flowsim.sim.signals.Signals` and starts afresh at
    every episode; ``program`` hands the lights back to SUMO's programme for the episode, and
    ``fixed_cycle`` holds each green for ``scenario.signals.green`` seconds.
    """
    unwrapped = env.unwrapped
    green = unwrapped.config.scenario.signals.green
    rule = signal_rule(name, unwrapped.signals, green=green)
    state: dict[str, Any] = {"episode": None}

    def act(_obs: np.ndarray, env: Any) -> Any:
        episode = unwrapped.simulation.instance
        if state["episode"] is not episode:  # a new episode: the env has bound its lights again
            rule.reset()
            state["episode"] = episode
        return rule.choose()

    return act


def applicable_baselines(config: FlowsimConfig, baselines: tuple[str, ...]) -> tuple[str, ...]:
    """The requested baselines that make sense for the config's env.

    AV baselines need a vehicle group driven by ``rl`` (on an open network only ``human``:
    the controllers keep per-AV state and AVs come and go there); signal baselines need a
    signal-control env, where requested AV baselines are replaced by every signal baseline
    (:data:`SIGNAL_BASELINES`); a Gymnasium env has none.
    """
    if config.env.type == "gym":
        return ()
    if config.env.type in SIGNAL_ENV_TYPES:
        kept = [b for b in baselines if b in SIGNAL_BASELINES]
        if len(kept) < len(baselines):
            kept += [b for b in SIGNAL_BASELINES if b not in kept]
        return tuple(kept)
    has_avs = any(group.controller.type == "rl" for group in config.vehicles)
    kept = [b for b in baselines if b not in SIGNAL_BASELINES]
    kept = [b for b in kept if has_avs or b not in AV_BASELINES]
    if config.scenario.open:  # the controllers keep per-AV state; there AVs come and go
        kept = [b for b in kept if b not in ("pi_saturation", "follower_stopper")]
    return tuple(kept)


def episode_stats(result: EpisodeResult, config: FlowsimConfig) -> dict[str, float]:
    """One played episode as evaluation reports it: ``return``, ``length``, ``mean_speed``,
    ``speed_std`` and ``min_speed`` (second half of the episode), ``collisions`` (all of it),
    on rings ``equilibrium_speed`` (of the episode's ring length) and, on a signal env, the
    episode's trip metrics (``avg_delay``, ``avg_trip_time``, ``avg_waiting_time``,
    ``throughput``)."""
    metrics = result.metrics
    stats = {
        "return": result.episode_return,
        "length": float(result.length),
        **{key: metrics[key] for key in ("mean_speed", "speed_std", "min_speed", "collisions")},
        **{key: metrics[key] for key in (*TRIP_METRICS, "outflow") if key in metrics},
    }
    if "ring_length" in metrics:
        from flowsim.evaluation.simulate import equilibrium_speed

        stats["equilibrium_speed"] = equilibrium_speed(config, metrics["ring_length"])
    if result.steps is not None and is_multiagent_config(config):
        returns = agent_returns(result)
        stats["agent_return_mean"] = float(np.mean(list(returns.values()))) if returns else np.nan
        stats.update({f"{AGENT_PREFIX}{agent}": value for agent, value in returns.items()})
    return stats


#: Prefix of an agent's return among :func:`episode_stats`' keys (``agent:av_0``).
AGENT_PREFIX = "agent:"


def is_multiagent_config(config: FlowsimConfig) -> bool:
    """Whether the config's env is a multi-agent (PettingZoo) one."""
    return config.env.type in MULTIAGENT_TYPES


def agent_returns(result: EpisodeResult) -> dict[str, float]:
    """Each agent's return in a multi-agent episode played with ``record=True`` (its rewards
    summed over the steps it acted), in the order the agents first acted."""
    if result.steps is None:
        raise ValueError("agent_returns needs an episode played with EpisodeJob(record=True)")
    returns: dict[str, float] = {}
    for rewards in result.steps["rewards"]:
        for agent, reward in rewards.items():
            returns[agent] = returns.get(agent, 0.0) + float(reward)
    return returns


def policy_actor(weights: dict[str, np.ndarray], env: Any, hidden: tuple[int, ...]) -> Actor:
    """The trained policy acting deterministically on ``env`` (the mean action; argmax if
    discrete), outside a runner (``flowsim replay``'s GUI session)."""
    from flowsim.policies.numpy_mlp import build_policy
    from flowsim.policies.spec import PolicySpec

    spec = PolicySpec.for_spaces(env.observation_space, env.action_space, hidden)
    policy = build_policy(spec, env.observation_space, env.action_space, 0)
    policy.set_weights(weights)
    return PolicyActor(policy, env.action_space.shape or ())


def agents_policy_actor(weights: dict[str, Any], adapter: Any, config: FlowsimConfig) -> Actor:
    """A multi-agent run's policies acting deterministically on every agent of ``adapter`` (a
    :class:`~flowsim.envs.multiagent_adapter.MultiAgentAdapter`), outside a runner.

    ``weights`` is the run's exported policy: one policy's weights (``shared``, or groups that
    hold every agent), or a dict of them by policy id. The networks are built as the runners
    build them (a central critic reads the global state).

    Raises:
        ConfigError: the weights miss one of the adapter's policies (``train.multiagent``
            changed since the run was trained).
    """
    from dataclasses import replace

    from flowsim.policies.numpy_mlp import build_policy
    from flowsim.policies.spec import PolicySpec

    central = config.train.multiagent.critic == "central"
    several = len(adapter.policies) > 1
    missing = [pid for pid in adapter.policies if several and pid not in weights]
    if missing:
        raise ConfigError(
            f"the run's checkpoint has no weights for policies {missing}: "
            "train.multiagent.policies must stay as the run was trained."
        )
    policies = {}
    for pid, spaces in adapter.policies.items():
        observation, action = spaces.observation_space, spaces.action_space
        spec = PolicySpec.for_spaces(observation, action, tuple(config.train.hidden))
        spec = spec.fit(observation, action)
        if central and spec.kind != "constant":
            spec = replace(spec, critic_dim=adapter.state_dim)
        policy = build_policy(spec, observation, action, 0)
        policy.set_weights(weights[pid] if several else weights)
        policies[pid] = policy
    return AgentsPolicyActor(adapter, policies)


def controller_actor(controller: ControllerConfig, config: FlowsimConfig) -> Actor:
    """The AVs driven by a flowsim controller, through the env's acceleration actions."""
    from flowsim.controllers import make_controller

    model = make_controller(controller.type, controller.params)
    state = {"episode": None}

    def act(_obs: np.ndarray, env: Any) -> np.ndarray:
        simulation = env.simulation
        avs = simulation.rl_indices()
        if state["episode"] is not simulation.instance:  # a new episode: fresh controller state
            model.reset(len(avs), np.random.default_rng(config.sim.seed))
            state["episode"] = simulation.instance
        action = np.zeros(env.action_space.shape, dtype=np.float64)
        if avs.size:
            action[: avs.size] = model.accelerations(simulation.following_state(avs))
        return action

    return act


@dataclass(frozen=True)
class BaselineActor:
    """Baseline ``name`` (one of :data:`BASELINES`) built on a runner for its env: the actor
    factory of an evaluation play job. The env's own config says the human model, the
    signal timing and the seed."""

    name: str

    def __call__(self, env: Any) -> Actor:
        """The baseline's actor for ``env``."""
        config = env.unwrapped.config
        if self.name in SIGNAL_BASELINES:
            return signal_actor(self.name, env)
        if self.name == "human":
            own = getattr(env.unwrapped, "human_actor", None)  # e.g. open_accel: SUMO drives
            if own is not None:
                return own()
            return controller_actor(human_controller(config), config)
        return controller_actor(ControllerConfig(type=self.name), config)


def human_controller(config: FlowsimConfig) -> ControllerConfig:
    """The controller of the config's largest human group (flowsim-driven): the AV's model in
    the human baseline."""
    humans = [g for g in config.vehicles if g.controller.type not in ("rl", "sumo")]
    if not humans:
        raise ConfigError(
            "the human baseline needs a vehicle group driven by a flowsim controller (e.g. idm); "
            "this config has none."
        )
    return max(humans, key=lambda g: g.count).controller


def summarise_episodes(episodes: list[dict[str, float]]) -> dict[str, float]:
    """Means over :func:`episode_stats` results of the return and the speed metrics (``mean_speed``,
    ``speed_std``), the worst speed, the total collisions, on rings the equilibrium speed and
    ``speed_ratio``, and the means of the trip metrics where every episode has them. Every
    evaluation of a driver reports these keys (the hierarchy's closed loop adds its own)."""
    summary = {
        "episodes": len(episodes),
        "mean_return": float(np.mean([e["return"] for e in episodes])),
        "mean_speed": float(np.mean([e["mean_speed"] for e in episodes])),
        "speed_std": float(np.mean([e["speed_std"] for e in episodes])),
        "min_speed": float(np.min([e["min_speed"] for e in episodes])),
        "collisions": int(sum(e["collisions"] for e in episodes)),
    }
    if all("equilibrium_speed" in e for e in episodes):
        equilibrium = float(np.mean([e["equilibrium_speed"] for e in episodes]))
        summary["equilibrium_speed"] = equilibrium
        ratios = [e["mean_speed"] / e["equilibrium_speed"] for e in episodes]
        summary["speed_ratio"] = float(np.mean(ratios))
    for key in (*TRIP_METRICS, "outflow", "agent_return_mean"):
        if episodes and all(key in e for e in episodes):
            summary[key] = float(np.mean([e[key] for e in episodes]))
    agents = list(dict.fromkeys(k for e in episodes for k in e if k.startswith(AGENT_PREFIX)))
    if agents:  # an agent that did not act in an episode (it never entered) is left out there
        summary["agents"] = {
            key[len(AGENT_PREFIX) :]: {
                "return": float(np.mean([e[key] for e in episodes if key in e])),
                "episodes": sum(key in e for e in episodes),
            }
            for key in agents
        }
    return summary


def check_seed(seed: int) -> None:
    """Refuse a negative episode seed (``--seed``): Gymnasium takes seeds of 0 or more."""
    if seed < 0:
        raise ConfigError(f"--seed {seed}: give an episode seed of 0 or more, e.g. 1000.")


def evaluate(
    config: FlowsimConfig,
    weights: dict[str, np.ndarray] | None = None,
    episodes: int = 5,
    seed: int = 1000,
    baselines: tuple[str, ...] = ("human", "pi_saturation"),
    progress: Callable[[str], None] | None = None,
    group: RunnerGroup | None = None,
) -> dict[str, Any]:
    """Evaluate ``weights`` (if given) and each baseline on ``episodes`` episodes.

    The episodes play on one in-process runner built from ``config`` (its env backend as
    configured), or on ``group`` when given (a trainer's runners: the policy then plays on
    them, and so do the signal baselines; the AV baselines still get their own runner).

    Signal baselines choose green phases at the policy's decision interval. AV baselines drive
    the AV through the same acceleration actions and limits, but at every SUMO step
    (``env.sims_per_step`` is set to 1 for them, over the same simulated time); their
    ``mean_return`` is divided by the policy's ``sims_per_step`` to stay comparable.

    Returns ``{"policy": {...}, "baselines": {name: {...}}, "seeds": [...]}``; each entry holds
    ``mean_return``, ``mean_speed``, ``speed_std``, ``min_speed``, ``collisions``, on rings
    ``equilibrium_speed`` and ``speed_ratio`` (mean speed over equilibrium speed), and on a
    signal env the trip metrics (``avg_delay`` …, means over the episodes). On a multi-agent
    env ``mean_return`` is the team's (summed over agents), ``agent_return_mean`` its mean
    over the agents, and ``agents`` maps each agent id to ``{"return": its mean return,
    "episodes": the episodes it acted in}`` (returns rescaled like ``mean_return``).
    """
    if episodes < 1:
        raise ConfigError(f"--episodes {episodes}: give at least 1 episode, e.g. 5.")
    check_seed(seed)
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ConfigError(
            f"--baselines: unknown baseline(s) {', '.join(unknown)}; choose from "
            f"{', '.join(BASELINES)} (comma-separated, '' for none)."
        )
    requested = baselines
    baselines = applicable_baselines(config, baselines)
    seeds = [seed + k for k in range(episodes)]
    # Controllers act at every SUMO step, as they were designed to, over the same duration;
    # their return is rescaled to the policy's number of agent steps.
    repeat = config.env.sims_per_step
    baseline_config = apply_overrides(
        config, ["env.sims_per_step=1", f"env.horizon={config.env.horizon * repeat}"]
    )
    record = is_multiagent_config(config)  # each agent's rewards: its own return
    results: dict[str, Any] = {"seeds": seeds, "baselines": {}}
    skipped = [b for b in requested if b not in baselines]
    if skipped:
        results["skipped_baselines"] = skipped  # not applicable to this env (see above)
    runners = _Runners(group)
    try:
        if weights is not None:
            if progress is not None:
                progress("policy")
            played_by = runners.for_config(config, own_pace=True)
            played_by.set_weights(weights, version=0)
            jobs = [EpisodeJob(s, record=record) for s in seeds]
            results["policy"] = _summarise_played(played_by.play(jobs), config)
        for name in baselines:
            if progress is not None:
                progress(name)
            own_pace = name in SIGNAL_BASELINES  # at the env's own decision interval
            played_config = config if own_pace else baseline_config
            jobs = [EpisodeJob(s, actor=BaselineActor(name), record=record) for s in seeds]
            played = runners.for_config(played_config, own_pace).play(jobs)
            summary = _summarise_played(played, played_config)
            results["baselines"][name] = summary if own_pace else _per_agent_step(summary, repeat)
    finally:
        runners.close()
    return results


def _summarise_played(played: list[EpisodeResult], config: FlowsimConfig) -> dict[str, Any]:
    """:func:`summarise_episodes` of episodes played on ``config``."""
    return summarise_episodes([episode_stats(result, config) for result in played])


def _per_agent_step(summary: dict[str, Any], repeat: int) -> dict[str, Any]:
    """A baseline's summary played at every SUMO step with its returns divided by ``repeat``
    (the policy's ``env.sims_per_step``): per agent step of the policy's env."""
    summary["mean_return"] /= repeat
    if "agent_return_mean" in summary:
        summary["agent_return_mean"] /= repeat
    for figures in summary.get("agents", {}).values():
        figures["return"] /= repeat
    return summary


class _Runners:
    """The runner group of the config being evaluated: the caller's for the policy's own
    config, else one in-process runner (one at a time: libsumo runs one simulation per
    process)."""

    def __init__(self, given: RunnerGroup | None) -> None:
        self.given = given
        self.current: tuple[FlowsimConfig, RunnerGroup] | None = None

    def for_config(self, config: FlowsimConfig, own_pace: bool) -> RunnerGroup:
        """The runners that play ``config``: the caller's when given and ``own_pace`` (the
        policy's own config), else an in-process runner built for it."""
        if own_pace and self.given is not None:
            return self.given
        if self.current is None or self.current[0] is not config:
            self.close()
            self.current = (config, make_runner_group(config, num_workers=0))
        return self.current[1]

    def close(self) -> None:
        if self.current is not None:
            self.current[1].close()
            self.current = None


def load_policy(run_dir: Path, checkpoint: str = "latest") -> tuple[FlowsimConfig, dict]:
    """The config and exported policy weights of a run's ``checkpoint``: ``latest``, ``best``
    or an iteration number.

    Raises:
        ConfigError: ``run_dir`` is no run directory, has no checkpoint yet, or the
            checkpoint asked for is missing or damaged (the message names what to give).
    """
    from flowsim.runs.directory import BEST_CHECKPOINT, CHECKPOINT_FOLDER, RunDirectory

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(
            f"{run_dir}: not a run directory (no config.yaml); give a folder written by "
            "`flowsim train`."
        )
    directory = RunDirectory(run_dir)
    saved = directory.checkpoint_paths()
    if not saved and not (directory.checkpoints / BEST_CHECKPOINT).is_file():
        raise ConfigError(
            f"{run_dir} has no checkpoints ({CHECKPOINT_FOLDER}/checkpoint-*.pt): its training "
            f"has not finished an iteration. Continue it with `flowsim train --resume {run_dir}`."
        )
    if checkpoint.isdigit():
        state = _numbered_checkpoint(directory, int(checkpoint), saved)
    elif checkpoint in ("latest", "best"):
        state, _ = directory.load_checkpoint(checkpoint)
    else:
        raise ConfigError(f"--checkpoint {checkpoint}: give latest, best or an iteration number.")
    return load_config(run_dir / "config.yaml"), state["policy"]


def _numbered_checkpoint(
    directory: RunDirectory, iteration: int, saved: list[Path]
) -> dict[str, Any]:
    """The checkpoint written after ``iteration`` among the run's ``saved`` ones."""
    from flowsim.runs.checkpoints import read_checkpoint
    from flowsim.runs.directory import checkpoint_name

    path = directory.checkpoints / checkpoint_name(iteration)
    if not path.is_file():
        kept = ", ".join(str(int(p.stem.split("-")[1])) for p in saved) or "none"
        raise ConfigError(
            f"--checkpoint {iteration}: {path} does not exist; the run keeps iterations {kept} "
            "(or use latest / best)."
        )
    try:
        return read_checkpoint(path)
    except ConfigError:
        raise
    except Exception as error:
        raise ConfigError(f"{path} is damaged ({error}); pick another checkpoint.") from None


def evaluate_run(
    run_dir: Path,
    episodes: int = 5,
    seed: int = 1000,
    checkpoint: str = "latest",
    overrides: list[str] | None = None,
    baselines: tuple[str, ...] = ("human", "pi_saturation"),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate a training run directory's policy (``checkpoint``: ``latest``, ``best`` or an
    iteration number) deterministically against the baselines.

    An imitation run (``flowsim imitate``) is refused: its program drives through
    :func:`flowsim.hierarchy.evaluate.evaluate_any_run`, which ``flowsim evaluate`` calls.
    """
    config, weights = load_policy(run_dir, checkpoint)
    if weights.get("kind") == "hierarchy":
        raise ConfigError(
            f"{run_dir} is a `flowsim imitate` run: evaluate it with `flowsim evaluate` "
            "(flowsim.hierarchy.evaluate.evaluate_any_run), which drives its program."
        )
    if overrides:
        config = apply_overrides(config, overrides)
    results = evaluate(config, weights, episodes, seed, baselines, progress)
    results["run_dir"] = str(run_dir)
    results["checkpoint"] = checkpoint
    return results
