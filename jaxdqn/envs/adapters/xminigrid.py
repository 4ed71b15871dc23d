"""XLand-MiniGrid (``pip install "jaxdqn[xminigrid]"``): dm_env-style ``TimeStep`` envs.

xminigrid's step returns a ``TimeStep`` with ``step_type`` ``LAST`` when the goal is
reached (discount 0: ``terminated``) or when ``params.max_steps`` steps are done (discount
1: ``truncated``). The adapter's ``max_steps_in_episode`` is xminigrid's ``max_steps``: its
reward, ``1 - 0.9 * steps / max_steps``, uses the same limit.
"""

from __future__ import annotations

from typing import Any

import jax
import xminigrid
from xminigrid.types import StepType

from jaxdqn.envs.adapters.base import (
    AdapterParams,
    ObservationFn,
    SuiteAdapter,
    SuiteStep,
    dm_env_step,
)


def registered() -> tuple[str, ...]:
    """xminigrid's env ids."""
    return tuple(xminigrid.registered_environments())


def make(name: str) -> XMiniGridAdapter:
    """``XMiniGridAdapter(*xminigrid.make(name))``."""
    return XMiniGridAdapter(*xminigrid.make(name))


class XMiniGridAdapter(SuiteAdapter):
    """An xminigrid env in the gymnax >= 1.0 interface jaxdqn trains on.

    Args:
      env: an xminigrid ``Environment``.
      env_params: its params (``xminigrid.make`` returns both); ``max_steps`` becomes the
        default ``max_steps_in_episode``.
      observation: how to make one array of its observation (``None``: the
        ``[view, view, 2]`` uint8 grid as it is).
    """

    def __init__(
        self, env: Any, env_params: Any, *, observation: str | ObservationFn | None = None
    ):
        super().__init__(
            env,
            "xminigrid",
            env.num_actions(env_params),
            env_params.max_steps,
            observation,
            suite_params=env_params,
        )

    def suite_reset(self, key: jax.Array, params: AdapterParams) -> SuiteStep:
        return _suite_step(self._env.reset(_suite_params(params), key))

    def suite_step(self, key: jax.Array, inner, action: jax.Array, params) -> SuiteStep:
        return _suite_step(self._env.step(_suite_params(params), inner, action))


def _suite_params(params: AdapterParams) -> Any:
    return params.suite.replace(max_steps=params.max_steps_in_episode)


def _suite_step(timestep: Any) -> SuiteStep:
    return dm_env_step(timestep, timestep, timestep.step_type == StepType.LAST)
