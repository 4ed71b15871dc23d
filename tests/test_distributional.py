"""C51 (jaxdqn.losses.categorical_*) against a plain-NumPy Algorithm 1, and the learner
that uses it.

The reference follows Bellemare, Dabney & Munos (2017), Algorithm 1, line by line, with
the usual correction for a target atom that lands exactly on a support atom (``l == u``,
where the printed algorithm drops the mass).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdqn
from jaxdqn import losses
from jaxdqn.core.learner import categorical_td_errors, make_learner, make_optimizer
from jaxdqn.core.networks import support
from jaxdqn.core.types import Batch

TRANSFORMS = ("plain", "jit", "vmap")
ATOMS = np.linspace(-5.0, 5.0, 11)
_JITTED = {
    losses.categorical_q_learning: jax.jit(losses.categorical_q_learning),
    losses.categorical_double_q_learning: jax.jit(losses.categorical_double_q_learning),
}


def np_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_algorithm_1(target_atoms, probs, z):
    """Bellemare et al. (2017), Algorithm 1: the projection of ``probs`` on the atoms
    ``target_atoms`` (already ``r + γ z``) onto the evenly spaced support ``z``."""
    v_min, v_max, k = z[0], z[-1], len(z)
    dz = (v_max - v_min) / (k - 1)
    m = np.zeros(k)
    for tz, p in zip(target_atoms, probs, strict=True):
        tz = min(max(tz, v_min), v_max)
        b = (tz - v_min) / dz
        low, up = int(np.floor(b)), int(np.ceil(b))
        if low == up:
            m[low] += p
        else:
            m[low] += p * (up - b)
            m[up] += p * (b - low)
    return m


def np_categorical_loss(logits_tm1, a_tm1, r_t, discount_t, logits_t, selector=None):
    """Cross-entropy of each row ``[B]``: ``selector`` ``[B, A]`` picks the next action
    (Double), else the target distributions' means do."""
    probs_t = np_softmax(logits_t)  # [B, A, K]
    if selector is None:
        selector = (probs_t * ATOMS).sum(axis=-1)
    out = []
    for i in range(len(a_tm1)):
        best = int(np.argmax(selector[i]))
        m = np_algorithm_1(r_t[i] + discount_t[i] * ATOMS, probs_t[i, best], ATOMS)
        log_p = np.log(np_softmax(logits_tm1[i, a_tm1[i]]))
        out.append(-(m * log_p).sum())
    return np.array(out)


def batched(fn, transform):
    """``fn`` over one transition -> a function over a batch; the atoms (args 0 and 5)
    are shared."""
    in_axes = (None, 0, 0, 0, 0, None, 0, 0)[: fn.__code__.co_argcount]
    if transform == "vmap":
        return jax.vmap(fn, in_axes=in_axes)
    one = _JITTED[fn] if transform == "jit" else fn

    def loop(*args):
        n = args[1].shape[0]
        pairs = list(zip(args, in_axes, strict=True))
        return jnp.stack([one(*(a if ax is None else a[i] for a, ax in pairs)) for i in range(n)])

    return loop


def random_transitions(seed=0, batch=16, actions=3):
    """Rewards inside and beyond the support, terminated rows (discount 0) and n-step
    discounts γ^m for m in 1..3 (truncated rows bootstrap with γ^m too)."""
    rng = np.random.default_rng(seed)
    k = len(ATOMS)
    logits_tm1 = rng.normal(size=(batch, actions, k)) * 2
    logits_t = rng.normal(size=(batch, actions, k)) * 2
    selector = rng.normal(size=(batch, actions))
    a_tm1 = rng.integers(0, actions, batch)
    r_t = rng.uniform(-3.0, 3.0, batch)
    r_t[:3] = (8.0, -9.0, 0.5)  # beyond both ends of the support, and on an atom
    terminated = rng.random(batch) < 0.3
    steps = rng.integers(1, 4, batch)
    discount_t = np.where(terminated, 0.0, 0.9**steps)
    return logits_tm1, a_tm1, r_t, discount_t, logits_t, selector


def as_jax(*arrays):
    return [jnp.asarray(a, jnp.int32 if a.dtype.kind == "i" else jnp.float32) for a in arrays]


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_categorical_q_learning_matches_algorithm_1(transform):
    logits_tm1, a_tm1, r_t, discount_t, logits_t, _ = random_transitions()
    expected = np_categorical_loss(logits_tm1, a_tm1, r_t, discount_t, logits_t)
    atoms = jnp.asarray(ATOMS, jnp.float32)
    args = as_jax(logits_tm1, a_tm1, r_t, discount_t)
    got = batched(losses.categorical_q_learning, transform)(
        atoms, *args, atoms, jnp.asarray(logits_t, jnp.float32)
    )
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_categorical_double_q_learning_matches_algorithm_1(transform):
    logits_tm1, a_tm1, r_t, discount_t, logits_t, selector = random_transitions(seed=1)
    expected = np_categorical_loss(logits_tm1, a_tm1, r_t, discount_t, logits_t, selector)
    atoms = jnp.asarray(ATOMS, jnp.float32)
    args = as_jax(logits_tm1, a_tm1, r_t, discount_t)
    got = batched(losses.categorical_double_q_learning, transform)(
        atoms, *args, atoms, *as_jax(logits_t, selector)
    )
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # The selector matters: the target's own means pick other actions on some rows.
    plain = np_categorical_loss(logits_tm1, a_tm1, r_t, discount_t, logits_t)
    assert not np.allclose(plain, expected)


@pytest.mark.parametrize("transform", ("plain", "jit"))
def test_projection_matches_algorithm_1_and_keeps_mass_on_the_support(transform):
    rng = np.random.default_rng(2)
    project = (
        jax.jit(losses.categorical_l2_project)
        if transform == "jit"
        else (losses.categorical_l2_project)
    )
    z = jnp.asarray(ATOMS, jnp.float32)
    for _ in range(20):
        probs = np_softmax(rng.normal(size=len(ATOMS)) * 3)
        target = rng.uniform(-1, 1) + rng.uniform(0, 1.2) * ATOMS  # partly off the support
        got = np.asarray(project(jnp.asarray(target, jnp.float32), jnp.asarray(probs), z))
        np.testing.assert_allclose(got, np_algorithm_1(target, probs, ATOMS), atol=1e-5)
        assert got.min() >= 0.0
        np.testing.assert_allclose(got.sum(), 1.0, rtol=1e-5)
        # Inside the support the projection keeps the mean of the clipped distribution.
        clipped = np.clip(target, ATOMS[0], ATOMS[-1])
        np.testing.assert_allclose(got @ ATOMS, probs @ clipped, atol=1e-4)


def test_projection_onto_an_uneven_support():
    z = jnp.asarray([-1.0, 0.0, 0.5, 2.0, 5.0])
    got = losses.categorical_l2_project(jnp.asarray([0.25, 2.0, 4.0, 9.0]), jnp.full(4, 0.25), z)
    # 0.25 lies halfway between 0 and 0.5; 2.0 is an atom; 4.0 is 2/3 of the way from 2
    # to 5; 9.0 is clipped to 5.
    expected = np.array([0.0, 0.125, 0.125, 0.25 + 0.25 / 3, 0.25 * 2 / 3 + 0.25])
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_a_terminal_row_targets_the_reward_alone():
    logits = jnp.zeros((2, len(ATOMS)))
    atoms = jnp.asarray(ATOMS, jnp.float32)
    grads = jax.grad(
        lambda lt: losses.categorical_q_learning(atoms, logits, 0, 2.0, 0.0, atoms, lt)
    )(jax.random.normal(jax.random.key(0), (2, len(ATOMS))))
    np.testing.assert_array_equal(grads, 0.0)  # the target's gradient is stopped
    loss = losses.categorical_q_learning(atoms, logits, 0, 2.0, 0.0, atoms, logits)
    # All the target's mass is on the atom 2.0; the prediction is uniform over 11 atoms.
    np.testing.assert_allclose(loss, np.log(len(ATOMS)), rtol=1e-6)


# ---------------------------------------------------------------------------------------
# The learner with a distributional head.

CONFIG = jaxdqn.DQNConfig(
    env_id="CartPole-v1",
    total_timesteps=2_000,
    learning_starts=512,
    buffer_size=1_000,
    batch_size=32,
    exploration_steps=1_000,
    hidden_sizes=(16,),
    distributional=True,
    num_atoms=11,
    v_min=-5.0,
    v_max=5.0,
)


def _batch(seed=0, batch=8):
    rng = np.random.default_rng(seed)
    return Batch(
        obs=jnp.asarray(rng.normal(size=(batch, 4)), jnp.float32),
        action=jnp.asarray(rng.integers(0, 2, batch), jnp.int32),
        reward=jnp.asarray(rng.uniform(-2, 2, batch), jnp.float32),
        discount=jnp.asarray(np.where(rng.random(batch) < 0.3, 0.0, 0.9), jnp.float32),
        next_obs=jnp.asarray(rng.normal(size=(batch, 4)), jnp.float32),
        weight=jnp.ones(batch, jnp.float32),
    )


@pytest.mark.parametrize("double_q", (True, False))
def test_categorical_td_errors_match_numpy_on_the_network(double_q):
    network = jaxdqn.build(dataclasses.replace(CONFIG, double_q=double_q)).q_network
    params = network.init(jax.random.key(0), jnp.zeros((1, 4)))
    target = network.init(jax.random.key(1), jnp.zeros((1, 4)))
    batch = _batch()
    ce, kl, td, q_taken = jax.jit(
        categorical_td_errors, static_argnums=0, static_argnames="double_q"
    )(network, params, target, batch, double_q=double_q)
    _, logits_tm1 = network.apply(params, batch.obs, return_logits=True)
    q_t, logits_t = network.apply(target, batch.next_obs, return_logits=True)
    selector = network.apply(params, batch.next_obs) if double_q else None
    args = [np.asarray(x, np.float64) for x in (batch.reward, batch.discount)]
    expected = np_categorical_loss(
        np.asarray(logits_tm1, np.float64), np.asarray(batch.action), *args,
        np.asarray(logits_t, np.float64), None if selector is None else np.asarray(selector),
    )  # fmt: skip
    np.testing.assert_allclose(ce, expected, rtol=1e-4, atol=1e-5)
    # Rows are prioritized by KL(target || prediction): the loss less the target's entropy.
    probs_t = np_softmax(np.asarray(logits_t, np.float64))
    pick_t = np.argmax(np.asarray(q_t if selector is None else selector), axis=1)
    entropy = []
    for i in range(8):
        m = np_algorithm_1(args[0][i] + args[1][i] * ATOMS, probs_t[i, pick_t[i]], ATOMS)
        entropy.append(-np.sum(m[m > 0] * np.log(m[m > 0])))
    np.testing.assert_allclose(kl, expected - np.array(entropy), rtol=1e-3, atol=1e-4)
    assert kl.min() > -1e-5
    # The means are the network's Q-values, and the TD error is that of the means.
    means = (np_softmax(np.asarray(logits_tm1, np.float64)) * ATOMS).sum(-1)
    rows = np.arange(8)
    np.testing.assert_allclose(q_taken, means[rows, batch.action], rtol=1e-5, atol=1e-5)
    pick = np.argmax(np.asarray(q_t if selector is None else selector), axis=1)
    want_td = args[0] + args[1] * np.asarray(q_t)[rows, pick] - means[rows, batch.action]
    np.testing.assert_allclose(td, want_td, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(support(network), ATOMS, rtol=1e-6, atol=1e-6)


def test_distributional_learner_updates_under_jit_and_vmap():
    components = jaxdqn.build(CONFIG)
    learner = make_learner(components.q_network, make_optimizer(), loss="huber")
    hparams = jaxdqn.Hyperparams.from_config(CONFIG)
    keys = jax.random.split(jax.random.key(0), 3)
    states = jax.vmap(learner.init, in_axes=(0, None))(keys, jnp.zeros((1, 4)))
    batches = jax.tree.map(lambda *x: jnp.stack(x), *(_batch(s) for s in range(3)))
    update = jax.jit(jax.vmap(learner.update, in_axes=(0, 0, None)))
    new, stats, priority = update(states, batches, hparams)
    assert priority.shape == (3, 8) and bool(jnp.all(priority >= -1e-5))
    for i in range(3):  # the vmapped update equals the one-seed update
        one = jax.tree.map(lambda x, i=i: x[i], (states, batches))
        _, want_stats, want_priority = jax.jit(learner.update)(*one, hparams)
        np.testing.assert_allclose(priority[i], want_priority, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stats.loss[i], want_stats.loss, rtol=1e-5)
        assert float(stats.loss[i]) > float(np.mean(want_priority))  # CE = KL + entropy
    assert int(new.updates[0]) == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("num_atoms", 1, "DQNConfig.num_atoms=1 is invalid"),
        ("v_max", -10.0, "DQNConfig.v_max=-10.0 is invalid: must be > v_min=-5.0"),
        ("v_min", float("nan"), "DQNConfig.v_min=nan is invalid"),
    ],
)
def test_bad_support_is_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(CONFIG, **{field: value})
