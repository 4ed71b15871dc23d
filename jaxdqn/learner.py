"""The learner: optimizer, target-network sync and one gradient update of DQN."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxdqn import losses
from jaxdqn.prioritized import (
    importance_weights,
    priorities_from_td,
    sum_tree_sample,
    sum_tree_set,
)
from jaxdqn.replay import Replay, n_step_batch
from jaxdqn.state import Batch, TrainState

# The TrainState fields that a gradient step changes.
LEARNED_FIELDS = ("params", "target_params", "opt_state", "updates")


def make_optimizer(config) -> optax.GradientTransformation:
    """The update direction of a config: optional global-norm clipping, then the chosen
    optimizer at a unit learning rate.

    The step size is applied by the gradient update, as ``learning_rate_at(...)`` times
    this direction (every optimizer here scales its direction by the learning rate last),
    so the learning rate can be a traced value of a sweep. Not an optimizer to use on
    its own: applied as it is, it would step at learning rate 1.

    Args:
      config: a :class:`jaxdqn.DQNConfig` (``optimizer``, ``optimizer_eps``,
        ``max_grad_norm``).

    Returns:
      An ``optax.GradientTransformation`` whose updates have the params' shapes.
    """
    eps = config.optimizer_eps
    optimizer = {
        "adam": lambda: optax.adam(1.0, eps=eps),
        "adamw": lambda: optax.adamw(1.0, eps=eps),
        "rmsprop": lambda: optax.rmsprop(1.0, eps=eps),
        "sgd": lambda: optax.sgd(1.0),
    }[config.optimizer]()
    if config.max_grad_norm is None:
        return optimizer
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optimizer)


def learning_rate_at(config, learning_rate: chex.Numeric, updates: chex.Numeric) -> jax.Array:
    """Step size of the gradient update that follows ``updates`` earlier ones.

    ``"constant"``: ``learning_rate``; ``"linear"``: decays from ``learning_rate`` to 0
    over ``config.total_updates()`` updates. Returns float32 ``[]``.
    """
    learning_rate = jnp.asarray(learning_rate, jnp.float32)
    if config.learning_rate_schedule == "linear":
        done = jnp.asarray(updates, jnp.float32) / config.total_updates()
        return learning_rate * jnp.clip(1.0 - done, 0.0, 1.0)
    return learning_rate


def sync_target(
    params: Any, target_params: Any, updates: chex.Numeric, period: chex.Numeric, tau: chex.Numeric
) -> Any:
    """Target parameters after gradient update number ``updates``.

    Every ``period`` updates, ``target <- tau * online + (1 - tau) * target``; otherwise
    unchanged. ``tau=1`` is the hard copy of Mnih et al. (2015); ``period=1`` with a small
    ``tau`` is Polyak averaging; ``period=1, tau=1`` makes targets follow the online net
    (no target network). Built on optax's ``periodic_update`` and ``incremental_update``.

    Args:
      params: online parameters (any pytree).
      target_params: target parameters, same structure.
      updates: ``[]`` int, number of gradient updates applied so far (after this one).
      period: sync period in gradient updates (>= 1).
      tau: sync step size in (0, 1].

    Returns:
      The new target parameters, same structure.
    """
    blended = optax.incremental_update(params, target_params, tau)
    return optax.periodic_update(blended, target_params, updates, period)


def td_errors(
    config, q_network: nn.Module, params: Any, target_params: Any, batch: Batch
) -> tuple[jax.Array, jax.Array]:
    """TD errors of a batch and the Q-values of the actions taken.

    Args:
      config: a :class:`jaxdqn.DQNConfig` (``double_q``).
      q_network: the Q-network module.
      params, target_params: online and target parameters.
      batch: a :class:`jaxdqn.state.Batch` with leaves ``[B, ...]``; its ``discount``
        already holds ``gamma`` (to the power n for n-step returns) and the termination.

    Returns:
      ``(td [B], q_taken [B])``; gradients flow only through ``q_taken``.
    """
    q_tm1 = q_network.apply(params, batch.obs)
    q_t_value = q_network.apply(target_params, batch.next_obs)
    if config.double_q:
        q_t_selector = q_network.apply(params, batch.next_obs)
        td = jax.vmap(losses.double_q_learning)(
            q_tm1, batch.action, batch.reward, batch.discount, q_t_value, q_t_selector
        )
    else:
        td = jax.vmap(losses.q_learning)(
            q_tm1, batch.action, batch.reward, batch.discount, q_t_value
        )
    q_taken = jnp.take_along_axis(q_tm1, batch.action[:, None], axis=1)[:, 0]
    return td, q_taken


def make_gradient_step(
    config, q_network: nn.Module, optimizer: optax.GradientTransformation
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array], jax.Array]]:
    """One DQN gradient update on a given batch: TD loss, optimizer step, target sync.

    Returns:
      ``gradient_step(state, batch) -> (state, stats, td)`` for a :class:`Batch`
      with leaves ``[B, ...]``; ``stats`` holds scalars ``loss`` (weighted by
      ``batch.weight``), ``q_value`` (mean Q of the batch's actions), ``td_error`` (mean
      ``|δ|``) and ``grad_norm`` (before clipping); ``td`` ``[B]`` are the TD errors
      before the step. Only the :data:`LEARNED_FIELDS` change.
    """

    def loss_fn(params, target_params, batch):
        td, q_taken = td_errors(config, q_network, params, target_params, batch)
        loss = losses.td_loss(td, config.loss, config.huber_delta, batch.weight)
        return loss, (td, q_taken)

    def gradient_step(
        state: TrainState, batch: Batch
    ) -> tuple[TrainState, dict[str, jax.Array], jax.Array]:
        (loss, (td, q_taken)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.target_params, batch
        )
        direction, opt_state = optimizer.update(grads, state.opt_state, state.params)
        hp = state.hparams
        step_size = learning_rate_at(config, hp.learning_rate, state.updates)
        params = optax.apply_updates(state.params, optax.tree.scale(step_size, direction))
        updates = state.updates + 1
        target_params = sync_target(
            params, state.target_params, updates, hp.target_update_period, hp.target_tau
        )
        stats = {
            "loss": loss,
            "q_value": jnp.mean(q_taken),
            "td_error": jnp.mean(jnp.abs(td)),
            "grad_norm": optax.tree.norm(grads),
        }
        new_state = state._replace(
            params=params, target_params=target_params, opt_state=opt_state, updates=updates
        )
        return new_state, stats, td

    return gradient_step


def make_update_step(
    config,
    q_network: nn.Module,
    replay: Replay,
    optimizer: optax.GradientTransformation,
) -> Callable[[TrainState, jax.Array], tuple[TrainState, dict[str, jax.Array]]]:
    """One DQN update of the run: draw rows from the replay buffer (uniformly, or by
    priority with ``config.prioritized``), build their ``config.n_step``-step targets
    (:func:`jaxdqn.replay.n_step_batch`), then :func:`make_gradient_step`; with
    prioritized replay, the drawn rows' priorities become ``|δ|^α + ε``.

    Returns:
      ``update(state, key, active) -> (state, stats)`` with the stats of
      ``gradient_step``. ``active`` is a bool ``[]`` (may be traced): when false, the
      update is computed but changes nothing in ``state``. This gates learning without a
      ``lax.cond``, which under ``vmap`` with a per-seed predicate would become a select
      over the whole state and copy the sum tree at every call. Here the
      :data:`LEARNED_FIELDS` are masked with ``where`` and the drawn slots get back their
      current priorities, so the tree is still updated in place.
    """
    gradient_step = make_gradient_step(config, q_network, optimizer)

    def update(
        state: TrainState, key: jax.Array, active: jax.Array
    ) -> tuple[TrainState, dict[str, jax.Array]]:
        if config.prioritized:
            slots, probabilities = sum_tree_sample(state.priorities, key, config.batch_size)
        else:
            slots = replay.sample_slots(state.buffer, key, config.batch_size)
        batch = n_step_batch(state.buffer, slots, n=config.n_step, gamma=state.hparams.gamma)
        if config.prioritized:
            progress = jnp.minimum(state.updates / config.total_updates(), 1.0)
            beta = config.priority_beta + (1.0 - config.priority_beta) * progress
            weights = importance_weights(probabilities, state.buffer.rows.size, beta)
            batch = batch._replace(weight=weights)
        learned, stats, td = gradient_step(state, batch)
        state = learned._replace(
            **{
                field: jax.tree.map(
                    lambda new, old: jnp.where(active, new, old),
                    getattr(learned, field),
                    getattr(state, field),
                )
                for field in LEARNED_FIELDS
            }
        )
        if config.prioritized:
            new = priorities_from_td(td, config.priority_alpha, config.priority_eps)
            new = jnp.where(active, new, state.priorities.levels[0][slots])
            state = state._replace(priorities=sum_tree_set(state.priorities, slots, new))
        return state, stats

    return update
