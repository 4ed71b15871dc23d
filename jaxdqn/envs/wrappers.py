"""Wrappers that bring an environment to the contract jaxdqn trains on
(:mod:`jaxdqn.envs.contract`)."""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.wrappers.purerl import GymnaxWrapper


class BoolObservations(GymnaxWrapper):
    """MinAtar's observations in their native dtype, bool (gymnax casts them to float32).

    The replay keeps a ``[10, 10, C]`` bool observation as bits, a thirty-second of its
    float32 bytes (:mod:`jaxdqn.core.replay`); the Q-network casts to float32 when it
    reads it. ``final_observation`` in ``info`` is cast too.
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


@struct.dataclass
class StickyState:
    """The state of an env under :class:`StickyActions`."""

    env_state: Any  # the wrapped env's state
    last_action: jax.Array  # int32 []: the action the env executed last (0 after a reset)


class StickyActions(GymnaxWrapper):
    """Sticky actions (Machado et al. 2018): at every step, with probability ``prob`` the
    env executes its previous action instead of the one chosen. The MinAtar paper's
    protocol (Young & Tian 2019) uses ``prob=0.1``; the Atari benchmarks of Machado et al.
    use 0.25. It makes even a deterministic env stochastic, so a settled policy does not
    play the same episode again and again.

    The executed action becomes the previous one; an episode starts with action 0 as its
    previous one (as MinAtar does), also after the wrapped env's automatic reset. Rewards,
    observations and time limits are the wrapped env's.

    Args:
      env: an env with the gymnax >= 1.0 interface and a discrete action space.
      prob: the probability of repeating, in [0, 1).

    Raises:
      ValueError: for ``prob`` outside [0, 1).
    """

    def __init__(self, env: Any, prob: float = 0.1):
        super().__init__(env)
        if isinstance(prob, bool) or not isinstance(prob, int | float) or not 0 <= prob < 1:
            raise ValueError(f"StickyActions: prob={prob!r} is invalid: must be in [0, 1).")
        self.prob = float(prob)

    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        return obs, StickyState(env_state=state, last_action=jnp.int32(0))

    def step(self, key, state, action, params=None):
        key_stick, key_step = jax.random.split(key)
        repeat = jax.random.uniform(key_stick) < self.prob
        executed = jnp.where(repeat, state.last_action, action).astype(jnp.int32)
        obs, env_state, reward, terminated, truncated, info = self._env.step(
            key_step, state.env_state, executed, params
        )
        last = jnp.where(terminated | truncated, 0, executed).astype(jnp.int32)
        return obs, StickyState(env_state, last), reward, terminated, truncated, info
