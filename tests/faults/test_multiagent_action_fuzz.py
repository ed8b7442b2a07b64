"""Property-based fuzzing of the PettingZoo envs' action dicts: bad values, shapes and agents.

The rule (docs/envs.md, "Invalid actions"): each agent's action is sanitised as in the
single-agent env (the ring's acceleration clipped to its box, NaN is 0; a signal's phase rounded
and clipped to its green phases, NaN keeps the phase); an agent left out or given None has no
action (0 / keep the phase); an action for an agent that is done is ignored. A ValueError
naming the agent answers an action that is not one number, naming the unknown agent answers
an action for an agent the env does not have, and the env stays usable after either. Nothing
non-finite ever reaches SUMO.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flowsim.envs import multiagent, multiagent_signals
from flowsim.testing import fuzz_settings

#: Short warm-up; a long horizon so that fuzzing seldom needs a reset.
FAST = ["env.warmup_steps=20", "env.horizon=10000"]
NASTY_FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([np.nan, np.inf, -np.inf, 1e308, -1e308, 2.0**63, 5e-324]),
)
NOT_NUMBERS = st.sampled_from(
    ["fast", "", b"\x00", {"accel": 1.0}, 1 + 2j, np.array([1 + 2j]), object(), [[1.0], [2.0, 3.0]]]
)
#: Keys no env has as an agent.
UNKNOWN_AGENTS = st.one_of(
    st.text(max_size=8).filter(lambda name: not name.startswith(("av_", "center"))),
    st.sampled_from(["av_99", "AV_0", "av_0 ", "center99", "", 0, -1, None, 1.5, ("av_0",)]),
)


def _make(kind: str) -> Any:
    if kind == "ring":
        return multiagent.parallel_env(overrides=FAST)
    return multiagent_signals.parallel_env(overrides=FAST, preset="grid")


@pytest.fixture(scope="module", params=["ring", "signals"])
def env(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Each env once for the module, one at a time (libsumo runs one simulation per process)."""
    parallel = _make(request.param)
    try:
        parallel.reset(seed=0)
        yield parallel
    finally:
        parallel.close()


class SanitizeSpy:
    """Records what the wrapped single-agent task's ``sanitize_action`` got and returned."""

    def __init__(self, task: Any) -> None:
        self.task = task
        self.original = task.sanitize_action
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []
        task.sanitize_action = self.record

    def record(self, action: Any) -> np.ndarray:
        sanitized = self.original(action)
        self.calls.append((np.array(action, dtype=np.float64), np.array(sanitized)))
        return sanitized

    def __enter__(self) -> SanitizeSpy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.task.sanitize_action = self.original


def _task(env: Any) -> Any:
    return env.ring if isinstance(env, multiagent.MultiAgentRingEnv) else env.task


def _step(env: Any, actions: dict[Any, Any]) -> None:
    """One step whose results must be finite; a new episode when this one ended."""
    observations, rewards, _, _, _ = env.step(actions)
    assert all(np.isfinite(row).all() for row in observations.values())
    assert all(np.isfinite(reward) for reward in rewards.values())
    assert np.isfinite(env.kernel.speeds()).all()
    if not env.agents:
        env.reset()


def _valid_actions(env: Any) -> dict[str, Any]:
    return {agent: env.action_space(agent).sample() for agent in env.agents}


def _nasty_action(env: Any, agent: str) -> st.SearchStrategy[Any]:
    """One number in any container of size 1, any dtype; None (no action)."""
    shapes = st.sampled_from([(), (1,), (1, 1)])
    return st.one_of(
        NASTY_FLOATS,
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.integers(min_value=-(2**62), max_value=2**62).map(np.int64),
        shapes.flatmap(lambda shape: hnp.arrays(np.float64, shape, elements=NASTY_FLOATS)),
        shapes.flatmap(lambda shape: hnp.arrays(np.float32, shape, elements=st.floats(width=32))),
        st.just(None),
        st.just(env.action_space(agent).sample()),
    )


@fuzz_settings(100)
@given(data=st.data())
def test_nan_inf_huge_and_missing_actions_are_sanitized(env: Any, data: st.DataObject) -> None:
    task = _task(env)
    actions: dict[str, Any] = {}
    for agent in env.agents:
        if data.draw(st.booleans(), label=f"{agent} acts"):
            actions[agent] = data.draw(_nasty_action(env, agent), label=agent)
    before = task.signals.phase.copy() if hasattr(task, "signals") else None
    with SanitizeSpy(task) as spy:
        _step(env, actions)
    given, sanitized = spy.calls[0]
    assert np.isfinite(sanitized).all()
    no_action = np.isnan(given)  # left out, None or NaN
    for slot, agent in enumerate(env.possible_agents):
        action = actions.get(agent)
        assert no_action[slot] == (action is None or bool(np.isnan(np.asarray(action, float))))
    if before is None:  # the ring: accelerations within the box, no action means 0
        space = task.action_space
        assert ((sanitized >= space.low) & (sanitized <= space.high)).all()
        assert (sanitized[no_action] == 0).all()
    else:  # the signals: green phases, no action keeps the phase
        assert ((sanitized >= 0) & (sanitized < task.num_greens)).all()
        assert (sanitized[no_action] == before[no_action]).all()


@fuzz_settings(40)
@given(data=st.data())
def test_an_action_that_is_not_one_number_names_the_agent(env: Any, data: st.DataObject) -> None:
    actions = _valid_actions(env)
    agent = data.draw(st.sampled_from(env.agents))
    wrong_size = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3).filter(
        lambda shape: int(np.prod(shape)) != 1
    )
    actions[agent] = data.draw(
        st.one_of(
            wrong_size.flatmap(lambda shape: hnp.arrays(np.float64, shape, elements=NASTY_FLOATS)),
            st.lists(st.floats(), min_size=2, max_size=4),
            st.just([10**400]),
            NOT_NUMBERS,
        )
    )
    with pytest.raises(ValueError, match=rf"for agent '{agent}': expected one number"):
        env.step(actions)
    _step(env, _valid_actions(env))  # the env is still usable


@fuzz_settings(40)
@given(data=st.data())
def test_actions_for_unknown_agents_name_them(env: Any, data: st.DataObject) -> None:
    actions: dict[Any, Any] = _valid_actions(env)
    unknown = data.draw(UNKNOWN_AGENTS)
    actions[unknown] = data.draw(st.one_of(NASTY_FLOATS, NOT_NUMBERS))
    with pytest.raises(ValueError, match="unknown agent") as raised:
        env.step(actions)
    assert repr(unknown)[:40] in str(raised.value)
    assert env.possible_agents[0] in str(raised.value)  # the message lists the real agents
    _step(env, _valid_actions(env))


@pytest.mark.parametrize("actions", [None, [0.5], np.zeros(3), "av_0", 1.0])
def test_actions_that_are_not_a_dict_are_refused(env: Any, actions: Any) -> None:
    with pytest.raises(ValueError, match="dict from agent name to action"):
        env.step(actions)
    _step(env, _valid_actions(env))


def test_no_actions_at_all_hold_speed_or_keep_phases(env: Any) -> None:
    task = _task(env)
    before = task.signals.phase.copy() if hasattr(task, "signals") else None
    with SanitizeSpy(task) as spy:
        _step(env, {})
    _, sanitized = spy.calls[0]
    expected = np.zeros(len(env.possible_agents)) if before is None else before
    assert (sanitized == expected).all()
