"""Deterministic evaluation of a trained policy against controller baselines on the same seeds.

Every candidate (the policy, the all-human ring, a PISaturation AV, ...) drives the same env
through the same action interface, episode ``k`` on seed ``seed + k``, so ring lengths and
human noise match across candidates. Traffic metrics are measured over the second half of
each episode: the wave needs time to dissolve, and the result that matters is the traffic the
AV leaves behind, not the transient.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from flowsim.config import ControllerConfig, FlowsimConfig, apply_overrides, load_config
from flowsim.errors import ConfigError

#: An actor maps (observation, env) to an action.
Actor = Callable[[np.ndarray, Any], np.ndarray]

#: Baselines `evaluate` knows: the AV driven by the humans' own model, or by a controller;
#: for signal control, the green phases cycled every ``scenario.signals.green`` seconds.
BASELINES = ("human", "pi_saturation", "follower_stopper", "fixed_cycle")
#: Baselines that drive AVs: they apply only where a vehicle group is driven by ``rl``.
AV_BASELINES = ("human", "pi_saturation", "follower_stopper")


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


def _cycle_actor(config: FlowsimConfig, env: Any) -> Actor:
    """:func:`fixed_cycle_actor` as an actor, restarting its cycle at every episode."""
    schedule = fixed_cycle_actor(config, env.action_space)
    state = {"episode": None, "step": 0}

    def act(_obs: np.ndarray, env: Any) -> Any:
        episode = env.simulation.instance
        if state["episode"] is not episode:
            state["episode"], state["step"] = episode, 0
        action = schedule(state["step"])
        state["step"] += 1
        return action

    return act


def applicable_baselines(config: FlowsimConfig, baselines: tuple[str, ...]) -> tuple[str, ...]:
    """The requested baselines that make sense for the config's env.

    AV baselines need a vehicle group driven by ``rl``; on a signal-control env
    (``traffic_light_grid``) they are replaced by ``fixed_cycle``; a Gymnasium env has none.
    """
    if config.env.type == "gym":
        return ()
    signals = config.env.type == "traffic_light_grid"
    has_avs = not signals and any(group.controller.type == "rl" for group in config.vehicles)
    kept = [b for b in baselines if (has_avs or b not in AV_BASELINES)]
    kept = [b for b in kept if signals or b != "fixed_cycle"]
    if signals and len(kept) < len(baselines) and "fixed_cycle" not in kept:
        kept.append("fixed_cycle")
    return tuple(kept)


def run_episode(env: Any, actor: Actor, seed: int) -> dict[str, float]:
    """One episode of ``actor`` on ``env`` from ``seed``: return and traffic metrics.

    ``mean_speed``, ``speed_std`` (across vehicles, averaged over steps) and ``min_speed`` are
    measured over the second half of the episode; ``return`` and ``collisions`` over all of it.
    """
    obs, info = env.reset(seed=seed)
    total, collisions, steps = 0.0, 0, 0
    means: list[float] = []
    stds: list[float] = []
    minima: list[float] = []
    while True:
        obs, reward, terminated, truncated, info = env.step(actor(obs, env))
        total += float(reward)
        collisions += int(info.get("collisions", 0))
        steps += 1
        means.append(float(info.get("mean_speed", np.nan)))
        stds.append(float(info.get("speed_std", np.nan)))
        speeds = env.simulation.kernel.speeds() if hasattr(env, "simulation") else None
        minima.append(float(speeds.min()) if speeds is not None and speeds.size else np.nan)
        if terminated or truncated:
            break
    tail = slice(steps // 2, None)
    result = {
        "return": total,
        "length": float(steps),
        "mean_speed": float(np.mean(means[tail])),
        "speed_std": float(np.mean(stds[tail])),
        "min_speed": float(np.min(minima[tail])),
        "collisions": float(collisions),
    }
    instance = getattr(getattr(env, "simulation", None), "instance", None)
    if instance is not None and env.config.scenario.type in ("ring", "multilane_ring"):
        from flowsim.evaluation.simulate import equilibrium_speed

        result["equilibrium_speed"] = equilibrium_speed(env.config, instance.length)
    return result


def policy_actor(weights: dict[str, np.ndarray], env: Any, hidden: tuple[int, ...]) -> Actor:
    """The trained policy acting deterministically (the mean action; argmax if discrete).

    A hierarchical program from ``flowsim imitate`` (``weights["kind"] == "hierarchy"``) runs
    its call stack instead.
    """
    if weights.get("kind") == "hierarchy":
        from flowsim.hierarchy.collect import policy_driver

        return policy_driver(weights)
    from flowsim.algos.common import policy_spec_for
    from flowsim.distributed.policy import build_policy

    spec = policy_spec_for(env.action_space, hidden)
    policy = build_policy(spec, env.observation_space, env.action_space, 0)
    policy.set_weights(weights)
    rng = np.random.default_rng(0)
    shape = env.action_space.shape

    def act(obs: np.ndarray, _env: Any) -> np.ndarray:
        actions, _, _ = policy.compute_actions(obs[None], explore=False, rng=rng)
        return np.asarray(actions[0]).reshape(shape) if shape else actions[0]

    return act


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


def human_controller(config: FlowsimConfig) -> ControllerConfig:
    """The controller of the config's first human group: the AV's model in the human baseline."""
    humans = [g for g in config.vehicles if g.controller.type not in ("rl", "sumo")]
    if not humans:
        raise ConfigError(
            "the human baseline needs a vehicle group driven by a flowsim controller (e.g. idm); "
            "this config has none."
        )
    return max(humans, key=lambda g: g.count).controller


def summarise_episodes(episodes: list[dict[str, float]]) -> dict[str, float]:
    """Means over :func:`run_episode` results of the return and the speed metrics (``mean_speed``,
    ``speed_std``), the worst speed, the total collisions and, on rings, the equilibrium speed
    and ``speed_ratio``. Every evaluation of a driver reports these keys (the hierarchy's
    closed loop adds its own to them)."""
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
    return summary


def evaluate(
    config: FlowsimConfig,
    weights: dict[str, np.ndarray] | None = None,
    episodes: int = 5,
    seed: int = 1000,
    baselines: tuple[str, ...] = ("human", "pi_saturation"),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``weights`` (if given) and each baseline on ``episodes`` episodes.

    Baselines drive the AV through the same acceleration actions and limits, but at every SUMO
    step (``env.sims_per_step`` is set to 1 for them, over the same simulated time); their
    ``mean_return`` is divided by the policy's ``sims_per_step`` to stay comparable.

    Returns ``{"policy": {...}, "baselines": {name: {...}}, "seeds": [...]}``; each entry holds
    ``mean_return``, ``mean_speed``, ``speed_std``, ``min_speed``, ``collisions`` and, on rings,
    ``equilibrium_speed`` and ``speed_ratio`` (mean speed over equilibrium speed).
    """
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ConfigError(f"unknown baseline(s) {unknown}; choose from {list(BASELINES)}.")
    requested = baselines
    baselines = applicable_baselines(config, baselines)
    seeds = [seed + k for k in range(episodes)]
    # Controllers act at every SUMO step, as they were designed to, over the same duration;
    # their return is rescaled to the policy's number of agent steps.
    repeat = config.env.sims_per_step
    baseline_config = apply_overrides(
        config, ["env.sims_per_step=1", f"env.horizon={config.env.horizon * repeat}"]
    )
    candidates: list[tuple[str, Callable[[Any], Actor]]] = []
    if weights is not None:
        candidates.append(("policy", lambda env: policy_actor(weights, env, config.train.hidden)))
    for name in baselines:
        if name == "fixed_cycle":
            candidates.append((name, lambda env: _cycle_actor(config, env)))
            continue
        controller = human_controller(config) if name == "human" else ControllerConfig(type=name)
        candidates.append((name, lambda env, c=controller: controller_actor(c, config)))
    results: dict[str, Any] = {"seeds": seeds, "baselines": {}}
    skipped = [b for b in requested if b not in baselines]
    if skipped:
        results["skipped_baselines"] = skipped  # not applicable to this env (see above)
    for name, make_actor in candidates:
        if progress is not None:
            progress(name)
        own_pace = name in ("policy", "fixed_cycle")  # act at the env's decision interval
        summary = _evaluate_one(config if own_pace else baseline_config, make_actor, seeds)
        if name == "policy":
            results["policy"] = summary
        else:
            if not own_pace:
                summary["mean_return"] /= repeat  # per agent step of the policy's env
            results["baselines"][name] = summary
    return results


def _evaluate_one(
    config: FlowsimConfig, make_actor: Callable[[Any], Actor], seeds: list[int]
) -> dict[str, float]:
    from flowsim.envs import make_env

    env = make_env(config)
    try:
        actor = make_actor(env)
        return summarise_episodes([run_episode(env, actor, s) for s in seeds])
    finally:
        env.close()


def load_policy(run_dir: Path, checkpoint: str = "latest") -> tuple[FlowsimConfig, dict]:
    """The config and exported policy weights of a run (``latest`` or ``best`` checkpoint)."""
    from flowsim.runs.training import load_checkpoint

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(
            f"{run_dir}: not a run directory (no config.yaml); give a folder written by "
            "`flowsim train`."
        )
    config = load_config(run_dir / "config.yaml")
    state, _ = load_checkpoint(run_dir, checkpoint)
    return config, state["policy"]


def evaluate_run(
    run_dir: Path,
    episodes: int = 5,
    seed: int = 1000,
    checkpoint: str = "latest",
    overrides: list[str] | None = None,
    baselines: tuple[str, ...] = ("human", "pi_saturation"),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate a run directory's policy deterministically against the baselines.

    An imitation run (``flowsim imitate``) is also compared with its expert and its flat
    cloning baseline (baselines ``expert`` and ``flat``).
    """
    config, weights = load_policy(run_dir, checkpoint)
    if overrides:
        config = apply_overrides(config, overrides)
    imitated: dict[str, Any] = {}
    if weights.get("kind") == "hierarchy":
        from flowsim.hierarchy.imitate import evaluate_imitation_run

        if progress is not None:
            progress("the program, its expert and the flat baseline")
        imitated = evaluate_imitation_run(Path(run_dir), episodes, seed, checkpoint, overrides)
        weights = None  # the program was driven above
    results = evaluate(config, weights, episodes, seed, baselines, progress)
    if imitated:
        results["policy"] = imitated["policy"]
        results["baselines"] = {**imitated["baselines"], **results["baselines"]}
    results["run_dir"] = str(run_dir)
    results["checkpoint"] = checkpoint
    return results
