"""The one adapter every JAX env suite goes through: a gymnax >= 1.0 ``Environment`` over a
suite's own reset and step.

A suite adapter subclasses :class:`SuiteAdapter` and implements two functions that speak
the suite's language and return a :class:`SuiteStep`: ``suite_reset(key, params)`` and
``suite_step(key, inner, action, params)``. The base class does everything else the same
way for every suite, through gymnax's ``Environment.step``:

* the automatic reset, with the episode's true last observation in
  ``info["final_observation"]``;
* a time limit ``params.max_steps_in_episode`` (counted here) and the suite's own time
  limit, both reported as ``truncated`` (bootstrapped), apart from ``terminated`` (not);
* one observation array out of the suite's observation pytree (:func:`flatten_observation`
  or the adapter's ``observation`` argument);
* the suite's legal-action mask, where it has one, as ``action_mask(state, params)``, which
  jaxdqn's ε-greedy and greedy policies respect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

ObservationFn = Callable[[Any], jax.Array]


class SuiteStep(NamedTuple):
    """What a suite's reset or step gives, in the suite's own terms (one env)."""

    inner: Any  # the suite's state (a dm_env-style TimeStep where the suite carries one)
    obs: Any  # the suite's observation pytree
    reward: jax.Array  # [] float: reward of the step (0 at reset)
    terminated: jax.Array  # [] bool: a true terminal state
    truncated: jax.Array  # [] bool: the suite's own time limit ended the episode
    action_mask: jax.Array | None  # [num_actions] bool, or None where the suite has none


@struct.dataclass
class AdapterState:
    """One env's state: the suite's, the legal actions in it, the steps so far."""

    inner: Any
    action_mask: jax.Array | None  # [num_actions] bool; None where the suite has no mask
    time: jax.Array  # [] int32: steps taken in this episode
    suite_truncated: jax.Array  # [] bool: the suite's time limit ended this episode


@struct.dataclass
class AdapterParams:
    """An adapted env's parameters: the time limit, and the suite's own parameters."""

    max_steps_in_episode: int
    suite: Any = None  # the suite's params pytree where it has one (xminigrid, Craftax)


def dm_env_step(inner: Any, timestep: Any, last: jax.Array, action_mask=None) -> SuiteStep:
    """A :class:`SuiteStep` from a dm_env-style ``TimeStep`` (Jumanji, xminigrid): at the
    last step of an episode (``last``, bool ``[]``) a discount of 0 is a termination and
    any other discount a truncation."""
    return SuiteStep(
        inner=inner,
        obs=timestep.observation,
        reward=timestep.reward,
        terminated=last & (timestep.discount == 0),
        truncated=last & (timestep.discount != 0),
        action_mask=action_mask,
    )


def flatten_observation(obs: Any) -> jax.Array:
    """One observation array from a suite's observation pytree.

    An array is kept as it is (shape and dtype, so a CNN can read an image). A pytree
    (a dict, a NamedTuple) becomes one float32 vector: its leaves raveled in pytree order
    and concatenated, leaving out a field named ``action_mask`` (the adapter hands that
    to the policy). For other choices pass ``observation=`` to the adapter.

    Args:
      obs: the suite's observation for one env.

    Returns:
      ``obs`` itself, or float32 ``[total size of the leaves]``.
    """
    if isinstance(obs, jax.Array | jax.ShapeDtypeStruct):
        return obs
    if hasattr(obs, "_asdict"):
        obs = obs._asdict()
    if isinstance(obs, dict):
        obs = {name: value for name, value in obs.items() if name != "action_mask"}
    leaves = jax.tree.leaves(obs)
    return jnp.concatenate([jnp.ravel(leaf).astype(jnp.float32) for leaf in leaves])


def observation_fn(observation: str | ObservationFn | None) -> ObservationFn:
    """The function that turns a suite's observation into jaxdqn's: the default
    (:func:`flatten_observation`), one named field of the pytree, or the user's function."""
    if observation is None:
        return flatten_observation
    if isinstance(observation, str):
        return lambda obs: jnp.asarray(
            obs[observation] if isinstance(obs, dict) else getattr(obs, observation)
        )
    if callable(observation):
        return observation
    raise TypeError(
        f"observation={observation!r} is invalid: must be None, a field name or a function."
    )


class SuiteAdapter(environment.Environment):
    """Base class of the suite adapters (gymnax >= 1.0 ``Environment`` interface).

    Args:
      suite_env: the suite's env, kept as ``self._env``.
      suite: the suite's name; ``name`` is ``suite/<class of suite_env>`` (an id where the
        env was made from one).
      num_actions: size of the suite's discrete action space.
      max_steps_in_episode: the default time limit (``default_params``).
      observation: how to make one array of the suite's observation: ``None`` for
        :func:`flatten_observation`, a field name, or a function ``obs -> array``.
      suite_params: the suite's own parameters, carried in ``AdapterParams.suite``.
      suite_time_limit: the suite's own time limit where it is fixed when the suite's env
        is made; ``max_steps_in_episode`` may not exceed it (:func:`jaxdqn.envs.env_spec`
        checks).

    A subclass sets ``time_limit_reported_as_terminal = True`` where the suite may end an
    episode at its own ``suite_time_limit`` as if terminal (discount 0): an end at that
    step is then reported as truncated.
    """

    time_limit_reported_as_terminal = False

    def __init__(
        self,
        suite_env: Any,
        suite: str,
        num_actions: int,
        max_steps_in_episode: int,
        observation: str | ObservationFn | None = None,
        suite_params: Any = None,
        suite_time_limit: int | None = None,
    ):
        self._env = suite_env
        self.label = f"{suite}/{type(suite_env).__name__}"
        self._num_actions = int(num_actions)
        self._default_limit = int(max_steps_in_episode)
        self._observe = observation_fn(observation)
        self._suite_params = suite_params
        self.suite_time_limit = suite_time_limit

    def suite_reset(self, key: jax.Array, params: AdapterParams) -> SuiteStep:
        """The suite's reset (subclasses implement it)."""
        raise NotImplementedError

    def suite_step(self, key: jax.Array, inner: Any, action: jax.Array, params) -> SuiteStep:
        """The suite's step from state ``inner`` (subclasses implement it)."""
        raise NotImplementedError

    @property
    def name(self) -> str:
        return self.label

    @property
    def default_params(self) -> AdapterParams:
        return AdapterParams(max_steps_in_episode=self._default_limit, suite=self._suite_params)

    @property
    def num_actions(self) -> int:
        return self._num_actions

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(self._num_actions)

    def observation_space(self, params=None) -> spaces.Box:
        params = self.default_params if params is None else params
        obs, _ = jax.eval_shape(lambda k: self.reset_env(k, params), jax.random.key(0))
        return spaces.Box(-jnp.inf, jnp.inf, obs.shape, obs.dtype)

    def reset_env(self, key: jax.Array, params: AdapterParams):
        out = self.suite_reset(key, params)
        return self._observe(out.obs), self._state(out, jnp.int32(0))

    def step_env(self, key: jax.Array, state: AdapterState, action, params: AdapterParams):
        out = self.suite_step(key, state.inner, jnp.asarray(action, jnp.int32), params)
        if self.time_limit_reported_as_terminal and self.suite_time_limit is not None:
            # the suite ends its own time limit with discount 0: a truncation all the same
            at_limit = state.time + 1 >= self.suite_time_limit
            out = out._replace(
                terminated=out.terminated & ~at_limit, truncated=out.truncated | at_limit
            )
        terminated = jnp.asarray(out.terminated, bool)
        new_state = self._state(out, state.time + 1)
        reward = jnp.asarray(out.reward, jnp.float32)
        return self._observe(out.obs), new_state, reward, terminated, {}

    def is_truncated(self, state: AdapterState, params: AdapterParams) -> jax.Array:
        return state.suite_truncated | (state.time >= params.max_steps_in_episode)

    def action_mask(self, state: AdapterState, params: AdapterParams) -> jax.Array | None:
        """The legal actions in ``state``: bool ``[num_actions]``, or ``None`` where the
        suite has no mask (every action legal)."""
        return state.action_mask

    def _state(self, out: SuiteStep, time: jax.Array) -> AdapterState:
        mask = out.action_mask
        terminated = jnp.asarray(out.terminated, bool)
        return AdapterState(
            inner=out.inner,
            action_mask=None if mask is None else jnp.asarray(mask, bool),
            time=jnp.asarray(time, jnp.int32),
            suite_truncated=jnp.asarray(out.truncated, bool) & ~terminated,
        )
