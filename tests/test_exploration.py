"""Exploration schedules and action selection (jaxdqn.exploration).

Schedules are pinned against NumPy / explicit Python loops at boundary counts. Random
action selection is pinned statistically: with N independent draws the count of an event
of probability p is Binomial(N, p), and every test allows at most 5 standard deviations,
``5 * sqrt(N p (1 - p))`` (a false alarm has probability < 6e-7 per check; the keys are
fixed, so the tests are deterministic anyway).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdqn
from jaxdqn import exploration

TRANSFORMS = ("plain", "jit", "vmap")


@pytest.fixture(params=TRANSFORMS)
def transform(request):
    return request.param


@functools.cache
def _jitted(fn):
    return jax.jit(fn)


def over_rows(fn, transform, *args, in_axes=0):
    """Applies ``fn`` to each row of the mapped args, plain / jitted loop or ``jax.vmap``."""
    axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
    if transform == "vmap":
        return jax.vmap(fn, in_axes=axes)(*args)
    one = _jitted(fn) if transform == "jit" else fn
    n = next(a.shape[0] for a, ax in zip(args, axes, strict=True) if ax == 0)
    rows = [
        one(*(a[i] if ax == 0 else a for a, ax in zip(args, axes, strict=True))) for i in range(n)
    ]
    return jnp.stack(rows)


def binomial_bound(n, p):
    """5-sigma half-width for the count of a probability-``p`` event in ``n`` draws."""
    return 5.0 * math.sqrt(n * p * (1.0 - p))


# ---------------------------------------------------------------------------------------
# Schedules

STEPS = 10
COUNTS = np.array([0, 1, 5, STEPS - 1, STEPS, STEPS + 1, 10**6], np.int32)


def np_linear(count, start, end, steps):
    frac = np.minimum(np.asarray(count, np.float64) / steps, 1.0)
    return start + frac * (end - start)


def loop_exponential(count, start, end, decay):
    """ε ← max(ε_end, ε·decay), applied ``count`` times."""
    eps = start
    for _ in range(int(count)):
        eps = max(end, eps * decay)
        if eps == end:
            break
    return eps


def _linear(c):
    return exploration.linear_schedule(c, 1.0, 0.05, STEPS)


def _exponential(c):
    return exploration.exponential_schedule(c, 1.0, 0.05, 0.9)


def test_linear_schedule(transform):
    got = np.asarray(over_rows(_linear, transform, jnp.asarray(COUNTS)))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np_linear(COUNTS, 1.0, 0.05, STEPS), rtol=1e-6)
    # Hand-computed: count 5 is halfway, 1 - 0.5 * 0.95 = 0.525; at and after steps: end.
    np.testing.assert_allclose(got[[0, 2, 4, 5, 6]], [1.0, 0.525, 0.05, 0.05, 0.05], rtol=1e-6)


def test_linear_schedule_increasing_and_traced_parameters():
    # Temperatures may go up; parameters may be traced (a vmapped hyperparameter sweep).
    starts = jnp.array([0.5, 1.0])
    got = jax.jit(jax.vmap(lambda s: exploration.linear_schedule(COUNTS, s, 2.0, STEPS)))(starts)
    want = np.stack([np_linear(COUNTS, s, 2.0, STEPS) for s in (0.5, 1.0)])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)


def test_exponential_schedule_matches_loop(transform):
    # 0.9**n crosses 0.05 between n = 28 and 29 (ln 0.05 / ln 0.9 = 28.4).
    counts = np.array([0, 1, 2, 10, 28, 29, 30, 10**6], np.int32)
    got = np.asarray(over_rows(_exponential, transform, jnp.asarray(counts)))
    assert got.dtype == np.float32
    want = [loop_exponential(c, 1.0, 0.05, 0.9) for c in counts]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(got[[0, 1, 2]], [1.0, 0.9, 0.81], rtol=1e-6)
    assert got[4] > 0.05 and got[5] == np.float32(0.05)


def _config(schedule, **kw):
    return jaxdqn.DQNConfig(
        env_id="CartPole-v1", exploration_schedule=schedule, exploration_steps=STEPS, **kw
    )


CONFIGS = {
    "linear": (
        _config("linear", exploration_start=1.0, exploration_end=0.1),
        lambda c: np_linear(c, 1.0, 0.1, STEPS),
    ),
    "exponential": (
        _config("exponential", exploration_start=0.8, exploration_end=0.02, exploration_decay=0.5),
        lambda c: np.array([loop_exponential(x, 0.8, 0.02, 0.5) for x in c]),
    ),
    "constant": (
        _config("constant", exploration_start=0.3, exploration_end=0.01),
        lambda c: np.full(np.shape(c), 0.3),
    ),
    "boltzmann_linear": (
        _config("linear", exploration="boltzmann", exploration_start=5.0, exploration_end=0.5),
        lambda c: np_linear(c, 5.0, 0.5, STEPS),
    ),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_exploration_value(name, transform):
    config, reference = CONFIGS[name]
    fn = functools.partial(
        exploration.exploration_value, config.exploration_schedule, params=config
    )
    if transform == "plain":
        got = fn(jnp.asarray(COUNTS))
        scalar = fn(3)
        assert scalar.shape == () and scalar.dtype == jnp.float32
        np.testing.assert_allclose(float(scalar), reference(np.array([3]))[0], rtol=1e-6)
    elif transform == "jit":
        got = jax.jit(fn)(jnp.asarray(COUNTS))
    else:
        got = jax.vmap(fn)(jnp.asarray(COUNTS))
    got = np.asarray(got)
    assert got.shape == COUNTS.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, reference(COUNTS), rtol=1e-5)


# ---------------------------------------------------------------------------------------
# greedy / epsilon_greedy / boltzmann

Q = jnp.array([0.1, 0.7, 0.2, -0.3])  # greedy action 1
A = 4
N = 20_000


def test_greedy_takes_first_argmax_on_ties(transform):
    qs = jnp.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, -1.0, 5.0, 5.0]])
    got = over_rows(exploration.greedy, transform, qs)
    assert got.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(got), [1, 0, 2])


def _eps_greedy(key, eps):
    return exploration.epsilon_greedy(key, Q, eps)


def test_epsilon_zero_is_greedy(transform):
    keys = jax.random.split(jax.random.key(0), 8)
    ties = jnp.array([0.0, 2.0, 2.0, 1.0])
    got = over_rows(exploration.epsilon_greedy, transform, keys, ties, 0.0, in_axes=(0, None, None))
    assert got.dtype == jnp.int32 and got.shape == (8,)
    np.testing.assert_array_equal(np.asarray(got), 1)  # first of the tied maxima


def test_epsilon_greedy_same_key_same_action_across_transforms():
    keys = jax.random.split(jax.random.key(1), 8)
    eps = jnp.float32(0.5)
    results = [
        np.asarray(over_rows(_eps_greedy, t, keys, eps, in_axes=(0, None))) for t in TRANSFORMS
    ]
    for r in results:
        assert r.dtype == np.int32 and r.min() >= 0 and r.max() < A
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])
    # Deterministic in the key.
    again = exploration.epsilon_greedy(keys[3], Q, eps)
    assert int(again) == results[0][3]


MASK = jnp.array([True, False, True, True])  # the greedy action 1 is illegal


def test_masked_greedy_takes_the_best_legal_action(transform):
    qs = jnp.array([[1.0, 3.0, 2.0, 0.0], [0.0, 9.0, -1.0, -1.0], [5.0, 1.0, 1.0, 1.0]])
    masks = jnp.array(
        [[True, False, True, True], [True, False, True, True], [False, True, True, False]]
    )
    got = np.asarray(over_rows(exploration.greedy, transform, qs, masks))
    np.testing.assert_array_equal(got, [2, 0, 1])  # masked argmax, first on ties


def test_masked_epsilon_greedy_is_uniform_over_legal_actions_and_greedy_among_them():
    keys = jax.random.split(jax.random.key(7), N)
    pick = jax.jit(jax.vmap(lambda k, e: exploration.epsilon_greedy(k, Q, e, MASK)))
    explore = np.asarray(pick(keys, jnp.ones(N)))
    counts = np.bincount(explore, minlength=A) / N
    np.testing.assert_allclose(counts, [1 / 3, 0.0, 1 / 3, 1 / 3], atol=0.015)
    greedy = np.asarray(pick(keys, jnp.zeros(N)))
    np.testing.assert_array_equal(greedy, 2)  # Q = [0.1, 0.7, 0.2, -0.3] without action 1


def test_masked_boltzmann_matches_softmax_over_legal_actions():
    keys = jax.random.split(jax.random.key(8), N)
    draw = jax.jit(jax.vmap(lambda k: exploration.boltzmann(k, Q, 0.5, MASK)))
    counts = np.bincount(np.asarray(draw(keys)), minlength=A) / N
    logits = np.asarray(Q) / 0.5
    p = np.where(np.asarray(MASK), np.exp(logits - logits.max()), 0.0)
    np.testing.assert_allclose(counts, p / p.sum(), atol=0.015)


# One compiled program per selector: every statistical test uses N keys (and a per-key ε).
_eps_many_jit = jax.jit(jax.vmap(_eps_greedy))


def _eps_many(keys, eps):
    return _eps_many_jit(keys, jnp.broadcast_to(jnp.asarray(eps, jnp.float32), keys.shape))


def _frequencies(actions, num_actions):
    return np.bincount(np.asarray(actions), minlength=num_actions)


@pytest.mark.parametrize("eps", [1.0, 0.3])
def test_epsilon_greedy_frequencies(eps):
    keys = jax.random.split(jax.random.key(2), N)
    actions = _eps_many(keys, jnp.float32(eps))
    assert actions.dtype == jnp.int32
    counts = _frequencies(actions, A)
    assert counts.sum() == N
    # P(greedy) = 1 - ε + ε/A; every other action ε/A.
    p = np.full(A, eps / A)
    p[1] += 1.0 - eps
    for a in range(A):
        assert abs(counts[a] - N * p[a]) <= binomial_bound(N, p[a]), (a, counts, N * p)


def test_epsilon_greedy_traced_epsilon_under_vmap():
    # A batch of ε values in one call: ε = 0 rows are all greedy, ε = 1 rows explore.
    keys = jax.random.split(jax.random.key(3), N)
    eps = jnp.where(jnp.arange(N) % 2 == 0, 0.0, 1.0)
    got = np.asarray(_eps_many(keys, eps))
    np.testing.assert_array_equal(got[::2], 1)
    counts = _frequencies(got[1::2], A)
    for a in range(A):
        assert abs(counts[a] - N / 2 / A) <= binomial_bound(N // 2, 1 / A), counts


def _boltzmann(key, temperature):
    return exploration.boltzmann(key, Q, temperature)


_boltzmann_many = jax.jit(jax.vmap(_boltzmann, in_axes=(0, None)))


def np_softmax(x):
    z = np.exp(x - x.max())
    return z / z.sum()


@pytest.mark.parametrize("temperature", [0.7, 5.0])
def test_boltzmann_frequencies_match_softmax(temperature):
    keys = jax.random.split(jax.random.key(4), N)
    actions = _boltzmann_many(keys, jnp.float32(temperature))
    assert actions.dtype == jnp.int32
    counts = _frequencies(actions, A)
    p = np_softmax(np.asarray(Q, np.float64) / temperature)
    for a in range(A):
        assert abs(counts[a] - N * p[a]) <= binomial_bound(N, p[a]), (a, counts, N * p)
    # Chi-square goodness of fit, df = A - 1 = 3: chi2.ppf(1 - 1e-4, 3) = 21.108.
    chi2 = ((counts - N * p) ** 2 / (N * p)).sum()
    assert chi2 < 21.108, (chi2, counts, N * p)


def test_boltzmann_tiny_temperature_is_greedy(transform):
    keys = jax.random.split(jax.random.key(5), 8)
    got = over_rows(_boltzmann, transform, keys, jnp.float32(1e-3), in_axes=(0, None))
    assert got.dtype == jnp.int32
    # Logit gaps are >= 0.5 / 1e-3 = 500: the non-greedy mass is below e^-500.
    np.testing.assert_array_equal(np.asarray(got), 1)


def test_boltzmann_same_key_same_action_across_transforms():
    keys = jax.random.split(jax.random.key(6), 8)
    temperature = jnp.float32(1.0)
    results = [
        np.asarray(over_rows(_boltzmann, t, keys, temperature, in_axes=(0, None)))
        for t in TRANSFORMS
    ]
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


@pytest.mark.parametrize("selector", ["epsilon_greedy", "boltzmann"])
def test_split_keys_are_independent_and_same_key_repeats(selector):
    if selector == "epsilon_greedy":
        many, value, p = _eps_many, jnp.float32(1.0), np.full(A, 1 / A)
    else:
        many, value = _boltzmann_many, jnp.float32(5.0)
        p = np_softmax(np.asarray(Q, np.float64) / 5.0)
    keys = jax.random.split(jax.random.key(7), N)  # one key per env
    got = np.asarray(many(keys, value))
    # Neighbouring envs agree as often as independent draws would: P(equal) = sum p².
    # Indicators of overlapping pairs are 1-dependent, so the variance is
    # (N-1) q (1-q) + 2 (N-2) (sum p³ - q²) with q = sum p²; allow 5 standard deviations.
    q, s3 = (p**2).sum(), (p**3).sum()
    var = (N - 1) * q * (1 - q) + 2 * (N - 2) * (s3 - q**2)
    matches = (got[:-1] == got[1:]).sum()
    assert abs(matches - (N - 1) * q) <= 5 * np.sqrt(var), (matches, (N - 1) * q)
    # The same key for every env gives the same action everywhere.
    same = np.asarray(many(keys[np.zeros(N, np.int32)], value))
    np.testing.assert_array_equal(same, got[0])


def test_no_exploration_is_greedy_among_legal_actions():
    keys = jax.random.split(jax.random.key(8), 64)
    choose = jax.jit(jax.vmap(lambda k: exploration.select_action("none", k, Q, 1.0)))
    np.testing.assert_array_equal(choose(keys), int(np.argmax(np.asarray(Q))))
    mask = jnp.arange(Q.shape[0]) != int(np.argmax(np.asarray(Q)))
    masked = exploration.select_action("none", keys[0], Q, 1.0, mask)
    assert int(masked) == int(np.argmax(np.where(mask, np.asarray(Q), -np.inf)))
