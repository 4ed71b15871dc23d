"""TD errors and losses, in the rlax convention.

Each TD function takes ONE transition and returns its TD error ``target - q_tm1[a_tm1]``
with gradients stopped through the target; batch with ``jax.vmap``. The discount carries
the termination mask: ``discount_t = gamma * (1 - terminated)``. A *truncated* step (time
limit) is not terminal: it keeps ``discount_t = gamma`` and bootstraps from the true final
observation, which the replay memory keeps for it (:mod:`jaxdqn.core.replay`).

The categorical (C51) functions take the same arguments plus the atoms and logits of the
return distributions, and return the transition's cross-entropy loss instead.
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


def categorical_l2_project(z_p: chex.Array, probs: chex.Array, z_q: chex.Array) -> chex.Array:
    """Projects a distribution on atoms ``z_p`` onto the support ``z_q`` (Bellemare et
    al. 2017, Algorithm 1; Rowland et al. 2018's Cramér/L2 projection).

    Each atom ``z_p[j]`` is first clipped to ``[z_q[0], z_q[-1]]``; its probability then
    goes to the two atoms of ``z_q`` around it, in proportion to closeness, and wholly to
    an atom it lands on. The support may be unevenly spaced.

    Args:
      z_p: ``[K_p]`` atoms of the distribution to project, any order.
      probs: ``[K_p]`` their probabilities.
      z_q: ``[K_q]`` the target support, strictly increasing.

    Returns:
      ``[K_q]`` probabilities on ``z_q``; they sum to ``sum(probs)``.
    """
    chex.assert_rank([z_p, probs, z_q], 1)
    z_p = jnp.clip(z_p, z_q[0], z_q[-1])
    # The support atoms around each z_p[j]: z_q[up - 1] <= z_p[j] <= z_q[up].
    up = jnp.clip(jnp.searchsorted(z_q, z_p, side="left"), 1, z_q.shape[0] - 1)
    low = up - 1
    to_up = (z_p - z_q[low]) / (z_q[up] - z_q[low])  # [K_p]: the share of z_q[up]
    projected = jnp.zeros(z_q.shape, probs.dtype).at[low].add(probs * (1.0 - to_up))
    return projected.at[up].add(probs * to_up)


def categorical_q_learning(
    q_atoms_tm1: chex.Array,
    q_logits_tm1: chex.Array,
    a_tm1: chex.Numeric,
    r_t: chex.Numeric,
    discount_t: chex.Numeric,
    q_atoms_t: chex.Array,
    q_logits_t: chex.Array,
) -> chex.Array:
    """Categorical (C51) Q-learning loss for one transition (Bellemare et al. 2017).

    The next state's return distribution under its greedy action (by expected value) is
    shifted and shrunk to ``r_t + discount_t * z``, projected onto ``q_atoms_tm1``
    (:func:`categorical_l2_project`) and compared with the predicted distribution of
    ``a_tm1`` by cross-entropy; the target's gradient is stopped.

    Args:
      q_atoms_tm1: ``[K]`` support of the predicted distributions, increasing.
      q_logits_tm1: ``[num_actions, K]`` logits of the state the action was taken in.
      a_tm1: ``[]`` int, the action taken.
      r_t: ``[]`` reward (the n-step sum for n-step returns).
      discount_t: ``[]`` ``gamma**n * (1 - terminated)``.
      q_atoms_t: ``[K_t]`` support of the next state's distributions.
      q_logits_t: ``[num_actions, K_t]`` logits of the next state (target network).

    Returns:
      ``[]`` cross-entropy loss.

    References:
      Bellemare, Dabney & Munos, "A Distributional Perspective on Reinforcement
      Learning", ICML 2017. https://arxiv.org/abs/1707.06887
    """
    q_t_selector = jnp.sum(jax.nn.softmax(q_logits_t) * q_atoms_t, axis=-1)
    return categorical_double_q_learning(
        q_atoms_tm1, q_logits_tm1, a_tm1, r_t, discount_t, q_atoms_t, q_logits_t, q_t_selector
    )


def categorical_double_q_learning(
    q_atoms_tm1: chex.Array,
    q_logits_tm1: chex.Array,
    a_tm1: chex.Numeric,
    r_t: chex.Numeric,
    discount_t: chex.Numeric,
    q_atoms_t: chex.Array,
    q_logits_t: chex.Array,
    q_t_selector: chex.Array,
) -> chex.Array:
    """Categorical Double Q-learning loss for one transition (Hessel et al. 2018).

    As :func:`categorical_q_learning`, but the next action is ``argmax q_t_selector``
    (the online network's expected values) while its distribution comes from
    ``q_logits_t`` (the target network).

    Args:
      q_atoms_tm1: ``[K]`` support of the predicted distributions, increasing.
      q_logits_tm1: ``[num_actions, K]`` logits of the state the action was taken in.
      a_tm1: ``[]`` int, the action taken.
      r_t: ``[]`` reward (the n-step sum for n-step returns).
      discount_t: ``[]`` ``gamma**n * (1 - terminated)``.
      q_atoms_t: ``[K_t]`` support of the next state's distributions.
      q_logits_t: ``[num_actions, K_t]`` logits of the next state (target network).
      q_t_selector: ``[num_actions]`` values that select the next action.

    Returns:
      ``[]`` cross-entropy loss.

    References:
      Hessel et al., "Rainbow: Combining Improvements in Deep Reinforcement Learning",
      AAAI 2018. https://arxiv.org/abs/1710.02298
    """
    chex.assert_rank([q_logits_tm1, a_tm1], [2, 0])
    chex.assert_type([a_tm1], [int])
    target = categorical_target(q_atoms_tm1, r_t, discount_t, q_atoms_t, q_logits_t, q_t_selector)
    return optax.softmax_cross_entropy(q_logits_tm1[a_tm1], target)


def categorical_target(
    q_atoms_tm1: chex.Array,
    r_t: chex.Numeric,
    discount_t: chex.Numeric,
    q_atoms_t: chex.Array,
    q_logits_t: chex.Array,
    q_t_selector: chex.Array,
) -> chex.Array:
    """The target distribution of :func:`categorical_double_q_learning`: the next
    action's (``argmax q_t_selector``) distribution on ``r_t + discount_t * q_atoms_t``,
    projected onto ``q_atoms_tm1``; gradients stopped.

    Args:
      q_atoms_tm1: ``[K]`` the support to project onto, increasing.
      r_t: ``[]`` reward.
      discount_t: ``[]`` ``gamma**n * (1 - terminated)``.
      q_atoms_t: ``[K_t]`` support of the next state's distributions.
      q_logits_t: ``[num_actions, K_t]`` logits of the next state.
      q_t_selector: ``[num_actions]`` values that select the next action.

    Returns:
      ``[K]`` probabilities on ``q_atoms_tm1``, summing to 1.
    """
    chex.assert_rank(
        [q_atoms_tm1, r_t, discount_t, q_atoms_t, q_logits_t, q_t_selector], [1, 0, 0, 1, 2, 1]
    )
    probs_t = jax.nn.softmax(q_logits_t[jnp.argmax(q_t_selector)])
    target = categorical_l2_project(r_t + discount_t * q_atoms_t, probs_t, q_atoms_tm1)
    return jax.lax.stop_gradient(target)


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
