"""Target-network sync (jaxdqn.sync_target) and TD errors of a batch (learner.td_errors).

References are plain NumPy; each function runs plain, under ``jax.jit`` and under
``jax.vmap`` (over a batch of ``updates`` values, or over a stack of batches).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdqn
from jaxdqn.core.learner import td_errors
from jaxdqn.core.types import Batch

TRANSFORMS = ("plain", "jit", "vmap")


@pytest.fixture(params=TRANSFORMS)
def transform(request):
    return request.param


def _tree(seed):
    rng = np.random.default_rng(seed)
    return {
        "dense": {
            "kernel": rng.normal(size=(2, 3)).astype(np.float32),
            "bias": rng.normal(size=(3,)).astype(np.float32),
        },
        "scale": np.float32(rng.normal()),
    }


PARAMS, TARGET = _tree(0), _tree(1)
PARAMS_J = jax.tree.map(jnp.asarray, PARAMS)
TARGET_J = jax.tree.map(jnp.asarray, TARGET)
UPDATES = np.arange(0, 9, dtype=np.int32)
_sync_jit = jax.jit(jaxdqn.sync_target)


def sync_over_updates(transform, period, tau):
    """New target params for every value in UPDATES, stacked on a leading axis (numpy)."""
    if transform == "vmap":
        fn = jax.vmap(jaxdqn.sync_target, in_axes=(None, None, 0, None, None))
        out = fn(PARAMS_J, TARGET_J, jnp.asarray(UPDATES), period, tau)
    else:
        fn = _sync_jit if transform == "jit" else jaxdqn.sync_target
        # Under jit, period and tau are traced too: one compile for every case below.
        rows = [
            fn(PARAMS_J, TARGET_J, jnp.int32(u), jnp.int32(period), jnp.float32(tau))
            for u in UPDATES
        ]
        out = jax.tree.map(lambda *xs: jnp.stack(xs), *rows)
    return jax.tree.map(np.asarray, out)


def np_expected(period, tau):
    """NumPy reference: blend where updates % period == 0, else keep the target."""
    synced = (UPDATES % period) == 0

    def leaf(p, t):
        p, t = np.asarray(p, np.float64), np.asarray(t, np.float64)
        blended = tau * p + (1.0 - tau) * t
        return np.stack([blended if s else t for s in synced])

    return jax.tree.map(leaf, PARAMS, TARGET)


def _assert_tree_close(got, want, **kw):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert g.shape == w.shape and g.dtype == np.float32
        np.testing.assert_allclose(g, w, **kw)


def test_hard_copy_exactly_on_multiples_of_period(transform):
    period = 3
    got = sync_over_updates(transform, period, 1.0)
    for i, u in enumerate(UPDATES):
        src = PARAMS if u % period == 0 else TARGET  # u = 0, 3, 6 copy; the rest keep
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(src), strict=True):
            np.testing.assert_array_equal(g[i], w, err_msg=f"updates={u}")
    # Sanity on the reference itself: online and target really differ.
    assert not np.allclose(PARAMS["dense"]["kernel"], TARGET["dense"]["kernel"])


def test_polyak_every_update(transform):
    tau = 0.005
    got = sync_over_updates(transform, 1, tau)
    _assert_tree_close(got, np_expected(1, tau), rtol=1e-6, atol=1e-7)
    # Hand-computed on one scalar: 0.005 * 2 + 0.995 * 4 = 3.99.
    one = jaxdqn.sync_target(jnp.float32(2.0), jnp.float32(4.0), 7, 1, tau)
    np.testing.assert_allclose(float(one), 3.99, rtol=1e-6)


def test_soft_sync_only_on_multiples(transform):
    period, tau = 4, 0.25
    got = sync_over_updates(transform, period, tau)
    _assert_tree_close(got, np_expected(period, tau), rtol=1e-6, atol=1e-7)
    # Off-multiples are bit-exact copies of the old target.
    for i in np.flatnonzero(UPDATES % period):
        np.testing.assert_array_equal(got["scale"][i], TARGET["scale"])


# ---------------------------------------------------------------------------------------
# td_errors against NumPy, from Q-values computed with q_network.apply

B, GAMMA = 16, 0.9


@functools.cache
def _setup(double_q):
    config = jaxdqn.DQNConfig(
        env_id="CartPole-v1", gamma=GAMMA, double_q=double_q, hidden_sizes=(8,)
    )
    q_network = jaxdqn.build(config).q_network
    params = q_network.init(jax.random.key(0), jnp.zeros((1, 4)))
    target_params = q_network.init(jax.random.key(1), jnp.zeros((1, 4)))
    jitted = jax.jit(lambda p, t, b: td_errors(q_network, p, t, b, double_q=config.double_q))
    return config, q_network, params, target_params, jitted


def _batch(seed):
    rng = np.random.default_rng(seed)
    return Batch(
        obs=rng.normal(size=(B, 4)).astype(np.float32),
        action=rng.integers(0, 2, size=B).astype(np.int32),
        reward=rng.normal(size=B).astype(np.float32),
        # gamma^n (n-step) or 0 after a terminal state: td_errors uses it as given.
        discount=np.where(np.arange(B) % 3 == 0, 0.0, GAMMA ** rng.integers(1, 4, B)).astype(
            np.float32
        ),
        next_obs=(2.0 * rng.normal(size=(B, 4))).astype(np.float32),
        weight=np.ones(B, np.float32),
    )


def np_td(double_q, q_tm1, q_t_value, q_t_selector, batch):
    rows = np.arange(len(batch.action))
    discount = batch.discount
    # Double DQN: the online net selects, the target net values; DQN: target max.
    best = q_t_selector.argmax(axis=1) if double_q else q_t_value.argmax(axis=1)
    bootstrap = q_t_value[rows, best]
    q_taken = q_tm1[rows, batch.action]
    return batch.reward + discount * bootstrap - q_taken, q_taken


@pytest.mark.parametrize("double_q", [False, True], ids=["dqn", "double"])
def test_td_errors_match_numpy(double_q, transform):
    config, q_network, params, target_params, jitted = _setup(double_q)
    batches = [_batch(10), _batch(11)]
    jb = [jax.tree.map(jnp.asarray, b) for b in batches]
    if transform == "plain":
        outs = [
            td_errors(q_network, params, target_params, b, double_q=config.double_q) for b in jb
        ]
    elif transform == "jit":
        outs = [jitted(params, target_params, b) for b in jb]
    else:  # vmap over a stack of two batches
        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *jb)
        td, q = jax.vmap(
            lambda b: td_errors(q_network, params, target_params, b, double_q=config.double_q)
        )(stacked)
        outs = [(td[0], q[0]), (td[1], q[1])]

    for batch, (td, q_taken) in zip(batches, outs, strict=True):
        assert td.shape == (B,) and td.dtype == jnp.float32
        assert q_taken.shape == (B,)
        q_tm1 = np.asarray(q_network.apply(params, batch.obs), np.float64)
        q_t_value = np.asarray(q_network.apply(target_params, batch.next_obs), np.float64)
        q_t_selector = np.asarray(q_network.apply(params, batch.next_obs), np.float64)
        want_td, want_q = np_td(double_q, q_tm1, q_t_value, q_t_selector, batch)
        np.testing.assert_allclose(np.asarray(td), want_td, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(q_taken), want_q, rtol=1e-5, atol=1e-6)
        # The batch tells the two variants apart: some rows pick a different next action.
        other, _ = np_td(not double_q, q_tm1, q_t_value, q_t_selector, batch)
        assert np.abs(other - want_td).max() > 1e-4


def test_td_errors_gradient_flows_only_through_q_taken():
    config, q_network, params, target_params, _ = _setup(True)
    batch = jax.tree.map(jnp.asarray, _batch(12))

    def loss(p, t):
        td, _ = td_errors(q_network, p, t, batch, double_q=config.double_q)
        return 0.5 * jnp.sum(td**2)

    g_online, g_target = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, target_params)
    for leaf in jax.tree.leaves(g_target):
        np.testing.assert_array_equal(np.asarray(leaf), 0.0)
    assert any(np.abs(np.asarray(leaf)).max() > 0 for leaf in jax.tree.leaves(g_online))
    # Passing the online params as target too: only the q_taken path carries gradient,
    # so d/dp equals the gradient through q_tm1 alone (-sum td * dq_taken/dp).
    td, _ = td_errors(q_network, params, params, batch, double_q=config.double_q)

    def q_taken_only(p):
        q = q_network.apply(p, batch.obs)
        taken = jnp.take_along_axis(q, batch.action[:, None], axis=1)[:, 0]
        return -jnp.sum(jax.lax.stop_gradient(td) * taken)

    g_same = jax.jit(jax.grad(lambda p: loss(p, p)))(params)
    g_ref = jax.jit(jax.grad(q_taken_only))(params)
    for a, b in zip(jax.tree.leaves(g_same), jax.tree.leaves(g_ref), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
