"""Navix (``pip install "jaxdqn[navix]"``): MiniGrid in JAX.

Navix's ``Timestep.step_type`` is 2 for a termination and 1 for a truncation (its
``max_steps``, fixed when the env is made), which map to ``terminated`` and ``truncated``.
Navix resets on the step *after* an episode ends and discards that action; the adapter
resets at the end instead (gymnax's automatic reset), so no step is lost.
"""

from __future__ import annotations

from typing import Any

import jax
import navix
from navix.environments.registry import registry

from jaxdqn.envs.adapters.base import ObservationFn, SuiteAdapter, SuiteStep


def registered() -> tuple[str, ...]:
    """Navix's env ids."""
    return tuple(registry())


def make(name: str) -> NavixAdapter:
    """``NavixAdapter(navix.make(name))``."""
    return NavixAdapter(navix.make(name))


class NavixAdapter(SuiteAdapter):
    """A Navix env in the gymnax >= 1.0 interface jaxdqn trains on.

    Args:
      env: a ``navix.Environment`` (its ``max_steps`` is the default and largest
        ``max_steps_in_episode``; make it with ``navix.make(id, max_steps=N)`` for another).
      observation: how to make one array of its observation (``None``: as the env's
        ``observation_fn`` gives it).
    """

    def __init__(self, env: Any, *, observation: str | ObservationFn | None = None):
        num_actions = len(env.action_set)  # its Discrete space holds arrays, not ints
        super().__init__(
            env, "navix", num_actions, env.max_steps, observation, suite_time_limit=env.max_steps
        )

    def suite_reset(self, key: jax.Array, params) -> SuiteStep:
        return _suite_step(self._env.reset(key))

    def suite_step(self, key: jax.Array, inner, action: jax.Array, params) -> SuiteStep:
        return _suite_step(self._env.step(inner, action))


def _suite_step(timestep: Any) -> SuiteStep:
    return SuiteStep(
        inner=timestep,
        obs=timestep.observation,
        reward=timestep.reward,
        terminated=timestep.is_termination(),
        truncated=timestep.is_truncation(),
        action_mask=None,
    )
