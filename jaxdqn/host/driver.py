"""The run driver: a config and seeds in, a run folder out.

It owns the run folder (``config.json``, ``run.json``, ``versions.json``,
``metrics_seed<N>.jsonl``, ``checkpoints/``, ``params.npz``, ``summary.json``), starting
and resuming runs, compiling, the chunked execution with checkpoints, and the final
evaluation. The command line (:mod:`jaxdqn.host.cli`) only parses arguments and prints;
the benchmarks and any script can drive runs through the same functions::

    run = start_run(get_preset("CartPole-v1"), seeds=[0, 1], out="runs")
    summary = fit(run)                      # trains, checkpoints, evaluates, writes
    run = resume_run(run.run_dir)           # after an interruption: fit(run) again
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import importlib.metadata
import json
import platform
import shutil
import time
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding

from jaxdqn.budget import SCALED_FIELDS, scale_schedules
from jaxdqn.config import DQNConfig
from jaxdqn.core.diagnostics import tree_is_finite
from jaxdqn.core.loop import Trainer, TrainState
from jaxdqn.core.types import check_int
from jaxdqn.dqn import bind_config_env, estimate_values, evaluate, make_trainer
from jaxdqn.envs import is_batched
from jaxdqn.host.checkpoint import (
    checkpoint_path,
    checkpoint_steps,
    restore_checkpoint,
    save_checkpoint,
)
from jaxdqn.host.devices import on_each_device, seed_sharding
from jaxdqn.host.doctor import first_non_finite
from jaxdqn.host.memory import check_memory
from jaxdqn.host.monitor import MetricsWriter, metrics_path, run_chunks, truncate_metrics
from jaxdqn.host.processes import (
    ONE_PROCESS,
    ProcessGroup,
    barrier,
    broadcast_text,
    global_rows,
    host_rows,
    local_rows,
)
from jaxdqn.presets import PRESET_IDS, SOLVED_RETURN, get_preset

# Evaluation keys: seed s is evaluated with fold_in(key(s), EVAL_SEED), at the end of
# training and by default in `jaxdqn eval`, so both report the same episodes.
EVAL_SEED = 1

# The metric row field the driver adds: seconds of training (compiling and evaluation
# excluded; a resumed run goes on from its last row) when the row reached the host.
WALL_TIME = "wall_time_s"
# The guard's check of the parameters, in every row the driver writes.
PARAMS_FINITE = "params_finite"


class NonFiniteRun(RuntimeError):
    """Training stopped at a chunk boundary because a seed's loss, gradients or parameters
    went NaN or infinite (:func:`jaxdqn.host.doctor.first_non_finite`).

    Attributes:
      found: ``(seed, env_step, signal)`` for each affected seed.
      last_checkpoint: env steps of the newest checkpoint kept (written before it
        happened), or ``None`` if there is none.
    """

    def __init__(self, found: list[tuple[int, int, str]], last_checkpoint: int | None):
        self.found = found
        self.last_checkpoint = last_checkpoint
        seed, step, signal = found[0]
        seeds = ", ".join(str(s) for s, _, _ in found)
        kept = (
            f"the last checkpoint, at {last_checkpoint:,} env steps, was written before it"
            if last_checkpoint is not None
            else "no checkpoint was written before it"
        )
        super().__init__(
            f"seed {seed}: {signal} went NaN or infinite by env step {step:,} "
            f"(seeds affected: {seeds}); {kept}."
        )


FIELD_TYPES = typing.get_type_hints(DQNConfig)  # DQNConfig field -> its type


def parse_override(text: str) -> tuple[str, Any]:
    """Parses ``FIELD=VALUE`` into a DQNConfig field and a value of the field's type.

    Values are read as people type them: ``true``/``True``/``false``/``False`` for a bool,
    ``none``/``null``/``None`` where a field may be empty, ``64,64``, ``(64, 64)`` or
    ``[64, 64]`` for ``hidden_sizes``, ``1e5`` for an int when it is exact, otherwise JSON
    (``3e-4``, ``0.99``) or a bare string (``huber``).

    Raises:
      ValueError: for an unknown field or a value that does not parse.
    """
    if "=" not in text:
        raise ValueError(f"--set {text!r} is invalid: expected FIELD=VALUE, e.g. gamma=0.98.")
    field, raw = text.split("=", 1)
    if field not in FIELD_TYPES:
        close = difflib.get_close_matches(field, list(FIELD_TYPES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"--set {text!r}: DQNConfig has no field {field!r}.{hint} "
            "jaxdqn list fields shows every field."
        )
    return field, _parse_value(field, raw.strip(), str(FIELD_TYPES[field]))


def _parse_value(field: str, raw: str, kind: str) -> Any:
    """``raw`` as a value of a field whose type hint reads ``kind``."""
    if raw.lower() in ("none", "null"):
        if "None" in kind:
            return None
        raise ValueError(f"--set {field}={raw} is invalid: {field} cannot be empty.")
    if kind == "<class 'bool'>":
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise ValueError(f"--set {field}={raw} is invalid: {field} takes true or false.")
    if kind.startswith("tuple[int"):
        parts = raw.strip("()[] ").split(",")
        try:
            return tuple(int(part) for part in parts if part.strip())
        except ValueError:
            raise ValueError(
                f"--set {field}={raw} is invalid: {field} takes ints, e.g. 64,64."
            ) from None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # a bare string such as huber or epsilon_greedy
    if isinstance(value, list):
        value = tuple(value)
    if "int" in kind and isinstance(value, float) and value.is_integer():
        value = int(value)  # 1e5 where an int is meant
    elif "float" in kind and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return value


def build_config(
    env_id: str,
    total_timesteps: int | None,
    overrides: list[str],
    env_params: list[str] = (),
    config_file: str | Path | None = None,
    preset: str = "dqn",
) -> DQNConfig:
    """The ``preset`` variant of ``env_id``'s preset (:data:`jaxdqn.presets.PRESET_VARIANTS`;
    the defaults for an env without a DQN preset; or the config of ``config_file``, a
    ``config.json``) with ``FIELD=VALUE`` overrides
    (:func:`parse_override`), ``NAME=VALUE`` env parameters (values parsed as JSON, else
    kept as strings) and, if given, ``total_timesteps``. A budget other than the base's
    scales the schedules the overrides do not set (:func:`jaxdqn.budget.scale_schedules`;
    :func:`scaled_schedules` lists them)."""
    base, fields, keep = _config_fields(env_id, overrides, env_params, config_file, preset)
    total = total_timesteps if total_timesteps is not None else fields["total_timesteps"]
    fields["total_timesteps"] = total
    return DQNConfig(**scale_schedules(fields, base.total_timesteps, keep))


def scaled_schedules(
    env_id: str,
    overrides: list[str],
    config: DQNConfig,
    config_file: str | Path | None = None,
    preset: str = "dqn",
) -> tuple[int, dict[str, tuple[Any, Any]]]:
    """What :func:`build_config` scaled: the base's budget and ``{field: (base's value,
    config's value)}`` for each schedule it changed."""
    base, fields, _ = _config_fields(env_id, overrides, (), config_file, preset)
    changed = {
        name: (fields[name], getattr(config, name))
        for name in SCALED_FIELDS
        if fields[name] != getattr(config, name)
    }
    return base.total_timesteps, changed


def _config_fields(
    env_id: str,
    overrides: list[str],
    env_params: list[str],
    config_file: str | Path | None,
    preset: str = "dqn",
) -> tuple[DQNConfig, dict[str, Any], set[str]]:
    """The base config (``config_file``'s, else ``env_id``'s preset or defaults), its
    fields with the overrides applied (not yet validated), and the names of the fields the
    overrides set."""
    if config_file is not None:
        try:
            base = read_config(config_file)
        except (OSError, TypeError, ValueError) as error:
            raise ValueError(f"--config {config_file}: {type(error).__name__}: {error}") from None
    elif preset != "dqn" or env_id in PRESET_IDS:
        base = get_preset(env_id, preset)
    else:
        base = DQNConfig(env_id=env_id)
    changes, errors = {}, []
    for text in overrides:  # every bad --set named at once
        try:
            field, value = parse_override(text)
            changes[field] = value
        except ValueError as error:
            errors.append(str(error))
    if errors:
        raise ValueError("\n".join(errors))
    if env_params:
        given = changes.get("env_params", base.env_params)
        changes["env_params"] = {**dict(given), **_env_params(env_params)}
    if "env_id" in changes:
        raise ValueError(
            f"--set env_id={changes['env_id']} is refused: use --env {changes['env_id']}, "
            "which also loads that env's preset (the hyperparameters of the --env preset "
            "would otherwise be kept)."
        )
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    return base, {**fields, **changes}, set(changes)


def _env_params(texts: list[str]) -> dict[str, Any]:
    params = {}
    for text in texts:
        name, sep, raw = text.partition("=")
        if not sep or not name:
            raise ValueError(
                f"--env-param {text!r} is invalid: expected NAME=VALUE, e.g. "
                "max_steps_in_episode=200."
            )
        try:
            params[name] = json.loads(raw)
        except json.JSONDecodeError:
            params[name] = raw
    return params


def _version(package: str) -> str:
    """``package``'s installed version; for one imported from a source folder without
    install metadata (``PYTHONPATH``), its ``__version__``, else ``"unknown"``."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(importlib.import_module(package), "__version__", "unknown"))


def versions() -> dict[str, str]:
    """Installed versions of the libraries a run depends on, and the device it used."""
    packages = ("jaxdqn", "jax", "jaxlib", "flax", "optax", "chex", "gymnax", "numpy")
    device = jax.local_devices()[0]
    return {
        **{name: _version(name) for name in packages},
        "python": platform.python_version(),
        "device": f"{device.platform}: {device.device_kind}",
        "device_count": str(jax.device_count()),
    }


def read_config(path: str | Path) -> DQNConfig:
    """The :class:`DQNConfig` a ``config.json`` holds (a run folder's, or one written by
    hand with any subset of the fields: the rest take their defaults).

    Raises:
      OSError, ValueError, TypeError: a file that cannot be read, is not a JSON object,
        names a field DQNConfig does not have, or holds a value it refuses.
    """
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds {type(data).__name__}, not a JSON object of fields")
    return DQNConfig(**data)


def load_run(run_dir: str | Path) -> tuple[DQNConfig, list[int]]:
    """The config and seeds of a run folder.

    Raises:
      ValueError: a folder without, or with unreadable, ``config.json`` / ``run.json``.
    """
    run_dir = Path(run_dir)
    try:
        config = read_config(run_dir / "config.json")
        seeds = json.loads((run_dir / "run.json").read_text())["seeds"]
    except FileNotFoundError as error:
        raise ValueError(
            f"{run_dir} is not a jaxdqn run folder: {error.filename} is missing."
        ) from None
    except (OSError, KeyError, TypeError, ValueError) as error:
        # Unreadable, not JSON, a key DQNConfig does not know, no "seeds", a bad value.
        raise ValueError(
            f"{run_dir} is not a readable jaxdqn run folder: {type(error).__name__}: {error}"
        ) from None
    return config, seeds


def load_params(
    run_dir: str | Path, config: DQNConfig, seeds: list[int], trainer: Trainer | None = None
) -> Any:
    """The final params of every seed of a run (``params.npz``), leaves ``[seeds, ...]``;
    ``trainer`` (default: the config's) gives their structure."""
    path = Path(run_dir) / "params.npz"
    if not path.is_file():
        raise ValueError(
            f"{path} is missing: the run has not finished (resume it first, or evaluate "
            "its newest checkpoint with --checkpoint latest)."
        )
    trainer = make_trainer(config) if trainer is None else trainer
    template = jax.eval_shape(jax.vmap(trainer.init), _seed_keys(seeds)).params
    names = [jax.tree_util.keystr(p) for p, _ in jax.tree.leaves_with_path(template)]
    with np.load(path) as arrays:
        missing = [name for name in names if name not in arrays.files]
        if missing:
            raise ValueError(
                f"{path} does not match the network of {Path(run_dir) / 'config.json'}: "
                f"it lacks {', '.join(missing)}."
            )
        leaves = [arrays[name] for name in names]
    return jax.tree.unflatten(jax.tree.structure(template), leaves)


@dataclasses.dataclass(frozen=True)
class Run:
    """A run folder bound to its config and seeds, ready for :func:`fit`."""

    run_dir: Path
    config: DQNConfig
    seeds: list[int]  # the seeds this process trains (all of the run's in one process)
    trainer: Trainer
    sharding: NamedSharding  # how the seeds are spread over devices (jaxdqn.seed_sharding)
    keys: jax.Array  # [seeds] typed PRNG keys, placed with sharding
    state: TrainState | None = None  # the restored state of a resumed run
    start_steps: int = 0  # env steps per seed already done
    wall_time_s: float = 0.0  # seconds of training already done (a resumed run's last row)
    state_bytes: int = 0  # memory of every seed's state (jaxdqn.host.memory.check_memory)
    group: ProcessGroup = ONE_PROCESS  # the processes training the run together

    @property
    def checkpoints(self) -> Path:
        """The folder of this process's checkpoints: ``checkpoints/``, or
        ``checkpoints/process-<i>/`` in a run of several processes."""
        return _checkpoint_folder(self.run_dir, self.group)

    @property
    def finished_training(self) -> bool:
        """Whether the restored state is at the end of the run (only evaluation is left)."""
        return self.start_steps >= self.config.total_timesteps

    def init(self) -> Callable[[jax.Array], TrainState]:
        """``init(keys)`` of every seed, jitted, each device initialising its own seeds."""
        return jax.jit(on_each_device(jax.vmap(self.trainer.init), self.sharding))


def start_run(
    config: DQNConfig, seeds: list[int], out: str | Path, group: ProcessGroup = ONE_PROCESS
) -> Run:
    """Checks that ``config`` can run, then makes a fresh run folder under ``out``.

    Everything that can be refused is refused before the folder is made: the config's
    checks against the environment, the memory of the seeds' states, the versions. In a
    run of several processes (``group``), process 0 makes the folder and writes its shared
    files, and each process binds its share of ``seeds`` (:meth:`ProcessGroup.share`).

    Raises:
      ValueError: naming what is wrong; OSError: an ``out`` that cannot be written.
    """
    ints = all(isinstance(s, int | np.integer) and not isinstance(s, bool) for s in seeds)
    if not seeds or not ints or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={seeds!r} is invalid: give one or more distinct ints.")
    share = group.share(seeds)
    check_split(len(seeds), group)
    trainer = make_trainer(config)
    outside = steps_envs_outside_jax(config)
    if outside and group.count > 1:
        raise ValueError(
            f"{config.env_id} steps its envs in an EnvPool pool outside JAX, which one "
            "process trains; drop --num-processes."
        )
    needed = check_memory(config, len(share), trainer=trainer, one_device=outside)
    environment = versions()
    made = ""
    if group.writes_shared_files:
        try:
            made = str(_make_run_folder(config, seeds, out, environment, group))
        except OSError as error:
            if group.count == 1:
                raise
            made = _NO_FOLDER + str(error)  # every process raises it, none waits
    made = broadcast_text(group, made)
    if made.startswith(_NO_FOLDER):
        raise OSError(made.removeprefix(_NO_FOLDER))
    run = _bind(Path(made), config, seeds, trainer, group)
    return dataclasses.replace(run, state_bytes=needed)


_NO_FOLDER = "\0no run folder: "  # what process 0 hands on when it could not make one


def _make_run_folder(
    config: DQNConfig, seeds: list[int], out: str | Path, environment: dict, group: ProcessGroup
) -> Path:
    """A new run folder under ``out`` holding ``config.json``, ``run.json`` (the seeds,
    and the process count when above 1) and ``versions.json``."""
    run_dir = new_folder(out, config.env_id)
    info = {"seeds": seeds, **({"processes": group.count} if group.count > 1 else {})}
    write_run_files(run_dir, config, info, environment)
    return run_dir


def new_folder(out: str | Path, env_id: str, kind: str = "") -> Path:
    """A new folder ``<out>/<env>[-<kind>]-<time>`` (``/`` and ``:`` of suite ids and import
    paths made dots).

    Raises:
      OSError: an ``out`` that cannot be written.
    """
    name = env_id.replace(":", ".").replace("/", ".")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    folder = Path(out) / "-".join(part for part in (name, kind, stamp) if part)
    folder.mkdir(parents=True, exist_ok=False)
    return folder


def write_run_files(
    run_dir: Path, config: DQNConfig, info: dict[str, Any], environment: dict[str, str]
) -> None:
    """A run folder's ``config.json``, ``run.json`` (``info``: the seeds, ...) and
    ``versions.json``."""
    (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    (run_dir / "run.json").write_text(json.dumps(info))
    (run_dir / "versions.json").write_text(json.dumps(environment, indent=2))


def flat_params(params: Any) -> dict[str, np.ndarray]:
    """``{path: array}`` of a params tree, as ``params.npz`` holds them."""
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree.leaves_with_path(params)}


def resume_run(
    run_dir: str | Path, total_timesteps: int | None = None, group: ProcessGroup = ONE_PROCESS
) -> Run:
    """A run folder's last checkpoint, ready to continue; metric rows logged after it are
    dropped (the resumed run writes them again, identically but for ``wall_time_s``).

    With ``total_timesteps`` above the run's own, the run is extended: it trains on from
    its last checkpoint to the new budget (:func:`extend_config` says what changes), the
    finished run's ``summary.json``, ``params.npz`` and ``diagnosis.json`` are kept as
    ``summary_<steps>.json``, ... and ``run.json`` records the extension.

    A run of several processes resumes with as many (``group``): every process continues
    its share of the seeds from the newest checkpoint step all of them hold.

    Raises:
      ValueError: a folder that is not a run, holds no checkpoint, or is complete (and
        not extended); a ``total_timesteps`` the run cannot be extended to; another
        process count than the run's.
    """
    run_dir = Path(run_dir)
    config, seeds = load_run(run_dir)
    if steps_envs_outside_jax(config):
        raise ValueError(
            f"{run_dir} trained on {config.env_id}, whose envs live in an EnvPool pool that "
            "a checkpoint cannot hold, so it cannot be resumed; its checkpoints still serve "
            f"jaxdqn eval {run_dir} --checkpoint latest."
        )
    trained_by = run_processes(run_dir)
    if trained_by != group.count:
        raise ValueError(
            f"{run_dir} was trained by {trained_by} process(es), each with checkpoints of "
            f"its own seeds; resume it with --num-processes {trained_by}."
        )
    extending = total_timesteps is not None and total_timesteps != config.total_timesteps
    target = extend_config(config, total_timesteps) if extending else config
    check_split(len(seeds), group)
    trainer = make_trainer(target)
    needed = check_memory(target, len(group.share(seeds)), trainer=trainer)
    run = dataclasses.replace(_bind(run_dir, target, seeds, trainer, group), state_bytes=needed)
    state, start_steps = _restore(run, "latest", "to resume from")
    for newer in [step for step in checkpoint_steps(run.checkpoints) if step > start_steps]:
        # Left by a process that got ahead of one that died: kept, it would take the place
        # of a step every process holds.
        shutil.rmtree(checkpoint_path(run.checkpoints, newer))
    if start_steps >= target.total_timesteps and (run_dir / "summary.json").exists():
        raise ValueError(
            f"{run_dir} is complete ({start_steps:,} env steps); nothing to resume. "
            f"Evaluate it again with: jaxdqn eval {run_dir}, or train it on with: "
            f"jaxdqn train --resume {run_dir} --total-timesteps N (N > {start_steps:,})"
        )
    barrier(group, "resume: every process has read the run")
    if extending and group.writes_shared_files:
        _record_extension(run_dir, config, target)
    barrier(group, "resume: the run's files are up to date")
    truncate_metrics(run_dir, run.seeds, start_steps)
    if group.count == 1:  # else _restore placed it
        state = jax.device_put(state, run.sharding)
    return dataclasses.replace(
        run, state=state, start_steps=start_steps, wall_time_s=_last_wall_time(run_dir, run.seeds)
    )


def run_processes(run_dir: str | Path) -> int:
    """How many processes trained a run folder (``run.json``'s ``"processes"``; 1 if
    absent)."""
    return int(json.loads((Path(run_dir) / "run.json").read_text()).get("processes", 1))


def _checkpoint_folder(run_dir: Path, group: ProcessGroup) -> Path:
    folder = run_dir / "checkpoints"
    return folder if group.count == 1 else folder / f"process-{group.index}"


def steps_envs_outside_jax(config: DQNConfig) -> bool:
    """Whether the config's env is a batched one whose envs live outside JAX (EnvPool):
    its seeds train on one device and a run cannot be resumed. Only an EnvPool id or an
    import path (which may name any env) is bound to find out."""
    if not (config.env_id.startswith("envpool/") or ":" in config.env_id):
        return False
    return is_batched(bind_config_env(config))


def extend_config(config: DQNConfig, total_timesteps: int) -> DQNConfig:
    """``config`` with a larger budget, for a run that trains on from a checkpoint.

    Every schedule set in env steps or updates (exploration, learning starts, target
    period) keeps its value, and so does the log interval (the run's rows go on at the
    same spacing). What spans the whole run follows the new budget: a ``"linear"``
    learning-rate decay and prioritized replay's β annealing, from the update the run
    has reached (:func:`jaxdqn.core.learner.learning_rate_at`).

    Raises:
      ValueError: naming ``total_timesteps``, when it is not above the run's budget or
        not a multiple of its log interval.
    """
    old, interval = config.total_timesteps, config.resolved_log_interval()
    if total_timesteps <= old or total_timesteps % interval:
        raise ValueError(
            f"--total-timesteps {total_timesteps:,} is invalid: a run of {old:,} env steps "
            f"is extended to more env steps, a multiple of its log interval of "
            f"{interval:,} (e.g. {2 * old:,})."
        )
    return dataclasses.replace(config, total_timesteps=total_timesteps, log_interval=interval)


def _record_extension(run_dir: Path, old: DQNConfig, new: DQNConfig) -> None:
    """Keeps the finished run's results under their step count, writes the new config and
    adds ``{"from", "to"}`` to ``run.json``'s ``"extended"`` list."""
    steps = old.total_timesteps
    for name in ("summary.json", "params.npz", "diagnosis.json"):
        path = run_dir / name
        if path.exists():
            path.rename(run_dir / f"{path.stem}_{steps}{path.suffix}")
    info = json.loads((run_dir / "run.json").read_text())
    info["extended"] = [*info.get("extended", []), {"from": steps, "to": new.total_timesteps}]
    (run_dir / "run.json").write_text(json.dumps(info))
    (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(new), indent=2))


def _last_wall_time(run_dir: Path, seeds: list[int]) -> float:
    """The ``wall_time_s`` of a run's last kept metric row (0 when there is none)."""
    path = metrics_path(run_dir, seeds[0])  # one file: every seed's rows share the clock
    lines = path.read_text().splitlines() if path.exists() else []
    times = [json.loads(line).get(WALL_TIME) for line in lines if line.strip()]
    times = [t for t in times if t is not None]
    return float(times[-1]) if times else 0.0


def _restore(run: Run, checkpoint: str, purpose: str) -> tuple[TrainState, int]:
    """This process's state in a run's checkpoint ``"latest"`` or ``"<env steps>"``, and its
    env steps per seed; in a run of several processes, ``"latest"`` is the newest step all
    of them hold, and the state is placed over every process's devices.

    Raises:
      ValueError: no checkpoint, or none at the steps asked for (naming those there are).
    """
    checkpoint = _resolve_latest(run.run_dir, run.group.count, checkpoint, purpose)
    state, step = _restore_share(run, run.group, checkpoint, purpose)
    if run.group.count > 1:
        state = global_rows(state, run.sharding, run.keys.shape[0])
    return state, step


def _restore_params(run: Run, checkpoint: str) -> Any:
    """Every seed's params (host arrays, leaves ``[seeds, ...]``) in a run's checkpoint, read
    by one process: a run of several processes has its processes' parts joined."""
    trained_by = run_processes(run.run_dir)
    if trained_by == 1:
        return _restore(run, checkpoint, "to evaluate")[0].params
    checkpoint = _resolve_latest(run.run_dir, trained_by, checkpoint, "to evaluate")
    parts = [
        _restore_share(run, ProcessGroup(trained_by, index), checkpoint, "to evaluate")[0].params
        for index in range(trained_by)
    ]
    return jax.tree.map(lambda *leaves: np.concatenate([np.asarray(x) for x in leaves]), *parts)


def _resolve_latest(run_dir: Path, trained_by: int, checkpoint: str, purpose: str) -> str:
    """``checkpoint``, with ``"latest"`` of a run of several processes made the newest
    step all of them hold."""
    if checkpoint != "latest" or trained_by == 1:
        return checkpoint
    groups = [ProcessGroup(trained_by, index) for index in range(trained_by)]
    common = set.intersection(
        *(set(checkpoint_steps(_checkpoint_folder(run_dir, g))) for g in groups)
    )
    if not common:
        raise ValueError(
            f"the {trained_by} processes of {run_dir} hold no checkpoint at the same step "
            f"{purpose}."
        )
    return str(max(common))


def _restore_share(
    run: Run, group: ProcessGroup, checkpoint: str, purpose: str
) -> tuple[TrainState, int]:
    """The state of ``group``'s share of the run's seeds, from its checkpoint folder."""
    folder = _checkpoint_folder(run.run_dir, group)
    steps = checkpoint_steps(folder)
    if not steps:
        raise ValueError(f"{folder} holds no checkpoint {purpose}.")
    step = steps[-1] if checkpoint == "latest" else None
    if step is None:
        step = int(checkpoint) if checkpoint.isdigit() else None
        if step not in steps:
            raise ValueError(
                f"--checkpoint {checkpoint} is invalid: {folder} holds checkpoints at "
                f"{', '.join(f'{s}' for s in steps)} env steps (or give latest)."
            )
    seeds = group.share(load_run(run.run_dir)[1])
    template = jax.eval_shape(jax.vmap(run.trainer.init), _seed_keys(seeds))
    state, meta = restore_checkpoint(
        checkpoint_path(folder, step),
        template,
        config=run.config,
        ignore=("total_timesteps", "log_interval"),  # an extended run's checkpoints
    )
    if meta["step"] > run.config.total_timesteps:
        raise ValueError(
            f"checkpoint {step} is past the run's total_timesteps={run.config.total_timesteps:,}."
        )
    return state, meta["step"]


def _bind(
    run_dir: Path,
    config: DQNConfig,
    seeds: list[int],
    trainer: Trainer,
    group: ProcessGroup = ONE_PROCESS,
) -> Run:
    """The run bound to this process's share of ``seeds``: spread over its local devices,
    or with several processes, over every process's devices."""
    share = group.share(seeds)
    if group.count > 1:  # one program over every process's devices
        sharding = seed_sharding(len(seeds), jax.devices())
        keys = global_rows(_seed_keys(share), sharding, len(seeds))
        return Run(run_dir, config, share, trainer, sharding, keys, group=group)
    # A pool outside JAX is stepped once per call: a program split over devices would
    # step it from each of them.
    one_device = jax.local_devices()[:1] if steps_envs_outside_jax(config) else None
    sharding = seed_sharding(len(share), one_device)
    keys = jax.device_put(_seed_keys(share), sharding)
    return Run(run_dir, config, share, trainer, sharding, keys, group=group)


def check_split(count: int, group: ProcessGroup, what: str = "seeds") -> None:
    """Refuses a layout that does not give every process the same number of devices, and
    ``count`` ``what`` (seeds, or a sweep program's runs) that do not split evenly over
    every process's devices.

    Raises:
      ValueError: naming the counts and what to give instead.
    """
    devices, local = jax.device_count(), jax.local_device_count()
    if group.count > 1 and devices != group.count * local:
        raise ValueError(
            f"the {group.count} processes hold {devices} devices, this one {local}: give "
            "every process the same number (JAX_NUM_CPU_DEVICES, or one GPU per process)."
        )
    if group.count > 1 and count % devices:
        raise ValueError(
            f"{count} {what} do not split evenly over the {devices} devices of "
            f"{group.count} processes: train a multiple of {devices} (--seeds)."
        )


def _seed_keys(seeds: list[int]) -> jax.Array:
    return jax.vmap(jax.random.key)(np.asarray(seeds))


def fit(
    run: Run,
    *,
    eval_episodes: int = 100,
    checkpoint_every: int = 10,
    keep_checkpoints: int = 2,
    on_rows: Callable[[dict[str, np.ndarray]], None] | None = None,
    on_start: Callable[[], None] | None = None,
    stop_on_non_finite: bool = True,
) -> dict[str, Any]:
    """Trains a run to its end, then evaluates it and writes ``params.npz`` and
    ``summary.json``.

    One log point per compiled chunk: each chunk's metric rows are appended to the
    per-seed files (and handed to ``on_rows``, e.g. a progress line) while the device
    computes the next. A checkpoint is saved every ``checkpoint_every`` log points (0:
    only at the end), keeping the newest ``keep_checkpoints``. ``on_start`` is called once
    the program is compiled, before the first chunk. Each row also holds ``wall_time_s``
    (:data:`WALL_TIME`). A run whose training is done (resumed after its last checkpoint)
    is only evaluated, with nothing compiled for training. A ``KeyboardInterrupt`` leaves the
    rows and checkpoints written so far; :func:`resume_run` continues.

    With ``stop_on_non_finite`` (the guard), a chunk whose rows show a seed's loss,
    gradients or parameters NaN or infinite ends training: its rows are written, no
    checkpoint is taken of it (older ones are kept) and :class:`NonFiniteRun` is raised.
    Without it, every seed trains on and the NaN seeds are reported by the doctor.

    Raises:
      NonFiniteRun: the guard stopped the run.
      ValueError: naming the argument, for ``eval_episodes`` or ``keep_checkpoints``
        below 1 or ``checkpoint_every`` below 0 (before anything is compiled).

    Returns:
      The summary (also in ``summary.json``): per-seed evaluation returns and timings.
    """
    check_int("eval_episodes", eval_episodes)
    check_int("checkpoint_every", checkpoint_every, 0)
    check_int("keep_checkpoints", keep_checkpoints, 2 if run.group.count > 1 else 1)
    if run.finished_training:  # only the final evaluation is left: nothing to compile
        return _finish(run, run.state, eval_episodes, 0.0, 0.0)
    start = time.perf_counter()
    state = run.init()(run.keys) if run.state is None else run.state
    chunk = _compile_chunk(run, state)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    if on_start is not None:
        on_start()
    state = _train_chunks(
        run, chunk, state, checkpoint_every, keep_checkpoints, on_rows, stop_on_non_finite
    )
    return _finish(run, state, eval_episodes, compile_s, time.perf_counter() - start)


def _compile_chunk(run: Run, state: TrainState) -> Callable[[TrainState], tuple[TrainState, Any]]:
    """The training program: one log window of every seed, the state donated. Its rows
    always hold ``params_finite`` (the guard's check of the parameters after the window),
    also when the learner logs no health signals."""

    def window(state: TrainState) -> tuple[TrainState, Any]:
        state, metrics = run.trainer.run(state, 1)
        if PARAMS_FINITE not in metrics:
            finite = tree_is_finite(state.params).astype(jnp.float32)
            metrics = {**metrics, PARAMS_FINITE: finite[None]}
        return state, metrics

    chunk = jax.jit(on_each_device(jax.vmap(window), run.sharding), donate_argnums=0)
    return chunk.lower(state).compile()


def chunk_metric_names(trainer: Trainer) -> tuple[str, ...]:
    """The metrics of the driver's rows: the trainer's, ``params_finite`` and
    ``wall_time_s``."""
    extra = () if PARAMS_FINITE in trainer.metric_names else (PARAMS_FINITE,)
    return (*trainer.metric_names, *extra, WALL_TIME)


def _train_chunks(
    run: Run,
    chunk: Callable[[TrainState], tuple[TrainState, Any]],
    state: TrainState,
    checkpoint_every: int,
    keep_checkpoints: int,
    on_rows: Callable[[dict[str, np.ndarray]], None] | None,
    stop_on_non_finite: bool,
) -> TrainState:
    """The remaining log points, one compiled chunk each, with metric rows and checkpoints;
    the guard stops at the first chunk with a non-finite seed."""
    config, interval = run.config, run.config.resolved_log_interval()
    first = run.start_steps // interval
    writer = MetricsWriter(run.run_dir, run.seeds, chunk_metric_names(run.trainer))
    started = time.perf_counter() - run.wall_time_s

    def write_rows(metrics: dict[str, np.ndarray]) -> None:
        wall = np.full(metrics["env_steps"].shape, time.perf_counter() - started)
        metrics = {**metrics, WALL_TIME: wall}
        writer.write(metrics)
        if on_rows is not None:
            on_rows(metrics)
        found = first_non_finite(metrics, run.seeds) if stop_on_non_finite else []
        if found:
            kept = checkpoint_steps(run.checkpoints)
            raise NonFiniteRun(found, kept[-1] if kept else None)

    def checkpoint(index: int, state: TrainState) -> None:
        step = (first + index + 1) * interval
        # No process saves (and prunes) before all have reached the step, so the newest
        # step every process holds survives the death of any of them.
        barrier(run.group, f"checkpoint {step}")
        save_checkpoint(
            run.checkpoints, host_rows(state), step=step, config=config,
            versions=versions(), keep=keep_checkpoints,
        )  # fmt: skip

    def local_chunk(state: TrainState) -> tuple[TrainState, Any]:
        state, metrics = chunk(state)
        return state, local_rows(metrics)

    try:
        return run_chunks(
            local_chunk,
            state,
            config.num_log_points() - first,
            write_rows,
            pause_after=lambda i: (
                bool(checkpoint_every) and (first + i + 1) % checkpoint_every == 0
            ),
            on_pause=checkpoint,
        )
    finally:
        writer.close()


def _finish(
    run: Run, state: TrainState, eval_episodes: int, compile_s: float, run_s: float
) -> dict[str, Any]:
    """Evaluates the final state, writes ``params.npz`` and ``summary.json``."""
    config = run.config
    done_steps = config.total_timesteps - run.start_steps
    summary = {
        **evaluation_summary(run, state.params, eval_episodes, config.eval_epsilon, EVAL_SEED),
        "env_steps_per_seed": config.total_timesteps,
        "resumed_at": run.start_steps if run.state is not None else None,
        "compile_s": compile_s,
        "run_s": run_s,
        "env_steps_per_s": done_steps * len(run.seeds) / run_s if done_steps else None,
    }
    flat = flat_params(host_rows(state.params))
    if run.group.count == 1:
        np.savez(run.run_dir / "params.npz", **flat)
        (run.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary
    return _merge_results(run, summary, flat)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as arrays:
        return dict(arrays)


# The per-seed lists of a summary, joined in seed order when processes' results merge.
_PER_SEED = ("seeds", "greedy_return", "overestimation", "discounted_return")


def _merge_results(run: Run, summary: dict[str, Any], flat: dict[str, np.ndarray]) -> dict:
    """Each process writes its seeds' params and summary as parts; once all have, process
    0 joins them in seed order into ``params.npz`` and ``summary.json`` (means over every
    seed, the longest compile and run times, the summed throughput). Returns the joined
    summary on process 0, this process's on the others."""
    group, folder = run.group, run.run_dir
    np.savez(folder / f"params.process-{group.index}.npz", **flat)
    (folder / f"summary.process-{group.index}.json").write_text(json.dumps(summary))
    barrier(group, "results: every process has written its seeds' results")
    if not group.writes_shared_files:
        return summary
    parts = range(group.count)
    summaries = [json.loads((folder / f"summary.process-{i}.json").read_text()) for i in parts]
    merged = {**summaries[0], "compile_s": max(p["compile_s"] for p in summaries)}
    merged["run_s"] = max(p["run_s"] for p in summaries)
    rates = [p["env_steps_per_s"] for p in summaries]
    merged["env_steps_per_s"] = sum(rates) if None not in rates else None
    for key in _PER_SEED:
        lists = [p[key] for p in summaries]
        merged[key] = None if None in lists else [x for part in lists for x in part]
    returns = np.asarray(merged["greedy_return"], np.float32)
    merged["greedy_return_mean"] = float(returns.mean())
    merged["greedy_return_std"] = float(returns.std())
    arrays = [_read_npz(folder / f"params.process-{i}.npz") for i in parts]
    np.savez(folder / "params.npz", **{k: np.concatenate([a[k] for a in arrays]) for k in flat})
    for i in parts:
        (folder / f"params.process-{i}.npz").unlink()
        (folder / f"summary.process-{i}.json").unlink()
    # Last: a run with a summary.json is complete, and resuming it is refused.
    (folder / "summary.json").write_text(json.dumps(merged, indent=2))
    return merged


def evaluation_summary(
    run: Run, params: Any, episodes: int, epsilon: float, eval_seed: int
) -> dict[str, Any]:
    """Every seed's mean return over ``episodes`` ε-greedy episodes of ``params`` (leaves
    ``[seeds, ...]``), each seed with key ``fold_in(key(seed), eval_seed)``; with several
    processes, this process's seeds."""
    config = run.config
    eval_keys = jax.vmap(lambda k: jax.random.fold_in(k, eval_seed))(run.keys)
    returns = jax.jit(
        on_each_device(
            jax.vmap(lambda p, k: evaluate(config, p, k, episodes, epsilon)), run.sharding
        )
    )(params, eval_keys)
    per_seed = np.asarray(local_rows(returns.mean(axis=1)))
    return {
        **_value_summary(run, params, episodes, epsilon, eval_keys),
        **returns_summary(config, run.seeds, per_seed, episodes, epsilon),
    }


def returns_summary(
    config: DQNConfig, seeds: list[int], per_seed: np.ndarray, episodes: int, epsilon: float
) -> dict[str, Any]:
    """The evaluation fields of a run folder's ``summary.json``: ``per_seed`` ``[S]`` is
    each seed's mean return over ``episodes`` episodes played ε-greedy with ``epsilon``."""
    return {
        "env_id": config.env_id,
        "seeds": list(seeds),
        "epsilon": epsilon,
        "greedy_return": per_seed.tolist(),
        "greedy_return_mean": float(per_seed.mean()),
        "greedy_return_std": float(per_seed.std()),
        "eval_episodes": episodes,
        "solved_return": SOLVED_RETURN.get(config.env_id),
    }


def _value_summary(
    run: Run, params: Any, episodes: int, epsilon: float, eval_keys: jax.Array
) -> dict[str, Any]:
    """Per seed, the mean Q(s_0, a_0) minus the discounted return then obtained
    (``overestimation``) and that return (``discounted_return``), with the time limit
    lifted (:func:`jaxdqn.dqn.estimate_values`); ``None`` for an env whose time limit
    cannot be lifted."""
    config = run.config
    try:
        estimate = jax.vmap(lambda p, k: estimate_values(config, p, k, episodes, epsilon))
        values = jax.jit(on_each_device(estimate, run.sharding))(params, eval_keys)
    except ValueError:
        return {"overestimation": None, "discounted_return": None}
    gap = np.asarray(local_rows((values.q_first - values.discounted).mean(axis=1)))
    return {
        "overestimation": gap.tolist(),
        "discounted_return": np.asarray(local_rows(values.discounted.mean(axis=1))).tolist(),
    }


def evaluate_run(
    run_dir: str | Path,
    episodes: int,
    epsilon: float | None = None,
    eval_seed: int = EVAL_SEED,
    checkpoint: str | None = None,
) -> dict[str, Any]:
    """Evaluates a run's params (:func:`evaluation_summary`): the final ones, or those of
    its checkpoint ``"latest"`` or ``"<env steps>"`` (a run still training, or an
    interrupted one); ``epsilon`` ``None`` takes the run's ``eval_epsilon``.

    Raises:
      ValueError: a folder that is not a finished run (with ``checkpoint=None``), or that
        has no such checkpoint.
    """
    run, params = _run_params(run_dir, checkpoint)
    epsilon = run.config.eval_epsilon if epsilon is None else epsilon
    return evaluation_summary(run, params, episodes, epsilon, eval_seed)


def seed_params(
    run_dir: str | Path, seed: int, checkpoint: str | None = None
) -> tuple[DQNConfig, Any]:
    """The config of a run and the params of one of its seeds: the final ones, or those
    of its checkpoint ``"latest"`` or ``"<env steps>"``.

    Raises:
      ValueError: a seed the run did not train, a run not finished (with
        ``checkpoint=None``), or no such checkpoint.
    """
    run, params = _run_params(run_dir, checkpoint)
    if seed not in run.seeds:
        raise ValueError(f"--seed={seed} is invalid: the run trained seeds {run.seeds}.")
    return run.config, jax.tree.map(lambda x: x[run.seeds.index(seed)], params)


def _run_params(run_dir: str | Path, checkpoint: str | None) -> tuple[Run, Any]:
    """A run folder bound to its config, and its final or checkpointed params (leaves
    ``[seeds, ...]``)."""
    config, seeds = load_run(run_dir)
    run = _bind(Path(run_dir), config, seeds, make_trainer(config))
    if checkpoint is None:
        return run, load_params(run_dir, config, seeds, trainer=run.trainer)
    return run, _restore_params(run, checkpoint)
