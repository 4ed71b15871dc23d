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
