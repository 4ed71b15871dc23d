"""The README's command-line block, run as written on tiny budgets: each ``jaxdqn`` line
through the command line's own entry point, the ``python`` line as a subprocess."""

from __future__ import annotations

import contextlib
import io
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import readme_block

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
