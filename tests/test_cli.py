"""The command line: overrides, the run folder, the summary, and clear errors."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import metric_rows

from jaxdqn.host import cli, driver
from jaxdqn.host.checkpoint import checkpoint_path, checkpoint_steps


def test_parse_override_types():
    assert driver.parse_override("gamma=0.9") == ("gamma", 0.9)
    assert driver.parse_override("learning_rate=1") == ("learning_rate", 1.0)
    assert driver.parse_override("num_envs=4") == ("num_envs", 4)
    assert driver.parse_override("double_q=false") == ("double_q", False)
    assert driver.parse_override("loss=huber") == ("loss", "huber")
    assert driver.parse_override("hidden_sizes=[32,16]") == ("hidden_sizes", (32, 16))
    assert driver.parse_override("max_grad_norm=null") == ("max_grad_norm", None)
    with pytest.raises(ValueError, match="no field 'gama'"):
        driver.parse_override("gama=0.9")
    with pytest.raises(ValueError, match="expected FIELD=VALUE"):
        driver.parse_override("gamma")


def test_train_writes_run_folder_and_summary(tiny_run):
    run_dir, out, err = tiny_run
    assert "greedy return over 3 episodes" in out and "env steps/s" in out
    assert "800/800 env steps (100.0%)" in err and "ETA 0:00:00" in err  # the progress line
    config = json.loads((run_dir / "config.json").read_text())
    assert config["env_id"] == "ChainWalk-v0" and config["total_timesteps"] == 800
    assert config["hidden_sizes"] == [8]
    rows = [json.loads(line) for line in (run_dir / "metrics_seed1.jsonl").read_text().splitlines()]
    assert [r["env_steps"] for r in rows] == list(range(80, 801, 80))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(summary["greedy_return"]) == 2 and summary["env_steps_per_seed"] == 800
    params = np.load(run_dir / "params.npz")
    assert any("Dense_0" in name for name in params.files)
    recorded = json.loads((run_dir / "versions.json").read_text())
    assert recorded["gymnax"] == importlib.metadata.version("gymnax")
    assert recorded["jax"] == jax.__version__
    # Checkpoints every 3 log points (240 env steps) and at the end; the newest 2 are kept.
    assert checkpoint_steps(run_dir / "checkpoints") == [720, 800]


@pytest.mark.skipif(jax.local_device_count() < 2, reason="needs 2 devices (conftest's CPU default)")
def test_seeds_train_on_every_visible_device(tiny_run):
    # The tiny run's 2 seeds take one device each.
    assert "2 seeds x 800 env steps on cpu (2 devices)" in tiny_run[1]


def test_resume_continues_bit_identically(tiny_run, tmp_path, capsys):
    run_dir = Path(shutil.copytree(tiny_run[0], tmp_path / "run"))
    # Make it a run that died after its checkpoint at 720 env steps and logged one more row.
    shutil.rmtree(checkpoint_path(run_dir / "checkpoints", 800))
    for name in ("params.npz", "summary.json"):
        (run_dir / name).unlink()
    for seed in (0, 1):
        lines = (run_dir / f"metrics_seed{seed}.jsonl").read_text().splitlines(keepends=True)
        (run_dir / f"metrics_seed{seed}.jsonl").write_text("".join(lines[:10]))
    assert cli.main(["train", "--resume", str(run_dir), "--eval-episodes", "3"]) == 0
    out = capsys.readouterr().out
    assert "resuming at 720" in out
    # ChainWalk: 4 envs, an update every 2 env steps after 80: 360 updates, 320 done.
    assert "to do: 160 env steps and 80 gradient updates of 16 transitions (all seeds)" in out
    for name in ("metrics_seed0.jsonl", "metrics_seed1.jsonl"):
        assert metric_rows(run_dir / name) == metric_rows(tiny_run[0] / name)
    with np.load(run_dir / "params.npz") as a, np.load(tiny_run[0] / "params.npz") as b:
        assert a.files == b.files
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name])


def test_resume_refuses_new_settings_and_empty_folders(tiny_run, tmp_path, capsys):
    assert cli.main(["train", "--resume", str(tiny_run[0]), "--set", "gamma=0.9"]) == 2
    assert "drop --set" in capsys.readouterr().err
    assert cli.main(["train", "--resume", str(tmp_path)]) == 2
    assert "is not a jaxdqn run folder: " in capsys.readouterr().err
    run_dir = Path(shutil.copytree(tiny_run[0], tmp_path / "run"))
    shutil.rmtree(run_dir / "checkpoints")
    assert cli.main(["train", "--resume", str(run_dir)]) == 2
    assert "holds no checkpoint to resume from" in capsys.readouterr().err


def test_eval_prints_returns_per_seed(tiny_run, capsys):
    assert cli.main(["eval", str(tiny_run[0]), "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tiny_run[0] / "summary.json").read_text())
    for seed, ret in zip(summary["seeds"], summary["greedy_return"], strict=True):
        assert f"{seed:>6} {ret:>14.1f}" in out  # greedy ChainWalk is deterministic
    assert "greedy return over 2 episodes" in out


def test_plot_writes_png(tiny_run, tmp_path, capsys):
    out = tmp_path / "curves.png"
    assert cli.main(["plot", str(tiny_run[0]), str(tiny_run[0]), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    # An existing file is kept unless --overwrite says otherwise.
    out.write_bytes(b"mine")
    assert cli.main(["plot", str(tiny_run[0]), "--out", str(out)]) == 2
    assert "exists: choose another --out, or pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"mine"
    assert cli.main(["plot", str(tiny_run[0]), "--out", str(out), "--overwrite"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli.main(["plot", str(tiny_run[0]), "--metric", "nope"]) == 2
    assert "metric='nope' is invalid" in capsys.readouterr().err


def test_train_bad_setting_is_a_clear_error(tmp_path, capsys):
    code = cli.main(["train", "--set", "gamma=1.5", "--out", str(tmp_path)])
    assert code == 2
    assert "DQNConfig.gamma=1.5 is invalid" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written for a refused config


def test_train_refuses_seeds_that_cannot_fit_before_compiling(tmp_path, capsys):
    args = ["train", "--seeds", "60000", "--set", "buffer_size=1000000", "--out", str(tmp_path)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    # A CartPole transition: obs 4 float32, action int32, reward float32, terminated and
    # truncated bool = 16 + 4 + 4 + 1 + 1 bytes, plus 0.04 for final observations (1 in 500).
    assert "60000 seeds x " in err and "The replay buffer takes 1,000,000 x 26.0 bytes" in err
    assert not any(tmp_path.iterdir())


def test_train_bad_seed_count(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--seeds", "0"])
    assert "argument --seeds: 0 is invalid: must be >= 1" in capsys.readouterr().err


def test_eval_epsilon_is_checked_and_named_in_the_table(tiny_run, capsys):
    for bad in ("1.5", "-0.1", "nan"):
        with pytest.raises(SystemExit):
            cli.main(["eval", str(tiny_run[0]), "--epsilon", bad])
        assert f"argument --epsilon: {bad} is invalid: must be in [0, 1]" in capsys.readouterr().err
    assert cli.main(["eval", str(tiny_run[0]), "--episodes", "2", "--epsilon", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "ε=0.5 return over 2 episodes" in out and "greedy" not in out


@pytest.mark.parametrize(
    ("name", "text", "why"),
    [
        ("config.json", '{"gama": 0.9}', "TypeError"),  # a field DQNConfig does not have
        ("config.json", "not json", "JSONDecodeError"),
        ("run.json", "{}", "KeyError"),  # no seeds
    ],
)
def test_broken_run_folder_is_a_clear_error(tiny_run, tmp_path, capsys, name, text, why):
    run_dir = Path(shutil.copytree(tiny_run[0], tmp_path / "run"))
    (run_dir / name).write_text(text)
    for command in (["eval"], ["export"], ["train", "--resume"]):
        assert cli.main([*command, str(run_dir)]) == 2
        assert f"{run_dir} is not a readable jaxdqn run folder: {why}" in capsys.readouterr().err


def test_params_of_another_network_is_a_clear_error(tiny_run, tmp_path, capsys):
    run_dir = Path(shutil.copytree(tiny_run[0], tmp_path / "run"))
    np.savez(run_dir / "params.npz", other=np.zeros(1))
    assert cli.main(["eval", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "params.npz does not match the network of" in err and "lacks ['params']" in err


def test_resume_of_a_finished_run_changes_nothing(tiny_run, tmp_path, capsys):
    run_dir = Path(shutil.copytree(tiny_run[0], tmp_path / "run"))
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    assert cli.main(["train", "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "is complete (800 env steps); nothing to resume" in err
    assert f"jaxdqn eval {run_dir}" in err
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_train_refuses_env_id_in_set(tmp_path, capsys):
    assert cli.main(["train", "--set", "env_id=Acrobot-v1", "--out", str(tmp_path)]) == 2
    assert "use --env Acrobot-v1, which also loads that env's preset" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_train_out_that_is_a_file_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "notes.txt"
    out.write_text("mine")
    assert cli.main(["train", "--out", str(out)]) == 2
    assert "jaxdqn: error: " in capsys.readouterr().err
    assert out.read_text() == "mine" and list(tmp_path.iterdir()) == [out]
