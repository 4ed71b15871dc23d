"""Full checkpoints of a run: the whole ``TrainState`` (any leading seed axes included).

A checkpoint is a folder ``<dir>/ckpt-<env_steps>/`` holding

* ``state.npz``: every leaf of the state, typed PRNG keys stored as their key data;
* ``meta.json``: format version, env step, config, library versions, the path, shape and
  dtype of every leaf, caller extras, and the SHA-256 of ``state.npz``.

Writes are atomic: the folder is written under a temporary name, flushed to disk and then
renamed into place, so a run killed mid-save leaves its previous checkpoints untouched
(and at most a ``.tmp-*`` folder, removed by the next save). A restore checks the hash,
the config and every leaf's path, shape and dtype before it builds anything: a damaged or
mismatched checkpoint raises :class:`CheckpointError` and nothing is half-loaded.

The format is NumPy's ``.npz`` plus JSON, readable without jaxdqn. We chose it over
orbax-checkpoint because a run state is a few host-sized arrays written by one process:
it needs atomic renames and verification, which this module does in ~200 lines with no
extra dependency, not orbax's asynchronous, multi-host and sharded machinery.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxdqn.core.types import is_prng_key

FORMAT_VERSION = 5  # raised whenever the stored state's layout changes (see CHANGELOG.md)
# Format 4 kept boolean observations in the replay's rows one per byte, where format 5 keeps
# them as bits; it is read, and those rows packed on the way in (:func:`_as_bits`).
READ_FORMATS = (4, FORMAT_VERSION)
_NAME = re.compile(r"^ckpt-(\d+)$")


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged or does not match the run restoring it."""


def _leaf_records(tree: Any) -> list[tuple[str, Any]]:
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in jax.tree.leaves_with_path(tree)]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoint_steps(directory: str | os.PathLike) -> list[int]:
    """Env steps of the complete checkpoints under ``directory``, ascending."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    steps = []
    for child in directory.iterdir():
        match = _NAME.match(child.name)
        if match and child.is_dir():
            steps.append(int(match.group(1)))
    return sorted(steps)


def checkpoint_path(directory: str | os.PathLike, step: int) -> Path:
    """The folder of the checkpoint at ``step`` env steps (whether or not it exists)."""
    return Path(directory) / f"ckpt-{step:012d}"


def save_checkpoint(
    directory: str | os.PathLike,
    state: Any,
    *,
    step: int,
    config: Any,
    versions: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
    keep: int | None = 3,
) -> Path:
    """Writes ``state`` atomically as checkpoint ``step`` and keeps the newest ``keep``.

    Args:
      directory: parent folder of the checkpoints (created if missing).
      state: a ``TrainState`` or any pytree of arrays (device or host); typed PRNG keys
        are allowed.
      step: env steps per seed at this state; names the checkpoint.
      config: the run's :class:`jaxdqn.DQNConfig`, stored and checked on restore.
      versions: library versions to record (free-form strings).
      extra: JSON-serialisable caller data returned by :func:`restore_checkpoint`.
      keep: how many checkpoints to keep, newest first; ``None`` keeps all.

    Returns:
      The checkpoint's folder.
    """
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise ValueError(f"keep={keep!r} is invalid: must be a positive int or None.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(".tmp-*"):  # left behind by a run killed mid-save
        shutil.rmtree(stale, ignore_errors=True)
    final = checkpoint_path(directory, step)
    tmp = directory / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    arrays, leaves = _host_arrays(state)
    with open(tmp / "state.npz", "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    meta = {
        "format": FORMAT_VERSION,
        "step": int(step),
        "config": dataclasses.asdict(config),
        "versions": versions or {},
        "extra": extra or {},
        "leaves": leaves,
        "sha256": _sha256(tmp / "state.npz"),
    }
    with open(tmp / "meta.json", "w") as f:
        json.dump(meta, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    if final.exists():  # the same step saved again (a resumed run): replace it
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync_dir(directory)
    if keep is not None:
        for old in checkpoint_steps(directory)[:-keep]:
            shutil.rmtree(checkpoint_path(directory, old), ignore_errors=True)
    return final


def _host_arrays(state: Any) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Every leaf of ``state`` as a NumPy array (``leaf_00000``, ...; typed PRNG keys as
    their key data) and its record for ``meta.json``: path, shape, dtype, key impl."""
    arrays, leaves = {}, []
    for i, (path, leaf) in enumerate(_leaf_records(state)):
        record = {"path": path}
        if is_prng_key(leaf):
            record["key_impl"] = str(jax.random.key_impl(leaf))
            leaf = jax.random.key_data(leaf)
        value = np.asarray(jax.device_get(leaf))
        record.update(shape=list(value.shape), dtype=value.dtype.str)
        arrays[f"leaf_{i:05d}"] = value
        leaves.append(record)
    return arrays, leaves


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The ``meta.json`` of the checkpoint folder ``path``, checked for completeness."""
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} is incomplete: it has no meta.json.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"checkpoint {path}: meta.json is damaged ({error}).") from None
    if meta.get("format") not in READ_FORMATS:
        raise CheckpointError(
            f"checkpoint {path} has format {meta.get('format')!r}; this jaxdqn reads "
            f"formats {' and '.join(map(str, READ_FORMATS))}."
        )
    return meta


def _as_bits(value: np.ndarray, spec: Any) -> np.ndarray:
    """A format-4 leaf as format 5 keeps it: a boolean ``[*lead, *obs_shape]`` where the run
    expects uint8 ``[*lead, ceil(prod(obs_shape) / 8)]`` becomes NumPy's ``packbits`` of
    it, as the replay's rows keep boolean observations; any other leaf stays as it is."""
    lead = tuple(spec.shape[:-1])
    if not spec.shape or value.dtype != np.bool_ or np.dtype(spec.dtype) != np.uint8:
        return value
    if value.shape[: len(lead)] != lead:
        return value
    flat = value.reshape(*lead, -1)
    if -(-flat.shape[-1] // 8) != spec.shape[-1]:
        return value
    return np.packbits(flat, axis=-1)


def restore_checkpoint(
    path: str | os.PathLike, template: Any, *, config: Any, ignore: tuple[str, ...] = ()
) -> tuple[Any, dict[str, Any]]:
    """Loads a checkpoint into the structure of ``template``, after checking everything.

    Args:
      path: a checkpoint folder (from :func:`save_checkpoint` or :func:`checkpoint_path`).
      template: a pytree with the structure, shapes and dtypes the state must have, e.g.
        ``jax.eval_shape(jax.vmap(trainer.init), keys)``.
      config: the :class:`jaxdqn.DQNConfig` of the run restoring it; it must equal the
        stored one field for field, except the fields named in ``ignore``.
      ignore: config fields that may differ (an extended run's ``total_timesteps``).

    Returns:
      ``(state, meta)``: the state as NumPy arrays (typed PRNG keys rebuilt) in the
      template's structure, and the checkpoint's metadata (``meta["extra"]`` holds what
      the caller stored).

    Raises:
      CheckpointError: naming what is missing, damaged or different, before anything is
        loaded into the template.
    """
    path = Path(path)
    meta = read_meta(path)
    state_file = path / "state.npz"
    if not state_file.is_file():
        raise CheckpointError(f"checkpoint {path} is incomplete: it has no state.npz.")
    if _sha256(state_file) != meta["sha256"]:
        raise CheckpointError(
            f"checkpoint {path} is damaged: state.npz does not match the SHA-256 recorded "
            "in meta.json. Delete this folder to resume from an earlier checkpoint."
        )
    stored, expected = meta["config"], json.loads(json.dumps(dataclasses.asdict(config)))
    diff = sorted(
        k
        for k in set(stored) | set(expected)
        if stored.get(k) != expected.get(k) and k not in ignore
    )
    if diff:
        details = ", ".join(f"{k}: stored {stored.get(k)!r}, run {expected.get(k)!r}" for k in diff)
        raise CheckpointError(f"checkpoint {path} was written by another config ({details}).")
    records = _leaf_records(template)
    if [p for p, _ in records] != [leaf["path"] for leaf in meta["leaves"]]:
        raise CheckpointError(
            f"checkpoint {path} holds another state structure: "
            f"{len(meta['leaves'])} leaves stored, {len(records)} expected."
        )
    leaves = []
    with np.load(state_file, allow_pickle=False) as arrays:
        for i, ((leaf_path, want), record) in enumerate(zip(records, meta["leaves"], strict=True)):
            value = arrays[f"leaf_{i:05d}"]
            spec = jax.eval_shape(jax.random.key_data, want) if is_prng_key(want) else want
            if meta["format"] == 4:
                value = _as_bits(value, spec)
            if value.shape != tuple(spec.shape) or value.dtype != np.dtype(spec.dtype):
                raise CheckpointError(
                    f"checkpoint {path}: leaf {leaf_path} is {value.dtype}{list(value.shape)}, "
                    f"the run expects {np.dtype(spec.dtype)}{list(spec.shape)}."
                )
            if is_prng_key(want):
                value = jax.random.wrap_key_data(value, impl=record["key_impl"])
            leaves.append(value)
    return jax.tree.unflatten(jax.tree.structure(template), leaves), meta
