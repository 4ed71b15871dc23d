"""TD errors and losses, in the rlax convention.

Each TD function takes ONE transition and returns its TD error ``target - q_tm1[a_tm1]``
with gradients stopped through the target; batch with ``jax.vmap``. The discount carries
the termination mask: ``discount_t = gamma * (1 - terminated)``. A *truncated* step (time
limit) is not terminal: it keeps ``discount_t = gamma`` and bootstraps from the true final
observation, which the replay memory keeps for it (:mod:`jaxdqn.core.replay`).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import optax

LOSSES = ("huber", "l2")  # what td_loss accepts as kind


def discount_from_terminated(gamma: chex.Numeric, terminated: chex.Array) -> chex.Array:
    """``gamma * (1 - terminated)``: zero only for true terminal transitions.

    Args:
      gamma: discount factor, scalar.
      terminated: bool or float array, any shape ``[...]``.

    Returns:
      float32 array of shape ``[...]``.
    """
    return gamma * (1.0 - jnp.asarray(terminated, jnp.float32))


def q_learning(
    q_tm1: chex.Array,
    a_tm1: chex.Numeric,
    r_t: chex.Numeric,
    discount_t: chex.Numeric,
    q_t: chex.Array,
) -> chex.Array:
    """Q-learning TD error for one transition (Mnih et al., 2015).

    ``r_t + discount_t * max_a q_t[a] - q_tm1[a_tm1]``, the target's gradient stopped.

    Args:
      q_tm1: ``[num_actions]`` Q-values of the state the action was taken in.
      a_tm1: ``[]`` int, the action taken.
      r_t: ``[]`` reward.
      discount_t: ``[]`` ``gamma * (1 - terminated)``.
      q_t: ``[num_actions]`` Q-values of the next state (usually from the target network).

    Returns:
      ``[]`` TD error.

    References:
      Mnih et al., "Human-level control through deep reinforcement learning", Nature 2015.
      https://www.nature.com/articles/nature14236
    """
    chex.assert_rank([q_tm1, a_tm1, r_t, discount_t, q_t], [1, 0, 0, 0, 1])
    chex.assert_type([a_tm1], [int])
    target = r_t + discount_t * jnp.max(q_t)
    return jax.lax.stop_gradient(target) - q_tm1[a_tm1]


def double_q_learning(
    q_tm1: chex.Array,
    a_tm1: chex.Numeric,
    r_t: chex.Numeric,
    discount_t: chex.Numeric,
    q_t_value: chex.Array,
    q_t_selector: chex.Array,
) -> chex.Array:
    """Double Q-learning TD error for one transition (van Hasselt et al., 2016).

    The next action is chosen by ``q_t_selector`` (the online network) and valued by
    ``q_t_value`` (the target network), which removes max-operator overestimation:
    ``r_t + discount_t * q_t_value[argmax q_t_selector] - q_tm1[a_tm1]``.

    Args:
      q_tm1: ``[num_actions]`` Q-values of the state the action was taken in.
      a_tm1: ``[]`` int, the action taken.
      r_t: ``[]`` reward.
      discount_t: ``[]`` ``gamma * (1 - terminated)``.
      q_t_value: ``[num_actions]`` next-state Q-values used to value the action.
      q_t_selector: ``[num_actions]`` next-state Q-values used to select it.

    Returns:
      ``[]`` TD error.

    References:
      van Hasselt, Guez & Silver, "Deep Reinforcement Learning with Double Q-learning",
      AAAI 2016. https://arxiv.org/abs/1509.06461
    """
    chex.assert_rank([q_tm1, a_tm1, r_t, discount_t, q_t_value, q_t_selector], [1, 0, 0, 0, 1, 1])
    chex.assert_type([a_tm1], [int])
    best = jnp.argmax(q_t_selector)
    target = r_t + discount_t * q_t_value[best]
    return jax.lax.stop_gradient(target) - q_tm1[a_tm1]


def l2(x: chex.Array) -> chex.Array:
    """Elementwise ``0.5 * x**2`` (optax's ``l2_loss``). Same shape as ``x``."""
    return optax.l2_loss(x)


def huber(x: chex.Array, delta: chex.Numeric = 1.0) -> chex.Array:
    """Elementwise Huber loss: ``0.5 x²`` for ``|x| <= delta``, else
    ``delta * (|x| - 0.5 delta)`` (optax's ``huber_loss``). Same shape as ``x``."""
    return optax.huber_loss(x, delta=delta)


def td_loss(
    td_errors: chex.Array,
    kind: str,
    huber_delta: chex.Numeric = 1.0,
    weights: chex.Array | None = None,
) -> chex.Array:
    """Mean of ``huber`` or ``l2`` over a batch of TD errors ``[B]``; returns ``[]``.

    ``weights`` ``[B]`` (importance weights of prioritized replay) scale each term of the
    mean; ``None`` weighs all equally.
    """
    if kind == "huber":
        per_item = huber(td_errors, huber_delta)
    elif kind == "l2":
        per_item = l2(td_errors)
    else:
        raise ValueError(f"loss kind={kind!r} is invalid: must be 'huber' or 'l2'.")
    return jnp.mean(per_item if weights is None else weights * per_item)
