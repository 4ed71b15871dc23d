"""Proportional prioritized replay (Schaul et al. 2016) on a device-resident sum tree.

The tree is one flat array: node 1 is the root, node ``k`` has children ``2k`` and
``2k + 1``, and the ``L`` leaves (``L`` = capacity rounded up to a power of two) sit at
``[L, 2L)``, leaf ``L + i`` holding the priority of buffer slot ``i``. Setting ``B``
priorities rewrites ``B`` paths of ``log2 L`` nodes; drawing ``B`` slots walks ``B`` paths
down from the root: both cost ``O(B log capacity)``, under ``jit`` and ``vmap``.

Priorities are ``|δ|^α + ε``; new transitions enter at the largest priority set so far.
Sampling is stratified: slot ``j`` of a batch is drawn from the ``j``-th of ``B`` equal
slices of the total priority. Importance weights ``(N P(i))^-β`` are divided by the
batch's largest, so they scale the loss down only.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class SumTreeState(NamedTuple):
    """Priorities of a replay buffer's slots, with every subtree's sum."""

    tree: jax.Array  # [2 * leaves] float32; tree[0] is unused, tree[1] is the total
    max_priority: jax.Array  # [] float32: the largest priority ever set (new slots get it)


def _leaves(capacity: int) -> int:
    return 1 << max(0, (capacity - 1).bit_length())


def sum_tree_init(capacity: int) -> SumTreeState:
    """An empty tree for ``capacity`` slots (all priorities 0, so none can be drawn)."""
    return SumTreeState(
        tree=jnp.zeros(2 * _leaves(capacity), jnp.float32), max_priority=jnp.float32(1.0)
    )


def sum_tree_set(state: SumTreeState, slots: jax.Array, priorities: jax.Array) -> SumTreeState:
    """Sets the priorities of ``slots`` (int ``[B]``) to ``priorities`` (``[B]``, >= 0).

    Repeated slots must carry equal priorities (as the TD errors of one transition do).
    """
    leaves = state.tree.shape[0] // 2
    nodes = leaves + slots.astype(jnp.int32)
    priorities = priorities.astype(jnp.float32)
    tree = state.tree.at[nodes].set(priorities)
    for _ in range(leaves.bit_length() - 1):  # from the leaves' parents up to the root
        nodes = nodes // 2
        tree = tree.at[nodes].set(tree[2 * nodes] + tree[2 * nodes + 1])
    return SumTreeState(tree=tree, max_priority=jnp.maximum(state.max_priority, priorities.max()))


def sum_tree_sample(
    state: SumTreeState, key: jax.Array, batch_size: int
) -> tuple[jax.Array, jax.Array]:
    """Draws ``batch_size`` slots with probability proportional to their priority.

    Returns:
      ``(slots int32 [B], probabilities float32 [B])``, stratified over ``B`` equal
      slices of the total. Slots of priority 0 are never drawn while any is positive.
    """
    tree = state.tree
    leaves = tree.shape[0] // 2
    total = tree[1]
    u = (jnp.arange(batch_size) + jax.random.uniform(key, (batch_size,))) / batch_size * total
    nodes = jnp.ones(batch_size, jnp.int32)
    for _ in range(leaves.bit_length() - 1):
        left = tree[2 * nodes]
        right = tree[2 * nodes + 1]
        # Rounding can leave u a hair above a subtree's sum; never step into an empty one.
        go_right = ((u >= left) & (right > 0)) | (left <= 0)
        u = jnp.where(go_right, u - left, u)
        nodes = 2 * nodes + go_right
    slots = nodes - leaves
    return slots, tree[nodes] / total


def importance_weights(probabilities: jax.Array, size: jax.Array, beta) -> jax.Array:
    """``(size * P(i))^-beta``, divided by the largest in the batch (float32 ``[B]``)."""
    weights = (size.astype(jnp.float32) * probabilities) ** (-jnp.asarray(beta, jnp.float32))
    return weights / weights.max()


def priorities_from_td(td: jax.Array, alpha, eps) -> jax.Array:
    """``|δ|^α + ε`` for TD errors ``[B]``."""
    return jnp.abs(td).astype(jnp.float32) ** alpha + eps
