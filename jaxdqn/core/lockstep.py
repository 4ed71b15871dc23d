"""Branching once for every seed of a ``jax.vmap``.

The seeds (or settings) of a vmapped run move in lockstep: they take their env steps,
updates and target syncs at the same counts. A ``lax.cond`` on a per-seed predicate does
not branch under ``vmap``: it runs both branches and selects, so a target sync due every
50 updates costs a pass over the parameters at every update. :func:`any_in_vmap` turns
such a predicate into one that ``vmap`` leaves unmapped, so a ``lax.cond`` on it branches
for all seeds at once; the branch then applies its work where each seed's own predicate
holds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.custom_batching.custom_vmap
def any_in_vmap(pred: jax.Array) -> jax.Array:
    """``pred`` (bool ``[]``) outside any ``vmap``; under ``vmap``s, whether it holds for
    any element of every enclosing mapped axis, as one unmapped bool ``[]``.

    Use it as the predicate of a ``lax.cond`` whose true branch selects per element by
    ``pred`` itself: that is what the cond would compute per element, and the branch is
    skipped whenever no element needs it. Under ``jax.jit`` with the mapped axis split
    over devices, the reduction is a collective over those devices.
    """
    return pred


@any_in_vmap.def_vmap
def _any_in_vmap_rule(axis_size: int, in_batched: list, pred: jax.Array):
    del axis_size
    if not in_batched[0]:
        return pred, False
    # A vmap around this one maps the reduced value: reduce over it as well.
    return any_in_vmap(jnp.any(pred)), False
