"""Every Python example in the README and docs/ runs as written."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = [
    pytest.param(page, index, code, id=f"{page.name}-{index}")
    for page in PAGES
    for index, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S))
    # Registering an env in "your own package" needs that package: shown, not runnable here.
    if "mylab" not in code
]


@pytest.mark.parametrize(("page", "index", "code"), EXAMPLES)
def test_example_runs(page: Path, index: int, code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # examples name files relative to the repository
    module = types.ModuleType(f"flowsim_doc_example_{index}")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # dataclasses look themselves up
    exec(compile(code, f"{page}[{index}]", "exec"), module.__dict__)
    env = module.__dict__.get("env")
    if env is not None and hasattr(env, "close"):
        env.close()
