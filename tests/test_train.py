"""The fused trainer: one compiled program, exact schedules, per-seed randomness, and the
transitions it stores checked against the environments' own dynamics."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_CHAIN, TRACE_COUNTS, jitted_train
from gymnax.environments.classic_control.cartpole import EnvState
from test_envs import seed_step

import jaxdqn
from jaxdqn.core.replay import n_step_batch

METRIC_NAMES = (
    "env_steps", "updates", "episodes", "completed_episodes", "episode_return",
    "episode_length", "exploration", "reward_abs_max", "loss", "q_value", "td_error",
    "grad_norm", "grad_norm_max", "non_finite", "q_abs_max", "td_error_p90", "dormant_units",
    "dormant_units_strict", "dormant_units_worst_layer", "feature_rank", "policy_churn",
    "action_entropy", "params_finite",
)  # fmt: skip


def tree_data(tree):
    """Leaves as NumPy arrays (typed PRNG keys as their data)."""

    def data(x):
        return jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x

    return [np.asarray(data(x)) for x in jax.tree.leaves(tree)]


def leaves_equal(a, b) -> bool:
    """Bit-for-bit equality of two pytrees (typed PRNG keys compared by their data)."""
    return all(np.array_equal(x, y) for x, y in zip(tree_data(a), tree_data(b), strict=True))


def test_smoke_two_seeds_finite_and_different(tiny_chain_run):
    _, states, metrics = tiny_chain_run
    points = TINY_CHAIN.num_log_points()
    assert set(metrics) == set(METRIC_NAMES) == set(jaxdqn.make_trainer(TINY_CHAIN).metric_names)
    for name, values in metrics.items():
        assert values.shape == (2, points), name
    learning = np.asarray(metrics["env_steps"][0]) > TINY_CHAIN.learning_starts
    for name in ("loss", "q_value", "td_error", "grad_norm"):
        assert np.all(np.isfinite(metrics[name][:, learning])), name
    assert np.all(np.isfinite(jax.tree.leaves(states.params)[0]))
    assert not leaves_equal(states.params, jax.tree.map(lambda x: x[::-1], states.params))
    assert not np.array_equal(metrics["loss"][0], metrics["loss"][1])


def test_vmap_over_seeds_matches_single_runs(tiny_chain_run):
    keys, states, metrics = tiny_chain_run
    single = jitted_train(TINY_CHAIN, False)
    for i in range(len(keys)):
        state_i, metrics_i = single(keys[i])
        for a, b in zip(
            jax.tree.leaves(state_i.params), jax.tree.leaves(states.params), strict=True
        ):
            np.testing.assert_allclose(a, b[i], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(
            state_i.replay.rows.data.action, states.replay.rows.data.action[i]
        )
        for name in METRIC_NAMES:
            np.testing.assert_allclose(metrics_i[name], metrics[name][i], rtol=1e-5, atol=1e-6)


def test_compiles_once_for_new_keys_and_is_deterministic(tiny_chain_run):
    single = jitted_train(TINY_CHAIN, False)
    first, _ = single(jax.random.key(11))
    again, _ = single(jax.random.key(11))
    other, _ = single(jax.random.key(12))
    assert TRACE_COUNTS[TINY_CHAIN, False] == 1
    assert leaves_equal(first, again)  # bit for bit, buffer and env states included
    assert not leaves_equal(first.params, other.params)


def assert_bit_identical(a, b):
    for x, y in zip(tree_data(a), tree_data(b), strict=True):
        np.testing.assert_array_equal(x, y)  # NaN == NaN here, every other bit must match


@pytest.mark.parametrize("vmapped", [True, False], ids=["vmap", "single"])
def test_chunked_run_is_bit_identical_to_whole_run(tiny_chain_run, vmapped):
    keys, states, metrics = tiny_chain_run
    trainer = jaxdqn.make_trainer(TINY_CHAIN)
    batch = jax.vmap if vmapped else (lambda f, **_: f)
    if not vmapped:
        keys = keys[0]
        states, metrics = jitted_train(TINY_CHAIN, False)(keys)
    state = jax.jit(batch(trainer.init))(keys)
    chunks = []
    for size in (3, 1, 6):  # TINY_CHAIN has 10 log points
        run = jax.jit(batch(lambda s, n=size: trainer.run(s, n)), donate_argnums=0)
        state, chunk = run(state)
        chunks.append(chunk)
    axis = 1 if vmapped else 0
    joined = {k: np.concatenate([c[k] for c in chunks], axis=axis) for k in metrics}
    assert_bit_identical(state, states)
    assert_bit_identical(joined, dict(metrics))


def test_each_key_draws_its_own_initial_params():
    init = jax.jit(jaxdqn.make_trainer(TINY_CHAIN).init)
    a, b = init(jax.random.key(1)), init(jax.random.key(2))
    assert not leaves_equal(a.params, b.params)
    assert leaves_equal(a.params, a.target_params)
    assert int(a.env_steps) == int(a.replay.rows.size) == 0


def stored_one_step_batch(state, stored: int, gamma: float):
    """The 1-step Batch of rows 0..stored-1 of one seed's replay memory."""
    slots = jnp.arange(stored, dtype=jnp.int32)
    return jax.tree.map(np.asarray, n_step_batch(state.replay, slots, n=1, gamma=gamma))


def test_truncation_stores_final_obs_and_keeps_bootstrap(tiny_chain_run):
    """ChainWalk never terminates and truncates every 20 steps: every transition's
    next_obs must be the chain's own successor of (obs, action), also on the truncation
    step (not the reset), with the bootstrap kept, and the next row of that env must start
    again at 0."""
    _, states, _ = tiny_chain_run
    num_envs = TINY_CHAIN.num_envs
    stored = TINY_CHAIN.total_timesteps
    seed0 = jax.tree.map(lambda x: x[0], states)
    assert int(seed0.replay.rows.size) == stored  # nothing overwritten, written in order
    batch = stored_one_step_batch(seed0, stored, gamma=0.9)
    data = jax.tree.map(lambda x: np.asarray(x[:stored]), seed0.replay.rows.data)
    obs = batch.obs[:, 0].reshape(-1, num_envs)  # [time, env]
    next_obs = batch.next_obs[:, 0].reshape(-1, num_envs)
    actions = batch.action.reshape(-1, num_envs)
    rewards = batch.reward.reshape(-1, num_envs)
    assert not data.terminated.any()  # truncation is never stored as termination
    for t in range(obs.shape[0]):
        for e in range(num_envs):
            expected_next, expected_reward = seed_step(int(obs[t, e]), int(actions[t, e]))
            assert next_obs[t, e] == expected_next
            assert rewards[t, e] == pytest.approx(expected_reward)
    truncation_rows = np.arange(19, obs.shape[0] - 1, 20)
    assert data.truncated.reshape(-1, num_envs)[truncation_rows].all()
    assert np.all(obs[truncation_rows + 1] == 0)  # the reset is not used as next_obs
    assert np.any(next_obs[truncation_rows] != 0)
    np.testing.assert_allclose(batch.discount, 0.9)  # every step bootstraps


def test_termination_is_stored_for_terminal_states_only():
    """CartPole under a random policy: a row is terminated exactly when CartPole's own
    dynamics (gymnax step_env) take its (obs, action) out of bounds, the env's next row
    is a fresh reset, and every other transition's next_obs is that successor."""
    config = dataclasses.replace(
        TINY_CHAIN,
        env_id="CartPole-v1",
        exploration_schedule="constant",
        exploration_start=1.0,
        total_timesteps=800,
        learning_starts=160,
        log_interval=160,
        buffer_size=800,
    )
    state, _ = jax.jit(jaxdqn.make_train(config))(jax.random.key(3))
    batch = stored_one_step_batch(state, config.buffer_size, config.gamma)
    terminated = np.asarray(state.replay.rows.data.terminated)
    assert terminated.sum() > 10
    env, env_params = jaxdqn.make_env("CartPole-v1")

    def successor(obs, action):
        x, x_dot, theta, theta_dot = obs
        env_state = EnvState(x=x, x_dot=x_dot, theta=theta, theta_dot=theta_dot, time=0)
        next_obs, *_ = env.step_env(jax.random.key(0), env_state, action, env_params)
        return next_obs

    expected = np.asarray(jax.vmap(successor)(batch.obs, batch.action))
    x, theta = expected[:, 0], expected[:, 2]
    out_of_bounds = (np.abs(x) > 2.4) | (np.abs(theta) > 12 * 2 * np.pi / 360)
    np.testing.assert_array_equal(terminated, out_of_bounds)
    alive = ~terminated
    np.testing.assert_allclose(batch.next_obs[alive], expected[alive], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(batch.discount, np.where(terminated, 0.0, config.gamma), rtol=1e-6)
    rows = np.flatnonzero(terminated)
    rows = rows[rows + config.num_envs < len(terminated)]
    assert np.all(np.abs(batch.obs[rows + config.num_envs]) <= 0.05)  # fresh reset after


@pytest.mark.parametrize("num_envs", [1, 3, 8])
def test_schedules_count_exactly_for_any_num_envs(num_envs):
    config = dataclasses.replace(
        TINY_CHAIN,
        num_envs=num_envs,
        total_timesteps=2_400,
        learning_starts=240,
        log_interval=480,
        exploration_steps=1_000,
        target_update_period=7,
    )
    state, metrics = jax.jit(jaxdqn.make_train(config))(jax.random.key(0))
    ends = np.arange(1, 6) * 480
    np.testing.assert_array_equal(metrics["env_steps"], ends)
    # Updates: train_frequency=2 -> one update at every even env step after step 240.
    expected_updates = [sum(1 for e in range(2, end + 1, 2) if e > 240) for end in ends]
    np.testing.assert_array_equal(metrics["updates"], expected_updates)
    assert int(state.updates) == config.total_updates() == expected_updates[-1]
    # Exploration: env j of the last step of a window is env step end - num_envs + j.
    counts = ends[:, None] - num_envs + np.arange(num_envs)
    expected_eps = np.mean(1.0 + np.minimum(counts / 1_000, 1.0) * (0.05 - 1.0), axis=1)
    np.testing.assert_allclose(metrics["exploration"], expected_eps, rtol=1e-6)
    # Hard target sync exactly every 7 updates.
    synced = leaves_equal(state.params, state.target_params)
    assert synced == (int(state.updates) % 7 == 0)


def test_learning_starts_per_seed_under_vmap():
    """Each seed of a vmapped run starts learning on its own counter: a seed still warming
    up keeps its parameters, optimizer state and priorities bit for bit, and ends exactly
    as it would beside another warming-up seed, while the seed beside it learns."""
    config = dataclasses.replace(TINY_CHAIN, prioritized=True)
    trainer = jaxdqn.make_trainer(config)
    run_one_window = jax.jit(jax.vmap(lambda state: trainer.run(state, 1)))
    fresh = jax.jit(jax.vmap(trainer.init))(jax.random.split(jax.random.key(3), 2))

    warm, metrics = run_one_window(fresh)  # the first window is the warm-up (160 env steps)
    assert leaves_equal(warm.learner, fresh.learner)  # params, target, optimizer, updates
    assert np.all(np.asarray(metrics["updates"]) == 0)
    assert np.all(np.isnan(metrics["loss"]))
    leaves = np.asarray(warm.replay.priorities.levels[0])
    stored = config.learning_starts
    assert np.all(leaves[:, :stored] == 1.0) and np.all(leaves[:, stored:] == 0.0)

    # Seed 0 past learning_starts, seed 1 fresh, in one call.
    mixed = jax.tree.map(lambda w, f: jnp.stack([w[0], f[1]]), warm, fresh)
    after, metrics = run_one_window(mixed)
    np.testing.assert_array_equal(metrics["updates"], [[80], [0]])  # every 2nd step in 160-320
    assert np.isfinite(metrics["loss"][0, 0]) and np.isnan(metrics["loss"][1, 0])
    seed = lambda tree, i: jax.tree.map(lambda x: x[i], tree)  # noqa: E731
    assert leaves_equal(seed(after, 1), seed(warm, 1))
    assert not leaves_equal(seed(after, 0).params, seed(warm, 0).params)
    assert len(np.unique(np.asarray(after.replay.priorities.levels[0][0, :320]))) > 50


def test_episode_statistics_count_completed_episodes_only(tiny_chain_run):
    _, states, metrics = tiny_chain_run
    num_envs, interval = TINY_CHAIN.num_envs, TINY_CHAIN.resolved_log_interval()
    stored = TINY_CHAIN.total_timesteps
    rewards = np.asarray(states.replay.rows.data.reward[0, :stored]).reshape(-1, num_envs)
    episode_returns = rewards.reshape(-1, 20, num_envs).sum(axis=1)  # [episode, env]
    steps_per_window = interval // num_envs
    for k in range(TINY_CHAIN.num_log_points()):
        # Episodes that ended inside window k (ChainWalk episodes are exactly 20 steps).
        done = [
            i
            for i in range(episode_returns.shape[0])
            if k * steps_per_window <= 20 * i + 19 < (k + 1) * steps_per_window
        ]
        assert int(metrics["completed_episodes"][0, k]) == len(done) * num_envs
        np.testing.assert_allclose(metrics["episode_length"][0, k], 20.0)
        np.testing.assert_allclose(
            metrics["episode_return"][0, k], episode_returns[done].mean(), rtol=1e-5
        )


def test_window_without_episode_end_reports_nan():
    config = dataclasses.replace(
        TINY_CHAIN,
        num_envs=1,
        total_timesteps=400,
        log_interval=10,
        learning_starts=20,
        exploration_steps=200,
    )
    _, metrics = jax.jit(jaxdqn.make_train(config))(jax.random.key(0))
    completed = np.asarray(metrics["completed_episodes"])
    assert set(completed.tolist()) == {0, 1}
    assert np.all(np.isnan(metrics["episode_return"][completed == 0]))
    assert np.all(np.isfinite(metrics["episode_return"][completed == 1]))
    assert np.isnan(metrics["loss"][0]) and np.isfinite(metrics["loss"][-1])


def constant_policy_params(config, action: int):
    """Q-network params whose Q-values prefer ``action`` in every state."""
    q_net = jaxdqn.build(config).q_network
    params = q_net.init(jax.random.key(0), jnp.zeros((1, 1)))
    last = sorted(params["params"])[-1]
    params = jax.tree.map(jnp.zeros_like, params)
    bias = jnp.zeros(2).at[action].set(1.0)
    params["params"][last]["bias"] = bias
    return params


@pytest.mark.parametrize(("action", "expected"), [(1, 15.0), (0, -2.0)])
def test_evaluate_hand_computed_returns(action, expected):
    # Always right: 5 moves with reward 0, then 15 steps at the goal with reward 1.
    # Always back: 20 steps of -0.1.
    params = constant_policy_params(TINY_CHAIN, action)
    returns = jax.jit(lambda p, k: jaxdqn.evaluate(TINY_CHAIN, p, k, 3))(params, jax.random.key(0))
    np.testing.assert_allclose(returns, expected, rtol=1e-6)
    batched = jax.vmap(lambda k: jaxdqn.evaluate(TINY_CHAIN, params, k, 2))(
        jax.random.split(jax.random.key(0), 2)
    )
    np.testing.assert_allclose(batched, expected, rtol=1e-6)


def test_evaluate_epsilon_one_is_random_and_validated():
    params = constant_policy_params(TINY_CHAIN, 1)
    returns = jaxdqn.evaluate(TINY_CHAIN, params, jax.random.key(0), 8, epsilon=1.0)
    assert np.all(returns < 15.0)
    with pytest.raises(ValueError, match="num_episodes=0"):
        jaxdqn.evaluate(TINY_CHAIN, params, jax.random.key(0), 0)
    with pytest.raises(ValueError, match=r"epsilon=1\.5"):
        jaxdqn.evaluate(TINY_CHAIN, params, jax.random.key(0), 2, epsilon=1.5)
