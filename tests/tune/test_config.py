"""The tune: section: parsing, validation, and bad input refused with exit code 2 before Ray."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from flowsim.cli import main
from flowsim.config import dump_config, load_config, parse_config
from flowsim.config.tune import TuneConfig
from flowsim.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CARTPOLE = ROOT / "scenarios" / "tune_cartpole.yaml"


def _yaml(tmp_path: Path, tune: dict[str, Any] | None, **sections: Any) -> Path:
    """scenarios/tune_cartpole.yaml with its tune: section replaced."""
    data = yaml.safe_load(CARTPOLE.read_text())
    data.update(sections)
    if tune is None:
        data.pop("tune")
    else:
        data["tune"] = tune
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], path: Path) -> str:
    """Run `flowsim tune`; it must exit 2 without creating a tuning directory."""
    out = tmp_path / "out"
    assert main(["tune", str(path), "--out", str(out)]) == 2
    assert not out.exists()  # refused before any trial (and before Ray) started
    return capsys.readouterr().err


def test_shipped_tune_configs_load() -> None:
    for name in ("tune_cartpole.yaml", "tune_ring.yaml"):
        config = load_config(ROOT / "scenarios" / name)
        assert isinstance(config.tune, TuneConfig)
        assert config.tune.search_space


def test_distributions_parse_and_round_trip() -> None:
    config = parse_config(
        {
            "tune": {
                "search_space": {
                    "train.lr": {"loguniform": ["1e-4", 1e-2]},  # YAML reads 1e-4 as text
                    "train.epochs": {"randint": [5, 20]},
                    "train.lam": {"quniform": [0.8, 1.0, 0.05]},
                    "train.gamma": {"uniform": [0.95, 0.999]},
                    "train.clip": {"choice": [0.1, 0.2]},
                    "vehicles.0.count": {"grid": [20, 21]},
                },
                "scheduler": "asha",
                "search": "random",
            }
        }
    )
    assert config.tune is not None
    space = config.tune.search_space
    assert space["train.lr"].low == pytest.approx(1e-4)
    assert space["train.epochs"].representatives() == [5, 19]
    assert config.tune.scheduler.type == "asha"
    assert parse_config(yaml.safe_load(dump_config(config))) == config
    assert parse_config({}).tune is None  # no tune: section, nothing to tune


@pytest.mark.parametrize(
    ("tune", "expected"),
    [
        ({"search_space": {"train.lrr": {"uniform": [0, 1]}}}, "did you mean 'train.lr'"),
        ({"search_space": {"train.lr": {"logunifrm": [1, 2]}}}, "did you mean loguniform"),
        ({"search_space": {"train.lr": {"loguniform": [0, 1]}}}, "0 < low"),
        ({"search_space": {"train.lr": {"uniform": [2, 1]}}}, "low < high"),
        ({"search_space": {"train.lr": [0.1, 0.2]}}, "one-key mapping"),
        ({"search_space": {"vehicles.x.count": {"grid": [1]}}}, "index it"),
        ({"search_space": {"tune.metric": {"grid": ["x"]}}}, "cannot be tuned"),
        ({"scheduler": "bogus"}, "'fifo', 'asha', 'hyperband', 'median' or 'pbt'"),
        ({"scheduler": {"type": "asha", "perturbation_interval": 2}}, "applies to pbt only"),
        ({"search": "bayes"}, "'random', 'grid' or 'optuna'"),
        ({"search": "grid", "search_space": {"train.lr": {"uniform": [0.1, 0.2]}}}, "grid"),
        ({"search": "optuna", "search_space": {"train.lr": {"grid": [0.1]}}}, "choice"),
        ({"scheduler": "pbt"}, "search_space, which is empty"),
        (
            {"scheduler": "pbt", "search_space": {"train.hidden": {"choice": [[8], [16]]}}},
            "cannot vary",
        ),
    ],
)
def test_bad_sections_name_the_key(tune: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"tune": tune})
    assert "tune." in str(error.value)
    assert expected in str(error.value)


def test_unknown_search_space_key_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _yaml(tmp_path, {"search_space": {"train.learning_rate": {"grid": [0.1, 0.01]}}})
    err = _refused(tmp_path, capsys, path)
    assert "train.learning_rate" in err and "not a config key" in err
    assert "Traceback" not in err


def test_unknown_scheduler_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _yaml(tmp_path, {"scheduler": "hyperopt", "search_space": {}})
    err = _refused(tmp_path, capsys, path)
    assert "tune.scheduler.type" in err and "asha" in err


def test_metric_no_trial_reports_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _yaml(tmp_path, {"metric": "episode_reward_mean"})
    err = _refused(tmp_path, capsys, path)
    assert "tune.metric 'episode_reward_mean'" in err and "return_mean" in err


def test_search_space_values_must_make_valid_configs(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = _yaml(tmp_path, {"search_space": {"train.lr": {"uniform": [-0.1, 0.1]}}})
    err = _refused(tmp_path, capsys, path)
    assert "train.lr" in err and "Narrow the values" in err


def test_other_refusals_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert "has no tune: section" in _refused(tmp_path, capsys, _yaml(tmp_path, None))
    path = _yaml(tmp_path, {"stop": {"iterations": 1000}})
    assert "tune.stop.iterations" in _refused(tmp_path, capsys, path)
    path = _yaml(tmp_path, {"scheduler": "pbt", "search_space": {"train.lr": {"choice": [0.1]}}})
    assert "population" in _refused(tmp_path, capsys, path)
    asha = {"type": "asha", "time_attr": "env_steps"}
    assert "max_t" in _refused(tmp_path, capsys, _yaml(tmp_path, {"scheduler": asha}))
    out = tmp_path / "out"
    assert main(["tune", "--resume", str(tmp_path), "--out", str(out)]) == 2
    assert "not a tuning directory" in capsys.readouterr().err


def test_optuna_missing_exits_2_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` raises ImportError
    path = _yaml(tmp_path, {"search": "optuna"})
    err = _refused(tmp_path, capsys, path)
    assert "optuna" in err and "pip install 'flowsim[tune]'" in err
