"""The learner: online and target parameters, the optimizer, the TD loss and target sync.

:func:`make_learner` returns a :class:`Learner` bundle, ``init`` and ``update``, over a
:class:`LearnerState`. It learns from any :class:`jaxdqn.core.types.Batch` (the replay's
n-step targets and importance weights come in the batch) and knows nothing of where the
batch came from, of environments, or of when learning starts.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxdqn.core import losses
from jaxdqn.core.diagnostics import (
    DORMANT_THRESHOLDS,
    dormant_share,
    effective_rank,
    greedy_action_entropy,
    policy_churn,
    quantile,
    tree_is_finite,
)
from jaxdqn.core.lockstep import any_in_vmap
from jaxdqn.core.networks import (
    HIDDEN_COLLECTION,
    HIDDEN_NAME,
    apply_q,
    is_distributional,
    is_noisy,
    support,
)
from jaxdqn.core.types import Batch, check_int

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
LEARNING_RATE_SCHEDULES = ("constant", "linear")


class LearnerState(NamedTuple):
    """What gradient updates change (one seed)."""

    params: Any  # online Q-network parameters (flax variables pytree)
    target_params: Any  # target Q-network parameters, same structure as params
    opt_state: Any  # optax state of the unit-rate update direction
    updates: jax.Array  # shape=(), int32: gradient updates applied


class UpdateStats(NamedTuple):
    """Scalars reported by every gradient update; the trainer averages each over a log
    window and reports it under its field name."""

    loss: jax.Array  # TD loss, weighted by batch.weight
    q_value: jax.Array  # mean Q of the batch's actions
    td_error: jax.Array  # mean |δ|
    grad_norm: jax.Array  # global norm of the gradients, before clipping
    grad_norm_max: jax.Array  # the same; the window keeps its largest (MAX_STATS)
    non_finite: jax.Array  # 1.0 where the loss or a gradient is NaN or infinite, else 0.0


# Statistics a log window reduces by their largest value instead of their mean.
MAX_STATS = ("grad_norm_max",)


class InspectSignals(NamedTuple):
    """Health signals of the online network on a reference batch (see
    :mod:`jaxdqn.core.diagnostics`), float32 ``[]`` each."""

    q_abs_max: jax.Array  # max |Q(s, a)| over the batch and every action
    td_error_p90: jax.Array  # 90th percentile of |δ| over the batch
    dormant_units: jax.Array  # share of all hidden units dormant at τ = 0.1
    dormant_units_strict: jax.Array  # the same at τ = 0.025
    dormant_units_worst_layer: jax.Array  # the largest per-layer share at τ = 0.1
    feature_rank: jax.Array  # srank (δ = 0.01) of the last hidden layer's features
    policy_churn: jax.Array  # share of the batch whose greedy action changed since `earlier`
    action_entropy: jax.Array  # entropy (nats) of the greedy actions over the batch
    params_finite: jax.Array  # 1.0 if every online parameter is finite, else 0.0


class Learner(NamedTuple):
    """Pure functions over a :class:`LearnerState`.

    Attributes:
      init: ``init(key, obs) -> LearnerState`` for observations ``[B, *obs_shape]``:
        fresh parameters, target parameters equal to them, ``updates = 0``.
      update: ``update(state, batch, hparams[, key]) -> (state, stats, td)``: one
        gradient update on a :class:`Batch` with leaves ``[B, ...]`` at the (possibly
        traced) learning rate and target sync of ``hparams`` (:class:`jaxdqn.Hyperparams`);
        ``stats`` is an :class:`UpdateStats`, ``td`` ``[B]`` what prioritized replay
        ranks rows by: the TD errors before the step (the per-row KL divergence from the
        target of a distributional learner). ``key`` only where ``takes_key``.
      stat_names: the names of ``stats``' fields.
      inspect: ``inspect(state, earlier_params, batch) -> signals`` or ``None``: health
        signals (:class:`InspectSignals`, float32 ``[]`` each) of the online network on a
        batch ``[B, ...]``; ``earlier_params`` are the online parameters of the previous
        check, for the policy churn. Changes nothing.
      inspect_names: the names of ``inspect``'s fields (empty without ``inspect``).
      stat_max: the names in ``stat_names`` that a log window reduces by their largest
        value; the others by their mean.
      action_values: ``action_values(state, obs) -> float32 [B, A]``, the online
        network's Q-values on observations ``[B, ...]`` (the means of a distributional
        head; what n-step sums are cut by, :func:`jaxdqn.core.replay.n_step_batch`), or
        ``None``.
      takes_key: ``update`` takes a fourth argument, a PRNG key of its own per update
        (the noise of noisy networks); the loop passes one.
    """

    init: Callable[[jax.Array, jax.Array], LearnerState]
    update: Callable[[LearnerState, Batch, Any], tuple[LearnerState, UpdateStats, jax.Array]]
    stat_names: tuple[str, ...]
    inspect: Callable[[LearnerState, Any, Batch], Any] | None = None
    inspect_names: tuple[str, ...] = ()
    stat_max: tuple[str, ...] = ()
    action_values: Callable[[LearnerState, jax.Array], jax.Array] | None = None
    takes_key: bool = False


def make_optimizer(
    name: str = "adam", eps: float = 1e-8, max_grad_norm: float | None = None
) -> optax.GradientTransformation:
    """The update direction: optional global-norm clipping, then the optimizer ``name``
    at a unit learning rate.

    The step size is applied by the learner, as :func:`learning_rate_at` times this
    direction (every optimizer here scales its direction by the learning rate last), so
    the learning rate can be a traced value of a sweep. Not an optimizer to use on its
    own: applied as it is, it would step at learning rate 1.

    Args:
      name: one of :data:`OPTIMIZERS`.
      eps: epsilon of adam, adamw and rmsprop.
      max_grad_norm: clip gradients to this global norm first; ``None`` does not clip.

    Returns:
      An ``optax.GradientTransformation`` whose updates have the params' shapes.

    Raises:
      ValueError: for an unknown ``name``.
    """
    builders = {
        "adam": lambda: optax.adam(1.0, eps=eps),
        "adamw": lambda: optax.adamw(1.0, eps=eps),
        "rmsprop": lambda: optax.rmsprop(1.0, eps=eps),
        "sgd": lambda: optax.sgd(1.0),
    }
    if name not in builders:
        raise ValueError(f"name={name!r} is invalid: must be one of {', '.join(OPTIMIZERS)}.")
    optimizer = builders[name]()
    if max_grad_norm is None:
        return optimizer
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), optimizer)


def learning_rate_at(
    schedule: str, learning_rate: chex.Numeric, updates: chex.Numeric, total_updates: int
) -> jax.Array:
    """Step size of the gradient update that follows ``updates`` earlier ones.

    ``"constant"``: ``learning_rate``; ``"linear"``: decays from ``learning_rate`` to 0
    over ``total_updates`` updates. Returns float32 ``[]``.
    """
    learning_rate = jnp.asarray(learning_rate, jnp.float32)
    if schedule == "linear":
        done = jnp.asarray(updates, jnp.float32) / total_updates
        return learning_rate * jnp.clip(1.0 - done, 0.0, 1.0)
    return learning_rate


def sync_target(
    params: Any, target_params: Any, updates: chex.Numeric, period: chex.Numeric, tau: chex.Numeric
) -> Any:
    """Target parameters after gradient update number ``updates``.

    Every ``period`` updates, ``target <- tau * online + (1 - tau) * target``; otherwise
    unchanged. ``tau=1`` is the hard copy of Mnih et al. (2015); ``period=1`` with a small
    ``tau`` is Polyak averaging; ``period=1, tau=1`` makes targets follow the online net
    (no target network). Built on optax's ``incremental_update``; the blend is computed
    only at updates where a sync is due (for any seed of a ``vmap``, :mod:`jaxdqn.core.lockstep`).

    Args:
      params: online parameters (any pytree).
      target_params: target parameters, same structure.
      updates: ``[]`` int, number of gradient updates applied so far (after this one).
      period: sync period in gradient updates (>= 1).
      tau: sync step size in (0, 1].

    Returns:
      The new target parameters, same structure.
    """
    due = updates % period == 0

    def blend() -> Any:
        blended = optax.incremental_update(params, target_params, tau)
        return jax.tree.map(lambda new, old: jnp.where(due, new, old), blended, target_params)

    return jax.lax.cond(any_in_vmap(due), blend, lambda: target_params)


def global_norm(tree: Any) -> jax.Array:
    """The L2 norm of every leaf of ``tree`` together, float32 ``[]``: one reduction over
    the leaves laid end to end (one kernel where a sum per leaf would be many)."""
    flat = jnp.concatenate([jnp.ravel(x).astype(jnp.float32) for x in jax.tree.leaves(tree)])
    return jnp.sqrt(jnp.sum(jnp.square(flat)))


def td_errors(
    q_network: nn.Module,
    params: Any,
    target_params: Any,
    batch: Batch,
    *,
    double_q: bool,
    q_tm1: jax.Array | None = None,
    key: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """TD errors of a batch and the Q-values of the actions taken.

    Args:
      q_network: the Q-network module.
      params, target_params: online and target parameters.
      batch: a :class:`jaxdqn.core.types.Batch` with leaves ``[B, ...]``; its ``discount``
        already holds ``gamma`` (to the power n for n-step returns) and the termination.
      double_q: select the next action with the online net and value it with the target
        net (van Hasselt et al. 2016), instead of the target net's max.
      q_tm1: the online Q-values ``[B, A]`` of ``batch.obs`` where the caller has them
        already; ``None`` computes them.
      key: the noise of a noisy network's three forward passes (online, target,
        selector); ``None`` uses the mean weights.

    Returns:
      ``(td [B], q_taken [B])``; gradients flow only through ``q_taken``.
    """
    key_online, key_target, key_select = _noise_keys(key)
    q_tm1 = apply_q(q_network, params, batch.obs, key_online) if q_tm1 is None else q_tm1
    q_t_value = apply_q(q_network, target_params, batch.next_obs, key_target)
    if double_q:
        q_t_selector = apply_q(q_network, params, batch.next_obs, key_select)
        td = jax.vmap(losses.double_q_learning)(
            q_tm1, batch.action, batch.reward, batch.discount, q_t_value, q_t_selector
        )
    else:
        td = jax.vmap(losses.q_learning)(
            q_tm1, batch.action, batch.reward, batch.discount, q_t_value
        )
    q_taken = jnp.take_along_axis(q_tm1, batch.action[:, None], axis=1)[:, 0]
    return td, q_taken


def categorical_td_errors(
    q_network: nn.Module,
    params: Any,
    target_params: Any,
    batch: Batch,
    *,
    double_q: bool,
    key: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """C51's per-row loss of a batch, its priority, and the TD errors of the means.

    Args:
      q_network: a distributional Q-network (``num_atoms > 1``, :class:`jaxdqn.core.
        networks.QNetwork`).
      params, target_params: online and target parameters.
      batch: a :class:`jaxdqn.core.types.Batch` with leaves ``[B, ...]``.
      double_q: the online network's means select the next action
        (:func:`jaxdqn.core.losses.categorical_double_q_learning`); else the target's.
      key: noise of a noisy network's forward passes; ``None`` uses the mean weights.

    Returns:
      ``(cross_entropy [B], kl [B], td [B], q_taken [B])``: the loss of each row
      (:func:`jaxdqn.core.losses.categorical_double_q_learning`), its KL divergence from
      the target (the cross-entropy less the target's entropy: what Rainbow prioritizes
      rows by), the TD error of the means (for statistics) and the online means of the
      actions taken.
    """
    key_online, key_target, key_select = _noise_keys(key)
    q_tm1, logits_tm1 = apply_q(q_network, params, batch.obs, key_online, return_logits=True)
    q_t, logits_t = apply_q(q_network, target_params, batch.next_obs, key_target, True)
    selector = apply_q(q_network, params, batch.next_obs, key_select) if double_q else q_t
    atoms = support(q_network)
    targets = jax.vmap(losses.categorical_target, in_axes=(None, 0, 0, None, 0, 0))(
        atoms, batch.reward, batch.discount, atoms, logits_t, selector
    )  # [B, K]
    taken = jnp.take_along_axis(logits_tm1, batch.action[:, None, None], axis=1)[:, 0]  # [B, K]
    cross_entropy = optax.softmax_cross_entropy(taken, targets)
    entropy = -jnp.sum(jnp.where(targets > 0, targets * jnp.log(targets), 0.0), axis=-1)
    td = jax.vmap(losses.double_q_learning)(
        q_tm1, batch.action, batch.reward, batch.discount, q_t, selector
    )
    q_taken = jnp.take_along_axis(q_tm1, batch.action[:, None], axis=1)[:, 0]
    return cross_entropy, cross_entropy - entropy, td, q_taken


def _noise_keys(key: jax.Array | None) -> tuple:
    """Three noise keys (online, target, selector passes), or three ``None``."""
    return (None,) * 3 if key is None else tuple(jax.random.split(key, 3))


def make_learner(
    q_network: nn.Module,
    optimizer: optax.GradientTransformation,
    *,
    double_q: bool = True,
    loss: str = "l2",
    huber_delta: float = 1.0,
    learning_rate_schedule: str = "constant",
    total_updates: int = 1,
    inspect: bool = True,
) -> Learner:
    """DQN's learner: TD loss, one optimizer step, target sync.

    A distributional network (``num_atoms > 1``) learns by C51's cross-entropy
    (:func:`categorical_td_errors`) and ignores ``loss``; a noisy one
    (``q_network.noisy``) draws new noise for every update (``takes_key``).

    Args:
      q_network: the Q-network (``apply(params, obs [B, ...]) -> [B, num_actions]``).
      optimizer: the unit-rate update direction (:func:`make_optimizer`).
      double_q: Double DQN targets (van Hasselt et al. 2016).
      loss: ``"l2"`` or ``"huber"`` on the TD errors (:func:`jaxdqn.core.losses.td_loss`).
      huber_delta: Huber threshold.
      learning_rate_schedule: one of :data:`LEARNING_RATE_SCHEDULES`
        (:func:`learning_rate_at`).
      total_updates: updates of the whole run, the length of a linear schedule (>= 1).
      inspect: give the learner its health signals (:class:`InspectSignals`).

    Returns:
      A :class:`Learner`.

    Raises:
      ValueError: naming the argument, for an unknown loss or schedule, or
        ``total_updates < 1``.
    """
    _check_learner_args(loss, learning_rate_schedule, total_updates)
    parts = _LearnerParts(
        q_network, optimizer, double_q, loss, huber_delta, learning_rate_schedule, total_updates
    )
    return Learner(
        init=partial(_init, parts),
        update=partial(_update, parts),
        stat_names=UpdateStats._fields,
        inspect=partial(_inspect, parts) if inspect else None,
        inspect_names=InspectSignals._fields if inspect else (),
        stat_max=MAX_STATS,
        action_values=partial(_action_values, parts),
        takes_key=is_noisy(q_network),
    )


def _action_values(parts: _LearnerParts, state: LearnerState, obs: jax.Array) -> jax.Array:
    return parts.q_network.apply(state.params, obs)


def _check_learner_args(loss: str, learning_rate_schedule: str, total_updates: int) -> None:
    if loss not in losses.LOSSES:
        raise ValueError(f"loss={loss!r} is invalid: must be one of {', '.join(losses.LOSSES)}.")
    if learning_rate_schedule not in LEARNING_RATE_SCHEDULES:
        raise ValueError(
            f"learning_rate_schedule={learning_rate_schedule!r} is invalid: must be one of "
            f"{', '.join(LEARNING_RATE_SCHEDULES)}."
        )
    check_int("total_updates", total_updates)


class _LearnerParts(NamedTuple):
    q_network: nn.Module
    optimizer: optax.GradientTransformation
    double_q: bool
    loss: str
    huber_delta: float
    learning_rate_schedule: str
    total_updates: int


def _init(parts: _LearnerParts, key: jax.Array, obs: jax.Array) -> LearnerState:
    params = parts.q_network.init(key, obs)
    return LearnerState(
        params=params,
        target_params=params,
        opt_state=parts.optimizer.init(params),
        updates=jnp.int32(0),
    )


def _loss(parts: _LearnerParts, params, target_params, batch: Batch, key):
    """``(loss [], (priority [B], td [B], q_taken [B]))``."""
    args = (parts.q_network, params, target_params, batch)
    if is_distributional(parts.q_network):
        cross_entropy, kl, td, q_taken = categorical_td_errors(
            *args, double_q=parts.double_q, key=key
        )
        return jnp.mean(batch.weight * cross_entropy), (kl, td, q_taken)
    td, q_taken = td_errors(*args, double_q=parts.double_q, key=key)
    value = losses.td_loss(td, parts.loss, parts.huber_delta, batch.weight)
    return value, (td, td, q_taken)


def _update(
    parts: _LearnerParts, state: LearnerState, batch: Batch, hparams: Any, key=None
) -> tuple[LearnerState, UpdateStats, jax.Array]:
    (value, (priority, td, q_taken)), grads = jax.value_and_grad(
        partial(_loss, parts), has_aux=True
    )(state.params, state.target_params, batch, key)
    direction, opt_state = parts.optimizer.update(grads, state.opt_state, state.params)
    step_size = learning_rate_at(
        parts.learning_rate_schedule, hparams.learning_rate, state.updates, parts.total_updates
    )
    params = optax.apply_updates(state.params, optax.tree.scale(step_size, direction))
    updates = state.updates + 1
    target_params = sync_target(
        params, state.target_params, updates, hparams.target_update_period, hparams.target_tau
    )
    grad_norm = global_norm(grads)
    stats = UpdateStats(
        loss=value,
        q_value=jnp.mean(q_taken),
        td_error=jnp.mean(jnp.abs(td)),
        grad_norm=grad_norm,
        grad_norm_max=grad_norm,
        non_finite=(~(jnp.isfinite(value) & jnp.isfinite(grad_norm))).astype(jnp.float32),
    )
    new_state = LearnerState(
        params=params, target_params=target_params, opt_state=opt_state, updates=updates
    )
    return new_state, stats, priority


def hidden_features(q_network: nn.Module, params: Any, obs: jax.Array):
    """Q-values ``[B, A]`` and the hidden activations the network sows (a tuple of
    ``[B, U_i]``, from the input side; empty if it sows none; see
    :data:`jaxdqn.core.networks.HIDDEN_COLLECTION`)."""
    q_values, sown = q_network.apply(params, obs, mutable=[HIDDEN_COLLECTION])
    layers = sown.get(HIDDEN_COLLECTION, {})
    return q_values, tuple(jax.tree.leaves(layers.get(HIDDEN_NAME, ())))


def _inspect(
    parts: _LearnerParts, state: LearnerState, earlier_params: Any, batch: Batch
) -> InspectSignals:
    q_values, layers = hidden_features(parts.q_network, state.params, batch.obs)
    td, _ = td_errors(
        parts.q_network,
        state.params,
        state.target_params,
        batch,
        double_q=parts.double_q,
        q_tm1=q_values,
    )
    nan = jnp.float32(jnp.nan)
    if layers:
        tau, strict_tau = DORMANT_THRESHOLDS
        dormant = _pooled_dormant(layers, tau)
        strict = _pooled_dormant(layers, strict_tau)
        worst = jnp.max(jnp.stack([dormant_share(h, tau) for h in layers]))
        rank = effective_rank(layers[-1]).astype(jnp.float32)
    else:
        dormant = strict = worst = rank = nan
    finite = tree_is_finite(state.params)
    signals = InspectSignals(
        q_abs_max=jnp.max(jnp.abs(q_values)),
        td_error_p90=quantile(jnp.abs(td), 0.9),
        dormant_units=dormant,
        dormant_units_strict=strict,
        dormant_units_worst_layer=worst,
        feature_rank=rank,
        policy_churn=policy_churn(parts.q_network.apply(earlier_params, batch.obs), q_values),
        action_entropy=greedy_action_entropy(q_values),
        params_finite=finite.astype(jnp.float32),
    )
    # Non-finite parameters make every other signal meaningless (a NaN layer would read
    # as all dormant, rank 0, one greedy action): NaN says "not measured".
    return InspectSignals(
        *(jnp.where(finite, v, nan) for v in signals[:-1]), params_finite=signals.params_finite
    )


def _pooled_dormant(layers: tuple[jax.Array, ...], tau: float) -> jax.Array:
    """Share of dormant units over every hidden layer, each unit scored within its own
    layer."""
    dormant = sum(dormant_share(h, tau) * h.shape[-1] for h in layers)
    return dormant / sum(h.shape[-1] for h in layers)
