"""EnvPool (``pip install "jaxdqn[envpool]"``): Atari, classic control and the rest of
EnvPool's C++ envs, stepped inside the compiled loop through EnvPool's XLA interface.

An EnvPool env is not a pure function of a state: its envs live in a C++ pool that the
compiled program steps through an XLA custom call. So :class:`EnvPoolEnv` is a *batched*
env (``batched = True``): it steps all its envs at once (:meth:`EnvPoolBatch.step`), and
the actor calls it without ``jax.vmap``. Each use (a run's actor, an evaluation) opens
envs of its own (:meth:`EnvPoolEnv.open`); a ``jax.vmap`` over seeds steps every seed's
envs in one pool.

EnvPool resets an env on the step *after* its episode ended and ignores that step's
action. The adapter reports that step as not a transition (``info["valid"]`` false): the
replay stores its row, since its rows are in time order, and never learns from it. The
step that ended the episode returns the episode's true last observation, which is
therefore both its ``next_obs`` and its ``info["final_observation"]``. ``terminated`` and
``truncated`` are EnvPool's own (gymnasium API): a time limit
(``max_steps_in_episode``, EnvPool's ``max_episode_steps``) bootstraps.

Image observations ``[C, H, W]`` (Atari's 4 stacked 84x84 frames) are handed on as
``[H, W, C]``, the layout of jaxdqn's CNNs; float64 observations as float32.

Limits that come from the pool living outside JAX: one ``jax.vmap`` axis over seeds (no
nested vmaps), one device (the driver places every seed there), no ``--resume`` (a
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

# Added to the pools' seed once per stream (0: training, 1: evaluation), so an evaluation
# does not replay the training envs' randomness.
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
      seed: the training pools' seed; evaluation pools add :data:`POOL_SEED_STRIDE`.

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

    def open(self, num_envs: int, params: Any, stream: int = 0) -> EnvPoolBatch:
        """``num_envs`` envs per seed to reset and step inside a compiled program; their
        pool is made on the host when the program is traced, with ``num_envs`` envs per
        seed the ``jax.vmap`` around it maps over (one pool for all seeds). ``stream`` 0
        is training's, 1 evaluation's: each has its own pool seed."""
        seed = self.seed + POOL_SEED_STRIDE * stream

        def make_pool(total_envs: int) -> Any:
            return _quiet(
                lambda: envpool.make(
                    self.task_id,
                    env_type="gymnasium",
                    num_envs=total_envs,
                    batch_size=total_envs,
                    seed=seed,
                    **_options(params),
                )
            )

        return EnvPoolBatch(make_pool, num_envs, self.env_spec(params))


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
    """``reset`` and ``step`` of ``num_envs`` envs at once, jittable.

    Under ``jax.vmap`` over ``S`` seeds, one call resets or steps a pool of ``S *
    num_envs`` envs: the ``s``-th seed of the axis has envs ``s * num_envs .. (s + 1) *
    num_envs - 1``, which EnvPool seeds ``seed + s * num_envs + j``. A pool is made once
    per seed count and kept. Nested ``jax.vmap`` s are refused: map the seeds over one
    axis.
    """

    batched = True

    def __init__(self, make_pool: Callable[[int], Any], num_envs: int, spec: EnvSpec):
        self._make_pool = make_pool
        self._pools: dict[int, tuple[Any, np.ndarray, Callable]] = {}
        self.num_envs = num_envs
        self.spec = spec
        self.reset = _over_seeds(self._reset, self._split_seeds, _merge_reset_args)
        self.step = _over_seeds(self._step, self._split_seeds, _merge_step_args, state_arg=1)

    def _pool(self, seeds: int) -> tuple[Any, np.ndarray, Callable]:
        """The pool of ``seeds * num_envs`` envs, its handle and its XLA step."""
        if seeds not in self._pools:
            pool = self._make_pool(seeds * self.num_envs)
            handle, _, _, step = pool.xla()
            self._pools[seeds] = (pool, np.asarray(handle), step)
        return self._pools[seeds]

    def _reset(self, key: jax.Array, seeds: int = 1) -> tuple[jax.Array, EnvPoolState]:
        """Every env reset on the host: ``(obs [seeds * num_envs, *obs_shape], state)``.
        The key is not used (the pool has its own seed)."""
        del key
        pool, handle, _ = self._pool(seeds)
        n = seeds * self.num_envs
        shape = self.spec.obs_shape
        pool_shape = shape[-1:] + shape[:-1] if len(shape) == 3 else shape
        structs = (
            jax.ShapeDtypeStruct((n, *pool_shape), self.spec.obs_dtype),
            jax.ShapeDtypeStruct(handle.shape, handle.dtype),
        )

        def host_reset() -> tuple[np.ndarray, np.ndarray]:
            obs, _ = _quiet(pool.reset)
            return np.asarray(obs, self.spec.obs_dtype), handle

        obs, token = jax.experimental.io_callback(host_reset, structs, ordered=False)
        state = EnvPoolState(handle=token, needs_reset=jnp.zeros(n, bool))
        return self._observation(obs), state

    def _step(self, key: jax.Array, state: EnvPoolState, actions: jax.Array, seeds: int = 1):
        """One step of every env: gymnax's ``(obs, state, reward, terminated, truncated,
        info)`` with leaves ``[seeds * num_envs, ...]``; ``info`` holds
        ``final_observation``, ``valid`` (false for EnvPool's reset steps) and, for Atari,
        ``raw_reward`` (the unclipped reward, which episode returns add up)."""
        del key
        _, _, xla_step = self._pool(seeds)
        handle, (obs, reward, terminated, truncated, info) = _quiet(
            lambda: xla_step(state.handle, actions.astype(jnp.int32))
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

    def _observation(self, obs: jax.Array) -> jax.Array:
        obs = obs.astype(self.spec.obs_dtype)
        return jnp.moveaxis(obs, 1, -1) if obs.ndim == 4 else obs

    @staticmethod
    def _split_seeds(out: Any, seeds: int) -> Any:
        """Leaves ``[seeds * num_envs, ...]`` as ``[seeds, num_envs, ...]``; the pool's
        handle ``[H]`` repeated for every seed."""

        def split(x: Any) -> Any:
            if isinstance(x, EnvPoolState):
                handle = jnp.broadcast_to(x.handle, (seeds, *x.handle.shape))
                return EnvPoolState(handle, x.needs_reset.reshape(seeds, -1))
            return jax.tree.map(lambda leaf: leaf.reshape(seeds, -1, *leaf.shape[1:]), x)

        return jax.tree.map(split, out, is_leaf=lambda x: isinstance(x, EnvPoolState))


def _merge_reset_args(key: jax.Array) -> tuple:
    return (key[0],)


def _merge_step_args(key: jax.Array, state: EnvPoolState, actions: jax.Array) -> tuple:
    """Seed-batched step arguments for the one pool: envs ``[seeds * num_envs]``."""
    merged = EnvPoolState(handle=state.handle[0], needs_reset=state.needs_reset.reshape(-1))
    return key[0], merged, actions.reshape(-1)


def _over_seeds(
    fn: Callable, split: Callable, merge: Callable, state_arg: int | None = None
) -> Callable:
    """``fn`` (one seed's envs) that ``jax.vmap`` maps over ``S`` seeds by one call of
    ``fn(*merge(*args), seeds=S)`` on all their envs, whose output ``split`` gives back per
    seed. The argument at ``state_arg`` (the envs' state) must be mapped: a state reset
    outside the ``vmap`` belongs to another pool."""
    mapped = jax.custom_batching.custom_vmap(lambda *args: fn(*args, seeds=1))

    @mapped.def_vmap
    def rule(axis_size: int, in_batched: list, *args: Any):
        if state_arg is not None and not all(jax.tree.leaves(in_batched[state_arg])):
            raise ValueError(
                "an EnvPool env is stepped under a jax.vmap it was not reset under (one key "
                "for every seed?): its envs were reset in another pool. Give each seed its "
                "own key, so that reset and step are mapped alike."
            )
        batched = [
            jax.tree.map(lambda x, b: x if b else jnp.broadcast_to(x, (axis_size, *x.shape)), a, m)
            for a, m in zip(args, in_batched, strict=True)
        ]
        out = split(_outermost(fn)(*merge(*batched), seeds=axis_size), axis_size)
        return out, jax.tree.map(lambda _: True, out)

    return mapped


def _outermost(fn: Callable) -> Callable:
    """``fn`` refusing any further ``jax.vmap`` around the one that maps the seeds."""

    def call(*args: Any, seeds: int) -> Any:
        inner = jax.custom_batching.custom_vmap(lambda *a: fn(*a, seeds=seeds))

        @inner.def_vmap
        def refuse(axis_size: int, in_batched: list, *a: Any):
            raise ValueError(
                "an EnvPool env maps its seeds over one jax.vmap; a jax.vmap around it "
                f"(of size {axis_size}) is refused: put every seed on one axis."
            )

        return inner(*args)

    return call
