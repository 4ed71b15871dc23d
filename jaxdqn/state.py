"""Pytrees of arrays that flow through the compiled loop: ``Transition`` and ``TrainState``.

They hold arrays only (functions live in closures), so ``jax.vmap`` over seeds,
``jax.tree.map`` and checkpointing work on them directly. Shapes below are for one seed;
``jax.vmap(train)`` adds a leading seed axis to every leaf.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax


class Transition(NamedTuple):
    """One environment step, as the trainer hands it to the replay memory.

    Leading batch axes ``[...]``: ``[num_envs]`` for one vectorised step, as added to the
    replay memory (:mod:`jaxdqn.replay`, which keeps ``next_obs`` only where no later row
    holds it); gradient updates learn from a :class:`Batch`.
    """

    obs: jax.Array  # [..., *obs_shape], env dtype: observation the action was taken in
    action: jax.Array  # [...], int32
    reward: jax.Array  # [...], float32
    terminated: jax.Array  # [...], bool: a true terminal state (stops bootstrapping)
    truncated: jax.Array  # [...], bool: a time-limit end (bootstraps; only ends n-step sums)
    next_obs: jax.Array  # [..., *obs_shape]: the true next observation; on an episode end
    # the final observation before the automatic reset, never the next episode's first.


class Batch(NamedTuple):
    """What a gradient update learns from: ``target = reward + discount * V(next_obs)``.

    For 1-step returns ``reward`` is the transition's reward and ``discount`` is
    ``gamma * (1 - terminated)``; for n-step returns see :func:`jaxdqn.replay.n_step_batch`.
    Leaves ``[B, ...]``.
    """

    obs: jax.Array  # [B, *obs_shape]
    action: jax.Array  # [B], int32
    reward: jax.Array  # [B], float32: the (discounted, summed) reward before bootstrapping
    discount: jax.Array  # [B], float32: the bootstrap's weight, 0 after a terminal state
    next_obs: jax.Array  # [B, *obs_shape]: the observation to bootstrap from
    weight: jax.Array  # [B], float32: weight in the loss (importance weights; else ones)


class TrainState(NamedTuple):
    """Everything a run carries from one step to the next (one seed)."""

    params: Any  # online Q-network parameters (flax variables pytree)
    target_params: Any  # target Q-network parameters, same structure as params
    opt_state: Any  # optax optimizer state
    buffer: Any  # replay memory (jaxdqn.replay.ReplayState)
    env_state: Any  # gymnax env states, leaves [num_envs, ...]
    obs: jax.Array  # [num_envs, *obs_shape]: observations the next actions are taken in
    episode_return: jax.Array  # [num_envs], float32: return of each env's running episode
    episode_length: jax.Array  # [num_envs], int32: steps of each env's running episode
    key: jax.Array  # typed PRNG key, shape=()
    env_steps: jax.Array  # shape=(), int32: env steps taken, summed over envs
    updates: jax.Array  # shape=(), int32: gradient updates applied
    episodes: jax.Array  # shape=(), int32: episodes completed, summed over envs
    hparams: Any  # jaxdqn.Hyperparams: the traced hyperparameters this run reads
    priorities: Any  # jaxdqn.prioritized.SumTreeState with prioritized replay, else None


def is_prng_key(x: Any) -> bool:
    """Whether an array (or ``jax.ShapeDtypeStruct``) holds typed PRNG keys."""
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
