"""Learning curves of run folders (``jaxdqn plot``): mean and 95% interval over seeds."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from jaxdqn.host.monitor import read_metrics

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


def plot_runs(
    run_dirs: list[str | os.PathLike], out: str | os.PathLike, metric: str = "episode_return"
) -> Path:
    """Plots ``metric`` against env steps for each run folder on one figure.

    Each run is a line (mean over its seeds) with a shaded 95% bootstrap interval.

    Args:
      run_dirs: folders written by ``jaxdqn train`` (``metrics_seed*.jsonl`` inside).
      out: PNG file to write (its folder is created).
      metric: a metric the runs logged (``Trainer.metric_names``).

    Returns:
      The path written.

    Raises:
      ValueError: an unknown metric, or a folder without metric files.
    """
    runs_by_dir = [(run_dir, read_metrics(run_dir)) for run_dir in run_dirs]
    for run_dir, runs in runs_by_dir:
        if not runs:
            raise ValueError(f"{run_dir} holds no metrics_seed*.jsonl files.")
        logged = next(iter(runs.values()))
        if not logged:
            raise ValueError(f"{run_dir} holds no metric rows yet.")
        if metric not in logged:
            raise ValueError(f"metric={metric!r} is invalid: {run_dir} logged {', '.join(logged)}.")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for run_dir, runs in runs_by_dir:
        rows = min(len(m["env_steps"]) for m in runs.values())  # a run cut short mid-chunk
        steps = next(iter(runs.values()))["env_steps"][:rows]
        values = np.stack([m[metric][:rows] for m in runs.values()])
        mean, low, high = mean_interval(values)
        label = f"{Path(run_dir).name} ({len(runs)} seeds)"
        (line,) = axes.plot(steps, mean, label=label)
        axes.fill_between(steps, low, high, color=line.get_color(), alpha=0.25, linewidth=0)
    axes.set_xlabel("env steps per seed")
    axes.set_ylabel(_LABELS.get(metric, metric))
    axes.set_title(f"{metric}: mean over seeds, shaded 95% bootstrap interval")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out
