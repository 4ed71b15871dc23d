"""``jaxdqn sweep`` (jaxdqn.host.sweep): the grid and random settings, one compiled program
for traced fields, the table and files, run folders that eval reads, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jaxdqn.host import cli, sweep
from jaxdqn.host.driver import build_config

_BASE = build_config("CartPole-v1", 2_000, [])


def test_the_grid_is_every_combination_with_the_last_field_fastest():
    settings = sweep.make_settings(
        _BASE, ["learning_rate=1e-4,1e-3", "hidden_sizes=[32],[16,16]", "gamma=0.9"]
    )
    assert [s.values for s in settings] == [
        {"learning_rate": 1e-4, "hidden_sizes": (32,), "gamma": 0.9},
        {"learning_rate": 1e-4, "hidden_sizes": (16, 16), "gamma": 0.9},
        {"learning_rate": 1e-3, "hidden_sizes": (32,), "gamma": 0.9},
        {"learning_rate": 1e-3, "hidden_sizes": (16, 16), "gamma": 0.9},
    ]
    assert settings[1].config.hidden_sizes == (16, 16) and settings[1].config.gamma == 0.9
    assert settings[1].name == "learning_rate=0.0001,hidden_sizes=[16,16],gamma=0.9"
    groups = sweep.program_groups(settings)  # hidden_sizes shapes the program
    assert [[s.values["hidden_sizes"] for s in g] for g in groups] == [[(32,)] * 2, [(16, 16)] * 2]


def test_random_search_draws_each_field_in_its_range_reproducibly():
    texts = ["learning_rate=log:1e-5:1e-2", "target_update_period=int:10:20", "gamma=0.9,0.99"]
    settings = sweep.make_settings(_BASE, texts, samples=200, sample_seed=3)
    rates = np.array([s.values["learning_rate"] for s in settings])
    periods = [s.values["target_update_period"] for s in settings]
    assert rates.min() >= 1e-5 and rates.max() <= 1e-2
    # log-uniform: about as many draws in each decade
    assert np.histogram(np.log10(rates), bins=3, range=(-5, -2))[0].min() > 40
    assert all(isinstance(p, int) and 10 <= p <= 20 for p in periods) and len(set(periods)) == 11
    assert {s.values["gamma"] for s in settings} == {0.9, 0.99}
    again = sweep.make_settings(_BASE, texts, samples=200, sample_seed=3)
    assert [s.values for s in again] == [s.values for s in settings]
    assert len(sweep.program_groups(settings)) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "learnin_rate=1e-4,1e-3"], "Did you mean 'learning_rate'?"),
        (["--set", "learning_rate=log:1e-2:1e-5", "--samples", "3"], "LOW < HIGH"),
        (["--set", "learning_rate=log:0:1e-2", "--samples", "3"], "LOW > 0 for log"),
        (["--set", "learning_rate=log:1e-5:1e-2"], "with --samples K"),
        (["--set", "gamma=0.9,1.5"], "gamma"),
        (["--set", "gamma=0.9"], "needs a field to sweep"),
        (["--set", "gamma=0.9,", "--set", "gamma=0.8,0.7"], "a value is empty"),
    ],
)
def test_bad_sweeps_are_one_line_errors_before_anything_compiles(args, message, tmp_path, capsys):
    code = cli.main(["sweep", "--total-timesteps", "2000", "--out", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_a_sweep_of_learning_rates_is_one_program_with_a_table_and_run_folders(
    tmp_path, capsys, monkeypatch
):
    traces = []

    def counted_trainer(config, *args):
        trainer = sweep_make_trainer(config, *args)
        train = trainer.train

        def counted(key, hparams):
            traces.append(config)
            return train(key, hparams)

        return trainer._replace(train=counted)

    sweep_make_trainer = sweep.make_trainer
    monkeypatch.setattr(sweep, "make_trainer", counted_trainer)
    args = ["sweep", "--set", "learning_rate=1e-4,3e-4,1e-3", "--seeds", "4"]
    args += ["--total-timesteps", "2000", "--eval-episodes", "3", "--out", str(tmp_path)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert len(traces) == 1  # the 3 x 4 runs compiled once
    assert "3 settings x 4 seeds = 12 runs in 1 program (every swept field is traced)" in out
    (folder,) = tmp_path.iterdir()
    record = json.loads((folder / "sweep.json").read_text())
    assert record["programs"] == 1 and record["seeds"] == [0, 1, 2, 3]
    names = [row["name"] for row in record["settings"]]
    assert names == ["learning_rate=0.0001", "learning_rate=0.0003", "learning_rate=0.001"]
    best = max(record["settings"], key=lambda row: row["greedy_return_mean"])
    assert record["best"] == best["name"] and f"* {best['name']}" in out
    assert (folder / "sweep.png").stat().st_size > 0
    for row in record["settings"]:
        run_dir = Path(row["run_dir"])
        summary = json.loads((run_dir / "summary.json").read_text())
        assert np.isclose(np.mean(summary["greedy_return"]), row["greedy_return_mean"])
        low, high = row["interval"]
        assert min(summary["greedy_return"]) <= low <= row["greedy_return_mean"] <= high
        assert json.loads((run_dir / "config.json").read_text())["learning_rate"] == float(
            row["name"].split("=")[1]
        )
        assert len(list(run_dir.glob("metrics_seed*.jsonl"))) == 4
        assert (run_dir / "diagnosis.json").exists()
    # A setting's folder is a run folder: eval replays its final evaluation.
    run_dir = record["settings"][2]["run_dir"]
    assert cli.main(["eval", run_dir, "--episodes", "3"]) == 0
    evaluated = capsys.readouterr().out
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    assert f"{summary['greedy_return_mean']:.1f}" in evaluated
