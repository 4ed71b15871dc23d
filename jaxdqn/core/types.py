"""The records that pass between the components: ``Transition`` (env -> replay) and
``Batch`` (replay -> learner), both pytrees of arrays.

Shapes below are for one seed; ``jax.vmap(train)`` adds a leading seed axis to every leaf.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import jax


class Transition(NamedTuple):
    """One environment step, as the trainer hands it to the replay memory.

    Leading batch axes ``[...]``: ``[num_envs]`` for one vectorised step, as added to the
    replay memory (:mod:`jaxdqn.core.replay`, which keeps ``next_obs`` only where no later row
    holds it); gradient updates learn from a :class:`Batch`.
    """

    obs: jax.Array  # [..., *obs_shape], env dtype: observation the action was taken in
    action: jax.Array  # [...], int32
    reward: jax.Array  # [...], float32
    terminated: jax.Array  # [...], bool: a true terminal state (stops bootstrapping)
    truncated: jax.Array  # [...], bool: a time-limit end (bootstraps; only ends n-step sums)
    next_obs: jax.Array  # [..., *obs_shape]: the true next observation; on an episode end
    # the final observation before the automatic reset, never the next episode's first.
    valid: jax.Array | None = None  # [...] bool: a real transition; false for a step an
    # env spent resetting (EnvPool), stored in time order and never learned from. None:
    # every step is one.


class Batch(NamedTuple):
    """What a gradient update learns from: ``target = reward + discount * V(next_obs)``.

    For 1-step returns ``reward`` is the transition's reward and ``discount`` is
    ``gamma * (1 - terminated)``; for n-step returns see :func:`jaxdqn.core.replay.n_step_batch`.
    Leaves ``[B, ...]``.
    """

    obs: jax.Array  # [B, *obs_shape]
    action: jax.Array  # [B], int32
    reward: jax.Array  # [B], float32: the (discounted, summed) reward before bootstrapping
    discount: jax.Array  # [B], float32: the bootstrap's weight, 0 after a terminal state
    next_obs: jax.Array  # [B, *obs_shape]: the observation to bootstrap from
    weight: jax.Array  # [B], float32: weight in the loss (importance weights; else ones)


def check_int(name: str, value: Any, low: int = 1) -> None:
    """Raises ``ValueError`` naming ``name`` unless ``value`` is an int (not a bool) >= ``low``;
    the check every factory runs on its counts before anything is traced."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name}={value!r} is invalid: must be an int >= {low}.")


def is_prng_key(x: Any) -> bool:
    """Whether an array (or ``jax.ShapeDtypeStruct``) holds typed PRNG keys."""
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
