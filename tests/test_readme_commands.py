"""The README's command-line block, run as written on tiny budgets: each ``jaxdqn`` line
through the command line's own entry point, the ``python`` line as a subprocess."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port, readme_block

from jaxdqn.host import cli
from jaxdqn.host.checkpoint import checkpoint_path, checkpoint_steps

BLOCK = readme_block("## Watch it, stop it, resume it", "bash")
LINES = [shlex.split(line, comments=True) for line in BLOCK.strip().splitlines()]
# Budgets the README leaves to the preset (or writes large), made tiny; nothing else changes.
TINY = {"--seeds": "2", "--total-timesteps": "2000", "--eval-episodes": "2"}
EXTENDED = "4000"  # the README extends to 400,000 env steps


def tiny(tokens: list[str]) -> list[str]:
    """A ``jaxdqn train`` line with tiny budgets: a written ``--seeds``/``--total-timesteps``
    replaced, a missing one added (a resumed run keeps its own seeds and budget)."""
    tokens = list(tokens)
    resuming = "--resume" in tokens
    for flag, value in TINY.items():
        if flag in tokens:
            tokens[tokens.index(flag) + 1] = EXTENDED if resuming else value
        elif not resuming or flag == "--eval-episodes":
            tokens += [flag, value]
    return tokens


def jaxdqn(tokens: list[str]) -> tuple[int, str]:
    """Runs a ``jaxdqn ...`` line in this process: ``(exit code, stdout + stderr)``."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli.main(tokens[1:])
    return code, out.getvalue()


def test_readme_block_runs_as_written(tmp_path, monkeypatch):
    pytest.importorskip("tensorboardX", reason="the tensorboard extra is not installed")
    pytest.importorskip("wandb", reason="the wandb extra is not installed")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert [tokens[:2] for tokens in LINES][:2] == [["jaxdqn", "train"]] * 2
    runs: list[Path] = []
    for line in LINES:
        tokens = list(line)
        if runs:  # the README's placeholders name the first run, then the first two
            names = {"runs/CartPole-v1-<time>": runs[0], "runs/A": runs[0], "runs/B": runs[-1]}
            for placeholder, run_dir in names.items():
                tokens = [t.replace(placeholder, str(run_dir)) for t in tokens]
        if tokens[0] == "python":
            done = subprocess.run([sys.executable, *tokens[1:]], cwd=Path(__file__).parents[1],
                                  capture_output=True, text=True, timeout=600)  # fmt: skip
            assert done.returncode == 0, (line, done.stdout, done.stderr)
            continue
        if tokens[1] == "train":
            tokens = tiny(tokens)
        code, out = jaxdqn(tokens)
        assert code == 0, (line, out)
        if tokens[1] == "train" and "--resume" not in tokens:
            runs.append(Path(out.split("run folder: ")[1].split()[0]).resolve())
            if len(runs) == 1:
                interrupt(runs[0])  # the README's first line: "Ctrl-C ... then --resume"
    assert (runs[0] / "summary_2000.json").exists() and (runs[0] / "policy_seed0.npz").exists()
    assert list((runs[-1] / "tensorboard").glob("events.out.tfevents.*"))
    assert list(runs[-1].glob("wandb/offline-run-*/run-*.wandb"))
    for name in ("curves.png", "wall.png", "episode.gif"):
        assert (tmp_path / name).stat().st_size > 1000


def interrupt(run_dir: Path) -> None:
    """Makes a finished run look killed after its second-newest checkpoint."""
    for name in ("params.npz", "summary.json", "diagnosis.json"):
        (run_dir / name).unlink()
    shutil.rmtree(
        checkpoint_path(run_dir / "checkpoints", checkpoint_steps(run_dir / "checkpoints")[-1])
    )


SWEEP_LINES = [
    shlex.split(line)
    for line in readme_block("### Sweeps from the command line", "bash").splitlines()
]
# The README's sweeps made tiny: fewer seeds and samples, a short budget. The second draws
# as many settings as the first's grid holds, so both sweep the same traced fields over the
# same shapes: one program, compiled once.
TINY_SWEEP = {"--seeds": "2", "--samples": "6", "--total-timesteps": "2000", "--eval-episodes": "2"}


def test_readme_sweep_block_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert [tokens[:2] for tokens in SWEEP_LINES] == [["jaxdqn", "sweep"]] * 2
    for tokens in SWEEP_LINES:
        tokens = list(tokens)
        for flag, value in TINY_SWEEP.items():
            if flag in tokens:
                tokens[tokens.index(flag) + 1] = value
            elif flag != "--samples":
                tokens += [flag, value]
        code, out = jaxdqn(tokens)
        assert code == 0 and "in 1 program (every swept field is traced)" in out, out
    sweeps = sorted((tmp_path / "sweeps").iterdir())
    settings = [json.loads((s / "sweep.json").read_text())["settings"] for s in sweeps]
    assert [len(rows) for rows in settings] == [6, 6]


def _launch(tokens: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """A README ``jaxdqn ...`` line as a process of this Python, with tiny budgets."""
    tokens = tiny(tokens)
    base = {k: v for k, v in os.environ.items() if k != "JAX_NUM_CPU_DEVICES"}
    return subprocess.Popen([sys.executable, "-m", "jaxdqn", *tokens[1:]], cwd=cwd, text=True,
                            env={**base, "JAXDQN_COMPILATION_CACHE": "off", **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip


def _outputs(processes: list[subprocess.Popen]) -> list[str]:
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    assert [process.returncode for process in processes] == [0] * len(processes), outputs
    return outputs


def test_readme_two_processes_block_runs_as_written(tmp_path):
    block = readme_block("Two processes on one machine", "bash")
    lines = [line.rstrip(" &") for line in block.strip().splitlines() if line != "wait"]
    port = str(free_port())
    processes = [_launch(shlex.split(line.replace("12355", port)), {}, tmp_path) for line in lines]
    outputs = _outputs(processes)
    assert "run folder:" in outputs[0] and "process 1 of 2 (seeds 1-1) done" in outputs[1]
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) == 2:  # CI's 2 cores
        second = sorted(os.sched_getaffinity(0))[1]  # process 1 keeps the second core
        assert f"process 1 of 2 on this machine: cores {second}-{second}" in outputs[1]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "summary.json").read_text())["seeds"] == [0, 1]


def test_readme_slurm_script_runs_as_two_tasks_on_localhost(tmp_path):
    script = readme_block("On a SLURM cluster", "bash")
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    (srun,) = [line for line in script.splitlines() if line.startswith("srun ")]
    tokens = shlex.split(srun.replace('"$HOME', f'"{tmp_path}'))
    assert tokens[:2] == ["srun", "--kill-on-bad-exit=1"]
    # JAX's coordinator listens on port 61440 + job id % 4096: a job id that gives a free one
    job = str(free_port(61440) - 61440 + 4096)
    slurm = {"SLURM_JOB_ID": job, "SLURM_STEP_NODELIST": "localhost", "SLURM_NTASKS": "2",
             "SLURM_STEP_NUM_NODES": "1", "JAX_NUM_CPU_DEVICES": "1"}  # fmt: skip
    tasks = [
        _launch(tokens[2:], {**slurm, "SLURM_PROCID": str(i), "SLURM_LOCALID": str(i)}, tmp_path)
        for i in range(2)
    ]
    outputs = _outputs(tasks)
    assert "process 0 of 2" in outputs[0] and "process 1 of 2 (seeds 1-1) done" in outputs[1]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "params.npz").exists()
