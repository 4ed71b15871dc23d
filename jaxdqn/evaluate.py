"""Greedy (or small-ε) evaluation over vmapped episodes."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxdqn.envs import make_env
from jaxdqn.exploration import epsilon_greedy
from jaxdqn.networks import make_q_network


def evaluate(
    config, params: Any, key: jax.Array, num_episodes: int, epsilon: float | None = None
) -> jax.Array:
    """Returns of ``num_episodes`` fresh episodes played by the Q-network's policy.

    Every episode runs in its own env (vmapped) until it terminates or is truncated, for
    at most the env's ``max_steps_in_episode`` steps. Pure and jittable; ``jax.vmap`` it
    over params and keys of several seeds.

    Args:
      config: the :class:`jaxdqn.DQNConfig` the params were trained with.
      params: Q-network parameters of one seed.
      key: PRNG key (resets, ε draws, env randomness).
      num_episodes: static positive int.
      epsilon: ε of the ε-greedy policy; ``None`` uses ``config.eval_epsilon`` (0 by
        default: greedy).

    Returns:
      float32 ``[num_episodes]``: the undiscounted return of each episode.

    Examples:
      >>> import dataclasses, jax, jaxdqn
      >>> preset = jaxdqn.get_preset("CartPole-v1")
      >>> config = dataclasses.replace(preset, total_timesteps=20_000, exploration_steps=10_000)
      >>> state, _ = jax.jit(jaxdqn.make_train(config))(jax.random.key(0))
      >>> evaluate = jax.jit(lambda p, k: jaxdqn.evaluate(config, p, k, 100))
      >>> evaluate(state.params, jax.random.key(1)).shape
      (100,)
    """
    if isinstance(num_episodes, bool) or not isinstance(num_episodes, int) or num_episodes < 1:
        raise ValueError(f"num_episodes={num_episodes!r} is invalid: must be a positive int.")
    epsilon = config.eval_epsilon if epsilon is None else epsilon
    if not 0.0 <= float(epsilon) <= 1.0:
        raise ValueError(f"epsilon={epsilon!r} is invalid: must be in [0, 1].")
    env, env_params = make_env(config.env_id)
    q_network = make_q_network(config)
    key_reset, key_run = jax.random.split(key)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(key_reset, num_episodes), env_params
    )

    def step(carry, key):
        obs, env_state, returns, running = carry
        key_act, key_step = jax.random.split(key)
        q_values = q_network.apply(params, obs)
        actions = jax.vmap(epsilon_greedy, in_axes=(0, 0, None))(
            jax.random.split(key_act, num_episodes), q_values, epsilon
        )
        obs, env_state, reward, terminated, truncated, _ = jax.vmap(
            env.step, in_axes=(0, 0, 0, None)
        )(jax.random.split(key_step, num_episodes), env_state, actions, env_params)
        returns = returns + jnp.where(running, reward, 0.0)
        running = running & ~(terminated | truncated)
        return (obs, env_state, returns, running), None

    carry = (obs, env_state, jnp.zeros(num_episodes, jnp.float32), jnp.ones(num_episodes, bool))
    keys = jax.random.split(key_run, env_params.max_steps_in_episode)
    (_, _, returns, _), _ = jax.lax.scan(step, carry, keys)
    return returns
