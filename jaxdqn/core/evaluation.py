"""Greedy (or small-ε) evaluation of a Q-network over vmapped episodes."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdqn.core.actor import legal_actions, reset_envs, step_envs
from jaxdqn.core.exploration import epsilon_greedy
from jaxdqn.core.types import check_int
from jaxdqn.envs import BoundEnv


def evaluate_policy(
    bound: BoundEnv,
    q_network: nn.Module,
    params: Any,
    key: jax.Array,
    num_episodes: int,
    epsilon: float = 0.0,
) -> jax.Array:
    """Returns of ``num_episodes`` fresh episodes played ε-greedily on the Q-network
    (among the legal actions, where the env has an action mask).

    Every episode runs in its own env (vmapped) until it terminates or is truncated, for
    at most the env's time limit. Pure and jittable; ``jax.vmap`` it over params and keys
    of several seeds.

    Args:
      bound: the environment (:func:`jaxdqn.envs.bind_env`); it must have a time limit.
      q_network: the Q-network (``apply(params, obs [B, ...]) -> [B, num_actions]``).
      params: its parameters, one seed.
      key: PRNG key (resets, ε draws, env randomness).
      num_episodes: static positive int.
      epsilon: ε of the ε-greedy policy in [0, 1]; 0 is greedy.

    Returns:
      float32 ``[num_episodes]``: the undiscounted return of each episode.

    Raises:
      ValueError: a ``num_episodes`` or ``epsilon`` out of range, or an env without a
        time limit (an episode could run forever).
    """
    check_int("num_episodes", num_episodes)
    if not 0.0 <= float(epsilon) <= 1.0:
        raise ValueError(f"epsilon={epsilon!r} is invalid: must be in [0, 1].")
    limit = bound.spec.max_episode_steps
    if limit is None:
        raise ValueError(
            f"env {bound.name!r} has no time limit (max_steps_in_episode): evaluation needs "
            "one to know when every episode has ended."
        )
    key_reset, key_run = jax.random.split(key)
    obs, env_state = reset_envs(bound, key_reset, num_episodes)

    def step(carry, key):
        obs, env_state, returns, running = carry
        key_act, key_step = jax.random.split(key)
        q_values = q_network.apply(params, obs)
        actions = jax.vmap(epsilon_greedy, in_axes=(0, 0, None, 0))(
            jax.random.split(key_act, num_episodes),
            q_values,
            epsilon,
            legal_actions(bound, env_state),  # None (every action legal) maps to None
        )
        obs, env_state, reward, terminated, truncated, _ = step_envs(
            bound, key_step, env_state, actions
        )
        returns = returns + jnp.where(running, reward, 0.0)
        running = running & ~(terminated.astype(bool) | truncated.astype(bool))
        return (obs, env_state, returns, running), None

    carry = (obs, env_state, jnp.zeros(num_episodes, jnp.float32), jnp.ones(num_episodes, bool))
    (_, _, returns, _), _ = jax.lax.scan(step, carry, jax.random.split(key_run, limit))
    return returns
