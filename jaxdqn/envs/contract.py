"""What an environment must provide, checked abstractly before anything is compiled.

:func:`env_spec` traces one ``reset`` and one ``step`` with ``jax.eval_shape`` (nothing
runs) and either returns the :class:`EnvSpec` the compiled program needs or raises a
``TypeError`` / ``ValueError`` that names what is wrong and what is expected, so an env
that breaks the contract never surfaces as a trace error deep inside the training loop.

The contract is gymnax >= 1.0's ``Environment``:

* ``reset(key, params) -> (obs, state)``;
* ``step(key, state, action, params) -> (obs, state, reward, terminated, truncated,
  info)`` with the automatic reset applied to ``obs`` and the true last observation of
  an ended episode in ``info["final_observation"]``;
* ``action_space(params)`` a ``Discrete`` space; ``default_params``;
* optionally ``action_mask(state, params) -> bool [num_actions]`` (or ``None``), the legal
  actions in a state, which the exploring and greedy policies respect.

An observation is one array of bools, integers or floats (what the replay stores as it
is); reward, terminated and truncated are scalars per env (the flags are read as bools);
a time limit ``params.max_steps_in_episode``, where there is one, is an int >= 1.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces


class EnvSpec(NamedTuple):
    """What the compiled program needs to know about an environment (static values)."""

    obs_shape: tuple[int, ...]  # one observation's shape, e.g. (4,) or (10, 10, 4)
    obs_dtype: np.dtype  # its dtype, kept in the replay memory (MinAtar: bool)
    num_actions: int  # size of the discrete action space
    max_episode_steps: int | None  # time limit (gymnax max_steps_in_episode); None if unknown
    action_masked: bool = False  # env.action_mask(state, params) gives the legal actions


_LEGACY_HINT = (
    "that is the pre-1.0 gymnax step (obs, state, reward, done, info). jaxdqn needs "
    "gymnax >= 1.0's (obs, state, reward, terminated, truncated, info) with "
    'info["final_observation"], so that a time limit does not stop bootstrapping. '
    "Wrap it with jaxdqn.envs.LegacyStepAPI(env), which counts every done as terminal, "
    "time limits included."
)


def env_spec(env: Any, params: Any, name: str, field: str = "env") -> EnvSpec:
    """The :class:`EnvSpec` of ``env`` with ``params``, after checking the contract.

    Args:
      env: the environment object.
      params: its parameters.
      name: how errors name the env (its id or class name).
      field: how errors name the argument that gave it.

    Raises:
      ValueError: an action space that is not ``Discrete``, an observation that is not an
        array of bools, integers or floats, or a ``final_observation`` that does not match
        the observations.
      TypeError: ``reset`` or ``step`` that fail when traced, or return the wrong number
        or kind of values (a pre-1.0 gymnax step among them).
    """
    where = f"{field}={name!r}"
    if getattr(env, "batched", False):  # steps all its envs at once (EnvPool): no tracing
        spec = env.env_spec(params)
        return spec._replace(max_episode_steps=_time_limit(where, env, params))
    space = _call(where, "action_space(params)", lambda: env.action_space(params))
    if not isinstance(space, spaces.Discrete):
        raise ValueError(
            f"{where} has a {type(space).__name__} action space; DQN needs a Discrete one "
            "(gymnax.environments.spaces.Discrete)."
        )
    key = jax.random.key(0)
    reset = _call(
        where, "reset(key, params)", lambda: jax.eval_shape(lambda k: env.reset(k, params), key)
    )
    if not isinstance(reset, tuple) or len(reset) != 2:
        raise TypeError(
            f"{where}: reset(key, params) must return (obs, state); got {_describe(reset)}."
        )
    obs, state = reset
    _check_obs(where, "reset's obs", obs)
    step = _call(
        where,
        "step(key, state, action, params)",
        lambda: jax.eval_shape(lambda k, s: env.step(k, s, jnp.int32(0), params), key, state),
    )
    _check_step(where, obs, step)
    return EnvSpec(
        obs_shape=tuple(obs.shape),
        obs_dtype=np.dtype(obs.dtype),
        num_actions=int(space.n),
        max_episode_steps=_time_limit(where, env, params),
        action_masked=_has_action_mask(where, env, params, state, int(space.n)),
    )


def _has_action_mask(where: str, env: Any, params: Any, state: Any, num_actions: int) -> bool:
    """Whether ``env.action_mask(state, params)`` gives a mask: bool ``[num_actions]``."""
    if not callable(getattr(env, "action_mask", None)):
        return False
    mask = _call(
        where,
        "action_mask(state, params)",
        lambda: jax.eval_shape(lambda s: env.action_mask(s, params), state),
    )
    if mask is None:
        return False
    if (
        not isinstance(mask, jax.ShapeDtypeStruct)
        or mask.dtype != np.bool_
        or mask.shape != (num_actions,)
    ):
        raise ValueError(
            f"{where}: action_mask(state, params) is {_describe(mask)} "
            f"{getattr(mask, 'dtype', '')}{list(getattr(mask, 'shape', []))}; it must be "
            f"bool[{num_actions}] (or None: every action legal)."
        )
    return True


def _time_limit(where: str, env: Any, params: Any) -> int | None:
    """``params.max_steps_in_episode`` as an int >= 1, or ``None`` where there is none; at
    most ``env.suite_time_limit``, a suite's own limit fixed when its env was made."""
    limit = getattr(params, "max_steps_in_episode", None)
    if limit is None:
        return None
    if isinstance(limit, bool) or not float(limit).is_integer() or limit < 1:
        raise ValueError(
            f"{where}: max_steps_in_episode={limit!r} is invalid: must be an int >= 1."
        )
    cap = getattr(env, "suite_time_limit", None)
    if cap is not None and limit > cap:
        raise ValueError(
            f"{where}: max_steps_in_episode={limit!r} is invalid: the env's own time limit "
            f"is {cap}, fixed when it was made; give at most {cap}, or make the env with a "
            "longer limit."
        )
    return int(limit)


def _call(where: str, what: str, fn):
    try:
        return fn()
    except Exception as error:  # any failure of the user's code, named and chained
        raise TypeError(
            f"{where}: {what} failed when traced: {type(error).__name__}: {error}"
        ) from error


def _describe(value: Any) -> str:
    if isinstance(value, tuple):
        return f"a tuple of {len(value)} values"
    return type(value).__name__


def _check_obs(where: str, what: str, obs: Any) -> None:
    if not isinstance(obs, jax.ShapeDtypeStruct):
        raise ValueError(
            f"{where}: {what} is {_describe(obs)}; jaxdqn needs one array per observation "
            "(flatten or concatenate a dict or tuple of arrays in a wrapper)."
        )
    dtype = np.dtype(obs.dtype)
    if not (
        dtype == np.bool_
        or jnp.issubdtype(dtype, jnp.integer)
        or jnp.issubdtype(dtype, jnp.floating)
    ):
        raise ValueError(
            f"{where}: {what} has dtype {dtype}; jaxdqn stores bool, integer or float observations."
        )


def _check_step(where: str, obs: jax.ShapeDtypeStruct, step: Any) -> None:
    if isinstance(step, tuple) and len(step) == 5:
        raise TypeError(f"{where}: step returned 5 values; {_LEGACY_HINT}")
    if not isinstance(step, tuple) or len(step) != 6:
        raise TypeError(
            f"{where}: step must return (obs, state, reward, terminated, truncated, info); "
            f"got {_describe(step)}."
        )
    next_obs, _, reward, terminated, truncated, info = step
    _check_obs(where, "step's obs", next_obs)
    if next_obs.shape != obs.shape or next_obs.dtype != obs.dtype:
        raise ValueError(
            f"{where}: step's obs is {next_obs.dtype}{list(next_obs.shape)}, reset's is "
            f"{obs.dtype}{list(obs.shape)}; they must match."
        )
    for label, value in (("reward", reward), ("terminated", terminated), ("truncated", truncated)):
        if not isinstance(value, jax.ShapeDtypeStruct) or value.shape != ():
            shape = list(getattr(value, "shape", []))
            raise TypeError(
                f"{where}: step's {label} must be a scalar (one env); got "
                f"{_describe(value)} of shape {shape}."
            )
    if not isinstance(info, dict) or "final_observation" not in info:
        raise ValueError(
            f'{where}: step\'s info has no "final_observation": jaxdqn bootstraps a truncated '
            "step from the episode's true last observation, which gymnax >= 1.0 puts there."
        )
    final = info["final_observation"]
    if (
        not isinstance(final, jax.ShapeDtypeStruct)
        or final.shape != obs.shape
        or final.dtype != obs.dtype
    ):
        raise ValueError(
            f'{where}: info["final_observation"] is {_describe(final)} '
            f"{getattr(final, 'dtype', '')}{list(getattr(final, 'shape', []))}; it must match "
            f"the observations, {obs.dtype}{list(obs.shape)}."
        )
