"""Jumanji (``pip install "jaxdqn[jumanji]"``): dm_env-style ``TimeStep`` envs.

Jumanji's step returns a ``TimeStep`` whose ``step_type`` is ``LAST`` when an episode
ends; its ``discount`` is 0 for a true terminal state and 1 where a time limit cut the
episode. So ``LAST`` with discount 0 is ``terminated`` and ``LAST`` with discount 1 is
``truncated``, except at the env's own ``time_limit``: some Jumanji envs (Snake among
them) end there with discount 0, so an end at that step is ``truncated`` whatever the
discount. An ``action_mask`` field of the observation becomes the legal-action mask.
"""

from __future__ import annotations

from typing import Any

import jax
import jumanji
from jumanji.types import StepType

from jaxdqn.envs.adapters.base import ObservationFn, SuiteAdapter, SuiteStep, dm_env_step

DEFAULT_TIME_LIMIT = 1_000  # for a Jumanji env without a time_limit of its own


def registered() -> tuple[str, ...]:
    """Jumanji's env ids."""
    return tuple(jumanji.registered_environments())


def make(name: str) -> JumanjiAdapter:
    """``JumanjiAdapter(jumanji.make(name))``."""
    return JumanjiAdapter(jumanji.make(name))


class JumanjiAdapter(SuiteAdapter):
    """A Jumanji env in the gymnax >= 1.0 interface jaxdqn trains on.

    Args:
      env: a ``jumanji.Environment`` with a ``DiscreteArray`` action spec.
      observation: how to make one array of its observation (``None``: the leaves other
        than ``action_mask``, raveled and concatenated as float32; a field name such as
        ``"grid"``; or a function).
      max_steps_in_episode: default time limit; at most the env's own ``time_limit``
        (default: that, or 1,000 where it has none).

    Raises:
      ValueError: an action spec that is not one ``DiscreteArray``.
    """

    time_limit_reported_as_terminal = True  # Snake: done at step_count >= time_limit

    def __init__(
        self,
        env: Any,
        *,
        observation: str | ObservationFn | None = None,
        max_steps_in_episode: int | None = None,
    ):
        spec = env.action_spec
        if not hasattr(spec, "num_values") or getattr(spec, "shape", ()) != ():
            raise ValueError(
                f"env={type(env).__name__} has action spec {type(spec).__name__}"
                f"{list(getattr(spec, 'shape', []))}; DQN needs one DiscreteArray action."
            )
        own_limit = getattr(env, "time_limit", None)
        limit = max_steps_in_episode or own_limit or DEFAULT_TIME_LIMIT
        super().__init__(
            env, "jumanji", int(spec.num_values), limit, observation, suite_time_limit=own_limit
        )

    def suite_reset(self, key: jax.Array, params) -> SuiteStep:
        state, timestep = self._env.reset(key)
        return _suite_step(state, timestep)

    def suite_step(self, key: jax.Array, inner, action: jax.Array, params) -> SuiteStep:
        return _suite_step(*self._env.step(inner, action))


def _suite_step(state: Any, timestep: Any) -> SuiteStep:
    mask = getattr(timestep.observation, "action_mask", None)
    return dm_env_step(state, timestep, timestep.step_type == StepType.LAST, mask)
