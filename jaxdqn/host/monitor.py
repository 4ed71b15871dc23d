"""Host-side driving and watching of a run: chunks, per-seed metric files, a progress line.

Everything here consumes the metric rows that ``Trainer.run`` returns at the end of each
chunk, so nothing touches the compiled loop.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np


def run_chunks(
    run_chunk: Callable[[Any], tuple[Any, dict[str, Any]]],
    state: Any,
    num_chunks: int,
    on_rows: Callable[[dict[str, np.ndarray]], None],
    *,
    pause_after: Callable[[int], bool] = lambda chunk: False,
    on_pause: Callable[[int, Any], None] | None = None,
) -> Any:
    """Runs ``num_chunks`` chunks, handing each chunk's metric rows to the host as it ends.

    The host work of a chunk (``on_rows``) runs while the device computes the next one:
    each chunk is dispatched before the previous chunk's rows are read. After chunk ``i``
    (counting from 0) with ``pause_after(i)`` true, and after the last one, the loop waits
    for the device, hands over the rows, then calls ``on_pause(i, state)`` (a checkpoint)
    before dispatching more work, so a ``run_chunk`` that donates its input is safe.

    Args:
      run_chunk: ``state -> (state, metrics)``, typically a jitted ``Trainer.run`` (vmapped
        or not) with the state donated.
      state: the state to start from.
      num_chunks: how many calls to make.
      on_rows: called with each chunk's metrics as NumPy arrays, in order.
      pause_after: which chunks end with a pause.
      on_pause: called at each pause with the chunk index and the state after it.

    Returns:
      The state after the last chunk.
    """
    pending = None
    for chunk in range(num_chunks):
        state, metrics = run_chunk(state)
        if pending is not None:
            on_rows({k: np.asarray(v) for k, v in pending.items()})
        pending = metrics
        if chunk + 1 == num_chunks or pause_after(chunk):
            on_rows({k: np.asarray(v) for k, v in pending.items()})
            pending = None
            if on_pause is not None:
                on_pause(chunk, state)
    return state


def _json_value(value: Any) -> Any:
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and not math.isfinite(value) else value


def metrics_path(run_dir: str | os.PathLike, seed: int) -> Path:
    """``<run_dir>/metrics_seed<seed>.jsonl``: one JSON object per log point."""
    return Path(run_dir) / f"metrics_seed{seed}.jsonl"


class MetricsWriter:
    """Appends metric rows to one JSONL file per seed, flushed after every chunk.

    A run killed at any moment keeps every row written before its last flush. NaN (a
    window without an ended episode or an update) is written as ``null``.
    """

    def __init__(
        self, run_dir: str | os.PathLike, seeds: list[int], names: tuple[str, ...] | None = None
    ):
        self._names = names
        self._files = [open(metrics_path(run_dir, s), "a") for s in seeds]  # noqa: SIM115

    def write(self, metrics: dict[str, np.ndarray]) -> None:
        """Appends rows: each metric is ``[num_seeds, num_rows]``. A row holds every metric,
        in the order of ``names`` if it was given (``Trainer.metric_names``), else of
        ``metrics``."""
        names = self._names or tuple(metrics)
        rows = metrics["env_steps"].shape[1]
        for i, f in enumerate(self._files):
            for r in range(rows):
                record = {name: _json_value(metrics[name][i, r]) for name in names}
                f.write(json.dumps(record) + "\n")
            f.flush()

    def close(self) -> None:
        for f in self._files:
            f.close()


def truncate_metrics(run_dir: str | os.PathLike, seeds: list[int], env_steps: int) -> None:
    """Drops rows logged after ``env_steps`` (a resumed run writes them again, identically)."""
    for seed in seeds:
        path = metrics_path(run_dir, seed)
        if not path.exists():
            continue
        kept = [line for line in path.read_text().splitlines() if line.strip()]
        kept = [line for line in kept if json.loads(line)["env_steps"] <= env_steps]
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, path)


def read_metrics(run_dir: str | os.PathLike) -> dict[int, dict[str, np.ndarray]]:
    """Every seed's metrics of a run folder: ``{seed: {name: float64 [rows]}}``, one entry
    per name any row holds (NaN for null or missing)."""
    runs = {}
    for path in sorted(Path(run_dir).glob("metrics_seed*.jsonl")):
        seed = int(path.stem.removeprefix("metrics_seed"))
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        names = dict.fromkeys(name for row in rows for name in row)
        runs[seed] = {
            name: np.array([np.nan if r.get(name) is None else r[name] for r in rows], float)
            for name in names
        }
    return runs


def stacked_metrics(
    run_dir: str | os.PathLike, seeds: list[int] | None = None
) -> dict[str, np.ndarray]:
    """The metrics of ``seeds`` (default: every seed with a file) of a run folder as
    ``{name: float64 [seeds, rows]}``, cut to the rows every seed has (a run stopped
    mid-chunk); NaN for null. Empty when a seed has no rows.

    Raises:
      ValueError: a seed of ``seeds`` without a metrics file.
    """
    runs = read_metrics(run_dir)
    seeds = sorted(runs) if seeds is None else seeds
    missing = [seed for seed in seeds if seed not in runs]
    if missing:
        raise ValueError(f"{run_dir} holds no metrics for seeds {missing}.")
    if not seeds or any(not runs[seed] for seed in seeds):
        return {}
    rows = min(len(runs[seed]["env_steps"]) for seed in seeds)
    names = runs[seeds[0]]
    return {
        name: np.stack([runs[seed].get(name, np.full(rows, np.nan))[:rows] for seed in seeds])
        for name in names
    }


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """One status line: env steps, env steps/s, ε, mean recent return over seeds, ETA.

    The ETA extrapolates the rate since the first window in which the learner updated
    (rows with ``updates > 0``), once a later window has ended: the windows before
    learning starts only step envs and run several times faster.

    On a terminal the line is redrawn in place; otherwise (a log file, CI) a full line is
    printed at most every ``min_interval_s`` seconds, and always at the end. All numbers
    are per seed except the throughput, which counts every seed's env steps.

    Args:
      total_steps: env steps per seed at the end of the run.
      num_seeds: seeds trained together.
      start_steps: env steps per seed already done (a resumed run).
      stream: where to write (default ``sys.stderr``).
      min_interval_s: the least time between printed lines off a terminal.
    """

    def __init__(
        self,
        total_steps: int,
        num_seeds: int,
        start_steps: int = 0,
        stream: TextIO | None = None,
        min_interval_s: float = 10.0,
    ):
        self.total_steps, self.num_seeds = total_steps, num_seeds
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self.min_interval_s = min_interval_s
        self._start_steps = start_steps
        self._start_time = time.perf_counter()
        self._last_print = -math.inf
        self._recent_return = math.nan
        self._learning_from: tuple[float, int] | None = None  # (time, steps) updates began

    def start(self) -> None:
        """Restarts the clock: elapsed time, rate and ETA count from now (call it when the
        compiled program is ready, so compiling does not count as training)."""
        self._start_time = time.perf_counter()

    def line(
        self, steps: int, exploration: float, elapsed: float, eta_rate: float | None = None
    ) -> str:
        """The status text at ``steps`` env steps per seed after ``elapsed`` seconds; the
        ETA extrapolates ``eta_rate`` env steps/s per seed (default: the mean rate)."""
        done = steps - self._start_steps
        rate = done / elapsed if elapsed > 0 else math.nan
        eta_rate = rate if eta_rate is None else eta_rate
        eta = (self.total_steps - steps) / eta_rate if eta_rate > 0 else math.nan
        recent = "n/a" if math.isnan(self._recent_return) else f"{self._recent_return:.1f}"
        return (
            f"{steps:>{len(f'{self.total_steps:,}')},}/{self.total_steps:,} env steps "
            f"({100 * steps / self.total_steps:5.1f}%) | "
            f"{rate * self.num_seeds:,.0f} env steps/s ({self.num_seeds} seeds) | "
            f"eps {exploration:.3f} | return {recent} | "
            f"elapsed {_duration(elapsed)} | ETA {'n/a' if math.isnan(eta) else _duration(eta)}"
        )

    def update(self, metrics: dict[str, np.ndarray]) -> None:
        """Takes a chunk's rows (each ``[num_seeds, rows]``) and redraws the line."""
        returns = metrics["episode_return"]
        finite = np.isfinite(returns)
        if finite.any():  # the latest window with an ended episode, averaged over seeds
            last = np.flatnonzero(finite.any(axis=0))[-1]
            self._recent_return = float(np.nanmean(returns[:, last]))
        steps = int(metrics["env_steps"][0, -1])
        now = time.perf_counter()
        if self._learning_from is None and np.max(metrics.get("updates", 0)) > 0:
            self._learning_from = (now, steps)
        eta_rate = None
        if self._learning_from is not None and steps > self._learning_from[1]:
            since, at = self._learning_from
            eta_rate = (steps - at) / max(now - since, 1e-9)
        final = steps >= self.total_steps
        if not (self.interactive or final or now - self._last_print >= self.min_interval_s):
            return
        self._last_print = now
        exploration = float(np.mean(metrics["exploration"][:, -1]))
        text = self.line(steps, exploration, now - self._start_time, eta_rate)
        end = "\n" if final or not self.interactive else ""
        self.stream.write(("\r\x1b[2K" if self.interactive else "") + text + end)
        self.stream.flush()
