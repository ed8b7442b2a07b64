"""Property-based fuzzing of env actions: NaN, infinities, huge values, wrong shapes and types.

The rule (docs/envs.md, "Invalid actions"): a Box action is clipped to the box and NaN entries
become 0; a traffic-light action (Discrete / MultiDiscrete) is rounded and clipped to each
signal's green phases and NaN keeps the current phase; an action of the wrong shape or not
made of numbers raises a ValueError that names the expected shape, and the env stays usable.
Nothing non-finite ever reaches SUMO.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import flowsim  # noqa: F401 - registers the envs
from flowsim.testing import fuzz_settings

#: Short warm-up; a long horizon so that fuzzing seldom needs a reset.
FAST = ["env.warmup_steps=20", "env.horizon=10000"]
BOX_IDS = ["flowsim/Ring-v0", "flowsim/Merge-v0"]
SIGNAL_IDS = ["flowsim/Intersection-v0", "flowsim/TrafficLightGrid-v0"]
NASTY_FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([np.nan, np.inf, -np.inf, 1e308, -1e308, 2.0**63, 5e-324]),
)


class SpeedSpy:
    """Wraps the backend's ``set_speeds`` and records every commanded speed."""

    def __init__(self, env: Any) -> None:
        self.backend = env.unwrapped.kernel.backend
        self.original = self.backend.set_speeds
        self.non_finite: list[np.ndarray] = []
        self.calls = 0
        self.backend.set_speeds = self.record

    def record(self, ids: tuple[str, ...], speeds: np.ndarray) -> None:
        self.calls += 1
        speeds = np.asarray(speeds, dtype=np.float64)
        if not np.isfinite(speeds).all():
            self.non_finite.append(speeds)
        self.original(ids, speeds)


def _make(env_id: str) -> Iterator[Any]:
    env = gym.make(env_id, overrides=FAST)
    try:
        env.reset(seed=0)
        yield env
    finally:
        env.close()  # libsumo runs one simulation per process: close before the next env


@pytest.fixture(scope="module", params=[*BOX_IDS, *SIGNAL_IDS])
def env(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Each env once for the module, one at a time (pytest finishes a parameter first)."""
    yield from _make(request.param)


def _step(env: Any, action: Any) -> None:
    """One step whose outcome must be finite; a new episode when this one ended."""
    observation, reward, terminated, truncated, _ = env.step(action)
    assert np.isfinite(reward)
    assert np.isfinite(np.asarray(observation, dtype=np.float64)).all()
    assert np.isfinite(env.unwrapped.kernel.speeds()).all()
    if terminated or truncated:
        env.reset()


def _wrong_shapes(shape: tuple[int, ...]) -> st.SearchStrategy[tuple[int, ...]]:
    size = int(np.prod(shape))
    return hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4).filter(
        lambda candidate: int(np.prod(candidate)) != size
    )


NOT_NUMBERS = st.sampled_from(
    [
        "fast",
        b"\x00",
        {"accel": 1.0},
        [1 + 2j],
        object(),
        [[1.0], [2.0, 3.0]],
        [None, "x"],
        [10**400],
    ]
)


@fuzz_settings(100)
@given(data=st.data())
def test_nan_inf_and_huge_actions_are_sanitized(env: Any, data: st.DataObject) -> None:
    if isinstance(env.action_space, gym.spaces.Box):
        _check_box_action(env, data)
    else:
        _check_signal_action(env, data)


@fuzz_settings(40)
@given(data=st.data())
def test_wrong_shape_or_type_raises_value_error(env: Any, data: st.DataObject) -> None:
    if isinstance(env.action_space, gym.spaces.Box):
        shape = env.action_space.shape
        wrong_size = _wrong_shapes(shape).flatmap(
            lambda wrong: hnp.arrays(np.float64, wrong, elements=NASTY_FLOATS)
        )
        match = "expected numbers of shape"
    else:
        count = len(env.unwrapped.layout)
        wrong_size = (
            st.lists(st.integers(0, 3), max_size=6)
            .filter(lambda values: len(values) != count)
            .map(np.array)
        )
        match = "green phase"
    action = data.draw(st.one_of(wrong_size, NOT_NUMBERS))
    with pytest.raises(ValueError, match=match):
        env.step(action)
    _step(env, env.action_space.sample())  # the env is still usable


def _check_box_action(box_env: Any, data: st.DataObject) -> None:
    """Clipped to the box; NaN is 0 (no command), or stays NaN where the env hands that AV
    to SUMO (``keeps_nan``: the merge); SUMO only ever sees finite speeds."""
    space = box_env.action_space
    action = data.draw(hnp.arrays(np.float64, space.shape, elements=NASTY_FLOATS))
    env = box_env.unwrapped
    sanitized = env.sanitize_action(action)
    nan = np.isnan(action)
    assert np.isfinite(sanitized[~nan]).all()
    kept = sanitized[~nan]
    assert (kept >= space.low[~nan]).all() and (kept <= space.high[~nan]).all()
    if env.keeps_nan:
        assert np.isnan(sanitized[nan]).all()
    else:
        assert (sanitized[nan] == 0).all()
    spy = SpeedSpy(box_env)
    try:
        _step(box_env, action)
    finally:
        env.kernel.backend.set_speeds = spy.original
    assert not spy.non_finite, f"non-finite speeds sent to SUMO: {spy.non_finite}"


def _check_signal_action(signal_env: Any, data: st.DataObject) -> None:
    """Rounded and clipped to each signal's green phases; NaN keeps the current phase."""
    env = signal_env.unwrapped
    count = len(env.layout)
    phases = data.draw(
        st.one_of(
            hnp.arrays(np.float64, (count,), elements=NASTY_FLOATS),
            hnp.arrays(np.int64, (count,)),
            st.lists(st.integers(), min_size=count, max_size=count).map(
                lambda values: np.array(values, dtype=object)
            ),
        )
    )
    before = env.signals.phase.copy()
    sanitized = env.sanitize_action(phases)
    assert sanitized.dtype == np.int64
    assert ((sanitized >= 0) & (sanitized < env.num_greens)).all()
    is_nan = np.array([value != value for value in np.asarray(phases).reshape(-1)])
    assert (sanitized[is_nan] == before[is_nan]).all()
    _step(signal_env, phases)
    assert ((env.signals.phase >= 0) & (env.signals.phase < env.num_greens)).all()
