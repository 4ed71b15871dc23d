"""One-call random draws (jaxdqn.core.draws) against plain NumPy and jax.random."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdqn.core import draws

BOUNDS = (1, 2, 3, 7, 1000, 2**16, 2**16 + 1, 1_000_000, 2**31 - 1)


def _numpy_ints_below(high: np.ndarray, low: np.ndarray, bound: int) -> np.ndarray:
    """randint's arithmetic in Python integers, wrapping at 2**32 where uint32 does."""
    wrap = 2**32
    shift = pow(2**16 % bound, 2) % wrap % bound
    out = [
        (((int(h) % bound) * shift % wrap + int(lo) % bound) % wrap) % bound
        for h, lo in zip(high.ravel(), low.ravel(), strict=True)
    ]
    return np.array(out, np.int64).reshape(high.shape)


@pytest.mark.parametrize("transform", ["plain", "jit", "vmap"])
def test_ints_below_matches_numpy_for_every_bound(transform):
    words = jax.random.bits(jax.random.key(0), (2, len(BOUNDS), 64), jnp.uint32)
    bounds = jnp.array(BOUNDS, jnp.int64 if jax.config.x64_enabled else jnp.int32)
    if transform == "vmap":
        got = jax.vmap(draws.ints_below, in_axes=(1, 0))(words, bounds)
    else:
        fn = jax.jit(draws.ints_below) if transform == "jit" else draws.ints_below
        got = jnp.stack([fn(words[:, i], b) for i, b in enumerate(bounds)])
    words = np.asarray(words)
    for i, bound in enumerate(BOUNDS):
        want = _numpy_ints_below(words[0, i], words[1, i], bound)
        np.testing.assert_array_equal(np.asarray(got[i]).astype(np.int64), want)
        assert got.dtype == jnp.int32
        assert np.asarray(got[i]).min() >= 0 and np.asarray(got[i]).max() < bound


def test_ints_below_gives_randint_values_from_randint_words():
    # jax.random.randint draws its two words from the halves of a split key.
    key = jax.random.key(3)
    high_key, low_key = jax.random.split(key)
    for bound in (2, 5, 10_000, 1_000_000):
        words = jnp.stack([jax.random.bits(k, (256,), jnp.uint32) for k in (high_key, low_key)])
        want = jax.random.randint(key, (256,), 0, bound)
        np.testing.assert_array_equal(np.asarray(draws.ints_below(words, bound)), want)


def test_unit_floats_match_jax_uniform_from_the_same_words():
    key = jax.random.key(4)
    words = jax.random.bits(key, (1000,), jnp.uint32)
    got = np.asarray(draws.unit_floats(words))
    np.testing.assert_array_equal(got, np.asarray(jax.random.uniform(key, (1000,))))
    # The top 23 bits over 2**23, computed in NumPy.
    np.testing.assert_array_equal(got, (np.asarray(words) >> 9).astype(np.float64) / 2**23)
    assert got.dtype == np.float32 and got.min() >= 0.0 and got.max() < 1.0


@pytest.mark.parametrize("bound", [3, 10_000])
def test_uniform_ints_are_uniform_and_follow_the_key(bound):
    n = 60_000
    got = np.asarray(jax.jit(draws.uniform_ints, static_argnums=1)(jax.random.key(5), (n,), bound))
    assert got.dtype == np.int32 and got.shape == (n,)
    assert got.min() >= 0 and got.max() < bound
    bins = np.bincount(got * 3 // bound, minlength=3) / n  # thirds of the range
    np.testing.assert_allclose(bins, 1 / 3, atol=0.01)
    again = draws.uniform_ints(jax.random.key(5), (n,), bound)
    np.testing.assert_array_equal(got, np.asarray(again))
    other = np.asarray(draws.uniform_ints(jax.random.key(6), (n,), bound))
    assert np.mean(other == got) < 0.5
