"""Environments, resolved once: an id or an env object becomes a :class:`BoundEnv`.

Every environment follows the gymnax >= 1.0 API: ``env.step(key, state, action, params)``
returns ``(obs, state, reward, terminated, truncated, info)`` with the automatic reset
already applied to ``obs`` and the true last observation of an ended episode in
``info["final_observation"]``. Ids are every gymnax id plus the project's
``ChainWalk-v0`` (:data:`ENV_IDS`).

:func:`bind_env` is the one place an environment is built and inspected. What the rest of
the library needs to know about it (observation shape and dtype, number of actions, time
limit) is in its :class:`EnvSpec`, found by tracing one reset abstractly.
"""

from __future__ import annotations

import difflib
from typing import Any, NamedTuple

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import environment, spaces
from gymnax.wrappers.purerl import GymnaxWrapper

from jaxdqn.envs.chain_walk import (
    CHAIN_WALK_ID,
    ChainWalk,
    ChainWalkParams,
    ChainWalkState,
    chain_walk_observations,
    chain_walk_optimal_q,
)

_PROJECT_ENVS = {CHAIN_WALK_ID: ChainWalk}
ENV_IDS: tuple[str, ...] = (*gymnax.registered_envs, *_PROJECT_ENVS)


class EnvSpec(NamedTuple):
    """What the compiled program needs to know about an environment (static values)."""

    obs_shape: tuple[int, ...]  # one observation's shape, e.g. (4,) or (10, 10, 4)
    obs_dtype: np.dtype  # its dtype, kept in the replay memory (MinAtar: bool)
    num_actions: int  # size of the discrete action space
    max_episode_steps: int | None  # time limit (gymnax max_steps_in_episode); None if unknown


class BoundEnv(NamedTuple):
    """An environment with the parameters it runs with, and its :class:`EnvSpec`."""

    env: environment.Environment  # gymnax >= 1.0 Environment interface
    params: Any  # its EnvParams
    spec: EnvSpec
    name: str  # the id it was built from, or the env's class name


def check_env_id(env_id: object, field: str = "env_id") -> None:
    """Raises ``ValueError`` naming ``field`` unless ``env_id`` is one of :data:`ENV_IDS`.

    The message lists close matches (``difflib``) and where to find every id. Nothing is
    built: what needs the environment is checked by :func:`bind_env`.
    """
    if isinstance(env_id, str) and env_id in ENV_IDS:
        return
    close = difflib.get_close_matches(str(env_id), ENV_IDS, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"{field}={env_id!r} is not a known environment.{hint} "
        f"Known ids: jaxdqn.ENV_IDS ({len(ENV_IDS)} ids: every gymnax id and {CHAIN_WALK_ID!r})."
    )


def bind_env(env: Any, env_params: Any = None, *, field: str = "env") -> BoundEnv:
    """Resolves an environment once: builds it from an id, or takes the object given.

    Args:
      env: an id from :data:`ENV_IDS` (built with its default parameters) or an object with
        the gymnax >= 1.0 ``Environment`` interface.
      env_params: the env's parameters; ``None`` takes ``env.default_params`` (for an id,
        the id's defaults).
      field: the name errors give the environment (``DQNConfig.env_id`` for a config's).

    Returns:
      A :class:`BoundEnv`.

    Raises:
      ValueError: an unknown id (listing close matches), or an action space that is not
        ``Discrete``.
    """
    if isinstance(env, str):
        check_env_id(env, field)
        name = env
        env, default_params = _build(env)
    else:
        name = type(env).__name__
        default_params = env.default_params
    params = default_params if env_params is None else env_params
    space = env.action_space(params)
    if not isinstance(space, spaces.Discrete):
        raise ValueError(
            f"{field}={name!r} has a {type(space).__name__} action space; DQN needs a Discrete one."
        )
    obs = jax.eval_shape(lambda k: env.reset(k, params)[0], jax.random.key(0))
    limit = getattr(params, "max_steps_in_episode", None)
    spec = EnvSpec(
        obs_shape=tuple(obs.shape),
        obs_dtype=np.dtype(obs.dtype),
        num_actions=int(space.n),
        max_episode_steps=None if limit is None else int(limit),
    )
    return BoundEnv(env=env, params=params, spec=spec, name=name)


def make_env(env_id: str) -> tuple[environment.Environment, environment.EnvParams]:
    """Builds an environment and its default parameters.

    Args:
      env_id: a gymnax id (``gymnax.registered_envs``) or ``"ChainWalk-v0"``.

    Returns:
      ``(env, env_params)`` in the gymnax >= 1.0 API.

    Raises:
      ValueError: for an unknown id (listing close matches) or non-discrete actions.
    """
    bound = bind_env(env_id, field="env_id")
    return bound.env, bound.params


class BoolObservations(GymnaxWrapper):
    """MinAtar's observations in their native dtype, bool (gymnax casts them to float32).

    A ``[10, 10, C]`` bool observation takes a quarter of the float32 bytes in the replay
    buffer; the Q-network casts to float32 when it reads it. ``final_observation`` in
    ``info`` is cast too.
    """

    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        return obs.astype(jnp.bool_), state

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        info = {**info, "final_observation": info["final_observation"].astype(jnp.bool_)}
        return obs.astype(jnp.bool_), state, reward, terminated, truncated, info


def _build(env_id: str) -> tuple[environment.Environment, environment.EnvParams]:
    """The env of a known id and its default parameters (the only place one is built)."""
    if env_id in _PROJECT_ENVS:
        env = _PROJECT_ENVS[env_id]()
        return env, env.default_params
    env, params = gymnax.make(env_id)
    if env_id.endswith("-MinAtar"):
        env = BoolObservations(env)
    return env, params


__all__ = [
    "CHAIN_WALK_ID",
    "ENV_IDS",
    "BoolObservations",
    "BoundEnv",
    "ChainWalk",
    "ChainWalkParams",
    "ChainWalkState",
    "EnvSpec",
    "bind_env",
    "chain_walk_observations",
    "chain_walk_optimal_q",
    "check_env_id",
    "make_env",
]
