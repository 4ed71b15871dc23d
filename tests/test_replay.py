"""The replay memory (each observation stored once) and its n-step targets, against a plain
NumPy reference that keeps obs and next_obs of every step, over random trajectories with
terminations, time-limit truncations, wrap-around and rows whose later steps are unwritten."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdqn
from jaxdqn.core import replay as replay_module
from jaxdqn.core.replay import final_obs_capacity, make_replay, n_step_batch
from jaxdqn.core.types import Transition
from jaxdqn.host.memory import pairs_f32_transition_bytes, row_bytes, transition_bytes

GAMMA = 0.9


def trajectories(
    seed: int, steps: int, num_envs: int, time_limit: int, p_terminate: float = 0.15
) -> dict[str, np.ndarray]:
    """Random time-major steps [steps, num_envs] as vectorised envs produce them: an episode
    terminates with probability ``p_terminate`` per step and is truncated when its
    ``time_limit``-th step did not terminate it; the next step's obs is this step's next_obs
    unless the episode ended (then a fresh reset observation). Envs start at random times."""
    rng = np.random.default_rng(seed)
    obs_dim = 2
    time = rng.integers(0, time_limit, num_envs)
    obs = rng.normal(size=(num_envs, obs_dim)).astype(np.float32)
    data = {k: [] for k in Transition._fields if k != "valid"}  # every step a transition
    for _ in range(steps):
        time = time + 1
        terminated = rng.random(num_envs) < p_terminate
        truncated = (time >= time_limit) & ~terminated
        next_obs = rng.normal(size=(num_envs, obs_dim)).astype(np.float32)
        data["obs"].append(obs)
        data["action"].append(rng.integers(0, 3, num_envs).astype(np.int32))
        data["reward"].append(rng.normal(size=num_envs).astype(np.float32))
        data["terminated"].append(terminated)
        data["truncated"].append(truncated)
        data["next_obs"].append(next_obs)
        ended = terminated | truncated
        reset = rng.normal(size=(num_envs, obs_dim)).astype(np.float32)
        obs = np.where(ended[:, None], reset, next_obs)
        time = np.where(ended, 0, time)
    return {k: np.stack(v) for k, v in data.items()}


def fill(data: dict[str, np.ndarray], capacity: int, time_limit: int | None):
    """The replay memory after adding every step, as the trainer does."""
    num_envs = data["reward"].shape[1]
    replay = make_replay(capacity, num_envs, time_limit, batch_size=1)
    state = replay.init(jnp.asarray(data["obs"][0, 0]))
    add = jax.jit(replay.add)
    for t in range(data["reward"].shape[0]):
        state = add(state, Transition(**{k: jnp.asarray(v[t]) for k, v in data.items()}))
    return state


VALUE_WEIGHTS = np.array([[-1.0, 1.0, 0.2], [0.0, 0.5, 1.0]], np.float32)  # [obs, action]
VALUE_BIAS = np.array([0.3, 0.0, -0.4], np.float32)


def values_of(obs):
    """Fixed 'Q-values' of the tests (NumPy or JAX arrays, traced too): 3 actions from a
    2-d observation ``[..., 2] -> [..., 3]``, whose gaps vary, so some stored (random)
    actions are greedy, some near-greedy and some far below."""
    return obs @ VALUE_WEIGHTS + VALUE_BIAS


def follows(obs, action, tolerance: float) -> bool:
    """The cut's rule in NumPy: ``action`` counts as greedy under :func:`values_of`."""
    q = values_of(np.asarray(obs, np.float32))
    return bool(q[action] >= q.max() - tolerance * abs(q.max()))


def reference(data, capacity: int, n: int, cut: float | None = None):
    """Per slot (oldest write first): obs and the n-step reward, discount and next_obs,
    from the full per-step data (obs and next_obs of every step); with a ``cut``
    tolerance a sum stops before a later step whose action does not :func:`follows` its
    observation, and bootstraps from that observation, which is the previous step's
    next_obs."""
    steps, num_envs = data["reward"].shape
    written = steps * num_envs
    rows = {}
    for w in range(max(0, written - capacity), written):  # the writes still stored
        t, e = divmod(w, num_envs)
        total, m = 0.0, 0
        for k in range(n):
            if t + k >= steps:  # not written yet
                break
            step = (data["obs"][t + k, e], data["action"][t + k, e])
            if cut is not None and k > 0 and not follows(*step, cut):
                break
            total += GAMMA**k * float(data["reward"][t + k, e])
            m = k + 1
            if data["terminated"][t + k, e] or data["truncated"][t + k, e]:
                break
        last = t + m - 1
        discount = GAMMA**m * (0.0 if data["terminated"][last, e] else 1.0)
        rows[w % capacity] = (data["obs"][t, e], total, discount, data["next_obs"][last, e])
    slots = np.array(sorted(rows))
    obs, reward, discount, next_obs = (np.array([rows[s][i] for s in slots]) for i in range(4))
    return slots, obs, reward, discount, next_obs


def assert_batch_matches(batch, obs, reward, discount, next_obs):
    np.testing.assert_array_equal(batch.obs, obs)
    np.testing.assert_allclose(batch.reward, reward, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(batch.discount, discount, rtol=1e-5, atol=1e-7)
    bootstraps = discount > 0  # after a terminated step next_obs is weighted by 0
    np.testing.assert_array_equal(np.asarray(batch.next_obs)[bootstraps], next_obs[bootstraps])
    np.testing.assert_array_equal(batch.weight, np.ones_like(reward))


CASES = [  # (steps, num_envs, capacity, time_limit, n)
    (30, 3, 200, 4, 3),  # not full
    (40, 3, 50, 4, 4),  # wrapped twice, capacity not a multiple of num_envs
    (25, 4, 64, 3, 1),  # 1-step
    (60, 1, 37, 5, 5),  # one env, long n
    (50, 2, 20, 1, 1),  # every step truncated unless terminated: a final obs per row
]


@pytest.mark.parametrize(("steps", "num_envs", "capacity", "time_limit", "n"), CASES)
# "binary search": the final observations' ring searched as a long one is.
@pytest.mark.parametrize("transform", ["plain", "jit", "binary search"])
@pytest.mark.parametrize("cut", [None, 0.0, 0.5])  # no cut, greedy only, a tolerance
def test_n_step_batch_matches_numpy(
    steps, num_envs, capacity, time_limit, n, transform, cut, monkeypatch
):
    if transform == "binary search":
        monkeypatch.setattr(replay_module, "COMPARE_ALL_RING", 0)
    data = trajectories(steps * 100 + n, steps, num_envs, time_limit)
    state = fill(data, capacity, time_limit)
    slots, *expected = reference(data, capacity, n, cut)
    if cut is not None and n > 1:  # the cut changes some targets of these data
        for other in {None, 0.0, 0.5} - {cut}:
            assert not np.allclose(expected[1], reference(data, capacity, n, other)[2])

    def build(state, slots):
        values = None if cut is None else values_of
        return n_step_batch(
            state, slots, n=n, gamma=GAMMA, action_values=values, cut_tolerance=cut or 0.0
        )

    fn = jax.jit(build) if transform == "jit" else build
    assert_batch_matches(fn(state, jnp.asarray(slots, jnp.int32)), *expected)
    discount = expected[2]
    assert np.any(discount == 0.0)  # the data exercise every case: terminated,
    assert np.any(data["truncated"])  # truncated (bootstrap from the final obs),
    if n > 1 and cut is None:  # full n steps, and cut short by an end or by unwritten rows
        assert np.any(np.isclose(discount, GAMMA**n))
        assert np.any((discount > 0) & ~np.isclose(discount, GAMMA**n))


@pytest.mark.parametrize("compare_all_ring", [replay_module.COMPARE_ALL_RING, 0])
def test_final_observations_survive_at_the_ring_bound(compare_all_ring, monkeypatch):
    """No terminations: every env truncates exactly every time_limit steps, so the rows
    hold as many truncated steps as the ring's bound allows; after many wraps every
    next_obs is still right (the ring counted, and binary-searched). One ring entry fewer
    loses one that is still needed."""
    monkeypatch.setattr(replay_module, "COMPARE_ALL_RING", compare_all_ring)
    steps, num_envs, capacity, time_limit = 90, 3, 40, 3
    data = trajectories(1, steps, num_envs, time_limit, p_terminate=0.0)
    ring = final_obs_capacity(capacity, num_envs, time_limit)
    assert ring == 15  # 3 envs x ceil(14 steps / 3)
    truncated = data["truncated"].reshape(-1)  # in row order
    stored = [
        truncated[max(0, end - capacity) : end].sum()
        for end in range(0, truncated.size + 1, num_envs)
    ]
    at_bound = max(t for t, count in enumerate(stored) if count == ring)  # a step at the bound
    assert at_bound * num_envs > 2 * capacity  # after the rows and the ring wrapped
    data = {k: v[:at_bound] for k, v in data.items()}
    slots, *expected = reference(data, capacity, 1)
    state = fill(data, capacity, time_limit)
    assert_batch_matches(n_step_batch(state, jnp.asarray(slots), n=1, gamma=GAMMA), *expected)

    bound = replay_module.final_obs_capacity
    replay_module.final_obs_capacity = lambda *args: bound(*args) - 1
    try:
        short = fill(data, capacity, time_limit)
    finally:
        replay_module.final_obs_capacity = bound
    with pytest.raises(AssertionError):
        assert_batch_matches(n_step_batch(short, jnp.asarray(slots), n=1, gamma=GAMMA), *expected)


def test_n_step_batch_under_vmap_over_memories_and_gammas():
    steps, num_envs, capacity, time_limit, n = 40, 3, 50, 4, 4
    datasets = [trajectories(s, steps, num_envs, time_limit) for s in (1, 2)]
    states = [fill(d, capacity, time_limit) for d in datasets]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *states)
    slots = jnp.arange(capacity, dtype=jnp.int32)
    gammas = jnp.array([GAMMA, 0.5], jnp.float32)
    batches = jax.jit(jax.vmap(lambda s, g: n_step_batch(s, slots, n=n, gamma=g)))(stacked, gammas)
    # The first is checked against NumPy; the second against an unbatched call at gamma 0.5.
    ref_slots, obs, reward, discount, next_obs = reference(datasets[0], capacity, n)
    first = jax.tree.map(lambda x: np.asarray(x[0])[ref_slots], batches)
    assert_batch_matches(first, obs, reward, discount, next_obs)
    single = n_step_batch(states[1], slots, n=n, gamma=0.5)
    for got, want in zip(jax.tree.leaves(batches), jax.tree.leaves(single), strict=True):
        np.testing.assert_allclose(got[1], want, rtol=1e-6)


def as_bool_observations(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same trajectories with each 2-d observation turned into a boolean grid
    ``[3, 5, 3]`` (45 bits: not a whole number of bytes), distinct per observation."""
    projection = np.random.default_rng(0).normal(size=(2, 45)).astype(np.float32)

    def grid(obs):
        return (obs @ projection > 0).reshape(*obs.shape[:-1], 3, 5, 3)

    return {**data, "obs": grid(data["obs"]), "next_obs": grid(data["next_obs"])}


def test_boolean_observations_are_stored_as_bits_and_read_back_exactly():
    """Rows keep a boolean observation as NumPy's ``packbits`` of it (6 bytes for 45
    bits); batches read them back as the NumPy reference stores them, under ``jit`` and
    over two memories under ``vmap``."""
    steps, num_envs, capacity, time_limit, n = 40, 3, 50, 4, 3
    datasets = [as_bool_observations(trajectories(s, steps, num_envs, time_limit)) for s in (1, 2)]
    states = [fill(d, capacity, time_limit) for d in datasets]
    rows = np.asarray(states[0].rows.data.obs)
    assert rows.dtype == np.uint8 and rows.shape == (capacity, 6)
    written = datasets[0]["obs"].reshape(-1, 3, 5, 3)[-capacity:]  # the newest rows, in order
    order = np.arange(steps * num_envs)[-capacity:] % capacity
    np.testing.assert_array_equal(rows[order], np.packbits(written.reshape(capacity, -1), -1))
    read = jax.jit(replay_module.stored_observations)(states[0], jnp.asarray(order))
    assert read.dtype == jnp.bool_
    np.testing.assert_array_equal(read, written)

    stacked = jax.tree.map(lambda *x: jnp.stack(x), *states)
    slots = jnp.arange(capacity, dtype=jnp.int32)
    batches = jax.jit(jax.vmap(lambda s: n_step_batch(s, slots, n=n, gamma=GAMMA)))(stacked)
    for index, data in enumerate(datasets):
        ref_slots, *expected = reference(data, capacity, n)
        got = jax.tree.map(lambda x, i=index, r=ref_slots: np.asarray(x[i])[r], batches)
        assert got.obs.dtype == got.next_obs.dtype == np.bool_
        assert_batch_matches(got, *expected)


def test_add_refuses_a_step_of_another_width():
    replay = make_replay(10, 2, 5, batch_size=1)
    state = replay.init(jnp.zeros(2))
    rows = Transition(
        obs=jnp.zeros((3, 2)),
        action=jnp.zeros(3, jnp.int32),
        reward=jnp.zeros(3),
        terminated=jnp.zeros(3, bool),
        truncated=jnp.zeros(3, bool),
        next_obs=jnp.zeros((3, 2)),
    )
    with pytest.raises(ValueError, match=r"num_envs=2 transitions .* reward of shape \(3,\)"):
        replay.add(state, rows)
    two = jax.tree.map(lambda x: x[:2], rows)
    with pytest.raises(ValueError, match=r"item leaf int32\[2\] does not match the stored float32"):
        replay.add(state, two._replace(next_obs=jnp.zeros((2, 2), jnp.int32)))
    with pytest.raises(ValueError, match="capacity=1 is invalid: must be >= num_envs=2"):
        make_replay(1, 2, 5, batch_size=1)
    with pytest.raises(ValueError, match=r"tolerance=-0\.1 is invalid: must be in \[0, 1\)"):
        make_replay(8, 2, 5, batch_size=1, n_step_cut=True, n_step_cut_tolerance=-0.1)
    with pytest.raises(ValueError, match=r"cut_tolerance=1\.0 is invalid: must be in \[0, 1\)"):
        n_step_batch(state, jnp.zeros(1, jnp.int32), n=2, gamma=0.9, cut_tolerance=1.0)


@pytest.mark.parametrize(
    ("env_id", "row", "pairs_f32"),
    [
        # obs 4 float32 + action 4 + reward 4 + two flags; pairs: 2 x 16 + 10.
        ("CartPole-v1", 26, 42),
        # obs 10 x 10 x 4 bool as 50 bytes of bits + 10; pairs: 2 x 400 x 4 + 10.
        ("Breakout-MinAtar", 60, 3210),
    ],
)
def test_each_observation_is_stored_once(env_id, row, pairs_f32):
    """The preset's whole replay memory per transition stays within 1.1 x one observation
    as the rows keep it (native dtype, or bits) plus the scalar fields."""
    config = jaxdqn.get_preset(env_id)
    assert row_bytes(config) == row
    assert pairs_f32_transition_bytes(config) == pairs_f32
    assert row <= transition_bytes(config) <= 1.1 * row
    # Without a known time limit (or a limit of 1 step) every row may need a final
    # observation: the ring then holds one per row, and the bytes are still below pairs.
    assert final_obs_capacity(64, 4, None) == final_obs_capacity(64, 4, 1) == 64


@pytest.mark.parametrize("prioritized", [False, True])
def test_rows_flagged_invalid_are_stored_and_never_learned_from(prioritized):
    """With ``valid_flags`` a step that is not a transition (EnvPool's reset step) keeps
    its row, so the rows stay in time order, and gets weight 0 (uniform) or is never drawn
    (prioritized)."""
    num_envs, steps = 4, 40
    data = trajectories(0, steps, num_envs, time_limit=10)
    valid = np.random.default_rng(1).random((steps, num_envs)) > 0.3
    replay = make_replay(
        steps * num_envs, num_envs, 10, batch_size=64, valid_flags=True, prioritized=prioritized
    )
    state = replay.init(jnp.asarray(data["obs"][0, 0]))
    for t in range(steps):
        step = Transition(**{k: jnp.asarray(v[t]) for k, v in data.items()}, valid=valid[t])
        state = replay.add(state, step)
    np.testing.assert_array_equal(np.asarray(state.rows.data.valid), valid.ravel())
    np.testing.assert_array_equal(np.asarray(state.rows.data.obs), data["obs"].reshape(-1, 2))
    draw = jax.jit(jax.vmap(lambda k: replay.sample(state, k, 0.9, 0.0)))
    sample = draw(jax.random.split(jax.random.key(2), 50))
    slots, weight = np.asarray(sample.slots).ravel(), np.asarray(sample.batch.weight).ravel()
    if prioritized:
        assert valid.ravel()[slots].all()
    else:
        assert not valid.ravel()[slots].all()
        np.testing.assert_array_equal(weight == 0, ~valid.ravel()[slots])
    with pytest.raises(ValueError, match=r"valid_flags needs transition\.valid"):
        replay.add(state, Transition(**{k: jnp.asarray(v[0]) for k, v in data.items()}))
