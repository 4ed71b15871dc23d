"""Learning is proven, not assumed: every preset solves its environment across 16 seeds
trained in one vmapped call. Each test can fail, and each runs in CI (2 CPU cores).
Run only these with ``pytest -m learning``; skip them with ``pytest -m "not learning"``.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

import jaxdqn
from jaxdqn.envs import chain_walk_observations, chain_walk_optimal_q
from jaxdqn.presets import SOLVED_RETURN

SEEDS = 16
pytestmark = pytest.mark.learning


def train_seeds(config: jaxdqn.DQNConfig, seeds: int = SEEDS):
    sharding = jaxdqn.seed_sharding(seeds)  # both CI cores train, half the seeds each
    keys = jax.device_put(jax.random.split(jax.random.key(0), seeds), sharding)
    return jax.jit(jaxdqn.on_each_device(jax.vmap(jaxdqn.make_train(config)), sharding))(keys)


def greedy_returns(config: jaxdqn.DQNConfig, params, episodes: int = 100) -> np.ndarray:
    """Mean greedy return over ``episodes`` fresh episodes, per seed ``[SEEDS]``."""
    keys = jax.random.split(jax.random.key(12345), SEEDS)
    returns = jax.jit(jax.vmap(lambda p, k: jaxdqn.evaluate(config, p, k, episodes, 0.0)))(
        params, keys
    )
    return np.asarray(returns.mean(axis=1))


def chain_q_tables(config: jaxdqn.DQNConfig, params) -> np.ndarray:
    """Q-values ``[seeds, 6, 2]`` of every chain state for every seed."""
    q_net = jaxdqn.build(config).q_network
    states = chain_walk_observations()
    return np.asarray(jax.vmap(lambda p: q_net.apply(p, states))(params))


def test_chain_walk_preset_learns_q_star_through_truncation():
    config = jaxdqn.get_preset("ChainWalk-v0")
    states, metrics = train_seeds(config)
    q = chain_q_tables(config, states.params)
    q_star = chain_walk_optimal_q(config.gamma)
    assert np.all(q.argmax(axis=-1) == 1), "every seed moves right in every state"
    relative_error = np.abs(q - q_star) / np.abs(q_star)
    assert relative_error.max() <= 0.10, f"worst |Q - Q*| / Q* = {relative_error.max():.3f}"
    assert_doctor_finds_nothing(config, metrics)

    # The same run with truncation stored as termination cannot learn Q*: no target
    # bootstraps past the 20-step limit, so Q stays far below the infinite-horizon values
    # on every seed (4 show it).
    wrong = dataclasses.replace(config, truncation_is_terminal=True)
    states, _ = train_seeds(wrong, seeds=4)
    wrong_error = np.abs(chain_q_tables(wrong, states.params) - q_star) / np.abs(q_star)
    assert wrong_error.min() > 0.5


# Every CartPole seed must solve; Acrobot's bar leaves 2 of 16 seeds, as the project's
# target does (the README's "Results" has the measured returns). C51 (51 atoms on
# [0, 200]) and noisy nets on the CartPole preset must solve every seed too. Noisy nets
# keep the preset's ε-greedy: by their own noise alone, some seeds' training returns stay
# near 130 for the whole budget. Their updates cost more than the DQN preset's on a CPU,
# so both are heavy (`pytest -m heavy`).
C51 = {"distributional": True, "num_atoms": 51, "v_min": 0.0, "v_max": 200.0}
NOISY = {"noisy": True, "exploration": "epsilon_greedy"}


@pytest.mark.parametrize(
    ("env_id", "changes", "min_solved"),
    [
        ("CartPole-v1", {}, 16),
        pytest.param("CartPole-v1", C51, 16, marks=pytest.mark.heavy, id="CartPole-v1-c51"),
        pytest.param("CartPole-v1", NOISY, 16, marks=pytest.mark.heavy, id="CartPole-v1-noisy"),
        ("Acrobot-v1", {}, 14),
    ],
)
def test_preset_solves_across_seeds(env_id, changes, min_solved):
    config = dataclasses.replace(jaxdqn.get_preset(env_id), **changes)
    if env_id == "CartPole-v1":
        assert config.total_timesteps <= 200_000
    states, metrics = train_seeds(config)
    returns = greedy_returns(config, states.params)
    solved = returns >= SOLVED_RETURN[env_id]
    print(f"{env_id} {changes}: greedy returns per seed {np.round(returns, 1).tolist()}")
    assert solved.sum() >= min_solved, f"{solved.sum()}/{SEEDS} seeds solved: {returns}"
    assert np.all(np.isfinite(metrics["loss"][:, -1]))
    assert_doctor_finds_nothing(config, metrics, returns)


def assert_doctor_finds_nothing(config, metrics, greedy_return=None):
    """A preset that learns raises no false alarm, on any seed."""
    findings = jaxdqn.diagnose(config, metrics, greedy_return=greedy_return)
    assert [f.code for f in findings] == ["healthy"], [f.line() for f in findings]
