"""Shared tiny configs and compiled functions: JAX compiles are the slow part on CI's
2 cores, so every test that can reuse a compiled program does.

The session sees 2 CPU devices (unless ``JAX_NUM_CPU_DEVICES`` says otherwise), so the
CLI's seed sharding runs as on a multi-core or multi-GPU host (see ``jaxdqn.host.devices``).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import io
import json
import os
import random
import shutil
import socket
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("JAX_NUM_CPU_DEVICES", "2")  # read when jax is imported
# The CLI's compilation cache stays off: tests write nothing to the user's cache folder.
os.environ.setdefault("JAXDQN_COMPILATION_CACHE", "off")

import jax
import pytest

import jaxdqn
from jaxdqn.host import cli
from jaxdqn.host.checkpoint import checkpoint_path
from jaxdqn.host.driver import WALL_TIME

README = (Path(__file__).parents[1] / "README.md").read_text()


def readme_block(after: str, language: str) -> str:
    """The first ``language`` code block of the README after the text ``after``."""
    start = README.index(f"```{language}\n", README.index(after)) + len(language) + 4
    return README[start : README.index("```", start)]


# A few hundred env steps of ChainWalk-v0: compiles in seconds, runs in milliseconds.
TINY_CHAIN = jaxdqn.DQNConfig(
    env_id="ChainWalk-v0",
    num_envs=4,
    total_timesteps=1_600,
    buffer_size=2_000,
    batch_size=16,
    learning_starts=160,
    train_frequency=2,
    target_update_period=25,
    exploration_steps=800,
    hidden_sizes=(16,),
    log_interval=160,
)


# How many times each jitted_train function was traced (a retrace means a recompile).
TRACE_COUNTS: collections.Counter = collections.Counter()


@functools.cache
def jitted_train(config: jaxdqn.DQNConfig, vmapped: bool):
    """One compiled ``train`` per (config, vmapped) for the whole test session."""
    train = jaxdqn.make_train(config)

    def counted(key):
        TRACE_COUNTS[config, vmapped] += 1
        return (jax.vmap(train) if vmapped else train)(key)

    return jax.jit(counted)


@pytest.fixture(scope="session")
def tiny_chain_run():
    """TINY_CHAIN trained on 2 seeds in one vmapped call: (keys, states, metrics)."""
    keys = jax.random.split(jax.random.key(0), 2)
    states, metrics = jitted_train(TINY_CHAIN, True)(keys)
    return keys, states, metrics


# The CLI on a tiny ChainWalk run: 2 seeds x 800 env steps, checkpoints every 3 log points.
TINY_ARGS = [
    "--env", "ChainWalk-v0", "--seeds", "2", "--total-timesteps", "800",
    "--set", "num_envs=4", "--set", "learning_starts=80", "--set", "buffer_size=800",
    "--set", "batch_size=16", "--set", "exploration_steps=400", "--set", "log_interval=80",
    "--set", "hidden_sizes=[8]", "--eval-episodes", "3", "--checkpoint-every", "3",
]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One finished tiny CLI run: (run_dir, stdout, stderr)."""
    out = tmp_path_factory.mktemp("runs")
    capture = pytest.MonkeyPatch()
    stdout, stderr = io.StringIO(), io.StringIO()
    capture.setattr(sys, "stdout", stdout)
    capture.setattr(sys, "stderr", stderr)
    try:
        assert cli.main(["train", *TINY_ARGS, "--out", str(out)]) == 0
    finally:
        capture.undo()
    (run_dir,) = out.iterdir()
    return run_dir, stdout.getvalue(), stderr.getvalue()


def free_port(low: int = 0) -> int:
    """A localhost port free now: any, or one of ``low``..65535 (for a coordinator)."""
    for port in [0] if not low else random.sample(range(low, 65536), 200):
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.bind(("localhost", port))
            return sock.getsockname()[1]
    raise OSError(f"no free port in {low}..65535")


def metric_rows(path: Path) -> list[dict]:
    """A metrics file's rows without ``wall_time_s`` (host time, the one field a resumed
    run does not write again identically), after checking that field never decreases."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    wall = [row.pop(WALL_TIME) for row in rows]
    assert all(t is not None and t >= 0 for t in wall) and wall == sorted(wall), wall
    return rows


def assert_resume_is_exact(run_dir: Path, scratch: Path, last_steps: int = 800) -> str:
    """Copies a finished TINY_ARGS-sized run, drops its last checkpoint and its final files,
    resumes the copy through the CLI and checks every seed's metrics equal the original's.
    Returns what the resume printed."""
    copy = Path(shutil.copytree(run_dir, scratch / "resumed"))
    shutil.rmtree(checkpoint_path(copy / "checkpoints", last_steps))
    for name in ("params.npz", "summary.json"):
        (copy / name).unlink()
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert cli.main(["train", "--resume", str(copy), "--eval-episodes", "3"]) == 0
    for path in sorted(run_dir.glob("metrics_seed*.jsonl")):
        assert metric_rows(copy / path.name) == metric_rows(path)
    return stdout.getvalue()


# The slowest test files, slowest first (minutes each on CI's 2 cores). xdist hands whole
# files to its two workers in collection order; starting these first, rather than last,
# keeps both workers busy to the end of the session.
SLOWEST_FILES = ("test_learning.py", "test_scripts.py", "test_readme_commands.py", "test_suites.py")


def pytest_collection_modifyitems(config, items):
    """Runs the files of :data:`SLOWEST_FILES` first, in that order; the rest keep theirs."""
    del config

    def rank(item) -> int:
        name = item.path.name
        return SLOWEST_FILES.index(name) if name in SLOWEST_FILES else len(SLOWEST_FILES)

    items.sort(key=rank)


def pytest_configure(config):
    """One XLA compilation cache of the session's own: the xdist workers and every process
    a test starts inherit it, so a program compiled once (a preset's, a probe's) is loaded,
    not compiled again, by the next test or process. Made by the process that configures
    the session (the controller, or a run without workers); a folder the user set is kept."""
    if "PYTEST_XDIST_WORKER" in os.environ or "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    config.session_xla_cache = tempfile.mkdtemp(prefix="jaxdqn-tests-xla-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = config.session_xla_cache
    jax.config.update("jax_compilation_cache_dir", config.session_xla_cache)


def pytest_unconfigure(config):
    folder = getattr(config, "session_xla_cache", None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
