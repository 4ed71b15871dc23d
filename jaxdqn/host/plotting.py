"""Learning curves of run folders (``jaxdqn plot``): smoothed means over seeds, with a 95%
interval where there are enough seeds to make one."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from jaxdqn.host.monitor import stacked_metrics

_LABELS = {
    "episode_return": "episode return (training policy, mean per log window)",
    "episode_length": "episode length (training policy)",
    "loss": "TD loss",
    "q_value": "mean Q(s, a) of sampled batches",
    "td_error": "mean |TD error|",
    "grad_norm": "gradient norm (before clipping)",
    "exploration": "ε (or temperature)",
}


def mean_interval(
    values: np.ndarray, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds with a percentile-bootstrap interval, per column.

    Args:
      values: float ``[num_seeds, num_points]``; NaN entries (no data) are ignored.
      confidence: coverage of the interval.
      resamples: bootstrap resamples of the seeds.
      seed: seed of the resampling, so the same data give the same plot.

    Returns:
      ``(mean, low, high)``, each ``[num_points]``; NaN where a column has no data.
    """
    values = np.asarray(values, float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.shape[0], size=(resamples, values.shape[0]))
    with warnings.catch_warnings():  # all-NaN columns (no data yet) give NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(values[picks], axis=1)  # [resamples, points]
        tail = 100 * (1 - confidence) / 2
        low, high = np.nanpercentile(means, [tail, 100 - tail], axis=0)
        return np.nanmean(values, axis=0), low, high


SMOOTH_WINDOW = 5  # log windows a curve is smoothed over, by default
MIN_SEEDS_FOR_INTERVAL = 5  # fewer seeds: each seed's line instead of a bootstrap band
EPISODE_METRICS = ("episode_return", "episode_length")  # means over finished episodes


def smooth(values: np.ndarray, weights: np.ndarray, window: int) -> np.ndarray:
    """A trailing weighted moving average that leaves no gap once data has begun.

    Point ``i`` is ``sum(w * v) / sum(w)`` over points ``i - window + 1 .. i`` whose value
    is finite; where none of them is, the last smoothed value carries on (so a log window
    in which no episode finished does not break the curve). Before the first finite value
    the result is NaN.

    Args:
      values: float ``[..., num_points]`` (NaN: no data in that window).
      weights: ``[..., num_points]`` >= 0, e.g. the episodes each window's mean is over.
      window: points averaged, >= 1 (1: no smoothing, gaps still filled).

    Returns:
      float ``[..., num_points]``.
    """
    values = np.asarray(values, float)
    weights = np.where(np.isfinite(values), np.asarray(weights, float), 0.0)
    filled = np.where(weights > 0, values, 0.0)
    kernel = np.ones(window)
    total = np.apply_along_axis(lambda x: np.convolve(x, kernel)[: x.size], -1, filled * weights)
    mass = np.apply_along_axis(lambda x: np.convolve(x, kernel)[: x.size], -1, weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(mass > 0, total / np.where(mass > 0, mass, 1.0), np.nan)
    for index in np.ndindex(out.shape[:-1]):  # carry the last value over empty stretches
        row = out[index]
        for i in range(1, row.size):
            if np.isnan(row[i]):
                row[i] = row[i - 1]
    return out


X_AXES = {  # --x: the metric row field on the x axis, and its label
    "env_steps": "env steps per seed",
    "wall_time_s": "wall time of training (s; compiling and evaluation excluded)",
}


def run_curves(
    run_dir: str | os.PathLike, metric: str, window: int, x: str = "env_steps"
) -> tuple[np.ndarray, np.ndarray]:
    """``(x [points], smoothed values [seeds, points])`` of one run folder, ``x`` one of
    :data:`X_AXES`; episode metrics are weighted by the episodes each log window finished
    (:func:`smooth`).

    Raises:
      ValueError: a folder without metric rows, an unknown metric, or an x axis the run
        did not log.
    """
    metrics = stacked_metrics(run_dir)
    if not metrics:
        raise ValueError(f"{run_dir} holds no metric rows yet (no metrics_seed*.jsonl).")
    for name, what in ((metric, "metric"), (x, "x")):
        if name not in metrics:
            raise ValueError(f"{what}={name!r} is invalid: {run_dir} logged {', '.join(metrics)}.")
    values = metrics[metric]
    if metric in EPISODE_METRICS and "completed_episodes" in metrics:
        weights = metrics["completed_episodes"]
    else:
        weights = np.ones_like(values)
    return metrics[x][0], smooth(values, weights, window)


def plot_runs(
    run_dirs: list[str | os.PathLike],
    out: str | os.PathLike,
    metric: str = "episode_return",
    labels: list[str] | None = None,
    window: int = SMOOTH_WINDOW,
    x: str = "env_steps",
) -> Path:
    """Plots ``metric`` against env steps (or wall time) for each run folder on one figure.

    Each run is its mean over seeds, with a shaded 95% bootstrap interval where it has at
    least :data:`MIN_SEEDS_FOR_INTERVAL` seeds and a thin line per seed where it has
    fewer; every curve is smoothed over ``window`` log windows (:func:`smooth`).

    Args:
      run_dirs: folders written by ``jaxdqn train`` (``metrics_seed*.jsonl`` inside).
      out: PNG file to write (its folder is created).
      metric: a metric the runs logged (``Trainer.metric_names``).
      labels: one legend label per run (default: its env id, seeds and folder name).
      window: log windows per smoothing window, >= 1.
      x: the x axis, a key of :data:`X_AXES`.

    Returns:
      The path written.

    Raises:
      ValueError: an unknown metric, a folder without metric files, labels that do not
        match the runs, or a window below 1.
    """
    if labels is not None and len(labels) != len(run_dirs):
        raise ValueError(
            f"--label was given {len(labels)} times for {len(run_dirs)} runs; give one per run."
        )
    if window < 1:
        raise ValueError(f"--smooth {window} is invalid: must be >= 1 log window.")
    if x not in X_AXES:
        raise ValueError(f"--x {x} is invalid: choose one of {', '.join(X_AXES)}.")
    curves = [run_curves(run_dir, metric, window, x) for run_dir in run_dirs]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for i, (run_dir, (steps, values)) in enumerate(zip(run_dirs, curves, strict=True)):
        seeds = values.shape[0]
        label = labels[i] if labels else _default_label(run_dir, seeds)
        mean, low, high = mean_interval(values)
        (line,) = axes.plot(steps, mean, label=label)
        if seeds >= MIN_SEEDS_FOR_INTERVAL:
            axes.fill_between(steps, low, high, color=line.get_color(), alpha=0.25, linewidth=0)
        else:
            axes.plot(steps, values.T, color=line.get_color(), alpha=0.35, linewidth=0.7)
    axes.set_xlabel(X_AXES[x])
    axes.set_ylabel(_LABELS.get(metric, metric))
    smoothing = f"smoothed over {window} log windows" if window > 1 else "not smoothed"
    axes.set_title(
        f"{metric}: mean over seeds, {smoothing}\nshaded: 95% bootstrap interval (runs of >= "
        f"{MIN_SEEDS_FOR_INTERVAL} seeds); thin lines: each seed (runs of fewer)",
        fontsize="small",
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out


def _default_label(run_dir: str | os.PathLike, seeds: int) -> str:
    try:
        env_id = json.loads((Path(run_dir) / "config.json").read_text())["env_id"]
    except (OSError, ValueError, KeyError):
        env_id = "?"
    return f"{env_id}, {seeds} seed{'s' if seeds > 1 else ''} ({Path(run_dir).name})"
