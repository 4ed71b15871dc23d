"""One run's seeds over several processes (jaxdqn.host.processes): two processes on
localhost, one CPU device each, train the same seeds bit for bit as one process with two
devices; their merged run folder serves eval and plot; a run whose processes are killed
resumes to the same result. Each process is a fresh ``python -m jaxdqn train``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port, metric_rows

from jaxdqn.host import cli
from jaxdqn.host.processes import ProcessGroup

# 4 seeds x 50 log points of tiny ChainWalk, a checkpoint at each: long enough to kill
# mid-run, short to train.
_ARGS = [
    "--env", "ChainWalk-v0", "--seeds", "4", "--total-timesteps", "4000",
    "--set", "num_envs=4", "--set", "learning_starts=80", "--set", "buffer_size=800",
    "--set", "batch_size=16", "--set", "exploration_steps=2000", "--set", "log_interval=80",
    "--set", "hidden_sizes=[8]", "--eval-episodes", "3", "--checkpoint-every", "1",
    "--no-progress",
]  # fmt: skip
_TOTAL = 4000
_PROCESS = ["--num-processes", "2", "--process-id"]


def _start(args: list[str], devices: int) -> subprocess.Popen:
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": str(devices), "JAXDQN_COMPILATION_CACHE": "off"}
    return subprocess.Popen(
        [sys.executable, "-m", "jaxdqn", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _two_processes(args: list[str]) -> list[subprocess.Popen]:
    port = free_port()
    return [
        _start([*args, *_PROCESS, str(i), "--coordinator", f"localhost:{port}"], devices=1)
        for i in range(2)
    ]


def _finish(processes: list[subprocess.Popen]) -> list[str]:
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output
    return outputs


def _only_run(out: Path) -> Path:
    (run_dir,) = out.iterdir()
    return run_dir


def _assert_same_run(run_dir: Path, reference: Path) -> None:
    """Every seed's metric rows (all but wall time) and final params are bit-identical."""
    for seed in range(4):
        name = f"metrics_seed{seed}.jsonl"
        assert metric_rows(run_dir / name) == metric_rows(reference / name), name
    with np.load(run_dir / "params.npz") as got, np.load(reference / "params.npz") as want:
        assert sorted(got.files) == sorted(want.files)
        for name in want.files:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The run trained by one process with two CPU devices."""
    out = tmp_path_factory.mktemp("one_process")
    _finish([_start(["train", *_ARGS, "--out", str(out)], devices=2)])
    return _only_run(out)


def test_two_processes_train_the_seeds_of_one_process_with_two_devices(tmp_path, reference, capsys):
    outputs = _finish(_two_processes(["train", *_ARGS, "--out", str(tmp_path)]))
    run_dir = _only_run(tmp_path)
    assert "process 1 of 2 (seeds 2-3) done" in outputs[1]
    assert "doctor:" in outputs[0] and "doctor:" not in outputs[1]  # process 0 reports
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "process-0",
        "process-1",
    ]
    assert not list(run_dir.glob("*.process-*"))  # the parts were merged and removed
    _assert_same_run(run_dir, reference)
    # One process (this one) reads the merged folder: the final params, and the newest
    # checkpoint both processes hold (joined from their folders), as it reads the reference's.
    capsys.readouterr()
    for extra in ([], ["--checkpoint", "latest"]):
        tables = []
        for folder in (run_dir, reference):
            assert cli.main(["eval", str(folder), "--episodes", "3", *extra]) == 0
            output = capsys.readouterr().out
            tables.append([line for line in output.splitlines() if line.strip()[:1].isdigit()])
        assert len(tables[0]) == 4 and tables[0] == tables[1], tables
    assert cli.main(["plot", str(run_dir), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 0


def test_killed_processes_resume_to_the_uninterrupted_result(tmp_path, reference):
    processes = _two_processes(["train", *_ARGS, "--out", str(tmp_path)])
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob("*/checkpoints/process-1/ckpt-*")):
        assert time.monotonic() < deadline and processes[1].poll() is None
        time.sleep(0.01)
    processes[1].send_signal(signal.SIGKILL)
    processes[1].communicate(timeout=60)
    survivor = processes[0].communicate(timeout=120)[0]  # stops at its next barrier
    assert processes[0].returncode == 1, survivor
    run_dir = _only_run(tmp_path)
    assert "another process stopped before 'checkpoint " in survivor
    hint = f"Resume every process with: jaxdqn train --resume {run_dir} --num-processes 2"
    assert hint in survivor
    assert not (run_dir / "summary.json").exists()
    killed_at = max(int(p.name[5:]) for p in run_dir.glob("checkpoints/process-1/ckpt-*"))
    assert killed_at < _TOTAL
    outputs = _finish(_two_processes(["train", "--resume", str(run_dir), "--no-progress"]))
    assert "resuming at" in outputs[0]
    _assert_same_run(run_dir, reference)


def test_a_process_trains_a_contiguous_block_of_the_seeds():
    seeds = list(range(10, 17))
    shares = [ProcessGroup(3, i).share(seeds) for i in range(3)]
    assert shares == [[10, 11, 12], [13, 14], [15, 16]]
    assert ProcessGroup().share(seeds) == seeds
    with pytest.raises(ValueError, match="every process trains at least one seed"):
        ProcessGroup(4, 0).share([1, 2])
    with pytest.raises(ValueError, match=r"process_id=2 is invalid: must be in 0\.\.1"):
        ProcessGroup(2, 2)
    with pytest.raises(ValueError, match="num_processes=0 is invalid"):
        ProcessGroup(0, 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--num-processes", "2"], "needs --process-id"),
        ([*_PROCESS, "2", "--coordinator", "h:1"], "0...1"),
        ([*_PROCESS, "0", "--coordinator", "h"], "HOST:PORT"),
        (["--process-id", "1"], "need --num-processes"),
        (["--cluster", "--num-processes", "2"], "drop --num-processes"),
        (
            [*_PROCESS, "0", "--coordinator", "h:1", "--keep-checkpoints", "1"],
            "--keep-checkpoints 1 is invalid",
        ),
    ],
)
def test_process_options_that_do_not_fit_are_refused_before_jax_starts(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_seed_count_that_does_not_split_over_the_devices_is_refused(tmp_path, monkeypatch):
    from jaxdqn.host import driver

    config = driver.build_config("ChainWalk-v0", 800, [])
    monkeypatch.setattr(driver.jax, "device_count", lambda: 4)
    with pytest.raises(ValueError, match="6 seeds do not split evenly over the 4 devices"):
        driver.start_run(config, list(range(6)), tmp_path, ProcessGroup(2, 0))
    assert not list(tmp_path.iterdir())


def test_a_sweep_over_two_processes_equals_one_process_with_two_devices(tmp_path):
    args = [
        "sweep", "--env", "ChainWalk-v0", "--seeds", "2", "--total-timesteps", "800",
        "--set", "learning_rate=1e-3,3e-3", "--set", "num_envs=4", "--set", "learning_starts=80",
        "--set", "buffer_size=800", "--set", "batch_size=16", "--set", "exploration_steps=400",
        "--set", "log_interval=80", "--set", "hidden_sizes=[8]", "--eval-episodes", "3",
    ]  # fmt: skip
    (one,) = _finish([_start([*args, "--out", str(tmp_path / "one")], devices=2)])
    outputs = _finish(_two_processes([*args, "--out", str(tmp_path / "two")]))
    assert "process 1 of 2 done; process 0 wrote the sweep" in outputs[1]
    table = [line for line in one.splitlines() if "learning_rate=0.00" in line]
    assert len(table) == 2
    assert table == [line for line in outputs[0].splitlines() if "learning_rate=0.00" in line]
    settings = sorted(p.name for p in _only_run(tmp_path / "one").iterdir() if p.is_dir())
    assert settings == ["learning_rate=0.001", "learning_rate=0.003"]
    for name in settings:
        got, want = _only_run(tmp_path / "two") / name, _only_run(tmp_path / "one") / name
        for seed in (0, 1):
            path = f"metrics_seed{seed}.jsonl"
            assert (got / path).read_text() == (want / path).read_text()
        with np.load(got / "params.npz") as a, np.load(want / "params.npz") as b:
            assert all(np.array_equal(a[k], b[k]) for k in b.files)
