"""``make_train(config)``: the whole DQN run as one pure function ``train(key)``.

The loop is three nested ``lax.scan``s and contains no Python per step:

* a *log window* (``config.cycles_per_log()`` cycles) ends with one row of metrics;
* a *cycle* is ``config.steps_per_cycle()`` vectorised env steps followed, once
  more than ``learning_starts`` env steps are stored, by ``config.updates_per_cycle()``
  gradient updates, so every schedule is met exactly whatever ``num_envs`` is;
* an *env step* acts (ε-greedy or Boltzmann on the online net), steps ``num_envs``
  gymnax envs (vmapped, automatic reset), and stores the transitions in the replay
  memory (:mod:`jaxdqn.replay`), with the true final observation of truncated episodes.

Before ``learning_starts`` the updates still run but write nothing (a mask, not a
``lax.cond``: under ``vmap`` a per-seed cond runs both branches and then selects the
whole state, which copies the sum tree of prioritized replay every cycle). The price is
the warm-up's updates, computed and discarded: ``learning_starts / total_timesteps`` of
them (2.5% for the CartPole preset).

``run(state, n)`` carries the whole state from call to call, so the host can log,
checkpoint and resume between chunks; chunked and whole runs are bit-identical (see
:class:`Trainer`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxdqn.envs import make_env, max_episode_steps
from jaxdqn.exploration import exploration_value, select_action
from jaxdqn.hyperparams import Hyperparams, hyperparams
from jaxdqn.learner import make_optimizer, make_update_step
from jaxdqn.networks import make_q_network
from jaxdqn.prioritized import sum_tree_init, sum_tree_set_new
from jaxdqn.replay import make_replay
from jaxdqn.state import TrainState, Transition

Metrics = dict[str, jax.Array]

UPDATE_STATS = ("loss", "q_value", "td_error", "grad_norm")
METRIC_NAMES = (
    "env_steps",
    "updates",
    "episodes",
    "completed_episodes",
    "episode_return",
    "episode_length",
    "exploration",
    *UPDATE_STATS,
)


class _Window(NamedTuple):
    """Running sums over one log window (reset at every logging point)."""

    return_sum: jax.Array  # [], float32: returns of episodes completed in the window
    length_sum: jax.Array  # [], float32
    completed: jax.Array  # [], int32: episodes completed in the window
    exploration: jax.Array  # [], float32: mean ε / temperature at the latest step
    update_sums: dict[str, jax.Array]  # [] float32 each, summed over the window's updates
    num_updates: jax.Array  # [], int32

    @classmethod
    def zeros(cls) -> _Window:
        f32 = jnp.float32(0.0)
        return cls(
            return_sum=f32,
            length_sum=f32,
            completed=jnp.int32(0),
            exploration=f32,
            update_sums={name: f32 for name in UPDATE_STATS},
            num_updates=jnp.int32(0),
        )


class Trainer(NamedTuple):
    """The pieces of a run, for callers that need more than ``train``.

    Attributes:
      init: ``init(key, hparams=None) -> TrainState`` at env step 0 (envs reset, buffer
        empty, target params equal to params). ``hparams`` (:class:`jaxdqn.Hyperparams`,
        default: the config's values) are stored in the state and read by the run.
      run: ``run(state, num_log_points) -> (state, metrics)`` advances
        ``num_log_points * config.resolved_log_interval()`` env steps; ``num_log_points``
        is static, and each metric has shape ``[num_log_points]``.
      train: ``train(key, hparams=None) = run(init(key, hparams), config.num_log_points())``.

    Runs in chunks give bit-identical states and metrics to a whole run of the same key:
    ``run(run(init(key), a), b)`` equals ``run(init(key), a + b)`` and ``train(key)``,
    also under ``jax.vmap`` (vmap ``init`` and ``run`` alike). Donate the state to a
    jitted ``run`` (``donate_argnums=0``) so the replay buffer is updated in place.
    """

    init: Callable[..., TrainState]
    run: Callable[[TrainState, int], tuple[TrainState, Metrics]]
    train: Callable[..., tuple[TrainState, Metrics]]


def make_trainer(config) -> Trainer:
    """Builds the pure functions of a run. Nothing is traced or compiled here.

    Args:
      config: a validated :class:`jaxdqn.DQNConfig`.

    Returns:
      A :class:`Trainer`.
    """
    env, env_params = make_env(config.env_id)
    q_network = make_q_network(config)
    num_envs = config.num_envs
    replay = make_replay(config.buffer_size, num_envs, max_episode_steps(env_params))
    optimizer = make_optimizer(config)
    update = make_update_step(config, q_network, replay, optimizer)
    reset_envs = jax.vmap(env.reset, in_axes=(0, None))
    step_envs = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    act = jax.vmap(partial(select_action, config))

    def init(key: jax.Array, hparams: Hyperparams | None = None) -> TrainState:
        key, key_params, key_reset = jax.random.split(key, 3)
        obs, env_state = reset_envs(jax.random.split(key_reset, num_envs), env_params)
        params = q_network.init(key_params, obs)
        state = TrainState(
            params=params,
            target_params=params,
            opt_state=optimizer.init(params),
            buffer=replay.init(obs[0]),
            env_state=env_state,
            obs=obs,
            episode_return=jnp.zeros(num_envs, jnp.float32),
            episode_length=jnp.zeros(num_envs, jnp.int32),
            key=key,
            env_steps=jnp.int32(0),
            updates=jnp.int32(0),
            episodes=jnp.int32(0),
            hparams=hyperparams(config) if hparams is None else hparams,
            priorities=sum_tree_init(config.buffer_size) if config.prioritized else None,
        )
        return _depend_on_key(state, key)

    def env_step(carry: tuple[TrainState, _Window], _) -> tuple[tuple[TrainState, _Window], None]:
        state, window = carry
        key, key_act, key_step = jax.random.split(state.key, 3)
        if config.exploration_unit == "env_steps":
            # Env j of this vectorised step is env step number env_steps + j.
            count = state.env_steps + jnp.arange(num_envs, dtype=jnp.int32)
        else:
            count = jnp.broadcast_to(state.episodes, (num_envs,))
        value = exploration_value(config, count, state.hparams)
        q_values = q_network.apply(state.params, state.obs)
        actions = act(jax.random.split(key_act, num_envs), q_values, value)
        obs, env_state, reward, terminated, truncated, info = step_envs(
            jax.random.split(key_step, num_envs), state.env_state, actions, env_params
        )
        reward = reward.astype(jnp.float32)
        # gymnax reports a step that both terminates and hits the time limit as both.
        truncated = truncated & ~terminated
        if config.truncation_is_terminal:  # the ablation of a common masking bug
            terminated, truncated = terminated | truncated, jnp.zeros_like(truncated)
        transition = Transition(
            obs=state.obs,
            action=actions,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            next_obs=info["final_observation"],
        )
        done = jnp.logical_or(terminated, truncated)
        episode_return = state.episode_return + reward
        episode_length = state.episode_length + 1
        completed = jnp.sum(done, dtype=jnp.int32)
        window = window._replace(
            return_sum=window.return_sum + jnp.sum(jnp.where(done, episode_return, 0.0)),
            length_sum=window.length_sum + jnp.sum(jnp.where(done, episode_length, 0)),
            completed=window.completed + completed,
            exploration=jnp.mean(value),
        )
        if config.prioritized:  # new transitions enter at the largest priority so far
            slots = replay.write_slots(state.buffer)
            state = state._replace(priorities=sum_tree_set_new(state.priorities, slots))
        state = state._replace(
            buffer=replay.add(state.buffer, transition),
            env_state=env_state,
            obs=obs,
            episode_return=jnp.where(done, 0.0, episode_return),
            episode_length=jnp.where(done, 0, episode_length),
            key=key,
            env_steps=state.env_steps + num_envs,
            episodes=state.episodes + completed,
        )
        return (state, window), None

    def learn(state: TrainState, learning: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
        key, key_updates = jax.random.split(state.key)
        keys = jax.random.split(key_updates, config.updates_per_cycle())
        learned, stats = jax.lax.scan(
            lambda s, k: update(s, k, learning), state._replace(key=key), keys
        )
        # Before learning starts the updates change nothing; the key stays too, as if
        # they had not run.
        learned = learned._replace(key=jnp.where(learning, key, state.key))
        sums = {name: jnp.where(learning, jnp.sum(stats[name]), 0.0) for name in UPDATE_STATS}
        return learned, sums

    def cycle(carry: tuple[TrainState, _Window], _) -> tuple[tuple[TrainState, _Window], None]:
        # Every update boundary of a cycle that starts at or after learning_starts lies
        # strictly after it (learning_starts is a whole number of cycles).
        learning = carry[0].env_steps >= config.learning_starts
        (state, window), _ = jax.lax.scan(env_step, carry, None, config.steps_per_cycle())
        state, sums = learn(state, learning)
        window = window._replace(
            update_sums={k: window.update_sums[k] + sums[k] for k in UPDATE_STATS},
            num_updates=window.num_updates + learning * config.updates_per_cycle(),
        )
        return (state, window), None

    def log_window(state: TrainState) -> tuple[TrainState, Metrics]:
        (state, window), _ = jax.lax.scan(
            cycle, (state, _Window.zeros()), None, config.cycles_per_log()
        )
        return state, _window_metrics(state, window)

    def run(state: TrainState, num_log_points: int) -> tuple[TrainState, Metrics]:
        # Rows are written into preallocated arrays rather than stacked as scan outputs:
        # with stacked outputs XLA compiled the loop body differently for each
        # num_log_points, and chunked runs drifted from whole ones by rounding.
        shapes = jax.eval_shape(lambda s: log_window(s)[1], state)
        rows = jax.tree.map(lambda x: jnp.zeros((num_log_points, *x.shape), x.dtype), shapes)

        def body(i, carry):
            state, rows = carry
            state, metrics = log_window(state)
            return state, jax.tree.map(lambda r, m: r.at[i].set(m), rows, metrics)

        return jax.lax.fori_loop(0, num_log_points, body, (state, rows))

    def train(key: jax.Array, hparams: Hyperparams | None = None) -> tuple[TrainState, Metrics]:
        return run(init(key, hparams), config.num_log_points())

    return Trainer(init=init, run=run, train=train)


def _depend_on_key(state: TrainState, key: jax.Array) -> TrainState:
    """``state`` with the same values, every leaf computed from ``key``.

    Under ``jax.vmap`` a leaf that does not depend on the key (a zero counter, an empty
    buffer) stays unbatched, so ``vmap(train)`` would compile another program than
    ``vmap(run)`` does for a state passed in, whose leaves all have a seed axis, and the
    two would round differently. Tying every leaf to the key makes them one program: a run
    in chunks is bit-identical to a whole one.
    """
    tie = jax.random.key_data(key).ravel()[0] == jax.random.key_data(key).ravel()[0]
    return jax.tree.map(
        lambda x: (
            x if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else jnp.where(tie, x, x)
        ),
        state,
    )


def _window_metrics(state: TrainState, window: _Window) -> Metrics:
    def mean(total, count):
        return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan).astype(jnp.float32)

    metrics = {
        "env_steps": state.env_steps,
        "updates": state.updates,
        "episodes": state.episodes,
        "completed_episodes": window.completed,
        "episode_return": mean(window.return_sum, window.completed),
        "episode_length": mean(window.length_sum, window.completed),
        "exploration": window.exploration,
    }
    for name in UPDATE_STATS:
        metrics[name] = mean(window.update_sums[name], window.num_updates)
    return metrics


def make_train(config) -> Callable[..., tuple[TrainState, Metrics]]:
    """The whole run of ``config`` as one pure function of a PRNG key.

    Args:
      config: a :class:`jaxdqn.DQNConfig` (validated when it was built).

    Returns:
      ``train(key, hparams=None) -> (TrainState, metrics)``; ``hparams`` is a
      :class:`jaxdqn.Hyperparams` (default: the config's values), so
      ``jax.vmap(train)(keys, hparams)`` sweeps learning rate, gamma, target sync and
      exploration in one compiled program. Build ``hparams`` with :func:`jaxdqn.sweep`,
      which validates every value: inside the program they are traced and not checked.
      ``metrics`` maps each name in ``METRIC_NAMES`` to an array
      ``[config.num_log_points()]`` (one row per log window; ``jax.vmap`` adds a leading
      seed axis). Means over a window with no completed
      episode (``episode_return``, ``episode_length``) or no update (``loss``, ...) are NaN.
      Nothing is compiled until the caller jits it.

    Examples:
      >>> import dataclasses, jax, jaxdqn
      >>> preset = jaxdqn.get_preset("CartPole-v1")
      >>> config = dataclasses.replace(preset, total_timesteps=20_000, exploration_steps=10_000)
      >>> train = jax.jit(jax.vmap(jaxdqn.make_train(config)))
      >>> states, metrics = train(jax.random.split(jax.random.key(0), 4))
      >>> metrics["episode_return"].shape  # [seeds, log points]
      (4, 100)
    """
    return make_trainer(config).train
