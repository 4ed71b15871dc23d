"""Traced hyperparameters: a sweep is one compile and each member is the run of its config."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import TINY_CHAIN

import jaxdqn
from jaxdqn.core.learner import learning_rate_at, td_errors
from jaxdqn.core.types import Batch


@pytest.mark.parametrize(
    ("schedule", "updates", "expected"),
    [("constant", 0, 0.1), ("constant", 500, 0.1), ("linear", 0, 0.1), ("linear", 250, 0.075),
     ("linear", 999, 0.0001), ("linear", 1000, 0.0), ("linear", 1200, 0.0)],
)  # fmt: skip
def test_learning_rate_at_hand_values(schedule, updates, expected):
    config = dataclasses.replace(TINY_CHAIN, learning_rate_schedule=schedule)
    total = 1000
    config = dataclasses.replace(config, total_timesteps=160 + 2 * total, log_interval=None)
    assert config.total_updates() == total
    step_size = learning_rate_at(config.learning_rate_schedule, 0.1, updates, total)
    assert float(step_size) == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize("name", ["adam", "adamw", "rmsprop", "sgd"])
def test_learner_update_applies_optax_at_the_traced_learning_rate(name):
    """The learner's unit-rate direction times the traced rate equals optax's own optimizer
    built with that rate (clipping included), over a few steps."""
    config = dataclasses.replace(TINY_CHAIN, optimizer=name, max_grad_norm=0.5, learning_rate=0.01)
    parts = jaxdqn.build(config)
    q_network = parts.q_network
    init = jaxdqn.make_trainer(config).init(jax.random.key(0))
    state, hparams = init.learner, init.hparams
    step = jax.jit(parts.learner.update)
    reference = optax.chain(
        optax.clip_by_global_norm(0.5),
        {"adam": optax.adam, "adamw": optax.adamw, "rmsprop": optax.rmsprop, "sgd": optax.sgd}[
            name
        ](0.01),
    )
    params, opt_state = state.params, reference.init(state.params)
    rng = np.random.default_rng(0)
    for i in range(3):
        batch = Batch(
            obs=jnp.asarray(rng.integers(0, 6, (16, 1)), jnp.float32),
            action=jnp.asarray(rng.integers(0, 2, 16), jnp.int32),
            reward=jnp.asarray(rng.normal(size=16), jnp.float32),
            discount=jnp.full(16, 0.99, jnp.float32),
            next_obs=jnp.asarray(rng.integers(0, 6, (16, 1)), jnp.float32),
            weight=jnp.ones(16, jnp.float32),
        )
        target = state.target_params

        def loss(p, batch=batch, target=target):
            td, _ = td_errors(q_network, p, target, batch, double_q=config.double_q)
            return jaxdqn.losses.td_loss(td, config.loss, config.huber_delta)

        grads = jax.grad(loss)(params)
        updates, opt_state = reference.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        state, _, _ = step(state, batch, hparams)
        for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(params), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg=f"step {i}")


def test_sweep_builds_validated_combinations():
    hparams, configs = jaxdqn.sweep(TINY_CHAIN, learning_rate=[1e-3, 3e-3], gamma=[0.9, 0.95, 0.99])
    assert hparams.learning_rate.shape == (6,) and hparams.target_update_period.dtype == jnp.int32
    np.testing.assert_allclose(hparams.learning_rate, [1e-3] * 3 + [3e-3] * 3)
    np.testing.assert_allclose(hparams.gamma, [0.9, 0.95, 0.99] * 2)
    assert [c.gamma for c in configs] == [0.9, 0.95, 0.99] * 2
    np.testing.assert_allclose(hparams.exploration_steps, TINY_CHAIN.exploration_steps)
    with pytest.raises(ValueError, match=r"DQNConfig\.gamma=1\.5 is invalid"):
        jaxdqn.sweep(TINY_CHAIN, gamma=[0.9, 1.5])
    with pytest.raises(ValueError, match="'num_envs' cannot be swept in one program"):
        jaxdqn.sweep(TINY_CHAIN, num_envs=[1, 2])
    with pytest.raises(ValueError, match=r"learning_rate=\[\] is invalid"):
        jaxdqn.sweep(TINY_CHAIN, learning_rate=[])


def test_vmapped_sweep_compiles_once_and_matches_each_configs_own_run():
    hparams, configs = jaxdqn.sweep(
        TINY_CHAIN, learning_rate=[1e-3, 1e-2], target_update_period=[5, 25], exploration_end=[0.2]
    )
    keys = jnp.stack([jax.random.key(3)] * len(configs))  # same seed: only hparams differ
    traces = []

    def counted(keys, hparams):
        traces.append(1)
        return jax.vmap(jaxdqn.make_train(TINY_CHAIN))(keys, hparams)

    sweep_run = jax.jit(counted)
    states, metrics = sweep_run(keys, hparams)
    sweep_run(keys, jax.tree.map(lambda x: x[::-1], hparams))  # new values, same program
    assert len(traces) == 1
    finals = [np.asarray(jax.tree.leaves(states.params)[0][i]) for i in range(len(configs))]
    assert all(not np.allclose(finals[0], f) for f in finals[1:])
    for i, config in enumerate(configs):
        own, own_metrics = jax.jit(jaxdqn.make_train(config))(keys[i])
        for a, b in zip(jax.tree.leaves(own.params), jax.tree.leaves(states.params), strict=True):
            np.testing.assert_allclose(a, b[i], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(own_metrics["exploration"], metrics["exploration"][i], 1e-6)
