"""Greedy (or small-ε) evaluation of a Q-network over vmapped episodes: the returns it
gets (:func:`evaluate_policy`), how its Q-values compare with them
(:func:`evaluate_values`), and one episode step by step (:func:`record_episode`)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdqn.core.actor import legal_actions, reset_envs, step_envs
from jaxdqn.core.exploration import epsilon_greedy
from jaxdqn.core.types import check_int
from jaxdqn.envs import BoundEnv, open_envs, replace_params

# The envs an evaluation opens are seeded apart from training's (EnvPool's pool seeds).
EVALUATION_STREAM = 1


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
      key: PRNG key (resets, ε draws, env randomness; an EnvPool env's randomness comes
        from its pool's seed instead).
      num_episodes: static positive int.
      epsilon: ε of the ε-greedy policy in [0, 1]; 0 is greedy.

    Returns:
      float32 ``[num_episodes]``: the undiscounted return of each episode.

    Raises:
      ValueError: a ``num_episodes`` or ``epsilon`` out of range, or an env without a
        time limit (an episode could run forever).
    """
    check_int("num_episodes", num_episodes)
    limit = bound.spec.max_episode_steps
    if limit is None:
        raise ValueError(
            f"env {bound.name!r} has no time limit (max_steps_in_episode): evaluation needs "
            "one to know when every episode has ended."
        )
    returns, _, _ = _play(bound, q_network, params, key, num_episodes, epsilon, 1.0, limit)
    return returns


class EpisodeValues(NamedTuple):
    """What the Q-network predicted at the start of each evaluation episode, and what the
    episode then paid."""

    q_first: jax.Array  # [N] float32: Q(s_0, a_0) of the first action played
    discounted: jax.Array  # [N] float32: sum_t γ^t r_t of the episode


def value_horizon(gamma: float, tail: float = 0.01) -> int:
    """Steps ``H`` after which ``γ^H <= tail``: a discounted return summed over ``H`` steps
    misses at most ``tail`` of ``r_max / (1 - γ)``."""
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma={gamma!r} is invalid: must be in [0, 1) for a value horizon.")
    return 1 if gamma == 0.0 else max(1, math.ceil(math.log(tail) / math.log(gamma)))


def evaluate_values(
    bound: BoundEnv,
    q_network: nn.Module,
    params: Any,
    key: jax.Array,
    num_episodes: int,
    gamma: float,
    epsilon: float = 0.0,
) -> EpisodeValues:
    """Q(s_0, a_0) against the discounted return the policy then obtains (van Hasselt et
    al. 2016's overestimation), over ``num_episodes`` fresh episodes.

    A Q-network that bootstraps through time limits estimates the value of playing on past
    them, so the env's time limit is lifted to :func:`value_horizon` steps: the return then
    misses at most 1% of ``r_max / (1 - γ)``.

    Args:
      bound: the environment; its params must have ``max_steps_in_episode``.
      q_network, params: the Q-network and one seed's parameters.
      key: PRNG key.
      num_episodes: static positive int.
      gamma: the discount Q was trained with, in [0, 1).
      epsilon: ε of the ε-greedy policy.

    Returns:
      :class:`EpisodeValues` with leaves ``[num_episodes]``.

    Raises:
      ValueError: a bad count, ε or γ, or an env whose time limit cannot be lifted.
    """
    check_int("num_episodes", num_episodes)
    horizon = value_horizon(gamma)
    cap = getattr(bound.env, "suite_time_limit", None)
    if not hasattr(bound.params, "max_steps_in_episode") or (cap is not None and cap < horizon):
        raise ValueError(
            f"env {bound.name!r}: its time limit cannot be lifted to {horizon} steps (no "
            "max_steps_in_episode, or a suite's own shorter limit), so the discounted return "
            "of an episode cannot be measured."
        )
    lifted = bound._replace(
        params=replace_params(bound.params, max_steps_in_episode=horizon),
        spec=bound.spec._replace(max_episode_steps=horizon),
    )
    _, discounted, q_first = _play(
        lifted, q_network, params, key, num_episodes, epsilon, gamma, horizon
    )
    return EpisodeValues(q_first=q_first, discounted=discounted)


def _act(
    bound: BoundEnv,
    q_network: nn.Module,
    params: Any,
    key: jax.Array,
    obs: jax.Array,
    env_state: Any,
    epsilon: float,
) -> tuple[jax.Array, jax.Array]:
    """Q-values ``[B, num_actions]`` of a batch of observations and the ε-greedy actions
    ``[B]`` among the legal ones."""
    q_values = q_network.apply(params, obs)
    actions = jax.vmap(epsilon_greedy, in_axes=(0, 0, None, 0))(
        jax.random.split(key, q_values.shape[0]),
        q_values,
        epsilon,
        legal_actions(bound, env_state),  # None (every action legal) maps to None
    )
    return q_values, actions


class Recording(NamedTuple):
    """One episode, step by step (:func:`record_episode`); ``T`` steps recorded."""

    env_states: Any  # the env state before each step, leaves [T, ...]
    obs: jax.Array  # the observation before each step, [T, *obs_shape]
    actions: jax.Array  # int32 [T]
    rewards: jax.Array  # float32 [T]
    terminated: jax.Array  # bool [T]: the step ended the episode in a terminal state
    truncated: jax.Array  # bool [T]: the step ended the episode at its time limit
    running: jax.Array  # bool [T]: the episode had not ended before this step


def record_episode(
    bound: BoundEnv,
    q_network: nn.Module,
    params: Any,
    key: jax.Array,
    steps: int,
    epsilon: float = 0.0,
) -> Recording:
    """``steps`` steps of one episode played ε-greedily on the Q-network, every env
    state kept (for drawing the episode). Steps after the episode ended have
    ``running`` false. Pure and jittable.

    Args:
      bound: the environment (:func:`jaxdqn.envs.bind_env`).
      q_network, params: the Q-network and its parameters, one seed.
      key: PRNG key.
      steps: static positive int, e.g. the env's time limit.
      epsilon: ε in [0, 1]; 0 is greedy.

    Returns:
      :class:`Recording` with ``T = steps``.
    """
    check_int("steps", steps)
    bound = open_envs(bound, 1, EVALUATION_STREAM)
    key_reset, key_run = jax.random.split(key)
    obs, env_state = reset_envs(bound, key_reset, 1)

    def step(carry, key):
        obs, env_state, running = carry
        key_act, key_step = jax.random.split(key)
        _, actions = _act(bound, q_network, params, key_act, obs, env_state, epsilon)
        next_obs, next_state, reward, terminated, truncated, _ = step_envs(
            bound, key_step, env_state, actions
        )
        ends = (terminated.astype(bool), truncated.astype(bool))
        unbatched = jax.tree.map(lambda x: x[0], (env_state, obs, actions, reward, *ends))
        return (next_obs, next_state, running & ~(ends[0] | ends[1])[0]), (*unbatched, running)

    carry = (obs, env_state, jnp.ones((), bool))
    _, outputs = jax.lax.scan(step, carry, jax.random.split(key_run, steps))
    states, observations, actions, rewards, terminated, truncated, running = outputs
    return Recording(
        states, observations, actions.astype(jnp.int32), rewards, terminated, truncated, running
    )


def _play(
    bound: BoundEnv,
    q_network: nn.Module,
    params: Any,
    key: jax.Array,
    num_episodes: int,
    epsilon: float,
    gamma: float,
    steps: int,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``num_episodes`` episodes of at most ``steps`` steps: their returns, discounted
    returns and the Q-value of each first action, float32 ``[num_episodes]`` each."""
    if not 0.0 <= float(epsilon) <= 1.0:
        raise ValueError(f"epsilon={epsilon!r} is invalid: must be in [0, 1].")
    bound = open_envs(bound, num_episodes, EVALUATION_STREAM)
    key_reset, key_run = jax.random.split(key)
    obs, env_state = reset_envs(bound, key_reset, num_episodes)

    def step(carry, inputs):
        obs, env_state, returns, discounted, q_first, running = carry
        key, t = inputs
        key_act, key_step = jax.random.split(key)
        q_values, actions = _act(bound, q_network, params, key_act, obs, env_state, epsilon)
        taken = jnp.take_along_axis(q_values, actions[:, None], axis=1)[:, 0]
        q_first = jnp.where(t == 0, taken, q_first)
        obs, env_state, reward, terminated, truncated, info = step_envs(
            bound, key_step, env_state, actions
        )
        # An env may report its unclipped reward (EnvPool's Atari); returns add that up.
        returns = returns + jnp.where(running, info.get("raw_reward", reward), 0.0)
        discounted = discounted + jnp.where(running, reward * gamma**t, 0.0)
        running = running & ~(terminated.astype(bool) | truncated.astype(bool))
        return (obs, env_state, returns, discounted, q_first, running), None

    zeros = jnp.zeros(num_episodes, jnp.float32)
    carry = (obs, env_state, zeros, zeros, zeros, jnp.ones(num_episodes, bool))
    inputs = (jax.random.split(key_run, steps), jnp.arange(steps, dtype=jnp.float32))
    (_, _, returns, discounted, q_first, _), _ = jax.lax.scan(step, carry, inputs)
    return returns, discounted, q_first
