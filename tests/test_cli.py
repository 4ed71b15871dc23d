"""The command line: overrides, the run folder, the summary, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jaxdqn import cli


def test_parse_override_types():
    assert cli.parse_override("gamma=0.9") == ("gamma", 0.9)
    assert cli.parse_override("learning_rate=1") == ("learning_rate", 1.0)
    assert cli.parse_override("num_envs=4") == ("num_envs", 4)
    assert cli.parse_override("double_q=false") == ("double_q", False)
    assert cli.parse_override("loss=huber") == ("loss", "huber")
    assert cli.parse_override("hidden_sizes=[32,16]") == ("hidden_sizes", (32, 16))
    assert cli.parse_override("max_grad_norm=null") == ("max_grad_norm", None)
    with pytest.raises(ValueError, match="no field 'gama'"):
        cli.parse_override("gama=0.9")
    with pytest.raises(ValueError, match="expected FIELD=VALUE"):
        cli.parse_override("gamma")


def test_train_writes_run_folder_and_summary(tmp_path, capsys):
    args = [
        "train", "--env", "ChainWalk-v0", "--seeds", "2", "--total-timesteps", "800",
        "--set", "num_envs=4", "--set", "learning_starts=80", "--set", "buffer_size=800",
        "--set", "batch_size=16", "--set", "exploration_steps=400", "--set", "log_interval=80",
        "--set", "hidden_sizes=[8]", "--eval-episodes", "3", "--out", str(tmp_path),
    ]  # fmt: skip
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "greedy return over 3 episodes" in out and "env steps/s" in out
    (run_dir,) = tmp_path.iterdir()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["env_id"] == "ChainWalk-v0" and config["total_timesteps"] == 800
    assert config["hidden_sizes"] == [8]
    rows = [json.loads(line) for line in (run_dir / "metrics_seed1.jsonl").read_text().splitlines()]
    assert [r["env_steps"] for r in rows] == list(range(80, 801, 80))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(summary["greedy_return"]) == 2 and summary["env_steps_per_seed"] == 800
    params = np.load(run_dir / "params.npz")
    assert any("Dense_0" in name for name in params.files)
    assert "jax" in json.loads((run_dir / "versions.json").read_text())


def test_train_bad_setting_is_a_clear_error(tmp_path, capsys):
    code = cli.main(["train", "--set", "gamma=1.5", "--out", str(tmp_path)])
    assert code == 2
    assert "DQNConfig.gamma=1.5 is invalid" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written for a refused config


def test_train_bad_seed_count(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--seeds", "0"])
    assert "--seeds=0 is invalid" in capsys.readouterr().err
