"""n-step targets from the buffer, against a plain NumPy reference over random trajectories
with terminations, truncations, wrap-around and rows whose later steps are not written."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdqn.buffer import make_replay_buffer
from jaxdqn.nstep import n_step_batch
from jaxdqn.state import Transition

GAMMA = 0.9


def trajectories(seed: int, steps: int, num_envs: int) -> dict[str, np.ndarray]:
    """Random time-major data [steps, num_envs]; an env ends by termination or by
    truncation (never both), about one step in five."""
    rng = np.random.default_rng(seed)
    end = rng.random((steps, num_envs)) < 0.2
    terminated = end & (rng.random((steps, num_envs)) < 0.5)
    return {
        "obs": rng.normal(size=(steps, num_envs, 2)).astype(np.float32),
        "action": rng.integers(0, 3, (steps, num_envs)).astype(np.int32),
        "reward": rng.normal(size=(steps, num_envs)).astype(np.float32),
        "terminated": terminated,
        "truncated": end & ~terminated,
        "next_obs": rng.normal(size=(steps, num_envs, 2)).astype(np.float32),
    }


def fill(data: dict[str, np.ndarray], capacity: int):
    """The buffer after adding every step's num_envs rows, as the trainer does."""
    buffer = make_replay_buffer(capacity)
    state = buffer.init(Transition(**{k: v[0, 0] for k, v in data.items()}))
    add = jax.jit(buffer.add)
    for t in range(data["reward"].shape[0]):
        state = add(state, Transition(**{k: v[t] for k, v in data.items()}))
    return state


def reference(data, capacity: int, n: int):
    """Per slot (oldest write first): the expected reward, discount and next_obs."""
    steps, num_envs = data["reward"].shape
    written = steps * num_envs
    rows = {}
    for w in range(max(0, written - capacity), written):  # the writes still stored
        t, e = divmod(w, num_envs)
        total, m = 0.0, 0
        for k in range(n):
            if t + k >= steps:  # not written yet
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


CASES = [  # (steps, num_envs, capacity, n): with and without wrap-around
    (30, 3, 200, 3),  # not full
    (40, 3, 50, 4),  # wrapped, capacity not a multiple of num_envs
    (25, 4, 64, 1),  # 1-step
    (60, 1, 37, 5),  # one env, long n
]


@pytest.mark.parametrize(("steps", "num_envs", "capacity", "n"), CASES)
@pytest.mark.parametrize("transform", ["plain", "jit"])
def test_n_step_batch_matches_numpy(steps, num_envs, capacity, n, transform):
    data = trajectories(steps * 100 + n, steps, num_envs)
    state = fill(data, capacity)
    slots, obs, reward, discount, next_obs = reference(data, capacity, n)

    def build(state, slots):
        return n_step_batch(state, slots, n=n, gamma=GAMMA, stride=num_envs)

    fn = jax.jit(build) if transform == "jit" else build
    batch = fn(state, jnp.asarray(slots, jnp.int32))
    np.testing.assert_array_equal(batch.obs, obs)
    np.testing.assert_allclose(batch.reward, reward, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(batch.discount, discount, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(batch.next_obs, next_obs)
    if n > 1:  # the data exercise every cut: full n, terminated, truncated, unwritten
        assert np.any(discount == 0.0)
        assert np.any(np.isclose(discount, GAMMA**n))
        assert np.any((discount > 0) & ~np.isclose(discount, GAMMA**n))


def test_n_step_batch_under_vmap_over_buffers_and_gammas():
    steps, num_envs, capacity, n = 40, 3, 50, 4
    datasets = [trajectories(s, steps, num_envs) for s in (1, 2)]
    states = [fill(d, capacity) for d in datasets]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *states)
    slots = jnp.arange(capacity, dtype=jnp.int32)
    gammas = jnp.array([GAMMA, 0.5], jnp.float32)
    batches = jax.jit(jax.vmap(lambda s, g: n_step_batch(s, slots, n=n, gamma=g, stride=num_envs)))(
        stacked, gammas
    )
    # The first is checked against NumPy; the second against an unbatched call at gamma 0.5.
    ref_slots, _, reward, discount, _ = reference(datasets[0], capacity, n)
    np.testing.assert_allclose(batches.reward[0][ref_slots], reward, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(batches.discount[0][ref_slots], discount, rtol=1e-5, atol=1e-7)
    single = n_step_batch(states[1], slots, n=n, gamma=0.5, stride=num_envs)
    for got, want in zip(jax.tree.leaves(batches), jax.tree.leaves(single), strict=True):
        np.testing.assert_allclose(got[1], want, rtol=1e-6)
