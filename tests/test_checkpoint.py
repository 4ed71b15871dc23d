"""Full checkpoints: a resume in a fresh process is bit-identical to an uninterrupted run;
a save killed midway, a damaged file and a mismatched run are all refused cleanly."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import TINY_CHAIN
from test_train import assert_bit_identical

import jaxdqn
from jaxdqn.host import checkpoint
from jaxdqn.host.checkpoint import CheckpointError

KEYS_SEED, NUM_SEEDS, FIRST_POINTS = 0, 2, 4  # TINY_CHAIN has 10 log points


@pytest.fixture(scope="module")
def first_part(tmp_path_factory):
    """Seeds of the tiny_chain_run fixture trained 4 of 10 log points, then checkpointed."""
    keys = jax.random.split(jax.random.key(KEYS_SEED), NUM_SEEDS)
    trainer = jaxdqn.make_trainer(TINY_CHAIN)
    state = jax.jit(jax.vmap(trainer.init))(keys)
    state, metrics = jax.jit(jax.vmap(lambda s: trainer.run(s, FIRST_POINTS)))(state)
    directory = tmp_path_factory.mktemp("ckpt")
    step = FIRST_POINTS * TINY_CHAIN.resolved_log_interval()
    checkpoint.save_checkpoint(directory, state, step=step, config=TINY_CHAIN)
    return directory, step, state, metrics


RESUME_SCRIPT = textwrap.dedent(
    """
    import sys, jax, numpy as np, jaxdqn
    from jaxdqn.host import checkpoint
    sys.path.insert(0, {tests!r})
    from conftest import TINY_CHAIN
    directory, step, rest = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    trainer = jaxdqn.make_trainer(TINY_CHAIN)
    keys = jax.random.split(jax.random.key({seed}), {num_seeds})
    template = jax.eval_shape(jax.vmap(trainer.init), keys)
    state, meta = checkpoint.restore_checkpoint(
        checkpoint.checkpoint_path(directory, step), template, config=TINY_CHAIN
    )
    state, metrics = jax.jit(jax.vmap(lambda s: trainer.run(s, rest)))(state)
    final = step + rest * TINY_CHAIN.resolved_log_interval()
    checkpoint.save_checkpoint(directory, state, step=final, config=TINY_CHAIN, keep=None)
    np.savez(f"{{directory}}/metrics_rest.npz", **{{k: np.asarray(v) for k, v in metrics.items()}})
    """
)


def test_resume_in_fresh_process_is_bit_identical_to_uninterrupted_run(first_part, tiny_chain_run):
    directory, step, _, first_metrics = first_part
    _, whole_state, whole_metrics = tiny_chain_run  # one vmapped train() over all 10 points
    rest = TINY_CHAIN.num_log_points() - FIRST_POINTS
    script = RESUME_SCRIPT.format(
        tests=str(Path(__file__).parent), seed=KEYS_SEED, num_seeds=NUM_SEEDS
    )
    subprocess.run(
        [sys.executable, "-c", script, str(directory), str(step), str(rest)],
        check=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    final = TINY_CHAIN.total_timesteps
    keys = jax.random.split(jax.random.key(KEYS_SEED), NUM_SEEDS)
    template = jax.eval_shape(jax.vmap(jaxdqn.make_trainer(TINY_CHAIN).init), keys)
    resumed, meta = checkpoint.restore_checkpoint(
        checkpoint.checkpoint_path(directory, final), template, config=TINY_CHAIN
    )
    assert meta["step"] == final
    assert_bit_identical(resumed, whole_state)  # params, target, Adam, buffer, envs, keys
    with np.load(directory / "metrics_rest.npz") as rest_metrics:
        joined = {
            k: np.concatenate([np.asarray(first_metrics[k]), rest_metrics[k]], axis=1)
            for k in whole_metrics
        }
    assert_bit_identical(joined, dict(whole_metrics))


def test_restore_round_trips_every_leaf_including_keys(first_part):
    directory, step, state, _ = first_part
    keys = jax.random.split(jax.random.key(KEYS_SEED), NUM_SEEDS)
    template = jax.eval_shape(jax.vmap(jaxdqn.make_trainer(TINY_CHAIN).init), keys)
    restored, meta = checkpoint.restore_checkpoint(
        checkpoint.checkpoint_path(directory, step), template, config=TINY_CHAIN
    )
    assert_bit_identical(restored, state)
    assert jax.dtypes.issubdtype(restored.key.dtype, jax.dtypes.prng_key)
    assert int(restored.replay.rows.position[0]) == int(state.replay.rows.position[0]) == step
    assert meta["config"] == json.loads(json.dumps(dataclasses.asdict(TINY_CHAIN)))


def small_state(value: float):
    return {"w": np.full((3, 2), value, np.float32), "n": np.int32(value), "k": jax.random.key(1)}


def template_of(tree):
    return jax.eval_shape(lambda: jax.tree.map(jax.numpy.asarray, tree))


def test_keeps_newest_checkpoints_and_replaces_same_step(tmp_path):
    for step in (10, 20, 30, 40):
        checkpoint.save_checkpoint(
            tmp_path, small_state(step), step=step, config=TINY_CHAIN, keep=2
        )
    assert checkpoint.checkpoint_steps(tmp_path) == [30, 40]
    checkpoint.save_checkpoint(tmp_path, small_state(41), step=40, config=TINY_CHAIN, keep=2)
    restored, _ = checkpoint.restore_checkpoint(
        checkpoint.checkpoint_path(tmp_path, 40), template_of(small_state(0)), config=TINY_CHAIN
    )
    np.testing.assert_array_equal(restored["w"], 41.0)
    with pytest.raises(ValueError, match="keep=0 is invalid"):
        checkpoint.save_checkpoint(tmp_path, small_state(1), step=1, config=TINY_CHAIN, keep=0)


def test_save_killed_midway_keeps_previous_checkpoint(tmp_path, monkeypatch):
    checkpoint.save_checkpoint(tmp_path, small_state(1), step=1, config=TINY_CHAIN)

    def killed_while_writing(file, **arrays):  # half the bytes reach the disk, then death
        file.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.np, "savez", killed_while_writing)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint(tmp_path, small_state(2), step=2, config=TINY_CHAIN)
    monkeypatch.undo()
    assert checkpoint.checkpoint_steps(tmp_path) == [1]  # the half-written one is invisible
    restored, _ = checkpoint.restore_checkpoint(
        checkpoint.checkpoint_path(tmp_path, 1), template_of(small_state(0)), config=TINY_CHAIN
    )
    np.testing.assert_array_equal(restored["w"], 1.0)
    assert list(tmp_path.glob(".tmp-*"))  # the debris of the killed save ...
    checkpoint.save_checkpoint(tmp_path, small_state(3), step=3, config=TINY_CHAIN)
    assert not list(tmp_path.glob(".tmp-*"))  # ... is cleared by the next save


def test_damaged_incomplete_and_mismatched_checkpoints_are_refused(tmp_path):
    path = checkpoint.save_checkpoint(tmp_path, small_state(1), step=5, config=TINY_CHAIN)
    template = template_of(small_state(0))
    data = bytearray((path / "state.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path / "state.npz").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"is damaged: state\.npz does not match the SHA-256"):
        checkpoint.restore_checkpoint(path, template, config=TINY_CHAIN)

    path = checkpoint.save_checkpoint(tmp_path, small_state(1), step=6, config=TINY_CHAIN)
    other = dataclasses.replace(TINY_CHAIN, gamma=0.9)
    with pytest.raises(CheckpointError, match=r"another config \(gamma: stored 0.99, run 0.9\)"):
        checkpoint.restore_checkpoint(path, template, config=other)
    wider = template_of({**small_state(0), "w": np.zeros((3, 4), np.float32)})
    with pytest.raises(CheckpointError, match=r"leaf \['w'\] is float32\[3, 2\].*float32\[3, 4\]"):
        checkpoint.restore_checkpoint(path, wider, config=TINY_CHAIN)
    fewer = template_of({"w": np.zeros((3, 2), np.float32)})
    with pytest.raises(CheckpointError, match="another state structure: 3 leaves stored, 1"):
        checkpoint.restore_checkpoint(path, fewer, config=TINY_CHAIN)

    (path / "meta.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"meta\.json is damaged"):
        checkpoint.restore_checkpoint(path, template, config=TINY_CHAIN)
    (path / "meta.json").unlink()
    with pytest.raises(CheckpointError, match=r"is incomplete: it has no meta\.json"):
        checkpoint.restore_checkpoint(path, template, config=TINY_CHAIN)


def test_format_4_boolean_rows_are_read_as_bits(tmp_path):
    """A format-4 checkpoint kept boolean observations one per byte; restored into a run
    that keeps them as bits (uint8 ``[seeds, rows, ceil(45 / 8)]``), they are packed as
    NumPy packs them and every other leaf is unchanged. Format 5 is never converted, and
    formats this jaxdqn does not read are refused by number."""
    grids = np.random.default_rng(0).random((2, 7, 3, 5, 3)) < 0.5  # 2 seeds x 7 rows
    packed = np.packbits(grids.reshape(2, 7, 45), axis=-1)
    template = template_of({**small_state(0), "rows": packed})
    old = {**small_state(2), "rows": grids}
    path = checkpoint.save_checkpoint(tmp_path, old, step=4, config=TINY_CHAIN)
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, "format": 4}))
    restored, _ = checkpoint.restore_checkpoint(path, template, config=TINY_CHAIN)
    assert restored["rows"].dtype == np.uint8 and restored["rows"].shape == (2, 7, 6)
    np.testing.assert_array_equal(restored["rows"], packed)
    np.testing.assert_array_equal(np.unpackbits(restored["rows"], -1, 45), grids.reshape(2, 7, 45))
    np.testing.assert_array_equal(restored["w"], 2.0)

    (path / "meta.json").write_text(json.dumps(meta))  # format 5 holding bytes: refused
    with pytest.raises(CheckpointError, match=r"leaf \['rows'\] is bool\[2, 7, 3, 5, 3\]"):
        checkpoint.restore_checkpoint(path, template, config=TINY_CHAIN)
    (path / "meta.json").write_text(json.dumps({**meta, "format": 3}))
    with pytest.raises(CheckpointError, match="has format 3; this jaxdqn reads formats 4 and 5"):
        checkpoint.restore_checkpoint(path, template, config=TINY_CHAIN)
