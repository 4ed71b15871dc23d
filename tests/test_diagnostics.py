"""The health signals (jaxdqn.core.diagnostics, Learner.inspect) against plain NumPy, plain,
under jit and under vmap; and the loop's rows of them."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_CHAIN, jitted_train

import jaxdqn
from jaxdqn.core import diagnostics
from jaxdqn.core.learner import InspectSignals, hidden_features

RNG = np.random.default_rng(0)
# Layer activations with two silent units and one nearly silent unit (ReLU-like).
FEATURES = np.abs(RNG.normal(size=(32, 8))).astype(np.float32)
FEATURES[:, 0] = 0.0
FEATURES[:, 1] = 0.0
FEATURES[:, 2] *= 0.05


def numpy_dormant(h: np.ndarray, tau: float) -> float:
    activity = np.abs(h).mean(axis=0)
    return float(np.mean(activity / activity.mean() <= tau))


def numpy_srank(h: np.ndarray, delta: float = 0.01) -> int:
    sigma = np.linalg.svd(h, compute_uv=False)
    share = np.cumsum(sigma) / sigma.sum()
    return int(np.searchsorted(share, 1.0 - delta) + 1)


def numpy_entropy(q: np.ndarray) -> float:
    counts = np.bincount(q.argmax(axis=1), minlength=q.shape[1]) / len(q)
    nonzero = counts[counts > 0]
    return float(-(nonzero * np.log(nonzero)).sum())


def three_ways(fn, *args):
    """``fn(*args)`` plain, jitted, and vmapped over a stack of two copies."""
    plain = fn(*args)
    jitted = jax.jit(fn)(*args)
    stacked = jax.vmap(fn)(*(jnp.stack([a, a]) for a in args))
    return [np.asarray(plain), np.asarray(jitted), *np.asarray(stacked)]


def test_dormant_share_matches_numpy():
    # Hand count: units 0 and 1 score 0; unit 2 scores about 0.05 / (6.05 / 8) < 0.1.
    assert numpy_dormant(FEATURES, 0.1) == pytest.approx(3 / 8)
    assert numpy_dormant(FEATURES, 0.025) == pytest.approx(2 / 8)
    for tau in diagnostics.DORMANT_THRESHOLDS:
        for value in three_ways(lambda h, tau=tau: diagnostics.dormant_share(h, tau), FEATURES):
            assert value == pytest.approx(numpy_dormant(FEATURES, tau))


def test_dormant_share_of_a_silent_layer_is_one():
    assert float(diagnostics.dormant_share(jnp.zeros((4, 3)), 0.1)) == 1.0


def test_effective_rank_matches_numpy_and_hand_counts():
    # Rank 2 by construction: two outer products.
    a, b = RNG.normal(size=(32, 1)), RNG.normal(size=(32, 1))
    rank2 = (a @ RNG.normal(size=(1, 8)) + b @ RNG.normal(size=(1, 8))).astype(np.float32)
    assert numpy_srank(rank2) <= 2
    # A wide layer of rank 1: float32 rounding of its 255 zero eigenvalues must not count
    # as rank (it made 2 of it).
    rank1_wide = (RNG.normal(size=(256, 1)) @ RNG.normal(size=(1, 256))).astype(np.float32)
    assert numpy_srank(rank1_wide) == 1
    for h in (FEATURES, rank2, rank1_wide, np.eye(6, dtype=np.float32)):
        for value in three_ways(diagnostics.effective_rank, h):
            assert int(value) == numpy_srank(h)
    # Identity: equal singular values, so every one is needed.
    assert int(diagnostics.effective_rank(jnp.eye(6))) == 6
    assert int(diagnostics.effective_rank(jnp.zeros((5, 4)))) == 0


def test_symmetric_eigenvalues_match_numpy():
    for n in (1, 2, 7, 64):
        a = RNG.normal(size=(n, n)).astype(np.float32)
        a = a @ a.T
        expected = np.linalg.eigvalsh(a.astype(np.float64))
        for value in three_ways(diagnostics.symmetric_eigenvalues, a):
            np.testing.assert_allclose(value, expected, atol=1e-5 * np.abs(a).max())
    # Repeated eigenvalues and a diagonal matrix.
    np.testing.assert_allclose(diagnostics.symmetric_eigenvalues(jnp.eye(4) * 3), [3.0] * 4)
    diagonal = np.diag([5.0, -1.0, 2.0]).astype(np.float32)
    np.testing.assert_allclose(diagnostics.symmetric_eigenvalues(diagonal), [-1, 2, 5], atol=1e-5)


def test_policy_churn_and_action_entropy_match_numpy():
    before = RNG.normal(size=(40, 3)).astype(np.float32)
    after = before.copy()
    after[:10] = after[:10, ::-1]  # reverses the order of 10 rows' actions
    expected = float(np.mean(before.argmax(1) != after.argmax(1)))
    assert 0 < expected <= 0.25
    for value in three_ways(diagnostics.policy_churn, before, after):
        assert value == pytest.approx(expected)
    for value in three_ways(diagnostics.greedy_action_entropy, before):
        assert value == pytest.approx(numpy_entropy(before), rel=1e-5)
    one_action = np.tile([[0.0, 1.0, 0.0]], (8, 1)).astype(np.float32)
    assert float(diagnostics.greedy_action_entropy(one_action)) == 0.0
    even = np.eye(4, dtype=np.float32)
    assert float(diagnostics.greedy_action_entropy(even)) == pytest.approx(np.log(4))


@pytest.mark.parametrize("q", [0.0, 0.25, 0.9, 1.0])
@pytest.mark.parametrize("n", [1, 2, 7, 128])
def test_quantile_matches_numpy(n, q):
    values = RNG.normal(size=n).astype(np.float32)
    expected = np.quantile(values.astype(np.float64), q)
    for value in three_ways(lambda v: diagnostics.quantile(v, q), values):
        assert value == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_quantile_of_values_with_a_nan_is_nan_and_q_is_checked():
    assert np.isnan(diagnostics.quantile(jnp.array([1.0, jnp.nan, 3.0]), 0.5))
    with pytest.raises(ValueError, match=r"^q=1.5 is invalid: must be in \[0, 1\]"):
        diagnostics.quantile(jnp.ones(3), 1.5)


def test_tree_is_finite():
    assert bool(diagnostics.tree_is_finite({"a": jnp.ones(3), "n": jnp.int32(4)}))
    assert not bool(diagnostics.tree_is_finite({"a": jnp.array([1.0, jnp.inf])}))
    assert not bool(jax.jit(diagnostics.tree_is_finite)([jnp.array([jnp.nan])]))


def test_inspect_reads_the_network_sown_features():
    spec = jaxdqn.EnvSpec(
        obs_shape=(3,), obs_dtype=np.float32, num_actions=2, max_episode_steps=None
    )
    network = jaxdqn.make_q_network(spec, network="mlp", hidden_sizes=(5, 4))
    obs = jnp.asarray(RNG.normal(size=(16, 3)), jnp.float32)
    params = network.init(jax.random.key(0), obs)
    assert set(params) == {"params"}  # sown features are not part of the parameters
    q_values, layers = hidden_features(network, params, obs)
    np.testing.assert_array_equal(q_values, network.apply(params, obs))
    assert [h.shape for h in layers] == [(16, 5), (16, 4)]
    # The first layer by hand: relu(obs @ W + b).
    dense = params["params"]["Dense_0"]
    by_hand = np.maximum(np.asarray(obs) @ dense["kernel"] + dense["bias"], 0.0)
    np.testing.assert_allclose(layers[0], by_hand, rtol=1e-5, atol=1e-6)


def test_non_finite_parameters_leave_every_other_signal_unmeasured():
    learner = jaxdqn.build(TINY_CHAIN).learner
    obs = jnp.asarray(RNG.normal(size=(8, 1)), jnp.float32)
    state = learner.init(jax.random.key(0), obs)
    batch = jaxdqn.Batch(
        obs=obs, action=jnp.zeros(8, jnp.int32), reward=jnp.ones(8), discount=jnp.full(8, 0.9),
        next_obs=obs, weight=jnp.ones(8),
    )  # fmt: skip
    healthy = learner.inspect(state, state.params, batch)
    assert float(healthy.params_finite) == 1.0 and np.isfinite(healthy.feature_rank)
    broken = state._replace(params=jax.tree.map(lambda x: x * jnp.nan, state.params))
    signals = jax.jit(learner.inspect)(broken, state.params, batch)
    assert float(signals.params_finite) == 0.0
    # A NaN layer must not read as "all units dormant", "rank 0" or "one greedy action".
    assert all(np.isnan(v) for v in signals[:-1])


def test_loop_rows_hold_the_signals(tiny_chain_run):
    _, states, metrics = tiny_chain_run
    for name in InspectSignals._fields:
        assert metrics[name].shape == metrics["env_steps"].shape
    before = np.asarray(metrics["updates"]) == 0
    after = ~before
    assert before.any() and after.any()
    assert np.isnan(np.asarray(metrics["q_abs_max"])[before]).all()
    assert np.isfinite(np.asarray(metrics["q_abs_max"])[after]).all()
    assert (np.asarray(metrics["params_finite"])[after] == 1).all()
    assert (np.asarray(metrics["non_finite"])[after] == 0).all()
    # ChainWalk's rewards are 1, 0 and -0.1: the largest |reward| seen is 1.
    assert np.asarray(metrics["reward_abs_max"]).max() == 1.0
    grad_norm, grad_max = np.asarray(metrics["grad_norm"]), np.asarray(metrics["grad_norm_max"])
    assert (grad_max[after] >= grad_norm[after] * (1 - 1e-6)).all()
    # The last window's max |Q| on its reference batch is at most the network's max |Q|
    # over all six states (the batch holds some of them).
    network = jaxdqn.build(TINY_CHAIN).q_network
    from jaxdqn.envs import chain_walk_observations

    every_state = network.apply(
        jax.tree.map(lambda x: x[0], states.params), chain_walk_observations()
    )
    assert float(metrics["q_abs_max"][0, -1]) <= float(jnp.abs(every_state).max()) + 1e-5


def test_signals_leave_the_run_unchanged(tiny_chain_run):
    keys, states, metrics = tiny_chain_run
    quiet = dataclasses.replace(TINY_CHAIN, diagnostics=False)
    quiet_states, quiet_metrics = jitted_train(quiet, True)(keys)
    for a, b in zip(
        jax.tree.leaves(states.params), jax.tree.leaves(quiet_states.params), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert "q_abs_max" not in quiet_metrics
    np.testing.assert_array_equal(metrics["loss"], quiet_metrics["loss"])
