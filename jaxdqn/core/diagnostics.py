"""Health signals of a Q-network, computed inside the compiled loop.

Each function is pure, works on one seed's arrays and runs under ``jax.jit`` and
``jax.vmap``. The loop evaluates them once per log window on a reference batch drawn from
the replay (:meth:`jaxdqn.core.learner.Learner.inspect`); :mod:`jaxdqn.host.doctor`
turns their rows into findings.

* :func:`dormant_share`: the share of hidden units that have gone quiet (Sokar et al.
  2023, "The Dormant Neuron Phenomenon in Deep Reinforcement Learning").
* :func:`effective_rank`: srank of a feature matrix (Kumar et al. 2021, "Implicit
  Under-Parameterization Inhibits Data-Efficient Deep Reinforcement Learning").
* :func:`policy_churn`: the share of observations whose greedy action changed (Schaul
  et al. 2022, "The Phenomenon of Policy Churn").
* :func:`greedy_action_entropy`: how spread the greedy actions are over a batch.
* :func:`tree_is_finite`: whether every leaf of a pytree is finite.
* :func:`quantile`: a quantile of a vector, as NumPy's default method gives it.
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp

DORMANT_THRESHOLDS = (0.1, 0.025)  # τ of Sokar et al. (2023): 0.1 and, stricter, 0.025
SRANK_DELTA = 0.01  # δ of Kumar et al. (2021)


def dormant_share(features: jax.Array, tau: chex.Numeric) -> jax.Array:
    """Share of a layer's units that are τ-dormant.

    A unit's score is its mean absolute activation over the batch divided by the mean of
    that over the layer's units, ``s_i = mean_b |h_bi| / mean_k mean_b |h_bk|``; the unit
    is dormant when ``s_i <= tau``. A layer that is silent everywhere has every unit
    dormant.

    Args:
      features: ``[B, U]`` activations of one hidden layer.
      tau: the threshold (0.1 and 0.025 in the paper).

    Returns:
      float32 ``[]`` in [0, 1].
    """
    activity = jnp.mean(jnp.abs(features.astype(jnp.float32)), axis=0)  # [U]
    layer_mean = jnp.mean(activity)
    score = jnp.where(layer_mean > 0, activity / jnp.where(layer_mean > 0, layer_mean, 1.0), 0.0)
    return jnp.mean(score <= tau, dtype=jnp.float32)


def effective_rank(features: jax.Array, delta: chex.Numeric = SRANK_DELTA) -> jax.Array:
    """srank: the fewest singular values of ``features`` holding a ``1 - delta`` share of
    their sum, ``min {k : sum_{i<=k} σ_i >= (1 - δ) sum_i σ_i}`` (σ in decreasing order).

    The singular values come from :func:`symmetric_eigenvalues` of the Gram matrix, in
    plain JAX operations: LAPACK's SVD inside the loop of a program whose seeds are split
    over CPU devices never returns. Eigenvalues below ``U * eps_float32 * λmax``, float32
    rounding of exact zeros, count as 0.

    Args:
      features: ``[B, U]`` activations of the last hidden layer.
      delta: the share left out (0.01 in the paper).

    Returns:
      int32 ``[]`` in [0, U]; 0 for an all-zero matrix.
    """
    h = features.astype(jnp.float32)
    scale = jnp.sqrt(jnp.sum(h * h))
    h = h / jnp.where(scale > 0, scale, 1.0)
    eigenvalues = symmetric_eigenvalues(h.T @ h)  # increasing, summing to 1
    # float32 rounding leaves eigenvalues of ~U * eps * λmax where the exact ones are 0;
    # their square roots (~3e-3 σmax each) would count as rank. Below that floor: 0.
    floor = h.shape[1] * jnp.finfo(jnp.float32).eps * eigenvalues[-1]
    sigma = jnp.sqrt(jnp.where(eigenvalues > floor, eigenvalues, 0.0))[::-1]  # decreasing
    total = jnp.sum(sigma)
    reached = jnp.cumsum(sigma) >= (1.0 - delta) * total
    return jnp.where(scale > 0, jnp.argmax(reached) + 1, 0).astype(jnp.int32)


def symmetric_eigenvalues(matrix: jax.Array, iterations: int = 40) -> jax.Array:
    """Eigenvalues of a symmetric matrix ``[n, n]`` in increasing order (float32 ``[n]``),
    in plain JAX operations: Householder reduction to a tridiagonal matrix, then bisection
    on Sturm sequence counts (``iterations`` halvings of the Gershgorin interval)."""
    diagonal, off = _tridiagonal(matrix.astype(jnp.float32))
    radius = jnp.abs(jnp.pad(off, (1, 0))) + jnp.abs(jnp.pad(off, (0, 1)))
    n = diagonal.shape[0]
    low = jnp.full(n, jnp.min(diagonal - radius))
    high = jnp.full(n, jnp.max(diagonal + radius))
    index = jnp.arange(n)

    def halve(_, bounds):
        low, high = bounds
        mid = 0.5 * (low + high)
        above = _count_below(diagonal, off, mid) <= index  # the index-th lies above mid
        return jnp.where(above, mid, low), jnp.where(above, high, mid)

    low, high = jax.lax.fori_loop(0, iterations, halve, (low, high))
    return 0.5 * (low + high)


def _tridiagonal(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Diagonal ``[n]`` and off-diagonal ``[n - 1]`` of a tridiagonal matrix with the
    eigenvalues of the symmetric ``a`` (Householder reflections ``a <- H a H``)."""
    n = a.shape[0]
    rows = jnp.arange(n)

    def reflect(k, a):
        x = jnp.where(rows > k, a[:, k], 0.0)
        norm = jnp.sqrt(jnp.sum(x * x))
        alpha = -jnp.where(x[k + 1] >= 0, 1.0, -1.0) * norm
        v = x.at[k + 1].add(-alpha)
        length = jnp.sqrt(jnp.sum(v * v))
        v = jnp.where(length > 0, v / jnp.where(length > 0, length, 1.0), 0.0)
        p = a @ v
        w = 2.0 * p - 2.0 * jnp.dot(v, p) * v
        return a - jnp.outer(v, w) - jnp.outer(w, v)

    a = jax.lax.fori_loop(0, max(n - 2, 0), reflect, a)
    return jnp.diagonal(a), jnp.diagonal(a, offset=1)


def _count_below(diagonal: jax.Array, off: jax.Array, shifts: jax.Array) -> jax.Array:
    """For each shift ``λ`` ``[m]``, how many eigenvalues of the tridiagonal matrix are
    below it: the negative terms of ``q_i = d_i - λ - e_{i-1}^2 / q_{i-1}``."""
    tiny = jnp.finfo(jnp.float32).tiny
    squares = jnp.pad(off * off, (1, 0))

    def term(q, inputs):
        d, e2 = inputs
        q = d - shifts - e2 / jnp.where(jnp.abs(q) > tiny, q, tiny)
        return q, q < 0

    _, negative = jax.lax.scan(term, jnp.ones_like(shifts), (diagonal, squares))
    return jnp.sum(negative, axis=0)


def quantile(values: jax.Array, q: float) -> jax.Array:
    """The ``q`` quantile of ``values`` by linear interpolation between the two order
    statistics around position ``q * (n - 1)`` (NumPy's default method). One sort: far
    less for XLA to compile than ``jnp.quantile``'s general form.

    Args:
      values: ``[n]``, n >= 1.
      q: a Python float in [0, 1].

    Returns:
      float32 ``[]``; NaN if any value is NaN.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q={q!r} is invalid: must be in [0, 1].")
    ordered = jnp.sort(values.astype(jnp.float32))  # NaN sorts last
    position = q * (ordered.shape[0] - 1)
    below = int(position)
    above = min(below + 1, ordered.shape[0] - 1)
    weight = position - below
    value = ordered[below] * (1.0 - weight) + ordered[above] * weight
    return jnp.where(jnp.isnan(ordered[-1]), jnp.nan, value)


def policy_churn(q_before: jax.Array, q_after: jax.Array) -> jax.Array:
    """Share of observations whose greedy action differs between two Q-value tables of the
    same batch, ``[B, A]`` each (float32 ``[]`` in [0, 1])."""
    changed = jnp.argmax(q_before, axis=-1) != jnp.argmax(q_after, axis=-1)
    return jnp.mean(changed, dtype=jnp.float32)


def greedy_action_entropy(q_values: jax.Array) -> jax.Array:
    """Entropy, in nats, of how often each action is greedy over a batch.

    Args:
      q_values: ``[B, A]``.

    Returns:
      float32 ``[]`` in [0, log A]: 0 when one action is greedy everywhere, ``log A`` when
      every action is greedy equally often.
    """
    num_actions = q_values.shape[-1]
    greedy = jax.nn.one_hot(jnp.argmax(q_values, axis=-1), num_actions, dtype=jnp.float32)
    share = jnp.mean(greedy, axis=0)  # [A]
    return -jnp.sum(jnp.where(share > 0, share * jnp.log(jnp.where(share > 0, share, 1.0)), 0.0))


def tree_is_finite(tree: Any) -> jax.Array:
    """Whether every element of every floating leaf of ``tree`` is finite (bool ``[]``)."""
    leaves = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)
