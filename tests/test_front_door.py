"""The first minutes with jaxdqn: shorter and longer runs of a preset, ``--set`` as people
type it, every bad ``--set`` named at once, help and listings."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import metric_rows

import jaxdqn
import jaxdqn.host.memory
from jaxdqn.budget import SCALED_FIELDS
from jaxdqn.core.exploration import exponential_schedule
from jaxdqn.host import cli, commands, driver
from jaxdqn.host.checkpoint import checkpoint_steps

CARTPOLE = jaxdqn.get_preset("CartPole-v1")


def test_a_preset_follows_a_shorter_budget():
    with pytest.raises(ValueError, match="exploration_steps=50000 is invalid"):
        dataclasses.replace(CARTPOLE, total_timesteps=20_000)  # what a newcomer tries first
    config = CARTPOLE.with_budget(20_000)
    assert (config.total_timesteps, config.exploration_steps) == (20_000, 5_000)
    # learning starts at the same tenth of the run, on a cycle boundary (8 env steps)
    assert config.learning_starts == 496 and config.learning_starts % config.cycle_env_steps() == 0
    unchanged = {f.name for f in dataclasses.fields(CARTPOLE)} - set(SCALED_FIELDS)
    assert all(getattr(config, n) == getattr(CARTPOLE, n) for n in unchanged - {"total_timesteps"})


def test_a_longer_budget_scales_up_and_keep_is_kept():
    config = CARTPOLE.with_budget(600_000, keep=("learning_starts",))
    assert config.exploration_steps == 150_000
    assert config.learning_starts == CARTPOLE.learning_starts


def test_every_preset_takes_a_tenth_of_its_budget():
    for env_id in jaxdqn.PRESET_IDS:
        preset = jaxdqn.get_preset(env_id)
        cycle = preset.cycle_env_steps()
        total = preset.total_timesteps // 10 // cycle * cycle
        config = preset.with_budget(total)
        assert config.learning_starts < total
        assert config.target_update_period <= config.total_updates()


def test_exponential_exploration_reaches_the_same_value_at_the_same_fraction():
    base = dataclasses.replace(
        CARTPOLE, exploration_schedule="exponential", exploration_decay=0.9999
    )
    short = base.with_budget(20_000)
    at = lambda c, fraction: float(  # noqa: E731
        exponential_schedule(fraction * c.total_timesteps, 1.0, 0.0, c.exploration_decay)
    )
    for fraction in (0.1, 0.5):
        assert at(short, fraction) == pytest.approx(at(base, fraction), rel=5e-3)  # float32 powers
    assert short.exploration_steps == base.exploration_steps  # unused by this schedule


def test_a_target_period_that_would_never_sync_shrinks_with_the_run():
    base = dataclasses.replace(CARTPOLE, target_update_period=20_000, log_interval=8_000)
    short = base.with_budget(20_000)
    assert 1 <= short.target_update_period <= short.total_updates() < 20_000
    assert short.log_interval is None  # 8,000 does not divide 20,000: automatic again
    assert base.with_budget(16_000).log_interval == 8_000  # it divides 16,000: kept


def test_build_config_scales_only_what_the_user_did_not_set():
    config = driver.build_config("CartPole-v1", 20_000, ["exploration_steps=8e3"])
    assert (config.exploration_steps, config.learning_starts) == (8_000, 496)
    preset_total, changed = driver.scaled_schedules(
        "CartPole-v1", ["exploration_steps=8e3"], config
    )
    assert preset_total == 200_000 and changed == {"learning_starts": (5_000, 496)}


def test_cli_trains_a_shorter_preset_and_says_what_it_scaled(tmp_path, capsys):
    args = ["train", "--total-timesteps", "2e4", "--seeds", "1", "--eval-episodes", "1"]
    assert cli.main([*args, "--checkpoint-every", "0", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (
        "schedules scaled from the 200,000-step preset to 20,000 env steps: "
        "exploration_steps 50,000 -> 5,000, learning_starts 5,000 -> 496"
    ) in out
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["greedy_return_mean"] > 50  # a random CartPole policy scores about 22


ACCEPTED = {
    "double_q=False": False,
    "double_q=false": False,
    "double_q=True": True,
    "max_grad_norm=none": None,
    "max_grad_norm=null": None,
    "max_grad_norm=None": None,
    "hidden_sizes=64,64": (64, 64),
    "hidden_sizes=(64, 64)": (64, 64),
    "hidden_sizes=[64,64]": (64, 64),
    "hidden_sizes=32": (32,),
    "buffer_size=1e5": 100_000,
    "learning_rate=3e-4": 3e-4,
    "gamma=1": 1.0,
    "loss=huber": "huber",
    "log_interval=null": None,
}


@pytest.mark.parametrize("text", list(ACCEPTED))
def test_set_reads_values_as_people_type_them(text):
    field, value = driver.parse_override(text)
    assert field == text.split("=")[0]
    assert value == ACCEPTED[text] and type(value) is type(ACCEPTED[text])


def test_every_bad_set_is_named_at_once(capsys):
    args = ["train", "--set", "gama=0.9", "--set", "double_q=maybe", "--set", "num_envs=null"]
    assert cli.main([*args, "--set", "buffer_size=1.5"]) == 2
    err = capsys.readouterr().err
    for message in (
        "DQNConfig has no field 'gama'. Did you mean 'gamma'?",
        "double_q=maybe is invalid: double_q takes true or false",
        "num_envs=null is invalid: num_envs cannot be empty",
    ):
        assert message in err
    with pytest.raises(ValueError, match=r"buffer_size=1\.5 is invalid: must be an int"):
        driver.build_config("CartPole-v1", None, ["buffer_size=1.5"])


def test_every_config_error_is_named_at_once(capsys):
    with pytest.raises(ValueError) as caught:
        jaxdqn.DQNConfig(num_envs=0, gamma=2.0, loss="mse")
    assert str(caught.value).splitlines() == [
        "DQNConfig has 3 problems:",
        "  DQNConfig.num_envs=0 is invalid: must be an integer in [1, inf].",
        "  DQNConfig.gamma=2.0 is invalid: must be a finite number in [0.0, 1.0].",
        "  DQNConfig.loss='mse' is invalid: must be one of 'huber', 'l2'.",
    ]
    # Relations between fields are checked once every field is valid, also all at once.
    args = ["train", "--set", "num_envs=3", "--set", "learning_starts=130", "--seeds", "1"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "DQNConfig has 2 problems:" in err and "Traceback" not in err
    assert "total_timesteps=200000 is invalid: must be a multiple of 12" in err
    assert "learning_starts=130 is invalid: must be a multiple of 12" in err


@pytest.mark.parametrize("text", ["1.5", "abc", "2e4.5"])
def test_counts_on_the_command_line_must_be_whole(text, capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--total-timesteps", text])
    assert f"'{text}' is invalid: must be a whole number" in capsys.readouterr().err


def test_version_and_listings(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip().startswith(f"jaxdqn {jaxdqn.__version__} (jax ")
    assert cli.main(["list", "presets"]) == 0
    out = capsys.readouterr().out
    assert all(env_id in out for env_id in jaxdqn.PRESET_IDS) and "200,000 env steps" in out
    assert "Breakout-MinAtar         --preset rainbow    5,000,000 env steps" in out
    assert cli.PRESET_VARIANTS == jaxdqn.PRESET_VARIANTS  # named twice: the CLI avoids JAX
    assert cli.main(["list", "envs"]) == 0
    out = capsys.readouterr().out
    assert "CartPole-v1" in out and 'navix/<Id>   (pip install "jaxdqn[navix]")' in out
    table = commands.field_table()
    assert list(table) == [f.name for f in dataclasses.fields(jaxdqn.DQNConfig)]
    assert all(doc for _, _, doc in table.values()), [n for n, v in table.items() if not v[2]]
    assert cli.main(["list", "fields"]) == 0
    assert "gamma (float, default 0.99)\n    discount factor" in capsys.readouterr().out


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for shown in ("(default: CartPole-v1)", "(default: 8)", "(default: 100)", "(default: runs)"):
        assert shown in out
    with pytest.raises(SystemExit):
        cli.main(["eval", "--help"])
    assert "episodes per seed (default: 100)" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--seeds", "1000000000000"],
            "--seeds 1,000,000,000,000 is invalid: one run trains at most",
        ),
        (["--seed", "4294967296", "--seeds", "1"], "0 <= s < 2\\*\\*32"),
        (["--seed", "4294967295", "--seeds", "2"], "0 <= s < 2\\*\\*32"),
        (["--seed", "-1"], "0 <= s < 2\\*\\*32"),
        (
            ["--env", "Acrobot-v1", "--preset", "rainbow"],
            "env_id='Acrobot-v1' has no rainbow preset. Rainbow presets: Breakout-MinAtar, ",
        ),
        (["--config", "c.json", "--preset", "rainbow"], "--config and --env/--preset both"),
    ],
)
def test_seeds_outside_the_key_range_or_too_many_are_refused(flags, message, tmp_path, capsys):
    assert cli.main(["train", *flags, "--out", str(tmp_path)]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not list(tmp_path.iterdir())


def test_resume_refuses_run_flags_even_when_they_equal_the_defaults(tmp_path, capsys):
    for flags in (["--env", "CartPole-v1"], ["--seeds", "8"], ["--seed", "0"], ["--preset", "dqn"]):
        assert cli.main(["train", "--resume", str(tmp_path), *flags]) == 2
        assert f"drop {flags[0]}" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # no abbreviations that the check would miss
        cli.main(["train", "--resume", str(tmp_path), "--total", "100"])


@pytest.mark.parametrize("where", ["build", "fit"])
def test_ctrl_c_before_the_first_checkpoint_leaves_nothing(where, tmp_path, capsys, monkeypatch):
    """Ctrl-C while the config is checked or while the program compiles: one line, exit
    130, no folder that every command would turn away."""

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(driver, "make_trainer" if where == "build" else "fit", interrupt)
    assert cli.main(["train", "--seeds", "2", "--out", str(tmp_path)]) == 130
    out, err = capsys.readouterr()
    if where == "fit":  # the work and memory, said before compiling
        state = jaxdqn.host.memory.state_bytes(CARTPOLE)  # 195,000 / 8 cycles x 2 updates
        assert "to do: 400,000 env steps and 97,500 gradient updates of 128 transitions" in out
        assert f"state in memory: {2 * state / 2**30:,.2f} GiB" in out
    err = err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "interrupted before" in err
    assert not list(tmp_path.iterdir())


def test_eval_reads_the_newest_checkpoint_of_an_unfinished_run(tiny_run, tmp_path, capsys):
    run_dir = Path(shutil.copytree(tiny_run[0], tmp_path / "run"))
    assert cli.main(["eval", str(run_dir), "--episodes", "2"]) == 0
    final = capsys.readouterr().out.splitlines()[1:]
    (run_dir / "params.npz").unlink()  # as a run still training, or interrupted
    assert cli.main(["eval", str(run_dir), "--episodes", "2"]) == 2
    assert "--checkpoint latest" in capsys.readouterr().err
    assert cli.main(["eval", str(run_dir), "--episodes", "2", "--checkpoint", "latest"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("(checkpoint latest)")
    assert out[1:] == final  # the newest checkpoint of a finished run holds its final params
    assert cli.main(["eval", str(run_dir), "--checkpoint", "12345"]) == 2
    assert "holds checkpoints at 720, 800 env steps (or give latest)" in capsys.readouterr().err


def test_train_again_from_a_run_config_with_set_on_top(tiny_run, tmp_path, capsys):
    config_file = tiny_run[0] / "config.json"
    source = json.loads(config_file.read_text())
    config = driver.build_config("CartPole-v1", None, ["gamma=0.9"], config_file=config_file)
    assert config.env_id == source["env_id"] == "ChainWalk-v0" and config.gamma == 0.9
    assert dataclasses.replace(config, gamma=source["gamma"]) == driver.read_config(config_file)
    longer = driver.build_config("", 1_600, [], config_file=config_file)
    assert longer.exploration_steps == 2 * source["exploration_steps"]  # scaled from its 800
    assert cli.main(["train", "--config", str(config_file), "--env", "Acrobot-v1"]) == 2
    assert "--config and --env/--preset both choose the config" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"gamma": 0.9, "colour": "red"}')
    assert cli.main(["train", "--config", str(tmp_path / "bad.json")]) == 2
    assert "--config " in (err := capsys.readouterr().err) and "colour" in err


def test_ctrl_c_in_the_final_evaluation_resumes_without_compiling(
    tiny_run, tmp_path, capsys, monkeypatch
):
    run_dir = Path(shutil.copytree(tiny_run[0], tmp_path / "run"))
    for name in ("params.npz", "summary.json"):  # training done, evaluation interrupted
        (run_dir / name).unlink()

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    def compiled(*args, **kwargs):
        raise AssertionError("the training program was compiled")

    monkeypatch.setattr(driver, "_compile_chunk", compiled)
    with monkeypatch.context() as patch:
        patch.setattr(driver, "evaluation_summary", interrupt)
        assert cli.main(["train", "--resume", str(run_dir), "--eval-episodes", "3"]) == 130
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("jaxdqn: interrupted during the final evaluation")
        and len(err.splitlines()) == 1
    )
    assert f"jaxdqn train --resume {run_dir}" in err
    assert cli.main(["train", "--resume", str(run_dir), "--eval-episodes", "3"]) == 0
    assert "finished training; evaluating its final state" in capsys.readouterr().out
    summary = json.loads((run_dir / "summary.json").read_text())
    original = json.loads((tiny_run[0] / "summary.json").read_text())
    assert summary["greedy_return"] == original["greedy_return"] and summary["compile_s"] == 0


def test_a_finished_run_is_extended(tiny_run, tmp_path, capsys):
    run_dir = Path(shutil.copytree(tiny_run[0], tmp_path / "run"))
    assert cli.main(["train", "--resume", str(run_dir)]) == 2
    assert "--total-timesteps N (N > 800)" in capsys.readouterr().err
    for total, message in (("400", "is extended to more env steps"), ("1210", "multiple of")):
        assert cli.main(["train", "--resume", str(run_dir), "--total-timesteps", total]) == 2
        assert f"--total-timesteps {int(total):,} is invalid" in (err := capsys.readouterr().err)
        assert message in err and "log interval of 80" in err
    assert not (run_dir / "summary_800.json").exists()  # a refusal changes nothing
    args = ["train", "--resume", str(run_dir), "--total-timesteps", "1200", "--eval-episodes", "3"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "extending" in out and "from 800 to 1,200 env steps" in out
    assert "the linear learning-rate decay now span" in out
    assert json.loads((run_dir / "run.json").read_text())["extended"] == [{"from": 800, "to": 1200}]
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["total_timesteps"], config["log_interval"]) == (1200, 80)
    assert (run_dir / "summary_800.json").read_text() == (tiny_run[0] / "summary.json").read_text()
    assert (run_dir / "params_800.npz").read_bytes() == (tiny_run[0] / "params.npz").read_bytes()
    assert json.loads((run_dir / "summary.json").read_text())["env_steps_per_seed"] == 1200
    for seed in (0, 1):
        rows = metric_rows(run_dir / f"metrics_seed{seed}.jsonl")
        assert [r["env_steps"] for r in rows] == list(range(80, 1201, 80))
        assert rows[:10] == metric_rows(tiny_run[0] / f"metrics_seed{seed}.jsonl")
    assert checkpoint_steps(run_dir / "checkpoints")[-1] == 1200
