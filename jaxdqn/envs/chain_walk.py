"""``ChainWalk-v0``: the toy chain of the project's source material, as a gymnax env."""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

CHAIN_WALK_ID = "ChainWalk-v0"


@struct.dataclass
class ChainWalkState(environment.EnvState):
    position: jax.Array  # shape=(), int32, in [0, num_states)
    time: jax.Array  # shape=(), int32, steps taken in this episode


@struct.dataclass
class ChainWalkParams(environment.EnvParams):
    num_states: int = 6
    move_reward: float = 0.0  # action 1 below the last state
    goal_reward: float = 1.0  # action 1 in the last state (which is kept)
    back_reward: float = -0.1  # action 0, anywhere
    max_steps_in_episode: int = 20


class ChainWalk(environment.Environment[ChainWalkState, ChainWalkParams]):
    """The toy chain of the project's source material, as a gymnax environment.

    States ``0..5``, every episode starts at 0. Action 1 moves right with reward 0 and,
    in the last state, stays there with reward 1. Action 0 moves to ``max(0, s - 1)``
    with reward -0.1. The observation is the state as a float32 vector of shape ``(1,)``.
    The chain never terminates; episodes are truncated after 20 steps, so a correct
    agent must bootstrap through the time limit: with ``gamma = 0.99`` the optimal
    values are near 100 although no episode collects more than 15 (5 moves to the
    last state, then 15 steps of reward 1).

    Use :func:`chain_walk_optimal_q` for the analytic infinite-horizon ``Q*``.
    """

    @property
    def default_params(self) -> ChainWalkParams:
        return ChainWalkParams()

    def step_env(
        self,
        key: jax.Array,
        state: ChainWalkState,
        action: int | jax.Array,
        params: ChainWalkParams,
    ) -> tuple[jax.Array, ChainWalkState, jax.Array, jax.Array, dict[str, Any]]:
        del key
        last = params.num_states - 1
        at_goal = state.position == last
        right = jnp.asarray(action) == 1
        position = jnp.where(
            right, jnp.minimum(state.position + 1, last), jnp.maximum(state.position - 1, 0)
        )
        reward = jnp.where(
            right,
            jnp.where(at_goal, params.goal_reward, params.move_reward),
            params.back_reward,
        ).astype(jnp.float32)
        new_state = ChainWalkState(position=position.astype(jnp.int32), time=state.time + 1)
        terminated = jnp.array(False)
        return self.get_obs(new_state), new_state, reward, terminated, {}

    def reset_env(
        self, key: jax.Array, params: ChainWalkParams
    ) -> tuple[jax.Array, ChainWalkState]:
        del key, params
        state = ChainWalkState(position=jnp.int32(0), time=jnp.int32(0))
        return self.get_obs(state), state

    def get_obs(self, state: ChainWalkState, params=None, key=None) -> jax.Array:
        return state.position.astype(jnp.float32)[None]

    def is_terminated(self, state: ChainWalkState, params: ChainWalkParams) -> jax.Array:
        return jnp.array(False)

    @property
    def name(self) -> str:
        return CHAIN_WALK_ID

    @property
    def num_actions(self) -> int:
        return 2

    def action_space(self, params: ChainWalkParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(2)

    def observation_space(self, params: ChainWalkParams) -> spaces.Box:
        return spaces.Box(0.0, float(params.num_states - 1), (1,), jnp.float32)


def chain_walk_optimal_q(gamma: float, params: ChainWalkParams | None = None) -> chex.Array:
    """Analytic infinite-horizon ``Q*`` of :class:`ChainWalk` (time limit ignored).

    The optimal policy always moves right, so ``V*(s) = gamma**(last - s) * R / (1 - gamma)``
    with ``R`` the goal reward, and ``Q*(s, a)`` follows from one Bellman step.

    Args:
      gamma: discount in ``[0, 1)``.
      params: chain parameters; the default chain when ``None``.

    Returns:
      float64 NumPy array of shape ``[num_states, 2]``: ``Q*[s, a]``.
    """
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma={gamma!r} must be in [0, 1) for an infinite-horizon Q*")
    p = params or ChainWalkParams()
    last = p.num_states - 1
    states = np.arange(p.num_states)
    v = gamma ** (last - states) * p.goal_reward / (1.0 - gamma)
    q_right = (
        np.where(states == last, p.goal_reward, p.move_reward)
        + gamma * v[np.minimum(states + 1, last)]
    )
    q_back = p.back_reward + gamma * v[np.maximum(states - 1, 0)]
    return np.stack([q_back, q_right], axis=1)


def chain_walk_observations(params: ChainWalkParams | None = None) -> jax.Array:
    """The observation of every chain state, in state order: float32 ``[num_states, 1]``.

    ``q_network.apply(params, chain_walk_observations())`` is the learned Q-table, to
    compare with :func:`chain_walk_optimal_q`.
    """
    p = params or ChainWalkParams()
    observe = jax.vmap(lambda s: ChainWalk().get_obs(ChainWalkState(position=s, time=jnp.int32(0))))
    return observe(jnp.arange(p.num_states, dtype=jnp.int32))
