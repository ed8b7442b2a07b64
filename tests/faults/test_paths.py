"""Run and tuning directories stay inside the output folder, whatever the config's name.

``name`` names the run folder (``OUT/<name>-<time>/``, ``OUT/tune-<name>-<time>/``), so a name
that is a path (``../x``, ``/abs``, ``a/b``, ``..``) is refused by the config's pattern before
anything is written: ``flowsim train`` and ``flowsim tune`` exit with code 2. An ``--out`` with
``..`` in it is an ordinary path: the run lands in the folder it resolves to.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flowsim.cli import main
from flowsim.testing import ROOT
from flowsim.tune.run import _tune_dir

CARTPOLE = ROOT / "scenarios" / "cartpole.yaml"
TUNE_CARTPOLE = ROOT / "scenarios" / "tune_cartpole.yaml"
ESCAPING_NAMES = [
    "../x",
    "/abs",
    "a/b",
    "..",
    ".",
    "",
    "a/../../b",
    "..\\x",
    "C:\\x",
    ".hidden",
    "~",
    "~/x",
    "-rf",
    "ring\n",
    "ring\x00",
    "ring x",
]


def _config_named(tmp_path: Path, template: Path, name: str) -> Path:
    data = yaml.safe_load(template.read_text())
    data["name"] = name
    path = tmp_path / "named.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize("name", ESCAPING_NAMES)
@pytest.mark.parametrize(("command", "template"), [("train", CARTPOLE), ("tune", TUNE_CARTPOLE)])
def test_name_that_is_a_path_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, template: Path, name: str
) -> None:
    out = tmp_path / "out"
    config = _config_named(tmp_path, template, name)
    assert main([command, str(config), "--out", str(out)]) == 2
    assert not out.exists()
    error = capsys.readouterr().err
    assert "name" in error and "Traceback" not in error


@pytest.mark.parametrize("name", ["../x", "/abs", ".."])
def test_name_override_that_is_a_path_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    out = tmp_path / "out"
    argv = ["train", str(CARTPOLE), "--set", f"name={name}", "--out", str(out)]
    assert main(argv) == 2
    assert not out.exists()
    assert "name" in capsys.readouterr().err


def test_train_out_with_dotdot_writes_inside_the_resolved_folder(tmp_path: Path) -> None:
    out = tmp_path / "a" / ".." / "b"
    argv = ["train", str(CARTPOLE), "--set", "train.iterations=1", "--out", str(out)]
    assert main(argv) == 0
    (run,) = (tmp_path / "b").iterdir()
    assert run.name.startswith("cartpole-") and (run / "config.yaml").is_file()
    written = [path.resolve() for path in tmp_path.rglob("*") if path.is_file()]
    assert written and all(path.is_relative_to((tmp_path / "b").resolve()) for path in written)


def test_tune_dir_with_dotdot_stays_inside_the_resolved_folder(tmp_path: Path) -> None:
    directory = _tune_dir(tmp_path / "a" / ".." / "b", "cartpole")
    assert directory.resolve().parent == (tmp_path / "b").resolve()
    assert directory.name.startswith("tune-cartpole-")
