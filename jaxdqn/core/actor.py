"""The actor: ``num_envs`` environments stepped in lockstep and the exploring policy that
acts in them.

:func:`make_actor` returns an :class:`Actor` bundle (``reset``, ``act``, ``step``) over an
:class:`ActorState`: the envs' states, the observations the next actions are taken in, and
each env's running episode return and length. ``step`` hands back the vectorised step as
a :class:`jaxdqn.Transition` for the replay, with the true final observation of every
ended episode, and the episodes it ended as :class:`EpisodeEnds` for the metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdqn.core.exploration import EXPLORATIONS, SCHEDULES, exploration_value, select_action
from jaxdqn.core.networks import apply_q, is_noisy
from jaxdqn.core.types import Transition, check_int
from jaxdqn.envs import BoundEnv, is_batched, open_envs

EXPLORATION_UNITS = ("env_steps", "episodes")  # what an exploration schedule counts
# Folded into the acting key for a noisy network's noise, so the ε-greedy draws are the
# same with or without it.
ACTING_NOISE_STREAM = 0xAC7


class ActorState(NamedTuple):
    """The envs and their running episodes (one seed)."""

    env_state: Any  # gymnax env states, leaves [num_envs, ...]
    obs: jax.Array  # [num_envs, *obs_shape]: observations the next actions are taken in
    episode_return: jax.Array  # [num_envs], float32: return of each env's running episode
    episode_length: jax.Array  # [num_envs], int32: steps of each env's running episode


class EpisodeEnds(NamedTuple):
    """The episodes one vectorised step ended."""

    done: jax.Array  # [num_envs] bool: the env's episode ended (terminated or truncated)
    episode_return: jax.Array  # [num_envs] float32: its undiscounted return (where done)
    episode_length: jax.Array  # [num_envs] int32: its length in steps (where done)


class Actor(NamedTuple):
    """Pure functions over an :class:`ActorState`.

    Attributes:
      reset: ``reset(key) -> ActorState``: every env reset, episodes at 0.
      act: ``act(key, state, params, env_steps, episodes, hparams) -> (actions, value)``:
        int32 ``[num_envs]`` actions of the Q-network ``params`` in ``state.obs``, and the
        float32 ``[num_envs]`` ε (or temperature; 0 for ``"none"``) each was drawn with.
        ``env_steps`` and ``episodes`` (int ``[]``) count the run so far; ``hparams`` holds
        the schedule's (possibly traced) parameters. A noisy network acts with noise
        drawn anew at every step (one draw for all ``num_envs``).
      step: ``step(key, state, actions) -> (state, transition, ends)``: one vectorised env
        step; ``transition`` has leaves ``[num_envs, ...]``, ``ends`` is an
        :class:`EpisodeEnds`.
    """

    reset: Callable[[jax.Array], ActorState]
    act: Callable[..., tuple[jax.Array, jax.Array]]
    step: Callable[[jax.Array, ActorState, jax.Array], tuple[ActorState, Transition, EpisodeEnds]]


def reset_envs(bound: BoundEnv, key: jax.Array, num_envs: int) -> tuple[jax.Array, Any]:
    """``num_envs`` fresh episodes, each from its own key: ``(obs [num_envs, ...], states)``.
    A batched env (:func:`jaxdqn.envs.open_envs`) resets its own ``num_envs`` envs."""
    if is_batched(bound):
        return bound.env.reset(key)
    reset = jax.vmap(bound.env.reset, in_axes=(0, None))
    return reset(jax.random.split(key, num_envs), bound.params)


def legal_actions(bound: BoundEnv, env_state: Any) -> jax.Array | None:
    """The legal actions of every env, bool ``[num_envs, num_actions]``, where the env has
    an action mask (``bound.spec.action_masked``); else ``None`` (every action legal)."""
    if not bound.spec.action_masked:
        return None
    return jax.vmap(bound.env.action_mask, in_axes=(0, None))(env_state, bound.params)


def step_envs(bound: BoundEnv, key: jax.Array, env_state: Any, actions: jax.Array) -> tuple:
    """One step of every env (``actions`` int ``[num_envs]``), each with its own key: the
    gymnax ``(obs, state, reward, terminated, truncated, info)`` with leaves
    ``[num_envs, ...]``. A batched env steps all its envs in one call. ``info`` may hold
    ``valid`` (bool ``[num_envs]``, false for a step that is not a transition) and
    ``raw_reward`` (the unclipped reward, which episode returns add up instead)."""
    if is_batched(bound):
        return bound.env.step(key, env_state, actions)
    step = jax.vmap(bound.env.step, in_axes=(0, 0, 0, None))
    return step(jax.random.split(key, actions.shape[0]), env_state, actions, bound.params)


def make_actor(
    bound: BoundEnv,
    q_network: nn.Module,
    num_envs: int,
    *,
    exploration: str = "epsilon_greedy",
    schedule: str = "linear",
    unit: str = "env_steps",
    truncation_is_terminal: bool = False,
) -> Actor:
    """Builds the actor of a run.

    Args:
      bound: the environment (:func:`jaxdqn.envs.bind_env`).
      q_network: the Q-network the policy acts greedily on.
      num_envs: envs stepped in lockstep, >= 1.
      exploration: one of ``EXPLORATIONS``: ε-greedy, Boltzmann or none (greedy on the
        network's Q-values, noisy ones included).
      schedule: one of ``SCHEDULES``, the shape of ε (or the temperature) over time.
      unit: what the schedule counts, one of :data:`EXPLORATION_UNITS`. With
        ``"env_steps"``, env ``j`` of a vectorised step at count ``n`` uses
        ``schedule(n + j)``, so the schedule is the same function of env steps whatever
        ``num_envs`` is.
      truncation_is_terminal: a deliberate mistake, for ablations: hand time-limit
        truncations to the replay as terminations.

    Returns:
      An :class:`Actor`.

    Raises:
      ValueError: naming the argument, for an unknown choice or ``num_envs < 1``.
    """
    for name, value, allowed in (
        ("exploration", exploration, EXPLORATIONS),
        ("schedule", schedule, SCHEDULES),
        ("unit", unit, EXPLORATION_UNITS),
    ):
        if value not in allowed:
            raise ValueError(f"{name}={value!r} is invalid: must be one of {', '.join(allowed)}.")
    check_int("num_envs", num_envs)
    bound = open_envs(bound, num_envs)  # a batched env opens a pool of its own
    parts = _ActorParts(
        bound, q_network, num_envs, exploration, schedule, unit, truncation_is_terminal
    )
    return Actor(reset=partial(_reset, parts), act=partial(_act, parts), step=partial(_step, parts))


class _ActorParts(NamedTuple):
    bound: BoundEnv
    q_network: nn.Module
    num_envs: int
    exploration: str
    schedule: str
    unit: str
    truncation_is_terminal: bool


def _reset(parts: _ActorParts, key: jax.Array) -> ActorState:
    obs, env_state = reset_envs(parts.bound, key, parts.num_envs)
    return ActorState(
        env_state=env_state,
        obs=obs,
        episode_return=jnp.zeros(parts.num_envs, jnp.float32),
        episode_length=jnp.zeros(parts.num_envs, jnp.int32),
    )


def _act(parts: _ActorParts, key, state: ActorState, params, env_steps, episodes, hparams):
    n = parts.num_envs
    if parts.unit == "env_steps":  # env j of this vectorised step is env step env_steps + j
        count = env_steps + jnp.arange(n, dtype=jnp.int32)
    else:
        count = jnp.broadcast_to(episodes, (n,))
    if parts.exploration == "none":
        value = jnp.zeros(n, jnp.float32)
    else:
        value = exploration_value(parts.schedule, count, hparams)
    noise_key = jax.random.fold_in(key, ACTING_NOISE_STREAM) if is_noisy(parts.q_network) else None
    q_values = apply_q(parts.q_network, params, state.obs, noise_key)
    choose = jax.vmap(partial(select_action, parts.exploration))  # a None mask maps to None
    mask = legal_actions(parts.bound, state.env_state)
    return choose(jax.random.split(key, n), q_values, value, mask), value


def _step(parts: _ActorParts, key: jax.Array, state: ActorState, actions: jax.Array):
    obs, env_state, reward, terminated, truncated, info = step_envs(
        parts.bound, key, state.env_state, actions
    )
    reward = reward.astype(jnp.float32)
    valid = info.get("valid")  # None: every step is a transition
    terminated, truncated = terminated.astype(bool), truncated.astype(bool)
    # gymnax reports a step that both terminates and hits the time limit as both.
    truncated = truncated & ~terminated
    if parts.truncation_is_terminal:
        terminated, truncated = terminated | truncated, jnp.zeros_like(truncated)
    transition = Transition(
        obs=state.obs,
        action=actions,
        reward=reward,
        terminated=terminated,
        truncated=truncated,
        next_obs=info["final_observation"],
        valid=valid,
    )
    done = jnp.logical_or(terminated, truncated)
    ends = EpisodeEnds(
        done=done,
        episode_return=state.episode_return + info.get("raw_reward", reward),
        episode_length=state.episode_length + (1 if valid is None else valid.astype(jnp.int32)),
    )
    new_state = ActorState(
        env_state=env_state,
        obs=obs,
        episode_return=jnp.where(done, 0.0, ends.episode_return),
        episode_length=jnp.where(done, 0, ends.episode_length),
    )
    return new_state, transition, ends
