"""DQN's experience replay as one component: storage, n-step targets, uniform or
prioritized sampling, importance weights and priority updates.

:func:`make_replay` returns a :class:`Replay` bundle of pure functions (``init``, ``add``,
``sample``, ``update_priorities``); whether sampling is uniform or proportional to
priorities (Schaul et al. 2016) is chosen when it is built, and the sum tree of
prioritized replay lives inside its state. The trainer, the learner and the benchmarks
use nothing else of replay.

Storage: each observation is stored once.

A vectorised step of ``E = num_envs`` envs writes ``E`` consecutive rows to a circular
buffer of ``capacity`` rows (:func:`jaxdqn.make_circular_buffer`). A row holds the
observation the action was taken in, the action, the reward and the two end flags; it does
**not** hold the next observation, because that is the next row of the same env, ``E``
rows later. Only three cases need more, and they are kept beside the rows:

* a **truncated** step bootstraps from the true final observation, while the next row
  holds the reset's first observation. Final observations of truncated steps go to a small
  ring, each tagged with the global number of its row and found by counting the entries
  of earlier rows (binary search in a long ring). An env truncates at most once every
  ``max_episode_steps`` steps, which bounds how many of them the buffer can hold
  (:func:`final_obs_capacity`), so the ring never drops one still needed;
* the **newest** row of each env has no next row yet: its next observation is kept in
  ``next_obs`` (``[E, ...]``), replaced on every add;
* a **terminated** step needs no next observation: its bootstrap is weighted by 0.

So a stored transition takes one observation in its native dtype plus the scalar fields,
and its share of the small ring (:func:`jaxdqn.host.memory.transition_bytes` counts it).
Boolean observations (MinAtar's, grid worlds') are kept in the rows as bits, eight to a
byte; :func:`stored_observations` reads them back as the env gave them.

n-step targets (``jaxdqn.DQNConfig.n_step``) are assembled from the same rows:
``reward = r_t + γ r_{t+1} + … + γ^{m-1} r_{t+m-1}`` and ``discount = γ^m (1 - terminated)``
with the next observation of step ``t+m-1``, where ``m <= n`` stops early after a
terminated step (no bootstrap), after a truncated step (bootstrap from its final
observation with ``γ^m``) and at an env's newest row (its later steps are not written yet).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxdqn.core.circular_buffer import CircularBufferState, check_leaf, make_circular_buffer
from jaxdqn.core.losses import discount_from_terminated
from jaxdqn.core.sum_tree import (
    SumTreeState,
    sum_tree_init,
    sum_tree_sample,
    sum_tree_set,
    sum_tree_set_new,
)
from jaxdqn.core.types import Batch, Transition, check_int


class StoredStep(NamedTuple):
    """One row of the replay memory: a :class:`jaxdqn.Transition` without ``next_obs``."""

    obs: jax.Array  # [..., *obs_shape], env dtype; bool as bits: uint8 [..., ceil(prod/8)]
    action: jax.Array  # [...], int32
    reward: jax.Array  # [...], float32
    terminated: jax.Array  # [...], bool
    truncated: jax.Array  # [...], bool
    valid: jax.Array | None = None  # [...], bool: a transition to learn from (valid_flags)


class ReplayState(NamedTuple):
    """Rows, the newest next observations, the ring of final observations and, with
    prioritized replay, the sum tree of the rows' priorities (one seed)."""

    rows: CircularBufferState  # data: StoredStep with leaves [capacity, ...]
    next_obs: jax.Array  # [num_envs, *obs_shape]: next observation of each env's newest row
    final_obs: jax.Array  # [F, *obs_shape]: final observations of truncated steps (a ring)
    final_row: jax.Array  # [F] int32: global number of the row each belongs to; -1 if none
    final_count: jax.Array  # [] int32: final observations ever stored
    rows_added: jax.Array  # [] int32: rows ever written (global number of the next row)
    priorities: SumTreeState | None  # a priority per row when prioritized, else None


class ReplaySample(NamedTuple):
    """A drawn batch and where it came from."""

    batch: Batch  # leaves [B, ...]; weight: importance weights (ones when uniform)
    slots: jax.Array  # [B] int32: the rows drawn (for update_priorities)


class Replay(NamedTuple):
    """Pure functions over a :class:`ReplayState`.

    Attributes:
      init: ``init(example_obs) -> state``; ``example_obs`` is one observation (no batch
        axis); its shape and dtype are kept.
      add: ``add(state, transition) -> state`` for one vectorised step: a
        :class:`jaxdqn.Transition` with leaves ``[num_envs, ...]`` whose ``next_obs`` is
        the true next observation (the final one where an episode ended). With
        prioritized replay the new rows get the largest priority set so far.
      sample: ``sample(state, key, gamma, progress, action_values=None) ->
        ReplaySample``: ``batch_size`` written rows, drawn uniformly with replacement or in
        proportion to their priorities, with their ``n_step`` targets at discount
        ``gamma`` (may be traced). ``progress`` (float ``[]`` in [0, 1], the fraction of
        the run's updates done) anneals the importance-weight exponent β from
        ``priority_beta`` to 1; uniform replay ignores it and gives unit weights. A replay
        built with ``n_step_cut`` needs ``action_values`` (``obs [B, ...] -> float
        [B, A]``, the current Q-values), by which its sums are cut.
      update_priorities: ``update_priorities(state, slots, td, mask) -> state``: the rows
        at ``slots`` (int ``[B]``) take priority ``|td|^α + ε`` (``td`` ``[B]``) where
        ``mask`` (bool ``[]``, may be traced) is true, and keep theirs where it is false;
        unchanged state with uniform replay.
    """

    init: Callable[[jax.Array], ReplayState]
    add: Callable[[ReplayState, Transition], ReplayState]
    sample: Callable[..., ReplaySample]
    update_priorities: Callable[[ReplayState, jax.Array, jax.Array, jax.Array], ReplayState]


def final_obs_capacity(capacity: int, num_envs: int, max_episode_steps: int | None) -> int:
    """How many final observations of truncated steps the rows can refer to at once.

    An env's rows span at most ``L = ceil(capacity / num_envs)`` consecutive steps, and it
    truncates at most once every ``max_episode_steps`` steps, so at most ``ceil(L /
    max_episode_steps)`` of its stored rows are truncated. Without a known time limit
    (``None``) every row may be one.
    """
    steps_per_env = -(-capacity // num_envs)
    if max_episode_steps is None:
        return num_envs * steps_per_env
    return num_envs * -(-steps_per_env // max(1, int(max_episode_steps)))


def make_replay(
    capacity: int,
    num_envs: int,
    max_episode_steps: int | None,
    *,
    batch_size: int,
    n_step: int = 1,
    n_step_cut: bool = False,
    n_step_cut_tolerance: float = 0.0,
    valid_flags: bool = False,
    prioritized: bool = False,
    priority_alpha: float = 0.6,
    priority_beta: float = 0.4,
    priority_eps: float = 1e-6,
) -> Replay:
    """Builds the experience replay of a run with ``num_envs`` envs stepped in lockstep.

    Args:
      capacity: rows (transitions) kept, at least ``num_envs``; the newest survive.
      num_envs: rows written per :attr:`Replay.add`.
      max_episode_steps: the envs' time limit (gymnax ``max_steps_in_episode``): no env may
        truncate twice within fewer steps. ``None`` sizes the ring for the worst case.
      batch_size: rows per :attr:`Replay.sample`.
      n_step: steps summed per target (1 is the one-step target), at most
        ``capacity // num_envs``.
      n_step_cut: stop each sum before the first later stored action that is not greedy
        under the Q-values :attr:`Replay.sample` is given, and bootstrap there
        (:func:`n_step_batch`).
      n_step_cut_tolerance: with ``n_step_cut``, a later action still counts as greedy
        when its Q-value is within this fraction of ``|max Q|`` of the max (0: only the
        greedy action does), in [0, 1).
      valid_flags: the transitions carry ``valid`` (:attr:`jaxdqn.Transition.valid`, e.g.
        EnvPool's reset steps are not transitions): a row whose flag is false is stored, so
        the rows stay in time order, and never learned from (weight 0 in uniform batches,
        priority 0 under prioritized replay).
      prioritized: draw rows in proportion to ``|δ|^priority_alpha + priority_eps``
        instead of uniformly, weighting them by ``(N P(i))^-β`` normalised by the batch's
        largest.
      priority_alpha: exponent of ``|δ|`` in [0, 1] (0 is uniform).
      priority_beta: importance-weight exponent β at ``progress=0``, in [0, 1].
      priority_eps: added to every priority (> 0), so no row becomes undrawable.

    Returns:
      A :class:`Replay`.

    Raises:
      ValueError: naming the argument, for a ``capacity`` below ``num_envs``, a
        ``batch_size`` below 1, an ``n_step`` outside ``[1, capacity // num_envs]``, or an
        ``n_step_cut_tolerance`` outside [0, 1).
    """
    _check_replay_args(capacity, num_envs, batch_size, n_step)
    _check_cut_tolerance("n_step_cut_tolerance", n_step_cut_tolerance)
    parts = _ReplayParts(
        storage=_make_storage(capacity, num_envs, max_episode_steps, bool(valid_flags)),
        capacity=capacity,
        batch_size=batch_size,
        n_step=n_step,
        n_step_cut=bool(n_step_cut),
        cut_tolerance=float(n_step_cut_tolerance),
        valid_flags=bool(valid_flags),
        prioritized=prioritized,
        priority_alpha=priority_alpha,
        priority_beta=priority_beta,
        priority_eps=priority_eps,
    )
    return Replay(
        init=partial(_init, parts),
        add=partial(_add, parts),
        sample=partial(_sample, parts),
        update_priorities=partial(_update_priorities, parts),
    )


def _check_replay_args(capacity: int, num_envs: int, batch_size: int, n_step: int) -> None:
    if capacity < num_envs:
        raise ValueError(
            f"capacity={capacity} is invalid: must be >= num_envs={num_envs} "
            "(each add writes num_envs rows)."
        )
    check_int("batch_size", batch_size)
    check_int("n_step", n_step)
    if n_step > capacity // num_envs:
        raise ValueError(
            f"n_step={n_step} is invalid: must be <= capacity // num_envs = "
            f"{capacity // num_envs} (the rows must hold n steps of every env)."
        )


def _check_cut_tolerance(name: str, tolerance: float) -> None:
    if not 0.0 <= tolerance < 1.0:
        raise ValueError(
            f"{name}={tolerance!r} is invalid: must be in [0, 1) (a fraction of |max Q|)."
        )


class _ReplayParts(NamedTuple):
    storage: _Storage
    capacity: int
    batch_size: int
    n_step: int
    n_step_cut: bool
    cut_tolerance: float
    valid_flags: bool
    prioritized: bool
    priority_alpha: float
    priority_beta: float
    priority_eps: float


def _init(parts: _ReplayParts, example_obs: jax.Array) -> ReplayState:
    state = parts.storage.init(example_obs)
    if parts.prioritized:
        return state._replace(priorities=sum_tree_init(parts.capacity))
    return state


def _add(parts: _ReplayParts, state: ReplayState, transition: Transition) -> ReplayState:
    if parts.prioritized:  # the new rows are drawn with high probability at least once
        slots = parts.storage.write_slots(state)
        keep = transition.valid if parts.valid_flags else None  # flagged rows: priority 0
        state = state._replace(priorities=sum_tree_set_new(state.priorities, slots, keep))
    return parts.storage.add(state, transition)


def _sample(
    parts: _ReplayParts, state: ReplayState, key: jax.Array, gamma, progress, action_values=None
):
    if parts.prioritized:
        slots, probabilities = sum_tree_sample(state.priorities, key, parts.batch_size)
    else:
        slots = parts.storage.sample_slots(state, key, parts.batch_size)
    if parts.n_step_cut and action_values is None:
        raise ValueError("sample: a replay built with n_step_cut needs action_values.")
    batch = n_step_batch(
        state, slots, n=parts.n_step, gamma=gamma,
        action_values=action_values if parts.n_step_cut else None,
        cut_tolerance=parts.cut_tolerance,
    )  # fmt: skip
    if parts.prioritized:
        beta = parts.priority_beta + (1.0 - parts.priority_beta) * progress
        weights = importance_weights(probabilities, state.rows.size, beta)
        batch = batch._replace(weight=weights)
    valid = state.rows.data.valid
    if valid is not None:
        batch = batch._replace(weight=batch.weight * valid[slots])
    return ReplaySample(batch=batch, slots=slots)


def _update_priorities(parts: _ReplayParts, state: ReplayState, slots, td, mask) -> ReplayState:
    if not parts.prioritized:
        return state
    new = priorities_from_td(td, parts.priority_alpha, parts.priority_eps)
    new = jnp.where(mask, new, state.priorities.levels[0][slots])
    if state.rows.data.valid is not None:
        new = jnp.where(state.rows.data.valid[slots], new, 0.0)
    return state._replace(priorities=sum_tree_set(state.priorities, slots, new))


class _Storage(NamedTuple):
    init: Callable[[jax.Array], ReplayState]
    add: Callable[[ReplayState, Transition], ReplayState]
    sample_slots: Callable[[ReplayState, jax.Array, int], jax.Array]
    write_slots: Callable[[ReplayState], jax.Array]


def _make_storage(
    capacity: int, num_envs: int, max_episode_steps: int | None, valid_flags: bool
) -> _Storage:
    """The rows, the newest next observations and the ring of final observations."""
    rows = make_circular_buffer(capacity)
    ring = final_obs_capacity(capacity, num_envs, max_episode_steps)
    env_ids = jnp.arange(num_envs, dtype=jnp.int32)

    def init(example_obs: jax.Array) -> ReplayState:
        obs = jnp.zeros(example_obs.shape, example_obs.dtype)
        example = StoredStep(
            obs=_packed(obs[None])[0],
            action=jnp.int32(0),
            reward=jnp.float32(0.0),
            terminated=jnp.bool_(False),
            truncated=jnp.bool_(False),
            valid=jnp.bool_(False) if valid_flags else None,
        )
        return ReplayState(
            rows=rows.init(example),
            next_obs=jnp.zeros((num_envs, *obs.shape), obs.dtype),
            final_obs=jnp.zeros((ring, *obs.shape), obs.dtype),
            final_row=jnp.full(ring, -1, jnp.int32),
            final_count=jnp.int32(0),
            rows_added=jnp.int32(0),
            priorities=None,
        )

    def add(state: ReplayState, transition: Transition) -> ReplayState:
        if transition.reward.shape != (num_envs,):
            raise ValueError(
                f"add: a vectorised step of num_envs={num_envs} transitions is needed; got "
                f"reward of shape {transition.reward.shape}."
            )
        check_leaf(state.next_obs, transition.next_obs)
        if valid_flags and transition.valid is None:
            raise ValueError("add: a replay built with valid_flags needs transition.valid.")
        step = StoredStep(*(getattr(transition, name) for name in StoredStep._fields))
        step = step._replace(obs=_packed(step.obs), valid=step.valid if valid_flags else None)
        # Truncated envs take the next ring entries in env (= row) order; others write
        # nowhere (an out-of-range index, dropped).
        truncated = transition.truncated
        entry = state.final_count + jnp.cumsum(truncated, dtype=jnp.int32) - 1
        slot = jnp.where(truncated, entry % ring, ring)
        return state._replace(
            rows=rows.add(state.rows, step),
            next_obs=transition.next_obs,
            final_obs=state.final_obs.at[slot].set(transition.next_obs, mode="drop"),
            final_row=state.final_row.at[slot].set(state.rows_added + env_ids, mode="drop"),
            final_count=state.final_count + jnp.sum(truncated, dtype=jnp.int32),
            rows_added=state.rows_added + num_envs,
        )

    def sample_slots(state: ReplayState, key: jax.Array, batch_size: int) -> jax.Array:
        return rows.sample_slots(state.rows, key, batch_size)

    def write_slots(state: ReplayState) -> jax.Array:
        return rows.write_slots(state.rows, num_envs)

    return _Storage(init=init, add=add, sample_slots=sample_slots, write_slots=write_slots)


def importance_weights(probabilities: jax.Array, size: jax.Array, beta) -> jax.Array:
    """``(size * P(i))^-beta``, divided by the largest in the batch (float32 ``[B]``)."""
    weights = (size.astype(jnp.float32) * probabilities) ** (-jnp.asarray(beta, jnp.float32))
    return weights / weights.max()


def priorities_from_td(td: jax.Array, alpha, eps) -> jax.Array:
    """``|δ|^α + ε`` for TD errors ``[B]``."""
    return jnp.abs(td).astype(jnp.float32) ** alpha + eps


def n_step_batch(
    state: ReplayState,
    slots: jax.Array,
    *,
    n: int,
    gamma,
    action_values: Callable[[jax.Array], jax.Array] | None = None,
    cut_tolerance: float = 0.0,
) -> Batch:
    """The n-step :class:`Batch` of the transitions stored at ``slots``.

    The sum runs over at most ``n`` steps of the sampled step's episode, and stops after a
    terminated or truncated step or before a step not yet written. With
    ``action_values`` it also stops before the first later step whose stored action is
    not greedy now, and bootstraps from that step's observation (Watkins's Q(λ) cut): the
    sum then follows the greedy policy whose value the bootstrap's max estimates, instead
    of mixing in the returns of other actions. A stored action ``a`` counts as greedy
    where ``Q(s, a) >= max Q(s) - cut_tolerance * |max Q(s)|``; a tolerance lets
    near-greedy actions continue the sum, which shifts each later step's value by at most
    ``cut_tolerance * |max Q|``.

    Args:
      state: a :class:`ReplayState`.
      slots: int ``[B]``: the rows whose targets are wanted (written rows only).
      n: static int >= 1; ``n = 1`` gives the 1-step target.
      gamma: discount, a float or a traced scalar.
      action_values: ``obs [M, *obs_shape] -> float [M, A]``, the current Q-values,
        called once on the observations of steps 1 .. n-1 (``M = (n - 1) B``); ``None``:
        no cut.
      cut_tolerance: static float in [0, 1): the greedy slack, a fraction of ``|max Q|``.

    Returns:
      A :class:`Batch` with leaves ``[B, ...]`` and unit weights. Where ``discount`` is 0
      (the sum ended at a terminated step), ``next_obs`` is an arbitrary stored observation.

    Raises:
      ValueError: for a ``cut_tolerance`` outside [0, 1).
    """
    _check_cut_tolerance("cut_tolerance", cut_tolerance)
    data: StoredStep = state.rows.data
    capacity = data.reward.shape[0]
    stride = state.next_obs.shape[0]  # rows per time step: the next step of a row's env
    written_after = (state.rows.position - 1 - slots) % capacity  # rows newer than each slot
    gamma = jnp.asarray(gamma, jnp.float32)
    later = [(slots + k * stride) % capacity for k in range(1, n)]  # the rows of steps 1..n-1
    greedy = _greedy_flags(state, later, action_values, cut_tolerance)
    reward = data.reward[slots].astype(jnp.float32)
    alive = jnp.ones(slots.shape, bool)  # step k still belongs to the sampled episode
    last = slots  # the row of the last step summed so far
    last_written_after = written_after
    steps = jnp.ones(slots.shape, jnp.float32)  # m: how many steps are summed
    for k, rows in enumerate(later, start=1):
        ended = data.terminated[last] | data.truncated[last]
        alive = alive & ~ended & (k * stride <= written_after)
        if data.valid is not None:  # never sum over a step that is not a transition
            alive = alive & data.valid[rows]
        if greedy is not None:
            alive = alive & greedy[k - 1]
        reward = reward + jnp.where(alive, gamma**k * data.reward[rows], 0.0)
        last = jnp.where(alive, rows, last)
        last_written_after = jnp.where(alive, written_after - k * stride, last_written_after)
        steps = steps + alive
    discount = discount_from_terminated(gamma**steps, data.terminated[last])
    return Batch(
        obs=stored_observations(state, slots),
        action=data.action[slots],
        reward=reward,
        discount=discount,
        next_obs=_next_obs(state, last, last_written_after),
        weight=jnp.ones(slots.shape, jnp.float32),
    )


def _greedy_flags(
    state: ReplayState, later: list[jax.Array], action_values, tolerance: float
) -> jax.Array | None:
    """Whether the stored action of each row in ``later`` (``n - 1`` int arrays ``[B]``)
    counts as greedy under ``action_values``: bool ``[n - 1, B]``, from one call on all
    their observations; ``None`` without ``action_values`` or later steps."""
    if action_values is None or not later:
        return None
    rows = jnp.concatenate(later)
    q = action_values(stored_observations(state, rows))  # [(n - 1) B, A]
    action = state.rows.data.action[rows].astype(jnp.int32)
    taken = jnp.take_along_axis(q, action[:, None], axis=-1)[:, 0]
    best = q.max(axis=-1)
    return (taken >= best - tolerance * jnp.abs(best)).reshape(len(later), -1)


def _next_obs(state: ReplayState, slots: jax.Array, written_after: jax.Array) -> jax.Array:
    """The next observation of the steps stored at ``slots`` (int ``[B]``, with
    ``written_after`` rows written after each): the env's newest next observation, the
    final observation of a truncated step, or the next row's."""
    data: StoredStep = state.rows.data
    capacity = data.reward.shape[0]
    stride = state.next_obs.shape[0]
    newest = written_after < stride
    # The newest num_envs rows were written by envs num_envs-1, ..., 0, newest first.
    newest_env = jnp.clip(stride - 1 - written_after, 0, stride - 1)
    following = stored_observations(state, (slots + stride) % capacity)
    final = state.final_obs[_final_obs_slot(state, state.rows_added - 1 - written_after)]
    return _select(
        newest, state.next_obs[newest_env], _select(data.truncated[slots], final, following)
    )


# Rings up to this many entries are searched by one comparison of every sampled row with
# every entry ([B, F] compares, one fused op); longer ones by binary search (log2 F rounds
# of gathers, each a separate operation: slow on a CPU, where XLA charges per operation).
COMPARE_ALL_RING = 1024


def _final_obs_slot(state: ReplayState, row: jax.Array) -> jax.Array:
    """The ring slot of the final observation stored for global row number ``row`` (int
    ``[B]``): the ring's live entries are in increasing row order, so the slot is the
    oldest live entry's plus the number of live entries for earlier rows. For a row with no
    final observation, some slot (its value is then not used)."""
    ring = state.final_row.shape[0]
    oldest = jnp.maximum(state.final_count - ring, 0)  # global number of the oldest entry
    if ring <= COMPARE_ALL_RING:
        live = state.final_row >= 0  # every entry written so far is still live
        earlier = live & (state.final_row < row[:, None])  # [B, F]
        return (oldest + jnp.sum(earlier, axis=1, dtype=jnp.int32)) % ring
    lo = jnp.broadcast_to(oldest, row.shape)
    hi = jnp.broadcast_to(state.final_count, row.shape)
    for _ in range(ring.bit_length()):  # enough halvings to empty [lo, hi) of size <= ring
        mid = (lo + hi) // 2
        right = state.final_row[mid % ring] < row  # the entry sought lies after mid
        searching = lo < hi
        lo = jnp.where(searching & right, mid + 1, lo)
        hi = jnp.where(searching & ~right, mid, hi)
    return lo % ring


def stored_observations(state: ReplayState, rows: jax.Array) -> jax.Array:
    """The observations stored at ``rows`` (int ``[M]``), as the env gave them:
    ``[M, *obs_shape]`` in the env's dtype (boolean ones unpacked from their bits)."""
    stored = state.rows.data.obs[rows]
    if state.next_obs.dtype != jnp.bool_:  # kept as they are (:func:`_packed`)
        return stored
    obs_shape = state.next_obs.shape[1:]
    bits = jnp.unpackbits(stored, axis=-1, count=math.prod(obs_shape))
    return bits.astype(jnp.bool_).reshape(*rows.shape, *obs_shape)


def _packed(obs: jax.Array) -> jax.Array:
    """Observations ``[M, *obs_shape]`` as the rows keep them: boolean ones as bits, eight
    to a byte (uint8 ``[M, ceil(prod(obs_shape) / 8)]``), others as they are."""
    if obs.dtype != jnp.bool_:
        return obs
    return jnp.packbits(obs.reshape(obs.shape[0], -1), axis=-1)


def _select(mask: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """``a`` where ``mask`` (``[B]``) else ``b`` (``[B, ...]``)."""
    return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b)
