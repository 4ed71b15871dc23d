"""PGX (``pip install "jaxdqn[pgx]"``): its single-player games (2048, and the MinAtar
games where ``pgx-minatar`` is installed).

PGX's ``State`` carries ``terminated``, ``truncated``, ``rewards`` (one per player) and the
``legal_action_mask``, which the adapter hands to jaxdqn's ε-greedy and greedy policies
(an illegal action ends a PGX game). PGX games have no time limit of their own; the
adapter's ``max_steps_in_episode`` truncates.
"""

from __future__ import annotations

from typing import Any

import jax
import pgx

from jaxdqn.envs.adapters.base import ObservationFn, SuiteAdapter, SuiteStep

DEFAULT_TIME_LIMIT = 2_000


def registered() -> tuple[str, ...]:
    """PGX's env ids (the single-player ones train)."""
    return tuple(pgx.available_envs())


def make(name: str) -> PGXAdapter:
    """``PGXAdapter(pgx.make(name))``."""
    return PGXAdapter(pgx.make(name))


class PGXAdapter(SuiteAdapter):
    """A single-player PGX game in the gymnax >= 1.0 interface jaxdqn trains on.

    Args:
      env: a ``pgx.Env`` with ``num_players == 1``.
      observation: how to make one array of its observation (``None``: as PGX gives it).
      max_steps_in_episode: default time limit.

    Raises:
      ValueError: a game for more than one player.
    """

    def __init__(
        self,
        env: Any,
        *,
        observation: str | ObservationFn | None = None,
        max_steps_in_episode: int = DEFAULT_TIME_LIMIT,
    ):
        if env.num_players != 1:
            raise ValueError(
                f"env=pgx {env.id!r} is a game for {env.num_players} players; jaxdqn trains "
                "single-player games (2048, minatar-*)."
            )
        super().__init__(env, "pgx", env.num_actions, max_steps_in_episode, observation)

    def suite_reset(self, key: jax.Array, params) -> SuiteStep:
        return _suite_step(self._env.init(key))

    def suite_step(self, key: jax.Array, inner, action: jax.Array, params) -> SuiteStep:
        return _suite_step(self._env.step(inner, action, key))


def _suite_step(state: Any) -> SuiteStep:
    return SuiteStep(
        inner=state,
        obs=state.observation,
        reward=state.rewards[0],
        terminated=state.terminated,
        truncated=state.truncated,
        action_mask=state.legal_action_mask,
    )
