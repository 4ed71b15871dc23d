"""Environments: ChainWalk-v0 against the source material's step function, Q* against
value iteration, and the id checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdqn
from jaxdqn.envs import bind_env, chain_walk_observations, chain_walk_optimal_q


def seed_step(state: int, action: int) -> tuple[int, float]:
    """The chain's step function, as written in the project's source material."""
    if action == 1:
        if state < 5:
            return state + 1, 0.0
        return state, 1.0
    return max(0, state - 1), -0.1


@pytest.fixture(scope="module")
def chain():
    env, params = jaxdqn.make_env("ChainWalk-v0")
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    reset = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))
    return env, params, step, reset


def test_chain_walk_matches_source_dynamics_and_truncates_at_20(chain):
    _, params, step, reset = chain
    rng = np.random.default_rng(0)
    num_envs, horizon = 5, 45
    actions = rng.integers(0, 2, size=(horizon, num_envs))
    keys = jax.random.split(jax.random.key(0), num_envs)
    obs, state = reset(keys, params)
    positions = np.zeros(num_envs, int)
    for t in range(horizon):
        obs, state, reward, terminated, truncated, info = step(
            keys, state, jnp.asarray(actions[t], jnp.int32), params
        )
        expected = [seed_step(int(s), int(a)) for s, a in zip(positions, actions[t], strict=True)]
        next_positions = np.array([e[0] for e in expected])
        np.testing.assert_allclose(reward, [e[1] for e in expected], rtol=0, atol=1e-7)
        np.testing.assert_array_equal(info["final_observation"][:, 0], next_positions)
        assert obs.dtype == jnp.float32 and obs.shape == (num_envs, 1)
        assert not np.any(terminated)
        ends = (t + 1) % 20 == 0
        np.testing.assert_array_equal(truncated, np.full(num_envs, ends))
        positions = np.zeros(num_envs, int) if ends else next_positions
        np.testing.assert_array_equal(obs[:, 0], positions)


def value_iteration_q(gamma: float, sweeps: int = 5_000) -> np.ndarray:
    q = np.zeros((6, 2))
    for _ in range(sweeps):
        v = q.max(axis=1)
        q = np.array(
            [[r + gamma * v[s2] for s2, r in (seed_step(s, a) for a in (0, 1))] for s in range(6)]
        )
    return q


@pytest.mark.parametrize("gamma", [0.9, 0.99])
def test_chain_walk_optimal_q_matches_value_iteration(gamma):
    np.testing.assert_allclose(chain_walk_optimal_q(gamma), value_iteration_q(gamma), rtol=1e-6)


def test_chain_walk_observations_are_the_states_in_order():
    obs = chain_walk_observations()
    assert obs.shape == (6, 1) and obs.dtype == jnp.float32
    np.testing.assert_array_equal(obs[:, 0], np.arange(6))


def test_chain_walk_optimal_q_hand_values():
    q = chain_walk_optimal_q(0.99)
    assert q[5, 1] == pytest.approx(100.0)
    assert q[4, 1] == pytest.approx(99.0)
    assert q[5, 0] == pytest.approx(-0.1 + 0.99 * 99.0)
    assert np.all(q[:, 1] > q[:, 0])
    with pytest.raises(ValueError, match=r"gamma=1.0"):
        chain_walk_optimal_q(1.0)


@pytest.mark.parametrize(
    ("env_id", "shape", "actions"),
    [("ChainWalk-v0", (1,), 2), ("CartPole-v1", (4,), 2), ("Acrobot-v1", (6,), 3)],
)
def test_env_spec(env_id, shape, actions):
    spec = bind_env(env_id).spec
    assert (spec.obs_shape, spec.num_actions, spec.action_masked) == (shape, actions, False)
    assert spec.obs_dtype == jnp.float32


def test_unknown_env_id_lists_close_matches():
    with pytest.raises(ValueError, match=r"env_id='Acrobot-v2'.*Did you mean 'Acrobot-v1'"):
        jaxdqn.make_env("Acrobot-v2")


def test_continuous_action_env_is_refused():
    with pytest.raises(ValueError, match=r"Pendulum-v1.*Discrete"):
        bind_env("Pendulum-v1")
    # Checked when the config's env is bound, before anything is traced.
    with pytest.raises(ValueError, match=r"DQNConfig\.env_id='MountainCarContinuous-v0'"):
        jaxdqn.make_train(jaxdqn.DQNConfig(env_id="MountainCarContinuous-v0"))


def test_every_gymnax_id_is_known():
    import gymnax

    assert set(gymnax.registered_envs) <= set(jaxdqn.ENV_IDS)
    assert "ChainWalk-v0" in jaxdqn.ENV_IDS


def test_minatar_observations_stay_bool_and_match_gymnax():
    import gymnax

    env, params = jaxdqn.make_env("Breakout-MinAtar")
    raw, raw_params = gymnax.make("Breakout-MinAtar")
    key = jax.random.key(4)
    obs, state = env.reset(key, params)
    raw_obs, raw_state = raw.reset(key, raw_params)
    assert obs.dtype == jnp.bool_ and raw_obs.dtype == jnp.float32
    np.testing.assert_array_equal(obs, raw_obs > 0.5)
    for t in range(30):  # also across episode ends: final_observation is cast as well
        step_key = jax.random.fold_in(key, t)
        obs, state, reward, _, _, info = env.step(step_key, state, t % 3, params)
        raw_obs, raw_state, raw_reward, _, _, raw_info = raw.step(step_key, raw_state, t % 3)
        assert obs.dtype == info["final_observation"].dtype == jnp.bool_
        np.testing.assert_array_equal(obs, raw_obs > 0.5)
        np.testing.assert_array_equal(
            info["final_observation"], raw_info["final_observation"] > 0.5
        )
        assert float(reward) == float(raw_reward)


def play_sticky(prob: float, chosen: np.ndarray, seed: int = 0):
    """ChainWalk under StickyActions(prob) playing ``chosen`` actions ``[T]``: the actions
    the env executed (read off the rewards: only action 0 earns -0.1) and where episodes
    ended."""
    env = jaxdqn.envs.StickyActions(jaxdqn.envs.ChainWalk(), prob)
    params = env.default_params
    _, state = env.reset(jax.random.key(seed), params)

    def step(state, inputs):
        key, action = inputs
        _, state, reward, terminated, truncated, _ = env.step(key, state, action, params)
        return state, (reward, terminated | truncated)

    keys = jax.random.split(jax.random.key(seed + 1), len(chosen))
    _, (rewards, ended) = jax.jit(lambda s: jax.lax.scan(step, s, (keys, chosen)))(state)
    return (np.asarray(rewards) != np.float32(-0.1)).astype(int), np.asarray(ended)


def test_sticky_actions_repeat_the_previous_executed_action_at_their_rate():
    chosen = np.random.default_rng(0).integers(0, 2, 2_000).astype(np.int32)
    executed, ended = play_sticky(0.25, chosen)
    previous = np.concatenate([[0], np.where(ended[:-1], 0, executed[:-1])])  # 0 after resets
    assert ended.sum() == 2_000 // 20  # ChainWalk's time limit, unchanged
    assert np.all((executed == chosen) | (executed == previous))
    differ = chosen != previous  # the only steps where a repeat shows
    repeat_share = np.mean(executed[differ] != chosen[differ])
    assert abs(repeat_share - 0.25) < 4 * np.sqrt(0.25 * 0.75 / differ.sum()), repeat_share
    assert np.array_equal(play_sticky(0.25, chosen)[0], executed)  # same keys, same play
    assert np.array_equal(play_sticky(0.0, chosen)[0], chosen)


def test_sticky_actions_from_the_config_train_and_are_checked():
    with pytest.raises(ValueError, match=r"^DQNConfig.sticky_actions=1.0 is invalid: must be a "):
        jaxdqn.DQNConfig(sticky_actions=1.0)
    with pytest.raises(ValueError, match=r"^StickyActions: prob=-0.1 is invalid: must be in"):
        jaxdqn.envs.StickyActions(jaxdqn.envs.ChainWalk(), -0.1)
    config = jaxdqn.DQNConfig(
        env_id="ChainWalk-v0", num_envs=2, total_timesteps=200, learning_starts=100,
        buffer_size=200, batch_size=8, exploration_steps=100, hidden_sizes=(8,),
        target_update_period=10, log_interval=100, sticky_actions=0.5, diagnostics=False,
    )  # fmt: skip
    assert isinstance(jaxdqn.build(config).env.env, jaxdqn.envs.StickyActions)
    trainer = jaxdqn.make_trainer(config)
    keys = jax.random.split(jax.random.key(0), 2)
    states, metrics = jax.jit(jax.vmap(trainer.train))(keys)
    assert isinstance(states.actor.env_state, jaxdqn.envs.StickyState)
    assert np.all(np.asarray(metrics["env_steps"])[:, -1] == 200)
    # In two chunks (the driver's checkpoints), the same run bit for bit.
    chunk = jax.jit(jax.vmap(lambda state: trainer.run(state, 1)))
    chunked, _ = chunk(chunk(jax.jit(jax.vmap(trainer.init))(keys))[0])
    jax.tree.map(np.testing.assert_array_equal, states.params, chunked.params)
