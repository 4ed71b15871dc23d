"""A generic device-resident circular buffer made of pure functions: fixed-size storage
of any pytree of items, overwriting the oldest, sampled uniformly.

``make_circular_buffer(capacity)`` returns a :class:`CircularBuffer` bundle of
``init / add / sample / can_sample``. It knows nothing of transitions: DQN's experience
replay (:func:`jaxdqn.make_replay`) keeps its rows in one and adds what a transition needs
(next observations, n-step targets, priorities).

The state is a pytree of preallocated device arrays, so the buffer lives inside the
compiled loop, runs under ``jax.jit`` and ``jax.vmap`` (one buffer per seed) and is never
copied to the host.

Examples:
  >>> import jax, jax.numpy as jnp, jaxdqn
  >>> buffer = jaxdqn.make_circular_buffer(capacity=4)
  >>> state = buffer.init({"x": jnp.zeros((), jnp.float32)})
  >>> state = buffer.add(state, {"x": jnp.arange(3.0)})      # a batch of 3
  >>> batch = buffer.sample(state, jax.random.key(0), 8)     # only slots 0..2
  >>> batch["x"].shape
  (8,)
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxdqn.core.draws import uniform_ints


class CircularBufferState(NamedTuple):
    """Storage and write cursor of a circular buffer."""

    data: Any  # pytree like the example transition, each leaf [capacity, *leaf_shape]
    position: jax.Array  # shape=(), int32: the slot the next item is written to
    size: jax.Array  # shape=(), int32: written slots, in [0, capacity]


class CircularBuffer(NamedTuple):
    """Pure functions over a :class:`CircularBufferState`.

    Attributes:
      init: ``init(example) -> state``; ``example`` is one item (no batch axis), its
        leaves' shapes and dtypes are kept (arrays or ``jax.ShapeDtypeStruct``).
      add: ``add(state, items) -> state``; every leaf of ``items`` has a leading batch
        axis ``[n, ...]`` with ``1 <= n <= capacity``. Oldest items are overwritten.
      sample: ``sample(state, key, batch_size) -> items``, leaves ``[batch_size, ...]``,
        drawn uniformly with replacement among written slots only.
      sample_slots: ``sample_slots(state, key, batch_size) -> int32 [batch_size]``: the
        slots ``sample`` reads, for callers that gather more than one row per item
        (n-step returns).
      can_sample: ``can_sample(state, batch_size) -> bool[]``: at least ``batch_size``
        items are stored.
      write_slots: ``write_slots(state, n) -> int32 [n]``: the slots the next ``add`` of
        ``n`` items writes (for state kept per slot beside the buffer, such as priorities).
    """

    init: Callable[[Any], CircularBufferState]
    add: Callable[[CircularBufferState, Any], CircularBufferState]
    sample: Callable[[CircularBufferState, jax.Array, int], Any]
    sample_slots: Callable[[CircularBufferState, jax.Array, int], jax.Array]
    can_sample: Callable[[CircularBufferState, int], jax.Array]
    write_slots: Callable[[CircularBufferState, int], jax.Array]
    capacity: int


def make_circular_buffer(capacity: int) -> CircularBuffer:
    """Builds a uniform circular buffer.

    Args:
      capacity: number of items kept; the newest ``capacity`` survive.

    Returns:
      A :class:`CircularBuffer`.

    Raises:
      ValueError: if ``capacity`` is not a positive integer; ``add`` raises (at trace
        time) for a batch larger than ``capacity`` or leaves whose shapes or dtypes do
        not match the stored ones (under ``jax.jit`` NumPy inputs are first converted
        to JAX's default dtypes, e.g. int64 to int32, before that check).
    """
    if isinstance(capacity, bool) or not isinstance(capacity, numbers.Integral) or capacity < 1:
        raise ValueError(f"capacity={capacity!r} is invalid: must be a positive int.")
    capacity = int(capacity)

    def init(example: Any) -> CircularBufferState:
        data = jax.tree.map(lambda x: jnp.zeros((capacity, *x.shape), x.dtype), example)
        return CircularBufferState(data=data, position=jnp.int32(0), size=jnp.int32(0))

    def add(state: CircularBufferState, items: Any) -> CircularBufferState:
        sizes = {x.shape[0] if x.ndim else None for x in jax.tree.leaves(items)}
        if len(sizes) != 1 or None in sizes:
            raise ValueError(
                f"add: every leaf needs the same leading batch axis; got sizes {sizes}."
            )
        (n,) = sizes
        if not 1 <= n <= capacity:
            raise ValueError(f"add: batch of {n} items does not fit capacity={capacity}.")
        jax.tree.map(check_leaf, state.data, items)
        slots = write_slots(state, n)
        data = jax.tree.map(lambda d, x: d.at[slots].set(x), state.data, items)
        return CircularBufferState(
            data=data,
            position=(state.position + n) % capacity,
            size=jnp.minimum(state.size + n, capacity),
        )

    def write_slots(state: CircularBufferState, n: int) -> jax.Array:
        return (state.position + jnp.arange(n, dtype=jnp.int32)) % capacity

    def sample_slots(state: CircularBufferState, key: jax.Array, batch_size: int) -> jax.Array:
        return uniform_ints(key, (batch_size,), jnp.maximum(state.size, 1))

    def sample(state: CircularBufferState, key: jax.Array, batch_size: int) -> Any:
        slots = sample_slots(state, key, batch_size)
        return jax.tree.map(lambda d: d[slots], state.data)

    def can_sample(state: CircularBufferState, batch_size: int) -> jax.Array:
        return state.size >= batch_size

    return CircularBuffer(
        init=init,
        add=add,
        sample=sample,
        sample_slots=sample_slots,
        can_sample=can_sample,
        write_slots=write_slots,
        capacity=capacity,
    )


def check_leaf(stored: jax.Array, items: jax.Array) -> None:
    """Raises ``ValueError`` (at trace time) unless a batch of items ``[n, ...]`` has the
    per-item shape and the dtype of a stored leaf ``[capacity, ...]``."""
    if stored.shape[1:] != items.shape[1:] or stored.dtype != items.dtype:
        raise ValueError(
            f"add: item leaf {items.dtype}{list(items.shape[1:])} does not match the stored "
            f"{stored.dtype}{list(stored.shape[1:])}; the buffer never casts."
        )
