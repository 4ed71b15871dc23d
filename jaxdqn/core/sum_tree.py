"""A device-resident sum tree: the sampling structure of proportional prioritized replay
(Schaul et al. 2016), used by :func:`jaxdqn.make_replay` with ``prioritized=True``.

The tree has fan-out ``K`` (:data:`FANOUT`) and keeps one flat array per level:
``levels[0]`` holds the priority of each buffer slot, and entry ``j`` of ``levels[d + 1]``
is the sum of the ``K`` entries ``[jK, (j + 1)K)`` of ``levels[d]``; the top level has at
most ``K`` entries, whose sum is the total. Each level below the top is padded with zeros
to a multiple of ``K``. Setting ``B`` priorities recomputes ``B`` sums of ``K`` children
on each of the ``ceil(log_K capacity)`` levels; drawing ``B`` slots walks ``B`` paths down
from the top, choosing among ``K`` children per level: both cost
``O(B K log_K capacity)``, under ``jit`` and ``vmap``.

A wide tree has few levels, and on a CPU, where XLA charges per operation, the
level-by-level gathers and scatters are the operations; separate arrays per level let
each scatter update its level in place (the CHANGELOG has the measurements).

Sampling is stratified: slot ``j`` of a batch is drawn from the ``j``-th of ``B`` equal
slices of the total priority. New slots enter at the largest priority set so far.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

FANOUT = 16  # children per node of the sum tree


class SumTreeState(NamedTuple):
    """Priorities of a replay buffer's slots, with every subtree's sum."""

    levels: tuple[jax.Array, ...]  # float32; levels[0] [K * ceil(capacity / K)] per slot
    max_priority: jax.Array  # [] float32: the largest priority ever set (new slots get it)


def sum_tree_level_sizes(capacity: int) -> tuple[int, ...]:
    """Lengths of the tree's levels for ``capacity`` slots, leaves first.

    Each level counts ``ceil(n / K)`` sums of the level below, until at most ``K`` remain;
    every level below the top is padded to ``K`` times the count above it.
    """
    counts = [capacity]
    while counts[-1] > FANOUT:
        counts.append(-(-counts[-1] // FANOUT))
    return (*(FANOUT * above for above in counts[1:]), counts[-1])


def sum_tree_init(capacity: int) -> SumTreeState:
    """An empty tree for ``capacity`` slots (all priorities 0, so none can be drawn)."""
    levels = tuple(jnp.zeros(n, jnp.float32) for n in sum_tree_level_sizes(capacity))
    return SumTreeState(levels=levels, max_priority=jnp.float32(1.0))


def _children(level: jax.Array, parents: jax.Array) -> jax.Array:
    """The ``K`` entries under each of ``parents`` (int ``[B]``): ``[B, K]``."""
    return level[parents[:, None] * FANOUT + jnp.arange(FANOUT)]


def sum_tree_set(state: SumTreeState, slots: jax.Array, priorities: jax.Array) -> SumTreeState:
    """Sets the priorities of ``slots`` (int ``[B]``) to ``priorities`` (``[B]``, >= 0).

    Every sum above a changed slot is recomputed from its children, so sums never drift.
    Repeated slots must carry equal priorities (as the TD errors of one transition do).
    """
    nodes = slots.astype(jnp.int32)
    priorities = priorities.astype(jnp.float32)
    levels = [state.levels[0].at[nodes].set(priorities)]
    for above in state.levels[1:]:
        nodes = nodes // FANOUT
        levels.append(above.at[nodes].set(_children(levels[-1], nodes).sum(axis=-1)))
    return SumTreeState(
        levels=tuple(levels), max_priority=jnp.maximum(state.max_priority, priorities.max())
    )


def sum_tree_set_new(
    state: SumTreeState, slots: jax.Array, keep: jax.Array | None = None
) -> SumTreeState:
    """Gives the rows just written at ``slots`` (int ``[n]``) the largest priority set so
    far, so every new transition is drawn with high probability at least once; where
    ``keep`` (bool ``[n]``, if given) is false, priority 0: never drawn."""
    top = jnp.full(slots.shape, state.max_priority)
    return sum_tree_set(state, slots, top if keep is None else jnp.where(keep, top, 0.0))


def _descend(values: jax.Array, u: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """For each row of ``values`` ``[B, W]`` (W children's sums), the child whose slice of
    the row's running sum holds ``u`` ``[B]``: ``(child [B], u within it [B], its value [B])``.

    Rounding can leave ``u`` a hair above the row's sum; then the last positive child is
    taken, so an empty (zero) subtree is never entered.
    """
    cumulative = jnp.cumsum(values, axis=-1)
    width = values.shape[-1]
    last_positive = width - 1 - jnp.argmax(values[:, ::-1] > 0, axis=-1)
    child = jnp.minimum(jnp.sum(cumulative <= u[:, None], axis=-1), last_positive)
    before = jnp.take_along_axis(cumulative - values, child[:, None], axis=-1)[:, 0]
    value = jnp.take_along_axis(values, child[:, None], axis=-1)[:, 0]
    return child, u - before, value


def sum_tree_sample(
    state: SumTreeState, key: jax.Array, batch_size: int
) -> tuple[jax.Array, jax.Array]:
    """Draws ``batch_size`` slots with probability proportional to their priority.

    Returns:
      ``(slots int32 [B], probabilities float32 [B])``, stratified over ``B`` equal
      slices of the total. Slots of priority 0 are never drawn while any is positive.
    """
    top = state.levels[-1]
    total = top.sum()
    u = (jnp.arange(batch_size) + jax.random.uniform(key, (batch_size,))) / batch_size * total
    nodes, u, value = _descend(jnp.broadcast_to(top, (batch_size, top.shape[0])), u)
    for level in reversed(state.levels[:-1]):
        child, u, value = _descend(_children(level, nodes), u)
        nodes = nodes * FANOUT + child
    return nodes, value / total
