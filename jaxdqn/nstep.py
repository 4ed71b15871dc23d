"""n-step returns from the replay buffer's time-ordered rows.

The trainer writes the ``num_envs`` transitions of each vectorised step as consecutive
rows, so the next step of the env that wrote row ``i`` is row ``(i + num_envs) % capacity``
(the ``stride``). An n-step target is assembled at sample time from those rows:

``reward = r_t + γ r_{t+1} + … + γ^{m-1} r_{t+m-1}``, ``discount = γ^m (1 - terminated_{t+m-1})``
and ``next_obs = next_obs_{t+m-1}``, where ``m <= n`` stops early

* after a *terminated* step: no bootstrap (discount 0);
* after a *truncated* step: bootstrap from its true final observation with ``γ^m``;
* at the newest row of that env: the later steps are not written yet.

Nothing is stored twice and ``n`` can change without touching the buffer.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxdqn.buffer import ReplayBufferState
from jaxdqn.state import Batch, Transition


def n_step_batch(
    buffer: ReplayBufferState, slots: jax.Array, *, n: int, gamma, stride: int
) -> Batch:
    """The n-step :class:`Batch` of the transitions stored at ``slots``.

    Args:
      buffer: a replay buffer state whose ``data`` is a :class:`Transition` written
        ``stride`` rows per time step (one row per env).
      slots: int ``[B]``: the rows whose n-step targets are wanted (written rows only).
      n: static int >= 1; ``n = 1`` gives the 1-step target.
      gamma: discount, a float or a traced scalar.
      stride: static int, rows per time step (``num_envs``).

    Returns:
      A :class:`Batch` with leaves ``[B, ...]``.
    """
    data: Transition = buffer.data
    capacity = data.reward.shape[0]
    # Rows written after each slot; the slot's own env wrote every stride-th of them.
    written_after = (buffer.position - 1 - slots) % capacity
    gamma = jnp.asarray(gamma, jnp.float32)
    reward = data.reward[slots].astype(jnp.float32)
    alive = jnp.ones(slots.shape, bool)  # step k still belongs to the sampled episode
    last = slots  # the row of the last step summed so far
    steps = jnp.ones(slots.shape, jnp.float32)  # m: how many steps are summed
    for k in range(1, n):
        ended = data.terminated[last] | data.truncated[last]
        alive = alive & ~ended & (k * stride <= written_after)
        rows = (slots + k * stride) % capacity
        reward = reward + jnp.where(alive, gamma**k * data.reward[rows], 0.0)
        last = jnp.where(alive, rows, last)
        steps = steps + alive
    discount = gamma**steps * (1.0 - data.terminated[last].astype(jnp.float32))
    return Batch(
        obs=data.obs[slots],
        action=data.action[slots],
        reward=reward,
        discount=discount,
        next_obs=data.next_obs[last],
        weight=jnp.ones(slots.shape, jnp.float32),
    )
