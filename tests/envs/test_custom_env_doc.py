"""The worked example in docs/custom_env.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "custom_env.md"


def test_custom_env_example_runs(capsys) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    example = blocks[0]
    namespace: dict[str, object] = {"__name__": "custom_env_example"}
    exec(compile(example, str(DOC), "exec"), namespace)
    printed = capsys.readouterr().out
    assert re.search(r"return -?\d+\.\d+, mean speed \d+\.\d+ m/s", printed)
    env_class = namespace["KeepGapEnv"]
    env = env_class(overrides=["env.warmup_steps=10", "env.horizon=5"])
    try:
        from gymnasium.utils.env_checker import check_env

        check_env(env, skip_render_check=True)
    finally:
        env.close()
