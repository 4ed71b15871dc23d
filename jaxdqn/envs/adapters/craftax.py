"""Craftax (``pip install "jaxdqn[craftax]"``): Craftax and Craftax-Classic.

Craftax's step reports one ``done`` for death, lava and its time limit
(``params.max_timesteps``) alike, with discount 0 for all three. The adapter keeps them
apart: ``terminated`` is Craftax's own ``is_terminal`` with the time limit lifted, and the
time limit, the adapter's ``max_steps_in_episode`` (passed to Craftax as
``max_timesteps``), is a truncation that bootstraps.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from craftax.craftax_env import make_craftax_env_from_name

from jaxdqn.envs.adapters.base import AdapterParams, ObservationFn, SuiteAdapter, SuiteStep

IDS = (
    "Craftax-Classic-Symbolic-v1",
    "Craftax-Classic-Pixels-v1",
    "Craftax-Symbolic-v1",
    "Craftax-Pixels-v1",
)
_NEVER = int(jnp.iinfo(jnp.int32).max)


def registered() -> tuple[str, ...]:
    """The Craftax ids the adapter builds."""
    return IDS


def make(name: str) -> CraftaxAdapter:
    """``CraftaxAdapter`` of Craftax's env ``name`` without its own automatic reset."""
    if name not in IDS:
        raise ValueError(f"craftax/{name} is not a Craftax env; known: {', '.join(IDS)}.")
    return CraftaxAdapter(make_craftax_env_from_name(name, auto_reset=False))


class CraftaxAdapter(SuiteAdapter):
    """A Craftax env (without automatic reset) in the gymnax >= 1.0 interface.

    Args:
      env: a Craftax env made with ``auto_reset=False``.
      observation: how to make one array of its observation (``None``: as Craftax gives
        it, a float32 vector for the symbolic envs).
    """

    def __init__(self, env: Any, *, observation: str | ObservationFn | None = None):
        params = env.default_params
        num_actions = env.action_space(params).n
        super().__init__(
            env, "craftax", num_actions, params.max_timesteps, observation, suite_params=params
        )

    def suite_reset(self, key: jax.Array, params: AdapterParams) -> SuiteStep:
        obs, state = self._env.reset_env(key, _suite_params(params))
        return SuiteStep(state, obs, jnp.float32(0.0), jnp.bool_(False), jnp.bool_(False), None)

    def suite_step(self, key: jax.Array, inner, action: jax.Array, params) -> SuiteStep:
        obs, state, reward, _, _ = self._env.step_env(key, inner, action, _suite_params(params))
        dead = self._env.is_terminal(state, params.suite.replace(max_timesteps=_NEVER))
        return SuiteStep(state, obs, reward, dead, jnp.bool_(False), None)


def _suite_params(params: AdapterParams) -> Any:
    return params.suite.replace(max_timesteps=params.max_steps_in_episode)
