"""Sweeps: a grid (or random samples) of settings, each trained on the same seeds.

Settings that differ only in traced fields (:data:`jaxdqn.hyperparams.TRACED_FIELDS`:
learning rate, discount, target sync, exploration) train in one compiled program: every
(setting, seed) pair is one member of a ``jax.vmap``, its seed axis split over the devices.
Settings that differ in any other field (sizes, counts, choices) need a program each.
Each setting gets a run folder of its own (``config.json``, ``run.json``, the per-seed
metric files, ``params.npz``, ``summary.json``, ``diagnosis.json``) that ``jaxdqn eval``,
``plot``, ``doctor`` and ``export`` read like any run; the sweep folder holds them with
``sweep.json`` (the table) and ``sweep.png`` (their learning curves).

A sweep trains each program to its end in one call: it keeps no checkpoints and cannot be
resumed.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxdqn.config import DQNConfig
from jaxdqn.dqn import evaluate, make_trainer
from jaxdqn.host import doctor
from jaxdqn.host.devices import on_each_device, seed_sharding
from jaxdqn.host.driver import (
    EVAL_SEED,
    FIELD_TYPES,
    check_split,
    flat_params,
    new_folder,
    parse_override,
    returns_summary,
    steps_envs_outside_jax,
    versions,
    write_run_files,
)
from jaxdqn.host.memory import check_memory
from jaxdqn.host.monitor import MetricsWriter
from jaxdqn.host.plotting import SMOOTH_WINDOW, mean_interval, plot_runs, run_curves
from jaxdqn.host.processes import ONE_PROCESS, ProcessGroup, gather_rows, global_rows
from jaxdqn.hyperparams import TRACED_FIELDS, Hyperparams
from jaxdqn.presets import SOLVED_RETURN

SWEEP_FILE = "sweep.json"
RANGE_KINDS = ("log", "lin", "int")  # log-uniform, uniform, uniform integer


@dataclasses.dataclass(frozen=True)
class Setting:
    """One point of a sweep: the swept fields' values and the whole config they give."""

    values: dict[str, Any]
    config: DQNConfig
    sample: int | None = None  # its number in a random search (whose draws may repeat)

    @property
    def name(self) -> str:
        """``field=value,...`` (after ``<sample>-`` in a random search): the setting's
        folder name and table label."""
        text = ",".join(f"{field}={_text(value)}" for field, value in self.values.items())
        return text if self.sample is None else f"{self.sample:02d}-{text}"


def _text(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ",".join(map(str, value)) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def split_values(text: str) -> tuple[str, list[str]]:
    """``FIELD=V1,V2,...`` as the field and its values, split at the commas outside
    brackets (``hidden_sizes=[64,64],[32]`` has two values).

    Raises:
      ValueError: text without ``=`` or with an empty value.
    """
    field, sep, raw = text.partition("=")
    if not sep or not field:
        raise ValueError(
            f"--set {text!r} is invalid: expected FIELD=V1,V2,... e.g. gamma=0.99,0.995"
        )
    values, depth, current = [], 0, ""
    for char in raw:
        depth += (char in "[({") - (char in "])}")
        if depth < 0:
            raise ValueError(f"--set {text!r} is invalid: a bracket closes that was not opened.")
        if char == "," and depth == 0:
            values.append(current)
            current = ""
        else:
            current += char
    values.append(current)
    if any(not value.strip() for value in values):
        raise ValueError(f"--set {text!r} is invalid: a value is empty.")
    return field, [value.strip() for value in values]


class _Range(NamedTuple):
    kind: str  # one of RANGE_KINDS
    low: float
    high: float


def _parse_range(field: str, raw: str) -> _Range | None:
    """``KIND:LOW:HIGH`` as a range; ``None`` for a plain value."""
    kind, sep, bounds = raw.partition(":")
    if not sep or kind not in RANGE_KINDS:
        return None
    try:
        low, high = (float(part) for part in bounds.split(":"))
    except ValueError:
        low = high = math.nan
    empty = kind == "int" and low < high and math.ceil(low) > math.floor(high)
    if not low < high or (kind == "log" and low <= 0) or empty:
        raise ValueError(
            f"--set {field}={raw} is invalid: a range is {'|'.join(RANGE_KINDS)}:LOW:HIGH with "
            "LOW < HIGH (LOW > 0 for log, a whole number between them for int), e.g. "
            "log:1e-5:1e-2."
        )
    return _Range(kind, low, high)


def is_swept(text: str) -> bool:
    """Whether ``FIELD=...`` sweeps its field (several values, or a range) rather than
    fixing it to one value."""
    field, values = split_values(text)
    return len(values) > 1 or _parse_range(field, values[0]) is not None


def make_settings(
    base: DQNConfig, texts: list[str], samples: int | None = None, sample_seed: int = 0
) -> list[Setting]:
    """The settings of a sweep over ``base``.

    Args:
      base: the config every setting starts from.
      texts: ``FIELD=V1,V2,...`` (values as ``jaxdqn train --set`` reads them) or
        ``FIELD=KIND:LOW:HIGH`` (a range, for random search: ``log``, ``lin`` or ``int``).
      samples: ``None`` for the grid (every combination, the last field varying fastest);
        K for K random settings, each field drawn independently (from its list, or
        uniformly in its range; ``log`` uniformly in the logarithm).
      sample_seed: seed of the random draws.

    Returns:
      The settings, each config validated.

    Raises:
      ValueError: naming the field and value: an unknown field, a value of the wrong type,
        a bad range, a range without ``samples``, a field given twice, or a config the
        values make invalid.
    """
    axes: dict[str, list[Any]] = {}
    for text in texts:
        field, values = _parse_axis(text, samples)
        if field in axes:
            raise ValueError(f"--set {field} is given twice: list its values in one --set.")
        axes[field] = values
    if samples is None:
        combos = list(itertools.product(*axes.values()))
    else:
        rng = np.random.default_rng(sample_seed)
        combos = [tuple(_draw(rng, axis) for axis in axes.values()) for _ in range(samples)]
    settings = []
    for index, combo in enumerate(combos):
        values = {field: _typed(field, value) for field, value in zip(axes, combo, strict=True)}
        try:
            config = dataclasses.replace(base, **values)
        except (TypeError, ValueError) as error:
            raise ValueError(f"setting {values}: {error}") from None
        settings.append(Setting(values, config, None if samples is None else index))
    return settings


def _parse_axis(text: str, samples: int | None) -> tuple[str, list[Any]]:
    """A ``--set`` of a sweep as its field and values (parsed as ``train --set`` reads
    them), or its one range."""
    field, raws = split_values(text)
    if field == "env_id":
        raise ValueError("--set env_id=... is refused: a sweep trains one env (--env).")
    if field == "total_timesteps":
        raise ValueError(
            "--set total_timesteps=... is refused: a budget also scales the schedules; "
            "give it to --total-timesteps, one sweep per budget."
        )
    if len(set(raws)) < len(raws):
        raise ValueError(f"--set {text} is invalid: a value is given twice.")
    ranges = [_parse_range(field, raw) for raw in raws]
    if any(ranges) and (samples is None or len(raws) > 1):
        raise ValueError(
            f"--set {text} is invalid: a range is drawn from by random search; give it "
            "alone, with --samples K."
        )
    if ranges[0]:
        return field, ranges
    values = [parse_override(f"{field}={raw}")[1] for raw in raws]
    if len({json.dumps(value) for value in values}) < len(values):  # 64,64 for a tuple field
        raise ValueError(f"--set {text} is invalid: two values read the same; tuples go in "
                         "brackets, e.g. hidden_sizes=[64,64],[128].")  # fmt: skip
    return field, values


def _draw(rng: np.random.Generator, axis: list[Any]) -> Any:
    """One value of an axis: its range's draw, or one of its values."""
    if isinstance(axis[0], _Range):
        kind, low, high = axis[0]
        if kind == "log":
            return float(np.exp(rng.uniform(np.log(low), np.log(high))))
        if kind == "int":
            return int(rng.integers(math.ceil(low), math.floor(high) + 1))
        return float(rng.uniform(low, high))
    return axis[int(rng.integers(len(axis)))]


def _typed(field: str, value: Any) -> Any:
    """A drawn number in the field's type: rounded for an int field, a float for a float
    one."""
    kind = str(FIELD_TYPES[field])
    if isinstance(value, float) and "int" in kind and "float" not in kind:
        return round(value)
    if isinstance(value, int) and not isinstance(value, bool) and "float" in kind:
        return float(value)
    return value


def program_groups(settings: list[Setting]) -> list[list[Setting]]:
    """The settings grouped by program: those equal in every field but the traced ones
    share one, in order of first appearance."""
    groups: dict[str, list[Setting]] = {}
    for setting in settings:
        fields = dataclasses.asdict(setting.config)
        key = json.dumps({k: v for k, v in fields.items() if k not in TRACED_FIELDS}, default=str)
        groups.setdefault(key, []).append(setting)
    return list(groups.values())


def run_sweep(
    settings: list[Setting],
    seeds: list[int],
    out: str | Path,
    eval_episodes: int = 100,
    axes_text: list[str] = (),
    processes: ProcessGroup = ONE_PROCESS,
) -> dict[str, Any] | None:
    """Trains every setting on ``seeds`` (one program per :func:`program_groups` group),
    evaluates each greedily, writes each setting's run folder, ``sweep.json`` and
    ``sweep.png`` under a new folder in ``out``.

    With several ``processes`` (``jax.distributed`` joined), each program's runs are
    split over every process's devices; process 0 gathers the results and writes.

    Returns:
      The sweep record (also ``sweep.json``; ``None`` on processes other than 0):
      ``folder``, ``programs``, ``seeds``, ``best`` and per setting, in the order of
      ``settings``: ``name``, ``values``, ``run_dir``, ``greedy_return_mean``,
      ``interval`` (95% bootstrap over seeds), ``steps_to_solve`` (the first env step at
      which the seeds' mean smoothed training return reaches the env's solved return;
      ``None`` if never or unknown) and ``doctor`` (the findings' codes, or
      ``["healthy"]``).

    Raises:
      ValueError: before anything compiles: an env stepped outside JAX (EnvPool), states
        that do not fit in memory, or with several processes runs that do not split
        evenly over their devices.
    """
    groups = program_groups(settings)
    _check_runs(groups, len(seeds), processes)
    folder = Path("")
    if processes.writes_shared_files:
        folder = new_folder(out, settings[0].config.env_id, "sweep")
    rows = {}
    for group in groups:
        results, timing = _train_group(group, seeds, eval_episodes, processes)
        if processes.writes_shared_files:
            for i, setting in enumerate(group):
                part = _rows_of(results, i * len(seeds), (i + 1) * len(seeds))
                rows[setting.name] = _write_setting(
                    setting, seeds, folder, part, eval_episodes, timing
                )
    if not processes.writes_shared_files:
        return None
    ordered = [rows[setting.name] for setting in settings]
    return _write_record(folder, ordered, seeds, len(groups), processes, eval_episodes, axes_text)


def _write_record(
    folder: Path,
    rows: list[dict[str, Any]],
    seeds: list[int],
    programs: int,
    processes: ProcessGroup,
    eval_episodes: int,
    axes_text: list[str],
) -> dict[str, Any]:
    """``sweep.json`` and ``sweep.png`` of a sweep's rows; the record."""
    best = max(rows, key=lambda row: row["greedy_return_mean"])
    record = {
        "folder": str(folder),
        "sweep": list(axes_text),
        "seeds": seeds,
        "programs": programs,
        "processes": processes.count,
        "eval_episodes": eval_episodes,
        "best": best["name"],
        "settings": rows,
    }
    (folder / SWEEP_FILE).write_text(json.dumps(record, indent=2))
    names = [row["name"] for row in rows]
    plot_runs([row["run_dir"] for row in rows], folder / "sweep.png", labels=names)
    return record


def _check_runs(groups: list[list[Setting]], num_seeds: int, processes: ProcessGroup) -> None:
    """Refuses, before anything compiles, what ``jaxdqn train`` refuses of the same runs:
    an env outside JAX, states that do not fit, runs that do not split over processes."""
    for group in groups:
        config, runs = group[0].config, len(group) * num_seeds
        if steps_envs_outside_jax(config):
            raise ValueError(
                f"{config.env_id} steps its envs in an EnvPool pool outside JAX, which a "
                "sweep's program cannot share; train its settings with jaxdqn train."
            )
        check_memory(config, runs // processes.count)
        check_split(runs, processes, "runs in one program")


def _rows_of(tree: Any, start: int, stop: int) -> Any:
    return jax.tree.map(lambda x: x[start:stop], tree)


def _train_group(
    group: list[Setting], seeds: list[int], episodes: int, processes: ProcessGroup
) -> tuple[tuple[dict[str, np.ndarray], Any, np.ndarray], dict[str, float]]:
    """One program: every (setting, seed) of ``group`` trained and evaluated at once.
    Returns every run's ``(metrics, params, mean greedy return)`` on the host (rows in
    group order, seeds fastest) and the program's timing."""
    config = group[0].config  # the static fields the group shares
    trainer = make_trainer(config)
    member_seeds = [seed for _ in group for seed in seeds]
    keys = jax.vmap(jax.random.key)(np.asarray(member_seeds))
    hparams = jax.tree.map(
        lambda *x: np.stack(x),
        *(Hyperparams.from_config(s.config) for s in group for _ in seeds),
    )
    runs = len(member_seeds)
    if processes.count > 1:  # every process's devices, each process giving its rows
        sharding = seed_sharding(runs, jax.devices())
        mine = processes.share(list(range(runs)))
        local = _rows_of((keys, hparams), mine[0], mine[-1] + 1)
        keys, hparams = global_rows(local, sharding, runs)
    else:
        sharding = seed_sharding(runs)
        keys, hparams = jax.device_put((keys, hparams), sharding)
    start = time.perf_counter()
    train = jax.jit(on_each_device(jax.vmap(trainer.train), sharding))
    train = train.lower(keys, hparams).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    state, metrics = jax.block_until_ready(train(keys, hparams))
    run_s = time.perf_counter() - start
    eval_keys = jax.vmap(lambda k: jax.random.fold_in(k, EVAL_SEED))(keys)
    greedy = jax.vmap(lambda p, k: evaluate(config, p, k, episodes, config.eval_epsilon).mean())
    returns = jax.jit(on_each_device(greedy, sharding))(state.params, eval_keys)
    timing = {
        "compile_s": compile_s,
        "run_s": run_s,
        "env_steps_per_s": runs * config.total_timesteps / run_s,
        "program_settings": len(group),
    }
    return gather_rows(processes, (metrics, state.params, returns)), timing


def _write_setting(
    setting: Setting,
    seeds: list[int],
    folder: Path,
    results: tuple[dict[str, np.ndarray], Any, np.ndarray],
    episodes: int,
    timing: dict[str, float],
) -> dict[str, Any]:
    """A setting's run folder, and its row of the sweep's table."""
    metrics, params, returns = results
    config = setting.config
    run_dir = folder / setting.name
    run_dir.mkdir()
    write_run_files(run_dir, config, {"seeds": seeds, "sweep": setting.values}, versions())
    writer = MetricsWriter(run_dir, seeds, tuple(metrics))
    writer.write(metrics)
    writer.close()
    np.savez(run_dir / "params.npz", **flat_params(params))
    returns = np.asarray(returns, np.float32)
    summary = {
        **returns_summary(config, seeds, returns, episodes, config.eval_epsilon),
        "overestimation": None,
        "discounted_return": None,
        "env_steps_per_seed": config.total_timesteps,
        "resumed_at": None,
        **timing,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    findings = doctor.diagnose_run(run_dir)
    mean, low, high = mean_interval(returns[:, None])
    return {
        "name": setting.name,
        "values": setting.values,
        "run_dir": str(run_dir),
        "greedy_return_mean": float(mean[0]),
        "interval": [float(low[0]), float(high[0])],
        "steps_to_solve": _steps_to_solve(run_dir, config.env_id),
        "doctor": [f.code for f in findings if f.severity != "ok"] or ["healthy"],
    }


def _steps_to_solve(run_dir: Path, env_id: str) -> int | None:
    """The first env step at which the seeds' mean training return, smoothed as ``jaxdqn
    plot`` draws it (5 log windows), reaches the env's solved return (``None``: never, or
    no solved return known)."""
    solved = SOLVED_RETURN.get(env_id)
    if solved is None:
        return None
    steps, returns = run_curves(run_dir, "episode_return", SMOOTH_WINDOW)
    with warnings.catch_warnings():  # points before any episode ended are NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        hit = np.flatnonzero(np.nanmean(returns, axis=0) >= solved)
    return int(steps[hit[0]]) if hit.size else None
