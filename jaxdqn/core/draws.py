"""Random draws that each cost one call of the key's bit generator.

``jax.random.randint`` splits its key and draws two words per value, three generator
calls in all; ``jax.random.split`` followed by a draw is two. Under a ``vmap`` each call is
one batched operation, and with the default threefry keys XLA:CPU runs each as a loop of
its own, whose fixed cost outweighs the work at the sizes of a DQN step. These functions
draw the words they need in one call and build the same distributions from them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def ints_below(words: jax.Array, bound: jax.Array | int) -> jax.Array:
    """Uniform integers in ``[0, bound)`` from pairs of random 32-bit words, by
    ``jax.random.randint``'s arithmetic, so equal words give equal values:
    ``(high mod b) * (2**32 mod b) + low mod b``, reduced mod ``b``, in uint32. For
    ``bound <= 2**16`` that is the 64-bit number ``high * 2**32 + low`` mod ``b``; above,
    the products wrap at 2**32 as randint's do.

    Args:
      words: uint32 ``[2, ...]``: independent uniform words (``jax.random.bits``).
      bound: int ``[]`` or ``[...]``, in ``[1, 2**31)`` (traced or static).

    Returns:
      int32 ``[...]``.
    """
    span = jnp.asarray(bound).astype(jnp.uint32)
    high, low = words[0], words[1]
    # 2**32 mod span, built without leaving 32 bits: (2**16 mod span)**2 mod span.
    shift = (jnp.uint32(2**16) % span) ** 2 % span
    return (((high % span) * shift + low % span) % span).astype(jnp.int32)


def unit_floats(words: jax.Array) -> jax.Array:
    """Uniform floats in ``[0, 1)`` from random 32-bit words (uint32 ``[...]``), as
    ``jax.random.uniform`` makes them: the top 23 bits as the mantissa of a float in
    ``[1, 2)``, minus 1. Returns float32 ``[...]``."""
    one = jnp.float32(1.0).view(jnp.uint32)
    return jax.lax.bitcast_convert_type((words >> 9) | one, jnp.float32) - 1.0


def uniform_ints(key: jax.Array, shape: tuple[int, ...], bound: jax.Array | int) -> jax.Array:
    """Uniform int32 integers in ``[0, bound)`` of ``shape``, from one generator call
    (``bound`` int ``[]`` in ``[1, 2**31)``, may be traced)."""
    return ints_below(jax.random.bits(key, (2, *shape), jnp.uint32), bound)
