"""The seams between components: the environment is bound once, each factory takes explicit
arguments and refuses bad ones, the replay is one component (uniform or prioritized), and
the loop skeleton works with any learner that declares its statistics."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_CHAIN
from gymnax.environments import spaces

import jaxdqn
import jaxdqn.envs
from jaxdqn.core.actor import make_actor
from jaxdqn.core.learner import Learner, make_learner, make_optimizer
from jaxdqn.core.loop import EPISODE_METRICS, make_loop
from jaxdqn.core.replay import importance_weights, priorities_from_td
from jaxdqn.core.types import Transition
from jaxdqn.envs import ChainWalk, ChainWalkParams

PACKAGE = Path(jaxdqn.__file__).parent


@pytest.fixture
def builds(monkeypatch):
    """Counts how often an environment is built from its id."""
    calls = []
    build = jaxdqn.envs._build

    def counted(env_id, *args):
        calls.append(env_id)
        return build(env_id, *args)

    monkeypatch.setattr(jaxdqn.envs, "_build", counted)
    return calls


def test_the_environment_is_built_once_per_call(builds):
    jaxdqn.make_train(TINY_CHAIN)
    assert builds == ["ChainWalk-v0"]
    params = jaxdqn.build(TINY_CHAIN).q_network.init(jax.random.key(0), jnp.zeros((1, 1)))
    builds.clear()
    jaxdqn.evaluate(TINY_CHAIN, params, jax.random.key(0), 2)
    assert builds == ["ChainWalk-v0"]


def test_an_env_object_and_its_params_are_used_as_given(builds):
    """A ChainWalk with a 10-step time limit: every 10th row of each env is truncated and
    nothing is built from the config's id."""
    env_params = ChainWalkParams(max_steps_in_episode=10)
    train = jax.jit(jaxdqn.make_train(TINY_CHAIN, env=ChainWalk(), env_params=env_params))
    state, metrics = train(jax.random.key(0))
    assert builds == []
    truncated = np.asarray(state.replay.rows.data.truncated).reshape(-1, TINY_CHAIN.num_envs)
    np.testing.assert_array_equal(np.flatnonzero(truncated[:, 0]), np.arange(9, 400, 10))
    np.testing.assert_allclose(metrics["episode_length"], 10.0)


def test_config_checks_that_need_the_env_run_when_it_is_bound():
    config = dataclasses.replace(TINY_CHAIN, env_id="CartPole-v1", network="cnn")
    with pytest.raises(ValueError, match=r"DQNConfig\.network='cnn' is invalid: needs image"):
        jaxdqn.make_train(config)
    with pytest.raises(ValueError, match=r"env='Continuous' has a Box action space"):

        class Continuous(ChainWalk):
            def action_space(self, params=None):
                return spaces.Box(-1.0, 1.0, (1,))

        jaxdqn.make_train(TINY_CHAIN, env=Continuous())


@pytest.mark.parametrize(
    ("factory", "kwargs", "message"),
    [
        (jaxdqn.make_replay, {"batch_size": 0}, "batch_size=0 is invalid"),
        (jaxdqn.make_replay, {"batch_size": 4, "n_step": 9}, r"n_step=9 is invalid: .* = 8"),
        (make_learner, {"loss": "mse"}, "loss='mse' is invalid"),
        (make_learner, {"learning_rate_schedule": "cosine"}, "learning_rate_schedule='cosine'"),
        (make_learner, {"total_updates": 0}, "total_updates=0 is invalid"),
        (make_optimizer, {"name": "adagrad"}, "name='adagrad' is invalid"),
        (make_actor, {"exploration": "ucb"}, "exploration='ucb' is invalid"),
        (make_actor, {"unit": "updates"}, "unit='updates' is invalid"),
        (make_actor, {"num_envs": 0}, "num_envs=0 is invalid"),
        (jaxdqn.make_q_network, {"network": "cnn"}, r"network='cnn' needs image observations"),
        (jaxdqn.make_q_network, {"activation": "sigmoid"}, "activation='sigmoid' is invalid"),
    ],
)
def test_factories_refuse_bad_arguments_by_name(factory, kwargs, message):
    bound = jaxdqn.bind_env("CartPole-v1")
    q_network = jaxdqn.make_q_network(bound.spec)
    positional = {
        jaxdqn.make_replay: (16, 2, 500),
        make_learner: (q_network, make_optimizer()),
        make_optimizer: (),
        make_actor: (bound, q_network, kwargs.pop("num_envs", 2)),
        jaxdqn.make_q_network: (bound.spec,),
    }[factory]
    with pytest.raises(ValueError, match=message):
        factory(*positional, **kwargs)


def _filled(replay, steps: int = 6, num_envs: int = 2):
    """A replay after ``steps`` vectorised steps of distinct rewards."""
    state = replay.init(jnp.zeros(3))
    for t in range(steps):
        state = replay.add(
            state,
            Transition(
                obs=jnp.full((num_envs, 3), t, jnp.float32),
                action=jnp.zeros(num_envs, jnp.int32),
                reward=jnp.arange(num_envs, dtype=jnp.float32) + 10.0 * t,
                terminated=jnp.zeros(num_envs, bool),
                truncated=jnp.zeros(num_envs, bool),
                next_obs=jnp.full((num_envs, 3), t + 1, jnp.float32),
            ),
        )
    return state


def test_uniform_replay_has_unit_weights_and_no_priorities():
    replay = jaxdqn.make_replay(16, 2, 100, batch_size=8)
    state = _filled(replay)
    assert state.priorities is None
    drawn = jax.jit(replay.sample)(state, jax.random.key(0), 0.9, 0.0)
    np.testing.assert_array_equal(drawn.batch.weight, np.ones(8))
    assert np.all(np.asarray(drawn.slots) < 12)  # written rows only
    after = replay.update_priorities(state, drawn.slots, jnp.ones(8), jnp.bool_(True))
    assert after is state


@pytest.mark.parametrize("transform", ["plain", "jit"])
def test_prioritized_replay_weights_and_priority_updates_against_numpy(transform):
    alpha, beta0, eps = 0.6, 0.4, 1e-3
    replay = jaxdqn.make_replay(
        16, 2, 100, batch_size=6, prioritized=True, priority_alpha=alpha,
        priority_beta=beta0, priority_eps=eps,
    )  # fmt: skip
    fn = jax.jit if transform == "jit" else (lambda f: f)
    state = _filled(replay)
    leaves = np.asarray(state.priorities.levels[0])
    np.testing.assert_array_equal(leaves[:12], 1.0)  # new rows at the max priority so far
    np.testing.assert_array_equal(leaves[12:], 0.0)
    td = jnp.array([0.5, -2.0, 1.0, 0.0, 3.0, -0.25], jnp.float32)
    slots = jnp.array([0, 3, 5, 6, 9, 11], jnp.int32)
    masked = fn(replay.update_priorities)(state, slots, td, jnp.bool_(False))
    np.testing.assert_array_equal(masked.priorities.levels[0], state.priorities.levels[0])
    state = fn(replay.update_priorities)(state, slots, td, jnp.bool_(True))
    expected = np.where(np.arange(16) < 12, 1.0, 0.0)
    expected[np.asarray(slots)] = np.abs(np.asarray(td)) ** alpha + eps
    np.testing.assert_allclose(state.priorities.levels[0], expected, rtol=1e-6)
    for progress in (0.0, 0.5, 1.0):
        drawn = fn(replay.sample)(state, jax.random.key(1), 0.9, progress)
        p = expected[np.asarray(drawn.slots)] / expected.sum()
        beta = beta0 + (1.0 - beta0) * progress
        want = (12 * p) ** -beta
        np.testing.assert_allclose(drawn.batch.weight, want / want.max(), rtol=1e-5)
        np.testing.assert_allclose(
            drawn.batch.weight,
            importance_weights(jnp.asarray(p, jnp.float32), jnp.int32(12), beta),
            rtol=1e-5,
        )
    np.testing.assert_allclose(priorities_from_td(td, alpha, eps), expected[np.asarray(slots)])


def test_prioritized_replay_under_vmap_matches_single_replays():
    replay = jaxdqn.make_replay(16, 2, 100, batch_size=4, prioritized=True)
    state = _filled(replay)
    states = jax.tree.map(lambda x: jnp.stack([x, x]), state)
    keys = jax.random.split(jax.random.key(2), 2)
    drawn = jax.vmap(lambda s, k: replay.sample(s, k, 0.9, 0.3))(states, keys)
    for i in range(2):
        single = replay.sample(state, keys[i], 0.9, 0.3)
        np.testing.assert_array_equal(drawn.slots[i], single.slots)
        np.testing.assert_allclose(drawn.batch.weight[i], single.batch.weight, rtol=1e-6)


class _Stats(NamedTuple):
    loss: jax.Array
    batch_reward: jax.Array


def test_the_loop_skeleton_reports_whatever_statistics_a_learner_declares():
    """A learner with its own statistics (here: DQN's loss and the batch's mean reward)
    plugs into the skeleton unchanged; each is averaged over the window's updates."""
    parts = jaxdqn.build(TINY_CHAIN)

    def update(state, batch, hparams):
        state, stats, td = parts.learner.update(state, batch, hparams)
        return state, _Stats(loss=stats.loss, batch_reward=jnp.mean(batch.reward)), td

    learner = Learner(init=parts.learner.init, update=update, stat_names=_Stats._fields)
    trainer = make_loop(parts.actor, parts.replay, learner, parts.layout, parts.hparams)
    assert trainer.metric_names == (*EPISODE_METRICS, "loss", "batch_reward")
    _, metrics = jax.jit(trainer.train)(jax.random.key(0))
    assert set(metrics) == set(trainer.metric_names)
    learning = np.asarray(metrics["updates"]) > 0
    # ChainWalk rewards are -0.1, 0 and 1: a batch's mean lies between.
    assert np.all(metrics["batch_reward"][learning] >= -0.1)
    assert np.all(metrics["batch_reward"][learning] <= 1.0)
    assert np.all(np.isnan(metrics["batch_reward"][~learning]))
    _, dqn = jax.jit(jaxdqn.make_train(TINY_CHAIN))(jax.random.key(0))
    np.testing.assert_array_equal(metrics["loss"], dqn["loss"])  # same run, same losses


def test_a_health_signal_that_is_not_a_scalar_is_refused_while_tracing():
    parts = jaxdqn.build(TINY_CHAIN)
    learner = parts.learner._replace(
        inspect=lambda state, earlier, batch: (jnp.zeros(2),), inspect_names=("per_layer",)
    )
    trainer = make_loop(parts.actor, parts.replay, learner, parts.layout, parts.hparams)
    with pytest.raises(
        ValueError, match=r"metric 'per_layer' is float32\[2\]: .* float32\[\] each"
    ):
        jax.eval_shape(trainer.train, jax.random.key(0))


def test_no_module_is_shadowed_and_only_the_replay_tests_the_prioritized_flag():
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="jaxdqn."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        parent, _, name = info.name.rpartition(".")
        assert getattr(importlib.import_module(parent), name) is module, info.name
    flag_tests = re.compile(r"\b(if|elif|while)\b.*prioritized|prioritized\s+(if|else)\b")
    for path in PACKAGE.rglob("*.py"):
        if path.name == "replay.py":
            continue
        for line in path.read_text().splitlines():
            assert not flag_tests.search(line), f"{path.relative_to(PACKAGE)}: {line.strip()}"
