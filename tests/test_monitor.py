"""Metric files, the progress line and the plotted interval, on hand-made numbers."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from jaxdqn.host.monitor import MetricsWriter, Progress, read_metrics, truncate_metrics
from jaxdqn.host.plotting import mean_interval, plot_runs, run_curves, smooth

METRIC_NAMES = ("env_steps", "episode_return", "exploration", "loss", "td_error")


def chunk(steps: list[int], returns: list[list[float]], eps: float = 0.5):
    """Metric rows for 2 seeds: every metric [2, len(steps)]."""
    rows = {name: np.zeros((2, len(steps)), np.float32) for name in METRIC_NAMES}
    rows["env_steps"] = np.tile(np.array(steps, np.int32), (2, 1))
    rows["episode_return"] = np.array(returns, np.float32)
    rows["exploration"] = np.full((2, len(steps)), eps, np.float32)
    return rows


def test_metric_rows_round_trip_with_nan_as_null_and_truncate(tmp_path):
    writer = MetricsWriter(tmp_path, [3, 4])
    writer.write(chunk([10, 20], [[1.0, np.nan], [2.0, 5.0]]))
    # Flushed after each chunk: readable while the writer is still open.
    line = (tmp_path / "metrics_seed3.jsonl").read_text().splitlines()[1]
    assert json.loads(line)["episode_return"] is None
    writer.write(chunk([30], [[7.0], [8.0]]))
    writer.close()
    runs = read_metrics(tmp_path)
    assert sorted(runs) == [3, 4]
    np.testing.assert_array_equal(runs[3]["env_steps"], [10, 20, 30])
    np.testing.assert_array_equal(runs[3]["episode_return"], [1.0, np.nan, 7.0])
    truncate_metrics(tmp_path, [3, 4], env_steps=20)
    np.testing.assert_array_equal(read_metrics(tmp_path)[4]["episode_return"], [2.0, 5.0])


def test_progress_line_numbers(monkeypatch):
    stream = io.StringIO()
    progress = Progress(total_steps=1000, num_seeds=4, start_steps=200, stream=stream)
    # 300 env steps per seed since the start in 2 s -> 150/s per seed, 600/s for 4 seeds;
    # 500 steps left -> ETA 3.3 s. The recent return skips the all-NaN latest window.
    progress._start_time -= 2.0
    monkeypatch.setattr("time.perf_counter", lambda: progress._start_time + 2.0)
    progress.update(chunk([400, 500], [[10.0, np.nan], [20.0, np.nan]], eps=0.25))
    text = stream.getvalue()
    assert text.endswith("\n") and "\r" not in text  # not a terminal: whole lines
    assert "500/1,000 env steps ( 50.0%)" in text
    assert "600 env steps/s (4 seeds)" in text
    assert "eps 0.250 | return 15.0 | elapsed 0:00:02 | ETA 0:00:03" in text
    progress.update(chunk([600], [[1.0], [1.0]]))  # within min_interval_s: not printed
    assert stream.getvalue() == text
    progress.update(chunk([1000], [[3.0], [5.0]]))  # the end is always printed
    assert "1,000/1,000 env steps (100.0%)" in stream.getvalue().splitlines()[-1]


def test_eta_follows_the_rate_once_learning_began(monkeypatch):
    """Windows before learning run fast; the ETA extrapolates the rate since updates began."""
    stream, clock = io.StringIO(), [0.0]
    monkeypatch.setattr("time.perf_counter", lambda: clock[0])
    progress = Progress(total_steps=10_000, num_seeds=1, stream=stream, min_interval_s=0)
    progress.start()
    for steps, seconds, updates in ((1000, 1.0, 0), (2000, 2.0, 10), (3000, 12.0, 40)):
        clock[0] = seconds
        rows = chunk([steps], [[1.0]])
        progress.update({**rows, "updates": np.array([[updates]])})
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("ETA 0:00:09")  # 1,000 steps/s so far: 9,000 left
    assert lines[1].endswith("ETA 0:00:08")  # learning just began: the mean rate still
    assert lines[2].endswith("ETA 0:01:10")  # 1,000 steps in 10 s since: 7,000 left


def test_mean_interval_against_normal_theory():
    rng = np.random.default_rng(1)
    values = rng.normal(10.0, 2.0, size=(400, 3))
    values[:, 2] = np.nan  # a column with no data
    values[:5, 1] = np.nan  # NaN entries are ignored
    mean, low, high = mean_interval(values, resamples=4000)
    np.testing.assert_allclose(mean[0], values[:, 0].mean())
    sem = values[:, 0].std() / np.sqrt(400)
    assert low[0] == pytest.approx(mean[0] - 1.96 * sem, abs=0.3 * sem)
    assert high[0] == pytest.approx(mean[0] + 1.96 * sem, abs=0.3 * sem)
    assert low[1] < np.nanmean(values[:, 1]) < high[1]
    assert np.isnan([mean[2], low[2], high[2]]).all()
    constant = mean_interval(np.full((4, 2), 3.0))
    np.testing.assert_array_equal(np.stack(constant), 3.0)


# ---------------------------------------------------------------------------------------
# smoothed curves without gaps (jaxdqn plot)


def test_smooth_weights_by_episodes_and_carries_over_empty_windows():
    values = np.array([np.nan, 2.0, np.nan, 6.0, np.nan, np.nan, 1.0])
    weights = np.array([0, 1, 0, 3, 0, 0, 2])
    got = smooth(values, weights, window=2)
    # by hand: a window of 2 points; where both are empty the last value carries on
    expected = [np.nan, 2.0, 2.0, 6.0, 6.0, 6.0, 1.0]
    np.testing.assert_allclose(got, expected)
    got3 = smooth(values, weights, window=3)
    expected3 = [np.nan, 2.0, 2.0, (2 * 1 + 6 * 3) / 4, 6.0, 6.0, 1.0]
    np.testing.assert_allclose(got3, expected3)
    rows = smooth(np.stack([values, values * 2]), np.stack([weights, weights]), window=1)
    np.testing.assert_allclose(rows[1], 2 * rows[0])  # each seed's row on its own


def test_plot_of_runs_with_empty_windows_has_no_gaps(tmp_path):
    """Two runs, one of 2 seeds (lines per seed) and one of 6 (an interval), each with log
    windows in which no episode finished: every curve is continuous once it has begun."""
    rng = np.random.default_rng(0)
    for name, seeds in (("few", 2), ("many", 6)):
        run_dir = tmp_path / name
        run_dir.mkdir()
        (run_dir / "config.json").write_text(json.dumps({"env_id": "CartPole-v1"}))
        for seed in range(seeds):
            rows = []
            for i in range(40):
                finished = int(rng.integers(0, 3)) if i else 0
                ret = float(rng.normal(i, 1.0)) if finished else None
                rows.append({"env_steps": 100 * (i + 1), "completed_episodes": finished,
                             "episode_return": ret, "wall_time_s": 0.5 * i})  # fmt: skip
            lines = "\n".join(json.dumps(r) for r in rows)
            (run_dir / f"metrics_seed{seed}.jsonl").write_text(lines + "\n")
        steps, curves = run_curves(run_dir, "episode_return", window=3)
        np.testing.assert_array_equal(steps, 100 * np.arange(1, 41))
        raw = read_metrics(run_dir)[0]["episode_return"]
        assert np.isnan(raw[1:]).any()  # the raw windows have gaps ...
        first = np.argmax(np.isfinite(curves).all(axis=0))
        assert np.isfinite(curves[:, first:]).all() and first <= 3  # ... the curves none
    out = plot_runs(
        [tmp_path / "few", tmp_path / "many"], tmp_path / "p.png", labels=["a", "b"], window=3
    )
    assert out.stat().st_size > 10_000
    with pytest.raises(ValueError, match="--label was given 1 times for 2 runs"):
        plot_runs([tmp_path / "few", tmp_path / "many"], tmp_path / "q.png", labels=["a"])
    wall, curves = run_curves(tmp_path / "few", "episode_return", window=3, x="wall_time_s")
    np.testing.assert_array_equal(wall, 0.5 * np.arange(40))
    assert plot_runs([tmp_path / "few"], tmp_path / "w.png", x="wall_time_s").stat().st_size
    with pytest.raises(ValueError, match="--x wall is invalid: choose one of env_steps"):
        plot_runs([tmp_path / "few"], tmp_path / "q.png", x="wall")
    (tmp_path / "few" / "metrics_seed0.jsonl").write_text('{"env_steps": 100}\n')
    with pytest.raises(ValueError, match=r"x='wall_time_s' is invalid: .* logged env_steps"):
        run_curves(tmp_path / "few", "env_steps", window=1, x="wall_time_s")
