"""The circular replay buffer (jaxdqn.make_circular_buffer).

Contents are checked against a plain Python reference (the newest ``capacity`` items, a
``collections.deque(maxlen=capacity)``); ``add`` and ``sample`` run plain, under
``jax.jit`` and under ``jax.vmap`` (one buffer per seed).
"""

from __future__ import annotations

import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxdqn
from jaxdqn import Transition

TRANSFORMS = ("plain", "jit", "vmap")
# Under "vmap" two buffers run side by side; buffer s receives the items plus OFFSETS[s].
OFFSETS = (0, 1000)


@pytest.fixture(params=TRANSFORMS)
def transform(request):
    return request.param


@functools.cache
def _buffer(capacity):
    """Buffer and jitted functions, built once per capacity (avoids recompiling).

    The vmapped versions are jitted too: compiling once is cheaper on a 2-core CPU than
    dispatching every batched primitive eagerly.
    """
    buf = jaxdqn.make_circular_buffer(capacity)
    jitted = dict(
        add=jax.jit(buf.add),
        sample=jax.jit(buf.sample, static_argnums=2),
        can_sample=jax.jit(buf.can_sample),
        vinit=jax.jit(jax.vmap(buf.init)),
        vadd=jax.jit(jax.vmap(buf.add)),
        vsample=jax.jit(jax.vmap(buf.sample, in_axes=(0, 0, None)), static_argnums=2),
        vsample_keys=jax.jit(jax.vmap(buf.sample, in_axes=(None, 0, None)), static_argnums=2),
    )
    return buf, jitted


EXAMPLE = jnp.zeros((), jnp.int32)
# One capacity and one batch size for most tests, so compiled functions are reused.
CAP, BATCH = 5, 64


def fill(transform, capacity, batches, on_add=None):
    """Adds int32 ``batches`` in order; returns ``(state, per-buffer numpy states)``.

    ``on_add(k, states)`` is called after the k-th add with the per-buffer numpy states.
    """
    buf, jitted = _buffer(capacity)
    if transform == "vmap":
        state = jitted["vinit"](jnp.stack([EXAMPLE] * len(OFFSETS)))
        add = jitted["vadd"]
    else:
        state = buf.init(EXAMPLE)
        add = jitted["add"] if transform == "jit" else buf.add

    def unstack(state):
        if transform == "vmap":
            return [jax.tree.map(lambda x, s=s: np.asarray(x[s]), state) for s in range(2)]
        return [jax.tree.map(np.asarray, state)]

    for k, batch in enumerate(batches):
        items = jnp.asarray(batch, jnp.int32)
        if transform == "vmap":
            items = jnp.stack([items + off for off in OFFSETS])
        state = add(state, items)
        if on_add is not None:
            on_add(k, unstack(state))
    return state, unstack(state)


def contents(np_state, capacity):
    """Stored items oldest-first: the newest ``size`` entries of the rolled storage."""
    data, position, size = np_state
    return np.roll(data, -int(position), axis=0)[capacity - int(size) :]


def batches_of(sizes, start=0):
    out, n = [], start
    for s in sizes:
        out.append(np.arange(n, n + s, dtype=np.int32))
        n += s
    return out


# ---------------------------------------------------------------------------------------
# (a) wrap-around and (f) plain / jit / vmap agree with the reference


@pytest.mark.parametrize(
    "sizes",
    [
        [2, 1],  # never fills
        [1] * 7,  # one at a time, wraps
        [5, 5, 5],  # batches that divide the capacity
        [2, 2, 2, 2, 2, 2],  # batches that do not divide it
        [3, 4, 5, 1, 2],  # mixed, including a full-capacity batch at an offset
    ],
    ids=["partial", "ones", "divides", "2s", "mixed"],
)
def test_add_keeps_newest_items_in_order(sizes, transform):
    capacity = 5
    batches = batches_of(sizes)

    def check(k, states):
        seen = np.concatenate(batches[: k + 1])
        n = len(seen)
        for off, st_ in zip(OFFSETS, states, strict=False):  # one or two buffers
            data, position, size = st_
            assert position.dtype == np.int32 and size.dtype == np.int32
            assert int(position) == n % capacity
            assert int(size) == min(n, capacity)
            np.testing.assert_array_equal(contents(st_, capacity), seen[-capacity:] + off)
            if n < capacity:  # untouched slots keep their zero fill
                np.testing.assert_array_equal(data[n:], 0)

    _, states = fill(transform, capacity, batches, on_add=check)
    assert len(states) == (2 if transform == "vmap" else 1)


def test_wraparound_hand_computed():
    # capacity 4, items 0..5 added as [0,1,2] then [3,4,5]: slots hold [4, 5, 2, 3],
    # the cursor is at slot 2, and rolling by -2 gives oldest-first [2, 3, 4, 5].
    _, [(data, position, size)] = fill("plain", 4, batches_of([3, 3]))
    np.testing.assert_array_equal(data, [4, 5, 2, 3])
    assert (int(position), int(size)) == (2, 4)
    np.testing.assert_array_equal(np.roll(data, -2), [2, 3, 4, 5])


# ---------------------------------------------------------------------------------------
# Sampling


def sample_rows(transform, capacity, state, keys, batch_size):
    """One batch per key: plain loop, jitted loop, or vmap over (buffers and) keys."""
    buf, jitted = _buffer(capacity)
    if transform == "vmap":
        vsample = jitted["vsample"] if state.position.ndim else jitted["vsample_keys"]
        return vsample(state, keys, batch_size)
    sample = jitted["sample"] if transform == "jit" else buf.sample
    return jnp.stack([sample(state, k, batch_size) for k in keys])


def row_offsets(transform):
    """Item offset of each of two sampled rows: two buffers under vmap, else one buffer."""
    return OFFSETS if transform == "vmap" else (0, 0)


def test_sample_only_written_slots(transform):
    # 3 items in a capacity-5 buffer, batches of 64: nothing from the 2 zero-filled slots.
    state, _ = fill(transform, CAP, [np.array([7, 8, 9], np.int32)])
    keys = jax.random.split(jax.random.key(0), 2)
    got = np.asarray(sample_rows(transform, CAP, state, keys, BATCH))
    assert got.dtype == np.int32 and got.shape == (2, BATCH)
    for row, off in zip(got, row_offsets(transform), strict=True):
        written = {7 + off, 8 + off, 9 + off}
        assert set(row.tolist()) <= written, row
        # Each of the 3 shows up (a miss has probability 3 * (2/3)**64 < 1e-10).
        assert set(row.tolist()) == written


def test_sample_after_wraparound_only_newest(transform):
    state, _ = fill(transform, CAP, batches_of([4, 4, 3]))  # items 0..10
    keys = jax.random.split(jax.random.key(1), 2)
    got = np.asarray(sample_rows(transform, CAP, state, keys, BATCH))
    for row, off in zip(got, row_offsets(transform), strict=True):
        assert set(row.tolist()) == {6 + off, 7 + off, 8 + off, 9 + off, 10 + off}


def test_same_key_same_batch_different_keys_differ(transform):
    state, _ = fill(transform, CAP, batches_of([CAP]))
    k0, k1 = jax.random.key(2), jax.random.key(3)
    if transform == "vmap":  # one key per buffer; compare buffer 0 across calls
        rows = [
            np.asarray(sample_rows(transform, CAP, state, jnp.stack([k, k1]), BATCH))[0]
            for k in (k0, k0, k1)
        ]
    else:
        keys = jnp.stack([k0, k0, k1])
        rows = list(np.asarray(sample_rows(transform, CAP, state, keys, BATCH)))
    np.testing.assert_array_equal(rows[0], rows[1])
    # 64 draws from 5 slots: two independent batches coincide with probability 5**-64.
    assert not np.array_equal(rows[0], rows[2])


def test_sample_agrees_across_transforms():
    keys = jax.random.split(jax.random.key(4), 2)
    results = {}
    for t in TRANSFORMS:
        state, _ = fill(t, CAP, batches_of([4, 3]))
        results[t] = np.asarray(sample_rows(t, CAP, state, keys, BATCH))
    np.testing.assert_array_equal(results["plain"], results["jit"])
    # vmap: buffer s sampled with keys[s]; buffer 0 holds the plain items.
    np.testing.assert_array_equal(results["vmap"][0], results["plain"][0])
    np.testing.assert_array_equal(results["vmap"][1], results["plain"][1] + OFFSETS[1])


# Critical values of chi-square at significance 1e-4 (scipy.stats.chi2.ppf(1 - 1e-4, df)).
CHI2_CRIT = {9: 33.720, 7: 29.878}


@pytest.mark.parametrize(
    ("capacity", "sizes", "written"),
    [(16, [10], range(10)), (8, [5, 5, 3], range(5, 13))],
    ids=["partial", "wrapped"],
)
def test_sample_uniform_over_written_slots(capacity, sizes, written):
    state, _ = fill("jit", capacity, batches_of(sizes))
    n = 16_000
    _, jitted = _buffer(capacity)
    got = np.asarray(jitted["sample"](state, jax.random.key(5), n))
    written = np.array(list(written))
    assert np.isin(got, written).all()
    counts = np.array([(got == v).sum() for v in written])
    expected = n / len(written)
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < CHI2_CRIT[len(written) - 1], (chi2, counts)
    # And per slot: within 5 binomial standard deviations.
    p = 1 / len(written)
    assert np.abs(counts - expected).max() <= 5 * np.sqrt(n * p * (1 - p)), counts


# ---------------------------------------------------------------------------------------
# (e) dtypes of pytrees and Transitions


def _mixed_items():
    return {
        "f": jnp.array([[0.5, 1.5], [2.5, 3.5], [4.5, 5.5]], jnp.float32),
        "i": jnp.array([7, -8, 9], jnp.int32),
        "b": jnp.array([True, False, True]),
        "u": jnp.array([[0, 128, 255], [1, 2, 3], [255, 254, 253]], jnp.uint8),
    }


@pytest.mark.parametrize("example_kind", ["arrays", "shape_dtype_struct"])
def test_dtypes_preserved_for_mixed_pytree(example_kind):
    capacity = 4
    buf = jaxdqn.make_circular_buffer(capacity)
    items = _mixed_items()
    example = jax.tree.map(lambda x: x[0], items)
    if example_kind == "shape_dtype_struct":
        example = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), example)
    state = buf.init(example)
    want = {
        "f": (np.float32, (2,)),
        "i": (np.int32, ()),
        "b": (np.bool_, ()),
        "u": (np.uint8, (3,)),
    }
    for name, (dtype, shape) in want.items():
        assert state.data[name].dtype == dtype and state.data[name].shape == (capacity, *shape)
    state = buf.add(state, items)
    for name in want:
        assert state.data[name].dtype == want[name][0]
        np.testing.assert_array_equal(np.asarray(state.data[name][:3]), np.asarray(items[name]))
    batch = buf.sample(state, jax.random.key(6), 32)
    ref = {k: np.asarray(v) for k, v in items.items()}
    for name, (dtype, shape) in want.items():
        assert batch[name].dtype == dtype and batch[name].shape == (32, *shape)
    # Leaves of one sampled item come from the same slot: identify it by "i".
    idx = np.array([list(ref["i"]).index(v) for v in np.asarray(batch["i"])])
    for name in ("f", "b", "u"):
        np.testing.assert_array_equal(np.asarray(batch[name]), ref[name][idx])


def test_transition_round_trip(transform):
    buf, jitted = _buffer(CAP)
    rng = np.random.default_rng(0)
    n = 3
    items = Transition(
        obs=jnp.asarray(rng.normal(size=(n, 4)), jnp.float32),
        action=jnp.array([0, 1, 1], jnp.int32),
        reward=jnp.array([1.0, 0.0, -1.0], jnp.float32),
        terminated=jnp.array([False, True, False]),
        truncated=jnp.array([True, False, False]),
        next_obs=jnp.asarray(rng.normal(size=(n, 4)), jnp.float32),
    )
    example = jax.tree.map(lambda x: x[0], items)
    key = jax.random.key(7)
    if transform == "vmap":
        stack = lambda t: jax.tree.map(lambda x: jnp.stack([x, x]), t)  # noqa: E731
        state = jitted["vadd"](jitted["vinit"](stack(example)), stack(items))
        batch = jitted["vsample"](state, jnp.stack([key, key]), BATCH)
        batch = jax.tree.map(lambda x: x[1], batch)
    else:
        add = jitted["add"] if transform == "jit" else buf.add
        sample = jitted["sample"] if transform == "jit" else buf.sample
        state = add(buf.init(example), items)
        batch = sample(state, key, BATCH)
    assert isinstance(batch, Transition) and batch.valid is None  # no validity flags given
    arrays = [name for name in Transition._fields if getattr(items, name) is not None]
    for name in arrays:
        got, ref = getattr(batch, name), getattr(items, name)
        assert got.dtype == ref.dtype and got.shape == (BATCH, *ref.shape[1:])
    # Sampled rows are whole transitions: find each by its obs and compare every field.
    ref = jax.tree.map(np.asarray, items)
    obs = np.asarray(batch.obs)
    idx = np.array([np.flatnonzero((ref.obs == o).all(axis=1))[0] for o in obs])
    for name in arrays:
        np.testing.assert_array_equal(np.asarray(getattr(batch, name)), getattr(ref, name)[idx])


# ---------------------------------------------------------------------------------------
# (g) errors


@pytest.mark.parametrize("capacity", [0, -1, True, 2.5])
def test_invalid_capacity_raises(capacity):
    with pytest.raises(ValueError, match="capacity"):
        jaxdqn.make_circular_buffer(capacity)


def test_numpy_integer_capacity_accepted_like_config():
    # DQNConfig accepts any integer for buffer_size; the buffer must too.
    buf = jaxdqn.make_circular_buffer(np.int64(CAP))
    assert buf.capacity == CAP and type(buf.capacity) is int


@pytest.mark.parametrize("jit", [False, True], ids=["plain", "jit"])
def test_add_errors(jit):
    buf = jaxdqn.make_circular_buffer(3)
    state = buf.init({"x": jnp.zeros((2,), jnp.float32), "y": jnp.zeros((), jnp.int32)})
    add = jax.jit(buf.add) if jit else buf.add
    ok = {"x": jnp.zeros((3, 2), jnp.float32), "y": jnp.zeros((3,), jnp.int32)}
    add(state, ok)  # the largest batch that fits
    cases = {
        "batch larger than capacity": (
            {"x": jnp.zeros((4, 2), jnp.float32), "y": jnp.zeros((4,), jnp.int32)},
            "does not fit capacity",
        ),
        "leaf shape": (
            {"x": jnp.zeros((2, 3), jnp.float32), "y": jnp.zeros((2,), jnp.int32)},
            "does not match",
        ),
        "leaf dtype": (
            {"x": jnp.zeros((2, 2), jnp.float32), "y": jnp.zeros((2,), jnp.float32)},
            "does not match",
        ),
        "ragged batch axis": (
            {"x": jnp.zeros((2, 2), jnp.float32), "y": jnp.zeros((1,), jnp.int32)},
            "same leading batch axis",
        ),
        "no batch axis": (
            {"x": jnp.zeros((2, 2), jnp.float32), "y": jnp.zeros((), jnp.int32)},
            "same leading batch axis",
        ),
    }
    for name, (items, message) in cases.items():
        with pytest.raises(ValueError, match=message):
            add(state, items)
            pytest.fail(f"no error for {name}")


def test_add_empty_batch_raises():
    buf = jaxdqn.make_circular_buffer(3)
    state = buf.init(EXAMPLE)
    with pytest.raises(ValueError, match="does not fit"):
        buf.add(state, jnp.zeros((0,), jnp.int32))


# ---------------------------------------------------------------------------------------
# (h) can_sample


def test_can_sample(transform):
    buf, jitted = _buffer(CAP)
    state, _ = fill(transform, CAP, batches_of([3]))
    if transform == "vmap":
        can = lambda bs: jax.vmap(lambda s: buf.can_sample(s, bs))(state)  # noqa: E731
    else:
        fn = jitted["can_sample"] if transform == "jit" else buf.can_sample
        can = lambda bs: fn(state, bs)  # noqa: E731
    for batch_size, want in [(1, True), (2, True), (3, True), (4, False), (5, False)]:
        got = np.asarray(can(batch_size))
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, want, err_msg=f"batch_size={batch_size}")
    # After wrapping, the buffer is full: any batch size up to capacity can be drawn.
    state, _ = fill(transform, CAP, batches_of([3, 4]))
    np.testing.assert_array_equal(np.asarray(can(CAP)), True)
    np.testing.assert_array_equal(np.asarray(can(CAP + 1)), False)


# ---------------------------------------------------------------------------------------
# (i) property test against a deque(maxlen=capacity)


@st.composite
def capacity_and_sizes(draw):
    capacity = draw(st.integers(1, 20))
    sizes = draw(st.lists(st.integers(1, capacity), min_size=1, max_size=6))
    return capacity, sizes


@settings(max_examples=50, deadline=None)
@given(capacity_and_sizes())
def test_matches_deque_reference(case):
    capacity, sizes = case
    # The jitted add is cached per capacity, so each (capacity, batch size) pair compiles
    # once for the whole run (measured cheaper than eager dispatch here).
    buf, jitted = _buffer(capacity)
    state = buf.init(EXAMPLE)
    reference = collections.deque(maxlen=capacity)
    for batch in batches_of(sizes, start=1):
        state = jitted["add"](state, jnp.asarray(batch))
        reference.extend(batch.tolist())
        np_state = jax.tree.map(np.asarray, state)
        assert int(np_state.size) == len(reference)
        assert contents(np_state, capacity).tolist() == list(reference)
