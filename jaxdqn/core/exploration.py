"""Exploration: schedules (linear, exponential, constant), ε-greedy and Boltzmann.

Schedules are plain functions of a count and their parameters, so the parameters may be
traced arrays (a vmapped hyperparameter sweep compiles once). Action selection works on one
Q-vector with its own key; the trainer gives every env of every seed its own key.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from jaxdqn.core.draws import ints_below, unit_floats

# select_action's kinds; "none" acts greedily (noisy networks explore by their own noise).
EXPLORATIONS = ("epsilon_greedy", "boltzmann", "none")
SCHEDULES = ("linear", "exponential", "constant")  # exploration_value's schedules


def linear_schedule(
    count: chex.Numeric, start: chex.Numeric, end: chex.Numeric, steps: chex.Numeric
) -> chex.Array:
    """``start`` moving linearly to ``end`` over ``steps`` counts, then ``end``.

    Args:
      count: ``[...]`` non-negative count (env steps or episodes).
      start, end: values at count 0 and at ``count >= steps``.
      steps: positive length of the ramp.

    Returns:
      float32 ``[...]``.
    """
    frac = jnp.clip(jnp.asarray(count, jnp.float32) / steps, 0.0, 1.0)
    return jnp.asarray(start + frac * (end - start), jnp.float32)


def exponential_schedule(
    count: chex.Numeric, start: chex.Numeric, end: chex.Numeric, decay: chex.Numeric
) -> chex.Array:
    """``max(end, start * decay**count)``: the closed form of ``ε ← max(ε_end, ε·decay)``
    applied once per count. Returns float32 of the shape of ``count``."""
    value = start * jnp.power(jnp.asarray(decay, jnp.float32), jnp.asarray(count, jnp.float32))
    return jnp.maximum(end, value).astype(jnp.float32)


def exploration_value(schedule: str, count: chex.Numeric, params) -> chex.Array:
    """ε (or Boltzmann temperature) of an exploration schedule at ``count``.

    Args:
      schedule: one of :data:`SCHEDULES`: ``"linear"`` (:func:`linear_schedule`),
        ``"exponential"`` (:func:`exponential_schedule`) or ``"constant"``.
      count: ``[...]`` count (env steps or episodes).
      params: any object with ``exploration_start``, ``exploration_end``,
        ``exploration_steps`` and ``exploration_decay`` (possibly traced): a
        :class:`jaxdqn.Hyperparams` or a :class:`jaxdqn.DQNConfig`.

    Returns:
      float32 ``[...]``.
    """
    p = params
    if schedule == "linear":
        return linear_schedule(count, p.exploration_start, p.exploration_end, p.exploration_steps)
    if schedule == "exponential":
        return exponential_schedule(
            count, p.exploration_start, p.exploration_end, p.exploration_decay
        )
    return jnp.broadcast_to(jnp.asarray(p.exploration_start, jnp.float32), jnp.shape(count))


def mask_q_values(q_values: chex.Array, mask: chex.Array | None) -> chex.Array:
    """``q_values`` with illegal actions (``mask`` false) at ``-inf``; ``mask=None`` (every
    action legal) returns them unchanged. Shapes ``[..., num_actions]``."""
    return q_values if mask is None else jnp.where(mask, q_values, -jnp.inf)


def greedy(q_values: chex.Array, mask: chex.Array | None = None) -> chex.Array:
    """``argmax`` action of ``[num_actions]`` Q-values (first on ties) among the legal
    actions (``mask`` bool ``[num_actions]``; ``None``: all), int32 ``[]``."""
    return jnp.argmax(mask_q_values(q_values, mask)).astype(jnp.int32)


def epsilon_greedy(
    key: jax.Array,
    q_values: chex.Array,
    epsilon: chex.Numeric,
    mask: chex.Array | None = None,
) -> chex.Array:
    """With probability ``epsilon`` a uniform random legal action, else the greedy one.

    The coin and the random action come from three words of one draw of ``key``
    (:mod:`jaxdqn.core.draws`).

    Args:
      key: PRNG key for this one decision.
      q_values: ``[num_actions]``.
      epsilon: ``[]`` in [0, 1]; 0 is always greedy, 1 always random.
      mask: bool ``[num_actions]``, the legal actions; ``None``: every action.

    Returns:
      int32 ``[]`` action.
    """
    chex.assert_rank(q_values, 1)
    words = jax.random.bits(key, (3,), jnp.uint32)  # the coin, then the action's two words
    explore = unit_floats(words[0]) < epsilon
    if mask is None:
        random_action = ints_below(words[1:], q_values.shape[-1])
    else:  # the k-th legal action, k uniform below their number
        k = ints_below(words[1:], jnp.maximum(jnp.sum(mask), 1))
        random_action = jnp.argmax(jnp.cumsum(mask) > k)
    return jnp.where(explore, random_action, greedy(q_values, mask)).astype(jnp.int32)


def boltzmann(
    key: jax.Array,
    q_values: chex.Array,
    temperature: chex.Numeric,
    mask: chex.Array | None = None,
) -> chex.Array:
    """Samples a legal action with probability ``softmax(q_values / temperature)``.

    Args:
      key: PRNG key for this one decision.
      q_values: ``[num_actions]``.
      temperature: ``[]`` > 0; small is near-greedy, large near-uniform.
      mask: bool ``[num_actions]``, the legal actions; ``None``: every action.

    Returns:
      int32 ``[]`` action.
    """
    chex.assert_rank(q_values, 1)
    logits = mask_q_values(q_values / temperature, mask)
    return jax.random.categorical(key, logits).astype(jnp.int32)


def select_action(
    kind: str,
    key: jax.Array,
    q_values: chex.Array,
    value: chex.Numeric,
    mask: chex.Array | None = None,
):
    """The action of exploration ``kind`` (one of :data:`EXPLORATIONS`) for one Q-vector
    ``[num_actions]``: ε-greedy with ε = ``value``, Boltzmann at temperature ``value``, or
    greedy (``"none"``, ``value`` unused), among the legal actions (``mask``, ``None``:
    all). Returns int32 ``[]``."""
    if kind == "boltzmann":
        return boltzmann(key, q_values, value, mask)
    if kind == "none":
        return greedy(q_values, mask)
    return epsilon_greedy(key, q_values, value, mask)
