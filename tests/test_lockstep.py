"""Branching once for every seed of a vmap (jaxdqn.core.lockstep), and the loop's and the
target sync's use of it: their work is a branch under ``jax.vmap``, not a select."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_CHAIN

import jaxdqn
from jaxdqn.core.lockstep import any_in_vmap

CASES = [[False, False, False], [False, True, False], [True, True, True]]


def equations(jaxpr, name: str) -> list:
    """The equations of primitive ``name`` in ``jaxpr``, at any depth."""
    found = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == name:
                found.append(eqn)
            for value in eqn.params.values():
                for sub in value if isinstance(value, tuple | list) else (value,):
                    if hasattr(sub, "eqns"):
                        walk(sub)
                    elif hasattr(sub, "jaxpr") and hasattr(sub.jaxpr, "eqns"):
                        walk(sub.jaxpr)

    walk(jaxpr)
    return found


def conds(fn, *args) -> list:
    """The ``cond`` equations of ``fn``'s jaxpr, at any depth."""
    return equations(jax.make_jaxpr(fn)(*args).jaxpr, "cond")


@pytest.mark.parametrize("values", CASES)
def test_any_reduces_over_the_vmap_plain_jit_and_vmap(values):
    pred = jnp.asarray(values)
    for transform in (lambda f: f, jax.jit):
        for i, v in enumerate(values):  # outside any vmap: the value itself
            assert bool(transform(any_in_vmap)(pred[i])) == v
        mapped_any = transform(jax.vmap(any_in_vmap))(pred)
        np.testing.assert_array_equal(mapped_any, np.full(len(values), any(values)))


def test_nested_vmaps_reduce_over_every_axis():
    grid = jnp.asarray([[False, False], [False, True]])
    np.testing.assert_array_equal(jax.vmap(jax.vmap(any_in_vmap))(grid), np.ones((2, 2), bool))
    np.testing.assert_array_equal(
        jax.vmap(jax.vmap(any_in_vmap))(jnp.zeros((2, 3), bool)), np.zeros((2, 3), bool)
    )


def test_a_cond_on_it_stays_a_branch_under_vmap():
    def per_seed(pred, x):
        return jax.lax.cond(any_in_vmap(pred), lambda: jnp.where(pred, x + 1, x), lambda: x)

    pred, x = jnp.asarray([True, False]), jnp.asarray([1.0, 2.0])
    np.testing.assert_array_equal(jax.vmap(per_seed)(pred, x), [2.0, 2.0])
    assert len(conds(jax.vmap(per_seed), pred, x)) == 1
    # The per-seed predicate itself would be turned into a select: no cond is left.
    plain = jax.vmap(lambda p, x: jax.lax.cond(p, lambda: x + 1, lambda: x))
    assert conds(plain, pred, x) == []


def test_vmapped_target_sync_is_a_branch():
    params, target = jnp.ones((3, 4)), jnp.zeros((3, 4))
    sync = jax.vmap(jaxdqn.sync_target, in_axes=(0, 0, 0, None, None))
    assert len(conds(sync, params, target, jnp.array([4, 5, 6]), 4, 0.5)) == 1
    out = sync(params, target, jnp.array([4, 5, 8]), 4, 0.5)  # due for seeds 0 and 2
    np.testing.assert_array_equal(out, [[0.5] * 4, [0.0] * 4, [0.5] * 4])


def test_vmapped_loop_learns_in_a_branch_of_its_own():
    """Learning (masked where a seed still warms up) and no learning are the two branches
    of one cond under vmap, and the update is traced once."""
    trainer = jaxdqn.make_trainer(TINY_CHAIN)
    keys = jax.random.split(jax.random.key(0), 2)
    states = jax.vmap(trainer.init)(keys)

    def learns(branch) -> bool:
        return bool(equations(branch.jaxpr, "dot_general"))

    found = conds(jax.vmap(lambda s: trainer.run(s, 1)), states)
    gates = [
        eqn
        for eqn in found
        if len(eqn.params["branches"]) == 2
        and not learns(eqn.params["branches"][0])
        and learns(eqn.params["branches"][1])
    ]
    assert len(gates) == 1
    # No cond holds the update in two branches (one for every seed, one masked).
    assert not any(all(learns(b) for b in eqn.params["branches"]) for eqn in found)
