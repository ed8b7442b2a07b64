"""Every Python example in the README and docs/ runs as written."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import flowsim
from flowsim.config import apply_overrides

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = [
    pytest.param(page, index, code, id=f"{page.name}-{index}")
    for page in PAGES
    for index, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S))
    # Registering an env in "your own package" needs that package: shown, not runnable here.
    if "mylab" not in code
]


#: Iterations an example's ``flowsim.train(...)`` runs: the example's calls are what is tested
#: here; that the configs learn is tests/algos' (the README's CartPole is test_ppo's).
EXAMPLE_ITERATIONS = 2


def _short(train: Callable[..., Any]) -> Callable[..., Any]:
    """``train`` with the config's ``train.iterations`` capped at :data:`EXAMPLE_ITERATIONS`."""

    def short_train(config: Any, *args: Any, **kwargs: Any) -> Any:
        if config is not None and config.train.iterations > EXAMPLE_ITERATIONS:
            config = apply_overrides(config, [f"train.iterations={EXAMPLE_ITERATIONS}"])
        return train(config, *args, **kwargs)

    return short_train


@pytest.mark.parametrize(("page", "index", "code"), EXAMPLES)
def test_example_runs(page: Path, index: int, code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # examples name files relative to the repository
    monkeypatch.setattr(flowsim, "train", _short(flowsim.train), raising=False)
    module = types.ModuleType(f"flowsim_doc_example_{index}")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # dataclasses look themselves up
    exec(compile(code, f"{page}[{index}]", "exec"), module.__dict__)
    env = module.__dict__.get("env")
    if env is not None and hasattr(env, "close"):
        env.close()
