"""TD errors and losses (jaxdqn.losses) against plain-NumPy references.

Every per-transition function is run three ways over a small batch: a plain Python loop
over rows, the same loop with ``jax.jit``, and ``jax.vmap`` over the batch axis.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdqn import losses

TRANSFORMS = ("plain", "jit", "vmap")

# Module-level jitted wrappers so each shape compiles once for the whole file.
_JITTED = {
    losses.q_learning: jax.jit(losses.q_learning),
    losses.double_q_learning: jax.jit(losses.double_q_learning),
}


@pytest.fixture(params=TRANSFORMS)
def transform(request):
    return request.param


def batched(fn, transform):
    """``fn`` over one transition -> a function over a batch (leading axis of every arg)."""
    if transform == "vmap":
        return jax.vmap(fn)
    one = (_JITTED.get(fn) or jax.jit(fn)) if transform == "jit" else fn

    def loop(*args):
        n = args[0].shape[0]
        rows = [one(*(a[i] for a in args)) for i in range(n)]
        return jax.tree.map(lambda *xs: jnp.stack(xs), *rows)

    return loop


# ---------------------------------------------------------------------------------------
# NumPy references (float64), written independently of the library.


def np_discount(gamma, terminated, truncated):
    # Truncation (a time limit) is not terminal: it must keep the bootstrap.
    del truncated
    return np.where(terminated, 0.0, gamma)


def np_q_learning(q_tm1, a_tm1, r_t, discount_t, q_t):
    rows = np.arange(len(a_tm1))
    return r_t + discount_t * q_t.max(axis=1) - q_tm1[rows, a_tm1]


def np_double_q_learning(q_tm1, a_tm1, r_t, discount_t, q_t_value, q_t_selector):
    rows = np.arange(len(a_tm1))
    best = q_t_selector.argmax(axis=1)
    return r_t + discount_t * q_t_value[rows, best] - q_tm1[rows, a_tm1]


def np_huber(x, delta):
    a = np.abs(x)
    return np.where(a <= delta, 0.5 * x**2, delta * (a - 0.5 * delta))


B, A, GAMMA = 8, 3, 0.9


def random_batch(seed=0):
    rng = np.random.default_rng(seed)
    # Every (terminated, truncated) combination appears, twice.
    terminated = np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=bool)
    truncated = np.array([0, 1, 0, 1, 0, 1, 0, 1], dtype=bool)
    return dict(
        q_tm1=rng.normal(size=(B, A)).astype(np.float32),
        a_tm1=rng.integers(0, A, size=B).astype(np.int32),
        r_t=rng.normal(size=B).astype(np.float32),
        terminated=terminated,
        truncated=truncated,
        q_t_value=rng.normal(size=(B, A)).astype(np.float32),
        q_t_selector=rng.normal(size=(B, A)).astype(np.float32),
    )


# ---------------------------------------------------------------------------------------
# discount_from_terminated


def test_discount_from_terminated_keeps_gamma_on_truncation():
    b = random_batch()
    got = np.asarray(losses.discount_from_terminated(GAMMA, jnp.asarray(b["terminated"])))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np_discount(GAMMA, b["terminated"], b["truncated"]))
    truncated_only = b["truncated"] & ~b["terminated"]
    assert truncated_only.any()
    np.testing.assert_allclose(got[truncated_only], np.float32(GAMMA))
    np.testing.assert_array_equal(got[b["terminated"]], 0.0)


# ---------------------------------------------------------------------------------------
# q_learning / double_q_learning


def test_q_learning_matches_numpy(transform):
    b = random_batch(1)
    discount = losses.discount_from_terminated(GAMMA, jnp.asarray(b["terminated"]))
    got = batched(losses.q_learning, transform)(
        jnp.asarray(b["q_tm1"]),
        jnp.asarray(b["a_tm1"]),
        jnp.asarray(b["r_t"]),
        discount,
        jnp.asarray(b["q_t_value"]),
    )
    want = np_q_learning(
        b["q_tm1"].astype(np.float64),
        b["a_tm1"],
        b["r_t"].astype(np.float64),
        np_discount(GAMMA, b["terminated"], b["truncated"]),
        b["q_t_value"].astype(np.float64),
    )
    assert got.shape == (B,) and got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
    # Truncated-but-not-terminated rows bootstrap: their TD differs from the terminal one.
    rows = b["truncated"] & ~b["terminated"]
    no_bootstrap = b["r_t"] - b["q_tm1"][np.arange(B), b["a_tm1"]]
    assert np.all(np.abs(np.asarray(got)[rows] - no_bootstrap[rows]) > 1e-3)


def test_double_q_learning_matches_numpy(transform):
    b = random_batch(2)
    discount = losses.discount_from_terminated(GAMMA, jnp.asarray(b["terminated"]))
    got = batched(losses.double_q_learning, transform)(
        jnp.asarray(b["q_tm1"]),
        jnp.asarray(b["a_tm1"]),
        jnp.asarray(b["r_t"]),
        discount,
        jnp.asarray(b["q_t_value"]),
        jnp.asarray(b["q_t_selector"]),
    )
    args64 = (
        b["q_tm1"].astype(np.float64),
        b["a_tm1"],
        b["r_t"].astype(np.float64),
        np_discount(GAMMA, b["terminated"], b["truncated"]),
    )
    want = np_double_q_learning(
        *args64, b["q_t_value"].astype(np.float64), b["q_t_selector"].astype(np.float64)
    )
    assert got.shape == (B,) and got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
    # The batch is informative: double Q differs from plain Q on some bootstrapped rows.
    plain = np_q_learning(*args64, b["q_t_value"].astype(np.float64))
    assert np.abs(want - plain).max() > 1e-3


def test_q_learning_hand_computed(transform):
    # TD = r + discount * max(q_t) - q_tm1[a] = 1 + 0.5 * 4 - 2 = 1.
    got = batched(losses.q_learning, transform)(
        jnp.array([[1.0, 2.0]]),
        jnp.array([1], jnp.int32),
        jnp.array([1.0]),
        jnp.array([0.5]),
        jnp.array([[3.0, 4.0]]),
    )
    np.testing.assert_allclose(np.asarray(got), [1.0])


def test_double_q_learning_hand_computed(transform):
    # The selector picks action 0 (argmax of [5, 1]); the value of action 0 is 3:
    # TD = 1 + 0.5 * 3 - 2 = 0.5, whereas plain Q-learning (max = 4) gives 1.
    got = batched(losses.double_q_learning, transform)(
        jnp.array([[1.0, 2.0]]),
        jnp.array([1], jnp.int32),
        jnp.array([1.0]),
        jnp.array([0.5]),
        jnp.array([[3.0, 4.0]]),
        jnp.array([[5.0, 1.0]]),
    )
    np.testing.assert_allclose(np.asarray(got), [0.5])


def test_terminal_transition_ignores_next_q(transform):
    # discount 0: TD = r - q_tm1[a] = 1 - 1 = 0 whatever q_t is.
    args = (
        jnp.array([[1.0, 2.0]]),
        jnp.array([0], jnp.int32),
        jnp.array([1.0]),
        losses.discount_from_terminated(0.99, jnp.array([True])),
    )
    q_t = jnp.array([[100.0, -100.0]])
    np.testing.assert_allclose(np.asarray(batched(losses.q_learning, transform)(*args, q_t)), [0])
    got = batched(losses.double_q_learning, transform)(*args, q_t, q_t)
    np.testing.assert_allclose(np.asarray(got), [0.0])


def _grads_q(q_tm1, a, r, d, q_t):
    return jax.grad(lambda x, y: 0.5 * losses.q_learning(x, a, r, d, y) ** 2, argnums=(0, 1))(
        q_tm1, q_t
    )


def _grads_double(q_tm1, a, r, d, q_v, q_s):
    def loss(x, y, z):
        return 0.5 * losses.double_q_learning(x, a, r, d, y, z) ** 2

    return jax.grad(loss, argnums=(0, 1, 2))(q_tm1, q_v, q_s)


_JITTED[_grads_q] = jax.jit(_grads_q)
_JITTED[_grads_double] = jax.jit(_grads_double)


def test_gradients_stop_at_the_target(transform):
    b = random_batch(3)
    d = np_discount(GAMMA, b["terminated"], b["truncated"]).astype(np.float32)
    common = (b["q_tm1"], b["a_tm1"], b["r_t"], d)
    common_j = tuple(jnp.asarray(x) for x in common)
    qv, qs = jnp.asarray(b["q_t_value"]), jnp.asarray(b["q_t_selector"])
    onehot = np.eye(A)[b["a_tm1"]]

    g_tm1, g_t = batched(_grads_q, transform)(*common_j, qv)
    td = np_q_learning(*common, b["q_t_value"])
    np.testing.assert_array_equal(np.asarray(g_t), 0.0)
    # d/dq_tm1 of 0.5 * td**2 = -td at a_tm1, exactly zero elsewhere.
    np.testing.assert_allclose(np.asarray(g_tm1), -td[:, None] * onehot, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(g_tm1)[onehot == 0], 0.0)

    g_tm1, g_v, g_s = batched(_grads_double, transform)(*common_j, qv, qs)
    td = np_double_q_learning(*common, b["q_t_value"], b["q_t_selector"])
    np.testing.assert_array_equal(np.asarray(g_v), 0.0)
    np.testing.assert_array_equal(np.asarray(g_s), 0.0)
    np.testing.assert_allclose(np.asarray(g_tm1), -td[:, None] * onehot, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(g_tm1)[onehot == 0], 0.0)


def test_float_action_raises():
    q = jnp.array([1.0, 2.0])
    with pytest.raises(AssertionError, match="assert_type"):
        losses.q_learning(q, jnp.float32(1.0), 1.0, 0.5, q)
    with pytest.raises(AssertionError, match="assert_type"):
        losses.double_q_learning(q, jnp.float32(1.0), 1.0, 0.5, q, q)
    with pytest.raises(AssertionError, match="assert_type"):
        jax.jit(losses.q_learning)(q, jnp.float32(1.0), 1.0, 0.5, q)


def test_wrong_rank_raises():
    q = jnp.array([1.0, 2.0])
    with pytest.raises(AssertionError, match="assert_rank"):
        losses.q_learning(q[None], jnp.int32(1), 1.0, 0.5, q)  # q_tm1 [1, 2]
    with pytest.raises(AssertionError, match="assert_rank"):
        losses.q_learning(q, jnp.array([1], jnp.int32), 1.0, 0.5, q)  # batched action
    with pytest.raises(AssertionError, match="assert_rank"):
        losses.double_q_learning(q, jnp.int32(1), 1.0, 0.5, q, q[None])


# ---------------------------------------------------------------------------------------
# huber / l2 / td_loss

DELTAS = (0.5, 1.0, 2.0)


def _huber_points(delta):
    eps = 1e-3
    return np.array(
        [
            *(0.0, 0.25 * delta, -0.9 * delta, delta, -delta),  # indices 0-4
            *(delta * (1 - eps), delta * (1 + eps), -delta * (1 + eps), 3.0 * delta, -7.5),
        ],
        np.float32,
    )


_huber_jit = jax.jit(losses.huber)


def test_huber_matches_numpy(transform):
    for delta in DELTAS:
        x = _huber_points(delta)
        if transform == "plain":
            got = losses.huber(jnp.asarray(x), delta)
        elif transform == "jit":
            got = _huber_jit(jnp.asarray(x), jnp.float32(delta))  # traced delta
        else:
            got = jax.vmap(losses.huber, in_axes=(0, None))(jnp.asarray(x), delta)
        got = np.asarray(got)
        np.testing.assert_allclose(got, np_huber(x.astype(np.float64), delta), rtol=1e-6)
        # Exact boundary |x| = delta: both branches give 0.5 * delta**2.
        np.testing.assert_allclose(got[3:5], 0.5 * delta**2, rtol=1e-6)
        # Linear branch, hand-computed: x = 3 delta -> delta * (3 delta - delta / 2).
        np.testing.assert_allclose(got[8], 2.5 * delta**2, rtol=1e-6)


def test_huber_hand_constants():
    # delta = 1: 0.5 * 0.5**2 = 0.125 (quadratic); 1 * (3 - 0.5) = 2.5 (linear).
    got = losses.huber(jnp.array([0.5, -3.0, 1.0]), 1.0)
    np.testing.assert_allclose(np.asarray(got), [0.125, 2.5, 0.5])
    # delta = 2: 2 * (5 - 1) = 8; 0.5 * 1.5**2 = 1.125.
    got = losses.huber(jnp.array([5.0, -1.5]), 2.0)
    np.testing.assert_allclose(np.asarray(got), [8.0, 1.125])


def test_l2_matches_numpy(transform):
    x = np.array([0.0, 1.0, -2.0, 0.3, 10.0], np.float32)
    if transform == "plain":
        got = losses.l2(jnp.asarray(x))
    elif transform == "jit":
        got = jax.jit(losses.l2)(jnp.asarray(x))
    else:
        got = jax.vmap(losses.l2)(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(got), 0.5 * x.astype(np.float64) ** 2, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(got)[[1, 2, 4]], [0.5, 2.0, 50.0])


_td_loss_jit = jax.jit(losses.td_loss, static_argnames="kind")


def test_td_loss_kinds(transform):
    tds = np.array([[0.5, -3.0, 1.0, 0.0], [2.0, -0.1, 4.0, -1.0]], np.float32)
    want = {
        ("huber", 1.0): np_huber(tds.astype(np.float64), 1.0).mean(axis=1),
        ("huber", 2.0): np_huber(tds.astype(np.float64), 2.0).mean(axis=1),
        ("l2", 1.0): (0.5 * tds.astype(np.float64) ** 2).mean(axis=1),
    }
    # Hand-computed for row 0: huber(1) = (0.125 + 2.5 + 0.5 + 0) / 4, l2 = (0.125+4.5+0.5)/4.
    np.testing.assert_allclose(want["huber", 1.0][0], 3.125 / 4)
    np.testing.assert_allclose(want["l2", 1.0][0], 5.125 / 4)
    for (kind, delta), expected in want.items():
        if transform == "plain":
            got = [losses.td_loss(jnp.asarray(row), kind, delta) for row in tds]
        elif transform == "jit":
            got = [_td_loss_jit(jnp.asarray(row), kind=kind, huber_delta=delta) for row in tds]
        else:
            got = jax.vmap(lambda t, k=kind, d=delta: losses.td_loss(t, k, d))(jnp.asarray(tds))
        got = np.asarray(jnp.stack(got) if isinstance(got, list) else got)
        assert got.shape == (2,)
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_td_loss_unknown_kind_raises():
    with pytest.raises(ValueError, match="'mse'"):
        losses.td_loss(jnp.zeros(3), "mse")
