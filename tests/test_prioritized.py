"""Prioritized replay: the sum tree against NumPy, sampled frequencies against the
priorities (chi-square), importance weights, wrap-around, jit, vmap and a training run."""

from __future__ import annotations

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_CHAIN

import jaxdqn
from jaxdqn.core.replay import importance_weights, priorities_from_td
from jaxdqn.core.sum_tree import (
    FANOUT,
    sum_tree_init,
    sum_tree_level_sizes,
    sum_tree_sample,
    sum_tree_set,
    sum_tree_set_new,
)


def check_tree(state, leaf_priorities: np.ndarray) -> None:
    """Leaves hold the expected priorities (zero past them) and every entry of a level
    above is the sum of its ``FANOUT`` children, summed again here in float64."""
    levels = [np.asarray(level, np.float64) for level in state.levels]
    expected = np.zeros(len(levels[0]))
    expected[: len(leaf_priorities)] = leaf_priorities
    np.testing.assert_allclose(levels[0], expected, rtol=1e-6)
    for below, above in itertools.pairwise(levels):
        sums = below.reshape(-1, FANOUT).sum(axis=1)
        np.testing.assert_allclose(above[: len(sums)], sums, rtol=1e-5)
        assert np.all(above[len(sums) :] == 0)
    assert levels[-1].sum() == pytest.approx(expected.sum(), rel=1e-5)


def test_level_sizes_by_hand():
    # 200,000 slots: 12,500 sums of 16 leaves, then 782, 49 and a top of 4 sums, each
    # level padded to 16 times the count above it.
    assert FANOUT == 16
    assert sum_tree_level_sizes(200_000) == (200_000, 12_512, 784, 64, 4)
    assert sum_tree_level_sizes(300) == (304, 32, 2)
    assert sum_tree_level_sizes(16) == (16,)
    assert sum_tree_level_sizes(1) == (1,)


@pytest.mark.parametrize("transform", ["plain", "jit"])
def test_set_follows_a_numpy_model_through_wraparound(transform):
    capacity, num_envs = 40, 12
    set_ = jax.jit(sum_tree_set) if transform == "jit" else sum_tree_set
    state = sum_tree_init(capacity)
    model = np.zeros(capacity)
    rng = np.random.default_rng(0)
    position, running_max = 0, 1.0
    for _ in range(7):  # 84 rows through 40 slots: wraps twice, across the boundary
        slots = (position + np.arange(num_envs)) % capacity
        values = rng.uniform(0.1, 3.0, num_envs)
        state = set_(state, jnp.asarray(slots), jnp.asarray(values, jnp.float32))
        model[slots] = values
        running_max = max(running_max, values.max())
        position = (position + num_envs) % capacity
        check_tree(state, model)
        assert float(state.max_priority) == pytest.approx(running_max)


def test_new_rows_enter_at_the_largest_priority_so_far():
    values = np.array([0.5, 3.0, 0.2, 1.5], np.float32)
    state = sum_tree_set(sum_tree_init(40), jnp.arange(4), jnp.asarray(values))
    state = sum_tree_set_new(state, jnp.asarray([38, 39, 0]))  # wraps onto slot 0
    check_tree(state, np.r_[3.0, values[1:], np.zeros(34), 3.0, 3.0])
    assert float(state.max_priority) == 3.0


def test_sampled_frequencies_match_priorities_chi_square():
    capacity = 300  # three levels; all but ten slots, spread over the tree, stay empty
    filled = np.array([0, 17, 40, 99, 150, 151, 200, 255, 280, 299])
    priorities = np.array([1.0, 1.0, 2.0, 4.0, 0.1, 3.0, 1.5, 0.25, 2.5, 1.2])
    state = sum_tree_set(
        sum_tree_init(capacity), jnp.asarray(filled), jnp.asarray(priorities, jnp.float32)
    )
    keys = jax.random.split(jax.random.key(0), 5_000)
    slots, probs = jax.jit(jax.vmap(lambda k: sum_tree_sample(state, k, 32)))(keys)
    slots = np.asarray(slots).ravel()
    assert np.isin(slots, filled).all()  # never an empty slot
    rank = np.searchsorted(filled, slots)
    expected_p = priorities / priorities.sum()
    np.testing.assert_allclose(np.asarray(probs).ravel(), expected_p[rank], rtol=1e-5)
    counts = np.bincount(rank, minlength=10)
    expected = expected_p * len(slots)
    chi2 = ((counts - expected) ** 2 / expected).sum()
    # Critical value of chi-square with 9 degrees of freedom at level 0.001.
    assert chi2 < 27.877, f"chi2 = {chi2:.1f}"
    # Stratified: the j-th draw of every batch comes from the j-th slice of the total.
    first = np.asarray(jax.vmap(lambda k: sum_tree_sample(state, k, 32)[0][0])(keys[:100]))
    assert set(first.tolist()) == {0}  # slot 0 holds the first 1 / 16.55 > 1 / 32 of it


def test_draws_invert_the_cumulative_priorities_like_numpy():
    # A draw at u of the total picks the slot whose slice of the running sum holds u:
    # NumPy's searchsorted over the float64 cumulative sum, with the same stratified u.
    capacity, batch = 1_000, 64  # levels of 1,008, 64 and 4: three steps down
    rng = np.random.default_rng(2)
    priorities = rng.uniform(0.0, 2.0, capacity) * (rng.uniform(size=capacity) < 0.7)
    state = sum_tree_set(
        sum_tree_init(capacity), jnp.arange(capacity), jnp.asarray(priorities, jnp.float32)
    )
    cumulative = np.cumsum(priorities.astype(np.float32).astype(np.float64))
    for key in jax.random.split(jax.random.key(5), 4):
        slots, _ = jax.jit(sum_tree_sample, static_argnums=2)(state, key, batch)
        fraction = (np.arange(batch) + np.asarray(jax.random.uniform(key, (batch,)))) / batch
        want = np.searchsorted(cumulative, fraction * cumulative[-1], side="right")
        np.testing.assert_array_equal(np.asarray(slots), want)


def test_importance_weights_and_priorities_against_numpy():
    probabilities = np.array([0.1, 0.4, 0.05, 0.2], np.float32)
    size, beta = 50, 0.6
    want = (size * probabilities.astype(np.float64)) ** -beta
    got = importance_weights(jnp.asarray(probabilities), jnp.int32(size), beta)
    np.testing.assert_allclose(got, want / want.max(), rtol=1e-6)
    td = np.array([-2.0, 0.0, 0.5, 3.0], np.float32)
    np.testing.assert_allclose(
        priorities_from_td(jnp.asarray(td), 0.6, 1e-3), np.abs(td) ** 0.6 + 1e-3, rtol=1e-6
    )


def test_sum_tree_under_vmap_matches_single_trees():
    capacity = 40
    values = jnp.asarray(np.random.default_rng(1).uniform(0.1, 2.0, (2, capacity)), jnp.float32)
    slots = jnp.arange(capacity)
    trees = jax.vmap(lambda v: sum_tree_set(sum_tree_init(capacity), slots, v))(values)
    keys = jax.random.split(jax.random.key(3), 2)
    drawn, _ = jax.vmap(lambda t, k: sum_tree_sample(t, k, 16))(trees, keys)
    for i in range(2):
        single = sum_tree_set(sum_tree_init(capacity), slots, values[i])
        check_tree(jax.tree.map(lambda x, i=i: x[i], trees), np.asarray(values[i]))
        np.testing.assert_array_equal(drawn[i], sum_tree_sample(single, keys[i], 16)[0])


def test_prioritized_training_keeps_a_consistent_tree():
    config = dataclasses.replace(TINY_CHAIN, prioritized=True, buffer_size=1_000)
    state, metrics = jax.jit(jaxdqn.make_train(config))(jax.random.key(0))
    leaves = np.asarray(state.replay.priorities.levels[0], np.float64)
    stored = leaves[: config.buffer_size]
    assert int(state.replay.rows.size) == config.buffer_size  # wrapped: 1,600 rows into 1,000
    assert np.all(stored > 0) and np.all(leaves[config.buffer_size :] == 0)
    check_tree(state.replay.priorities, stored)
    # Updated rows carry |δ|^α + ε; rows never drawn since they were added keep the max.
    assert len(np.unique(stored)) > 100
    assert stored.max() <= float(state.replay.priorities.max_priority) + 1e-6
    assert np.all(np.isfinite(metrics["loss"][-3:]))
