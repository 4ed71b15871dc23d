"""Wrappers that bring an environment to the contract jaxdqn trains on
(:mod:`jaxdqn.envs.contract`)."""

from __future__ import annotations

import warnings
from typing import Any

import jax.numpy as jnp
from gymnax.wrappers.purerl import GymnaxWrapper


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


class LegacyStepAPI(GymnaxWrapper):
    """An env with the pre-1.0 gymnax step, ``(obs, state, reward, done, info)``, in the
    gymnax >= 1.0 form jaxdqn trains on.

    The old step reports a time limit and a true terminal state alike, as ``done``, and
    returns the next episode's first observation in place of the last one. So every
    ``done`` becomes ``terminated`` (no bootstrap) and ``truncated`` is always false: time
    limits count as terminal, the masking mistake jaxdqn otherwise avoids. A warning says
    so when the wrapper is made. ``info["final_observation"]`` is the observation the old
    step returned; it is never bootstrapped from, since every ended episode is terminal.
    Where you can, port the env to gymnax >= 1.0 (implement ``step_env`` and let gymnax's
    ``Environment.step`` add the truncation) instead.
    """

    def __init__(self, env: Any):
        super().__init__(env)
        warnings.warn(
            f"LegacyStepAPI({type(env).__name__}): every done counts as terminal, time "
            "limits included, so truncated episodes stop bootstrapping.",
            UserWarning,
            stacklevel=2,
        )

    def step(self, key, state, action, params=None):
        obs, state, reward, done, info = self._env.step(key, state, action, params)
        done = jnp.asarray(done, bool)
        info = {**info, "final_observation": obs}
        return obs, state, reward, done, jnp.zeros_like(done), info
