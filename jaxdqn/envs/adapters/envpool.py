"""EnvPool (``pip install "jaxdqn[envpool]"``): Atari, classic control and the rest of
EnvPool's C++ envs, stepped inside the compiled loop through EnvPool's XLA interface.

An EnvPool env is not a pure function of a state: its envs live in a C++ pool that the
compiled program steps through an XLA custom call. So :class:`EnvPoolEnv` is a *batched*
env (``batched = True``): it steps all ``num_envs`` envs of a pool at once
(:meth:`EnvPoolBatch.step`), and the actor calls it without ``jax.vmap``. Each use
(a run's actor, an evaluation) opens a pool of its own (:meth:`EnvPoolEnv.open`).

EnvPool resets an env on the step *after* its episode ended and ignores that step's
action. The adapter reports that step as not a transition (``info["valid"]`` false): the
replay stores its row, since its rows are in time order, and never learns from it. The
step that ended the episode returns the episode's true last observation, which is
therefore both its ``next_obs`` and its ``info["final_observation"]``. ``terminated`` and
``truncated`` are EnvPool's own (gymnasium API): a time limit
(``max_steps_in_episode``, EnvPool's ``max_episode_steps``) bootstraps.

Image observations ``[C, H, W]`` (Atari's 4 stacked 84x84 frames) are handed on as
``[H, W, C]``, the layout of jaxdqn's CNNs; float64 observations as float32.

Limits that come from the pool living outside JAX: one seed per run (a ``jax.vmap`` over
more than one seed is refused; train more seeds as separate runs), no ``--resume`` (a
checkpoint cannot hold the pool's envs), and the envs' randomness (no-op starts, sticky
actions) comes from the pool's own ``seed``, not the run's key.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import envpool
import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from jaxdqn.envs.contract import EnvSpec

# Added to the pool seed of every pool opened after the first, so an evaluation does not
# replay the training envs' randomness.
POOL_SEED_STRIDE = 1_000_003


def registered() -> tuple[str, ...]:
    """EnvPool's task ids (those with a continuous action space are refused when made)."""
    return tuple(envpool.list_all_envs())


def make(name: str) -> EnvPoolEnv:
    """``EnvPoolEnv(name)``."""
    return EnvPoolEnv(name)


# Fields of EnvPool's config that belong to a pool, not to the task: not env params.
_POOL_FIELDS = frozenset(
    (
        "num_envs",
        "batch_size",
        "num_threads",
        "max_num_players",
        "thread_affinity_offset",
        "base_path",
        "seed",
        "env_seed",
        "gym_reset_return_info",
        "task",
        "max_episode_steps",
    )
)


class EnvPoolState(NamedTuple):
    """A pool's envs, as the compiled program sees them."""

    handle: jax.Array  # uint8 [H]: EnvPool's token for the pool (threads the calls in order)
    needs_reset: jax.Array  # bool [num_envs]: the env's episode ended; EnvPool resets it next


class EnvPoolEnv:
    """An EnvPool task in the interface jaxdqn trains on (a batched env).

    Its params are a NamedTuple of the task's EnvPool options (``reward_clip``,
    ``episodic_life``, ``repeat_action_probability``, ``noop_max``, ``stack_num``, ...
    for Atari) and ``max_steps_in_episode`` (EnvPool's ``max_episode_steps``), so
    ``env_params={"reward_clip": True}`` (``--env-param reward_clip=true``) sets them.

    Args:
      task_id: an EnvPool id (``envpool.list_all_envs()``), e.g. ``"Pong-v5"`` or
        ``"CartPole-v1"``; its action space must be discrete.
      seed: the first pool's seed; later pools add multiples of :data:`POOL_SEED_STRIDE`.

    Raises:
      ValueError: an unknown task, or one with a continuous action space.
    """

    batched = True

    def __init__(self, task_id: str, *, seed: int = 0):
        known = registered()
        if task_id not in known:
            close = difflib.get_close_matches(task_id, known, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"task_id={task_id!r} is not an EnvPool task.{hint}")
        spec = envpool.make_spec(task_id)
        action_space = _quiet(lambda: spec.action_space)
        if not hasattr(action_space, "n"):
            raise ValueError(
                f"EnvPool task {task_id!r} has a {type(action_space).__name__} action "
                "space; DQN needs a discrete one."
            )
        options = {k: v for k, v in spec.config._asdict().items() if k not in _POOL_FIELDS}
        options["max_steps_in_episode"] = int(spec.config.max_episode_steps)
        self._params_type = NamedTuple(
            "EnvPoolParams", [(name, type(value)) for name, value in options.items()]
        )
        self._default = self._params_type(**options)
        self.task_id = task_id
        self.seed = int(seed)
        self.label = f"envpool/{task_id}"
        self._num_actions = int(action_space.n)
        self._pools_opened = 0

    @property
    def default_params(self) -> Any:
        return self._default

    def action_space(self, params: Any = None) -> spaces.Discrete:
        return spaces.Discrete(self._num_actions)

    def env_spec(self, params: Any) -> EnvSpec:
        """What the compiled program needs to know, from EnvPool's spaces (no pool made)."""
        space = _quiet(
            lambda: envpool.make_spec(self.task_id, **_options(params)).observation_space
        )
        shape, dtype = tuple(space.shape), np.dtype(space.dtype)
        return EnvSpec(
            obs_shape=shape[1:] + shape[:1] if len(shape) == 3 else shape,
            obs_dtype=np.dtype(np.float32) if dtype == np.float64 else dtype,
            num_actions=self._num_actions,
            max_episode_steps=int(params.max_steps_in_episode),
            action_masked=False,
        )

    def open(self, num_envs: int, params: Any) -> EnvPoolBatch:
        """A new pool of ``num_envs`` envs (made on the host now), to be reset and stepped
        inside a compiled program."""
        seed = self.seed + POOL_SEED_STRIDE * self._pools_opened
        self._pools_opened += 1
        pool = _quiet(
            lambda: envpool.make(
                self.task_id,
                env_type="gymnasium",
                num_envs=num_envs,
                batch_size=num_envs,
                seed=seed,
                **_options(params),
            )
        )
        return EnvPoolBatch(pool, self.env_spec(params))


def _quiet(make: Callable[[], Any]) -> Any:
    """``make()`` without gymnasium's warning that a classic-control space's float64
    bounds were cast to float32 (EnvPool builds its spaces that way)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*precision lowered by casting to float32")
        return make()


def _options(params: Any) -> dict[str, Any]:
    """EnvPool's keyword arguments for an env's params."""
    options = params._asdict()
    options["max_episode_steps"] = int(options.pop("max_steps_in_episode"))
    return options


class EnvPoolBatch:
    """An open pool: ``reset`` and ``step`` of all its envs at once, jittable (one seed;
    ``jax.vmap`` over an axis of size 1 is allowed, larger ones are refused)."""

    batched = True

    def __init__(self, pool: Any, spec: EnvSpec):
        self._pool = pool
        self.spec = spec
        self.num_envs = int(pool.config["num_envs"])
        handle, _, _, step = pool.xla()
        self._handle = np.asarray(handle)
        self._xla_step = step
        self.reset = _one_seed(self._reset)
        self.step = _one_seed(self._step)

    def _reset(self, key: jax.Array) -> tuple[jax.Array, EnvPoolState]:
        """Every env reset on the host: ``(obs [num_envs, *obs_shape], state)``. The key is
        not used (the pool has its own seed)."""
        del key
        obs_struct = jax.ShapeDtypeStruct((self.num_envs, *self._pool_obs_shape()), self._dtype())
        handle_struct = jax.ShapeDtypeStruct(self._handle.shape, self._handle.dtype)
        obs, handle = jax.experimental.io_callback(
            self._host_reset, (obs_struct, handle_struct), ordered=False
        )
        state = EnvPoolState(handle=handle, needs_reset=jnp.zeros(self.num_envs, bool))
        return self._observation(obs), state

    def _step(self, key: jax.Array, state: EnvPoolState, actions: jax.Array) -> tuple:
        """One step of every env: gymnax's ``(obs, state, reward, terminated, truncated,
        info)`` with leaves ``[num_envs, ...]``; ``info`` holds ``final_observation``,
        ``valid`` (false for EnvPool's reset steps) and, for Atari, ``raw_reward`` (the
        unclipped reward, which episode returns add up)."""
        del key
        handle, (obs, reward, terminated, truncated, info) = _quiet(
            lambda: self._xla_step(state.handle, actions.astype(jnp.int32))
        )
        obs = self._observation(obs)
        valid = ~state.needs_reset
        terminated, truncated = terminated & valid, truncated & valid
        extra = {"raw_reward": info["reward"].astype(jnp.float32)} if "reward" in info else {}
        return (
            obs,
            EnvPoolState(handle=handle, needs_reset=terminated | truncated),
            reward.astype(jnp.float32),
            terminated,
            truncated,
            {"final_observation": obs, "valid": valid, **extra},
        )

    def _host_reset(self) -> tuple[np.ndarray, np.ndarray]:
        obs, _ = _quiet(self._pool.reset)
        return np.asarray(obs, self._dtype()), self._handle

    def _pool_obs_shape(self) -> tuple[int, ...]:
        shape = self.spec.obs_shape
        return shape[-1:] + shape[:-1] if len(shape) == 3 else shape

    def _dtype(self) -> np.dtype:
        return self.spec.obs_dtype

    def _observation(self, obs: jax.Array) -> jax.Array:
        obs = obs.astype(self._dtype())
        return jnp.moveaxis(obs, 1, -1) if obs.ndim == 4 else obs


def _one_seed(fn: Callable) -> Callable:
    """``fn`` that ``jax.vmap`` maps over an axis of size 1 (the calls run once, on the
    only element) and refuses to map over more: the pool holds one seed's envs."""
    mapped = jax.custom_batching.custom_vmap(fn)

    @mapped.def_vmap
    def rule(axis_size: int, in_batched: list, *args: Any):
        if axis_size != 1:
            raise ValueError(
                f"an EnvPool env trains one seed per run: jax.vmap over {axis_size} seeds "
                "would step one pool for all of them. Train each seed as its own run."
            )
        unbatched = [
            jax.tree.map(lambda x, b: x[0] if b else x, arg, batched)
            for arg, batched in zip(args, in_batched, strict=True)
        ]
        out = mapped(*unbatched)
        return jax.tree.map(lambda x: x[None], out), jax.tree.map(lambda _: True, out)

    return mapped
