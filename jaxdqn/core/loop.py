"""The loop skeleton: an actor, a replay and a learner composed into one pure ``train(key)``.

:func:`make_loop` knows the components only through their bundles of functions
(:class:`jaxdqn.core.actor.Actor`, :class:`jaxdqn.core.replay.Replay`,
:class:`jaxdqn.core.learner.Learner`) and a :class:`LoopLayout` of static counts. It is
three nested ``lax.scan``s with no Python per step:

* a *log window* (``cycles_per_log`` cycles) ends with one row of metrics;
* a *cycle* is ``steps_per_cycle`` vectorised env steps, then ``updates_per_cycle`` learning steps
  once ``learning_starts`` env steps are stored;
* an *env step* acts, steps the envs, stores the transitions and records finished
  episodes: act → step envs → store → (per cycle) learn → record.

Whether a cycle learns is decided once for all the seeds a ``vmap`` maps
(:mod:`jaxdqn.core.lockstep`): the cycle skips learning when no seed learns, and learns
otherwise, leaving unchanged any seed still warming up (seeds at different env steps,
where the caller mapped such states). The update is compiled once. A per-seed
``lax.cond`` would become a select under ``vmap``: both branches would run and the whole
state be selected, every cycle.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxdqn.core.actor import Actor, ActorState, EpisodeEnds
from jaxdqn.core.learner import Learner, LearnerState
from jaxdqn.core.lockstep import any_in_vmap
from jaxdqn.core.replay import Replay, ReplayState
from jaxdqn.core.types import is_prng_key

Metrics = dict[str, jax.Array]

# Metrics of every run, before the learner's per-update statistics.
EPISODE_METRICS = (
    "env_steps",
    "updates",
    "episodes",
    "completed_episodes",
    "episode_return",
    "episode_length",
    "exploration",
    "reward_abs_max",
)

# Folded into the run's key for the reference batch of the health signals, so the signals
# draw their own numbers and the run's random stream is the same with or without them.
INSPECT_STREAM = 0x1D5EA5E
# Folded into each update's sampling key for a learner that takes a key of its own (the
# noise of noisy networks), so the replay's draws are the same with or without it.
LEARNER_STREAM = 0x7EA2


class Counters(NamedTuple):
    """What the run has done so far (one seed)."""

    env_steps: jax.Array  # shape=(), int32: env steps taken, summed over envs
    episodes: jax.Array  # shape=(), int32: episodes completed, summed over envs


class TrainState(NamedTuple):
    """Everything a run carries from one step to the next (one seed), grouped by role.

    ``params``, ``target_params``, ``updates``, ``env_steps`` and ``episodes`` read through
    to the group that holds them.
    """

    learner: LearnerState  # params, target params, optimizer state, update count
    replay: ReplayState  # rows, final observations, priorities
    actor: ActorState  # env states, observations, running episodes
    counters: Counters  # env steps and episodes so far
    hparams: Any  # jaxdqn.Hyperparams: the traced hyperparameters this run reads
    key: jax.Array  # typed PRNG key, shape=(): the run's random stream

    @property
    def params(self) -> Any:
        """Online Q-network parameters."""
        return self.learner.params

    @property
    def target_params(self) -> Any:
        """Target Q-network parameters."""
        return self.learner.target_params

    @property
    def updates(self) -> jax.Array:
        """Gradient updates applied, int32."""
        return self.learner.updates

    @property
    def env_steps(self) -> jax.Array:
        """Env steps taken, summed over envs, int32."""
        return self.counters.env_steps

    @property
    def episodes(self) -> jax.Array:
        """Episodes completed, summed over envs, int32."""
        return self.counters.episodes


def cycle_env_steps(num_envs: int, train_frequency: int) -> int:
    """Env steps per cycle, ``lcm(num_envs, train_frequency)``: the fewest vectorised steps
    after which a whole number of gradient updates is due."""
    return math.lcm(num_envs, train_frequency)


def run_updates(
    total_timesteps: int,
    learning_starts: int,
    num_envs: int,
    train_frequency: int,
    gradient_steps: int,
) -> int:
    """Gradient updates in a run (exact): ``gradient_steps`` per ``train_frequency`` env
    steps, in every cycle that starts at or after ``learning_starts``."""
    cycle = cycle_env_steps(num_envs, train_frequency)
    return (
        (total_timesteps - learning_starts) // cycle * (gradient_steps * cycle // train_frequency)
    )


class LoopLayout(NamedTuple):
    """The static counts of a run's loop (see :meth:`jaxdqn.DQNConfig.loop_layout`)."""

    num_envs: int  # envs stepped in lockstep
    steps_per_cycle: int  # vectorised env steps per cycle
    updates_per_cycle: int  # learning steps per cycle once learning has started
    cycles_per_log: int  # cycles per log window (one row of metrics)
    num_log_points: int  # log windows in a whole run
    learning_starts: int  # env steps stored before learning; a whole number of cycles
    total_updates: int  # learning steps in a whole run (the replay anneals β over them)


class Trainer(NamedTuple):
    """The pieces of a run, for callers that need more than ``train``.

    Attributes:
      init: ``init(key, hparams=None) -> TrainState`` at env step 0 (envs reset, replay
        empty, target params equal to params). ``hparams`` (:class:`jaxdqn.Hyperparams`,
        default: the config's values) are stored in the state and read by the run.
      run: ``run(state, num_log_points) -> (state, metrics)`` advances ``num_log_points``
        log windows; ``num_log_points`` is static, and each metric has shape
        ``[num_log_points]``.
      train: ``train(key, hparams=None) = run(init(key, hparams), layout.num_log_points)``.
      metric_names: the keys of ``metrics``, in order.

    Runs in chunks give bit-identical states and metrics to a whole run of the same key:
    ``run(run(init(key), a), b)`` equals ``run(init(key), a + b)`` and ``train(key)``,
    also under ``jax.vmap`` (vmap ``init`` and ``run`` alike). Donate the state to a
    jitted ``run`` (``donate_argnums=0``) so the replay memory is updated in place.
    """

    init: Callable[..., TrainState]
    run: Callable[[TrainState, int], tuple[TrainState, Metrics]]
    train: Callable[..., tuple[TrainState, Metrics]]
    metric_names: tuple[str, ...]


class _Window(NamedTuple):
    """Running sums over one log window (reset at every logging point)."""

    return_sum: jax.Array  # [], float32: returns of episodes completed in the window
    length_sum: jax.Array  # [], float32
    completed: jax.Array  # [], int32: episodes completed in the window
    exploration: jax.Array  # [], float32: mean ε / temperature at the latest step
    reward_abs_max: jax.Array  # [], float32: largest |reward| of the window's steps
    update_sums: dict[str, jax.Array]  # [] float32 each: sum (or max) over the window's updates
    num_updates: jax.Array  # [], int32

    def record_step(self, ends: EpisodeEnds, exploration: jax.Array, reward: jax.Array):
        """Adds the episodes one vectorised step ended and its rewards ``[num_envs]``."""
        return self._replace(
            return_sum=self.return_sum + jnp.sum(jnp.where(ends.done, ends.episode_return, 0.0)),
            length_sum=self.length_sum + jnp.sum(jnp.where(ends.done, ends.episode_length, 0)),
            completed=self.completed + jnp.sum(ends.done, dtype=jnp.int32),
            exploration=jnp.mean(exploration),
            reward_abs_max=jnp.maximum(self.reward_abs_max, jnp.max(jnp.abs(reward))),
        )

    def record_updates(
        self, reduced: dict[str, jax.Array], count: jax.Array, stat_max: tuple[str, ...]
    ) -> _Window:
        """Adds the statistics of ``count`` learning steps: sums, or maxima for the names
        in ``stat_max``."""
        merged = {
            k: jnp.maximum(v, reduced[k]) if k in stat_max else v + reduced[k]
            for k, v in self.update_sums.items()
        }
        return self._replace(update_sums=merged, num_updates=self.num_updates + count)


class _Parts(NamedTuple):
    """What :func:`make_loop` composes; the loop's functions take it first."""

    actor: Actor
    replay: Replay
    learner: Learner
    layout: LoopLayout
    default_hparams: Any


def make_loop(
    actor: Actor,
    replay: Replay,
    learner: Learner,
    layout: LoopLayout,
    default_hparams: Any,
) -> Trainer:
    """Composes the components into a run. Nothing is traced or compiled here.

    Args:
      actor: acts in and steps the envs (:func:`jaxdqn.core.actor.make_actor`).
      replay: stores transitions and draws batches (:func:`jaxdqn.make_replay`).
      learner: learns from batches (:func:`jaxdqn.core.learner.make_learner`).
      layout: the loop's static counts.
      default_hparams: the :class:`jaxdqn.Hyperparams` of ``init(key)`` without ``hparams``.

    Returns:
      A :class:`Trainer`.
    """
    parts = _Parts(actor, replay, learner, layout, default_hparams)
    return Trainer(
        init=partial(_init, parts),
        run=partial(_run, parts),
        train=partial(_train, parts),
        metric_names=(*EPISODE_METRICS, *learner.stat_names, *learner.inspect_names),
    )


def _init(parts: _Parts, key: jax.Array, hparams: Any = None) -> TrainState:
    key, key_params, key_reset = jax.random.split(key, 3)
    actor_state = parts.actor.reset(key_reset)
    state = TrainState(
        learner=parts.learner.init(key_params, actor_state.obs),
        replay=parts.replay.init(actor_state.obs[0]),
        actor=actor_state,
        counters=Counters(env_steps=jnp.int32(0), episodes=jnp.int32(0)),
        hparams=parts.default_hparams if hparams is None else hparams,
        key=key,
    )
    return _depend_on_key(state, key)


def _env_step(parts: _Parts, carry: tuple[TrainState, _Window], _) -> tuple[tuple, None]:
    """Act, step the envs, store the transitions, record the episodes that ended."""
    state, window = carry
    key, key_act, key_step = jax.random.split(state.key, 3)
    counters = state.counters
    actions, exploration = parts.actor.act(
        key_act, state.actor, state.params, counters.env_steps, counters.episodes, state.hparams
    )
    actor_state, transition, ends = parts.actor.step(key_step, state.actor, actions)
    state = state._replace(
        replay=parts.replay.add(state.replay, transition),
        actor=actor_state,
        counters=Counters(
            env_steps=counters.env_steps + parts.layout.num_envs,
            episodes=counters.episodes + jnp.sum(ends.done, dtype=jnp.int32),
        ),
        key=key,
    )
    return (state, window.record_step(ends, exploration, transition.reward)), None


def _learn(
    parts: _Parts, state: TrainState, active: jax.Array
) -> tuple[TrainState, dict[str, jax.Array]]:
    """``updates_per_cycle`` learning steps: sample, update, write priorities back. Where
    ``active`` (bool ``[]``) is false (still warming up) they change nothing, the key
    included, as if they had not run."""
    keys = jax.random.split(state.key, 1 + parts.layout.updates_per_cycle)
    key, update_keys = keys[0], keys[1:]
    replay, learner, hparams = parts.replay, parts.learner, state.hparams

    def learning_step(carry: tuple[LearnerState, ReplayState], key: jax.Array):
        learner_state, replay_state = carry
        progress = jnp.minimum(learner_state.updates / parts.layout.total_updates, 1.0)
        sample = replay.sample(
            replay_state, key, hparams.gamma, progress, _action_values(learner, learner_state)
        )
        own_key = (jax.random.fold_in(key, LEARNER_STREAM),) if learner.takes_key else ()
        learner_state, stats, td = learner.update(learner_state, sample.batch, hparams, *own_key)
        replay_state = replay.update_priorities(replay_state, sample.slots, td, active)
        return (learner_state, replay_state), stats

    (learned, replay_state), stats = jax.lax.scan(
        learning_step,
        (state.learner, state.replay),
        update_keys,
    )
    # A seed still warming up keeps its learner state: one select per cycle, not per update.
    learner_state = jax.tree.map(
        lambda new, old: jnp.where(active, new, old), learned, state.learner
    )
    reduced = {
        name: jnp.where(active, jnp.max(value), -jnp.inf)
        if name in learner.stat_max
        else jnp.where(active, jnp.sum(value), 0.0)
        for name, value in zip(learner.stat_names, stats, strict=True)
    }
    state = state._replace(
        learner=learner_state, replay=replay_state, key=jnp.where(active, key, state.key)
    )
    return state, reduced


def _skip_learning(parts: _Parts, state: TrainState, active: jax.Array):
    """What :func:`_learn` gives where no seed learns: the state unchanged, no statistics."""
    del active
    return state, _no_stats(parts.learner)


def _cycle(parts: _Parts, carry: tuple[TrainState, _Window], _) -> tuple[tuple, None]:
    # Every update boundary of a cycle that starts at or after learning_starts lies
    # strictly after it (learning_starts is a whole number of cycles).
    learning = carry[0].env_steps >= parts.layout.learning_starts
    steps = parts.layout.steps_per_cycle
    (state, window), _ = jax.lax.scan(partial(_env_step, parts), carry, None, steps)
    state, reduced = jax.lax.cond(
        any_in_vmap(learning),
        partial(_learn, parts),
        partial(_skip_learning, parts),
        state,
        learning,
    )
    count = learning * parts.layout.updates_per_cycle
    return (state, window.record_updates(reduced, count, parts.learner.stat_max)), None


def _log_window(parts: _Parts, state: TrainState) -> tuple[TrainState, Metrics]:
    earlier_params = state.params
    window = _depend_on_key(_empty_window(parts.learner), state.key)
    (state, window), _ = jax.lax.scan(
        partial(_cycle, parts), (state, window), None, parts.layout.cycles_per_log
    )
    metrics = _window_metrics(state, window, parts.learner.stat_max)
    if parts.learner.inspect is not None:
        metrics.update(_inspect(parts, state, earlier_params))
    return state, metrics


def _action_values(learner: Learner, state: LearnerState) -> Callable | None:
    """``obs -> Q-values`` of the learner's current online network, if it has one."""
    return None if learner.action_values is None else partial(learner.action_values, state)


def _inspect(parts: _Parts, state: TrainState, earlier_params: Any) -> Metrics:
    """The learner's health signals on a reference batch drawn from the replay with a key
    of their own (the run's key is not advanced); NaN before the first update."""
    key = jax.random.fold_in(state.key, INSPECT_STREAM)
    progress = jnp.minimum(state.updates / parts.layout.total_updates, 1.0)
    values = _action_values(parts.learner, state.learner)
    batch = parts.replay.sample(state.replay, key, state.hparams.gamma, progress, values).batch
    signals = parts.learner.inspect(state.learner, earlier_params, batch)
    learned = state.updates > 0
    return {
        name: jnp.where(learned, value, jnp.nan).astype(jnp.float32)
        for name, value in zip(parts.learner.inspect_names, signals, strict=True)
    }


def _run(parts: _Parts, state: TrainState, num_log_points: int) -> tuple[TrainState, Metrics]:
    # Rows are written into preallocated arrays rather than stacked as scan outputs:
    # with stacked outputs XLA compiled the loop body differently for each
    # num_log_points, and chunked runs drifted from whole ones by rounding.
    rows = _depend_on_key(_empty_rows(parts, state, num_log_points), state.key)

    def body(i, carry):
        state, rows = carry
        state, metrics = _log_window(parts, state)
        _check_row_shapes(rows, metrics)
        return state, jax.tree.map(lambda r, m: r.at[i].set(m), rows, metrics)

    return jax.lax.fori_loop(0, num_log_points, body, (state, rows))


def _empty_rows(parts: _Parts, state: TrainState, num_log_points: int) -> Metrics:
    """Zeroed rows ``[num_log_points]`` of every metric of a log window, from the shapes of
    an empty window's metrics and the learner's health signals (float32 ``[]`` each, by
    the :class:`Learner` contract): the window's scans are not traced for their shapes."""
    empty = _empty_window(parts.learner)
    shapes = jax.eval_shape(lambda s: _window_metrics(s, empty, parts.learner.stat_max), state)
    shapes.update(
        {name: jax.ShapeDtypeStruct((), jnp.float32) for name in parts.learner.inspect_names}
    )
    return {name: jnp.zeros((num_log_points, *x.shape), x.dtype) for name, x in shapes.items()}


def _check_row_shapes(rows: Metrics, metrics: Metrics) -> None:
    """Raises, while tracing, where a window's metric does not fit its row."""
    for name, value in metrics.items():
        row = rows[name]
        if (value.shape, value.dtype) != (row.shape[1:], row.dtype):
            raise ValueError(
                f"metric {name!r} is {value.dtype}{list(value.shape)}: a learner's statistics "
                f"and health signals must be {row.dtype}{list(row.shape[1:])} each."
            )


def _train(parts: _Parts, key: jax.Array, hparams: Any = None) -> tuple[TrainState, Metrics]:
    return _run(parts, _init(parts, key, hparams), parts.layout.num_log_points)


def _empty_window(learner: Learner) -> _Window:
    f32 = jnp.float32(0.0)
    return _Window(
        return_sum=f32,
        length_sum=f32,
        completed=jnp.int32(0),
        exploration=f32,
        reward_abs_max=f32,
        update_sums=_no_stats(learner),
        num_updates=jnp.int32(0),
    )


def _no_stats(learner: Learner) -> dict[str, jax.Array]:
    """The statistics of no update: 0 for sums, -inf for maxima (float32 ``[]`` each)."""
    return {
        name: jnp.float32(-jnp.inf if name in learner.stat_max else 0.0)
        for name in learner.stat_names
    }


def _depend_on_key(tree: Any, key: jax.Array) -> Any:
    """``tree`` with the same values, every leaf computed from ``key``.

    Under ``jax.vmap`` a leaf that does not depend on the key (a zero counter, an empty
    buffer) stays unbatched, so ``vmap(train)`` would compile another program than
    ``vmap(run)`` does for a state passed in, whose leaves all have a seed axis, and the
    two would round differently. Tying every leaf to the key makes them one program: a run
    in chunks is bit-identical to a whole one. Tied as well, the zeroed carries of the
    loop's scans (the window's sums, the metric rows) enter them with the seed axis their
    outputs have, so ``vmap`` batches each scan's body once instead of again and again
    until the carry's axes settle (once more per level of nesting).
    """
    tie = jax.random.key_data(key).ravel()[0] == jax.random.key_data(key).ravel()[0]
    return jax.tree.map(lambda x: x if is_prng_key(x) else jnp.where(tie, x, x), tree)


def _window_metrics(state: TrainState, window: _Window, stat_max: tuple[str, ...]) -> Metrics:
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
        "reward_abs_max": window.reward_abs_max,
    }
    for name, total in window.update_sums.items():
        if name in stat_max:
            metrics[name] = jnp.where(window.num_updates > 0, total, jnp.nan)
        else:
            metrics[name] = mean(total, window.num_updates)
    return metrics
