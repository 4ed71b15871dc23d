"""Noisy nets (Fortunato et al. 2018): the factorised noise, the layer, and their use in
acting, learning and evaluation."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdqn
from jaxdqn.core.networks import NOISE_RNG, NoisyDense, factorised_noise

INPUTS, OUTPUTS = 5, 3


@pytest.fixture(scope="module")
def layer():
    module = NoisyDense(OUTPUTS, sigma0=0.5)
    params = module.init(jax.random.key(0), jnp.zeros((1, INPUTS)))
    return module, params


def sampled_noise(module, params, key):
    """The layer's own noise of one call with ``key``, read back from its outputs:
    ``y(0) = b + σ_b ε_b`` and ``y(e_i) - y(0) = W_i + σ_W,i ε_W,i``."""
    x = jnp.concatenate([jnp.zeros((1, INPUTS)), jnp.eye(INPUTS)])
    y = np.asarray(module.apply(params, x, rngs={NOISE_RNG: key}), np.float64)
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params["params"])
    noise_b = (y[0] - p["bias"]) / p["bias_sigma"]
    noise_w = (y[1:] - y[0] - p["kernel"]) / p["kernel_sigma"]
    return noise_w, noise_b


def test_the_layers_noise_is_factorised(layer):
    module, params = layer
    f = lambda x: np.sign(x) * np.sqrt(np.abs(x))  # noqa: E731
    for seed in range(5):
        noise_w, noise_b = sampled_noise(module, params, jax.random.key(seed))
        # ε_W = f(ε_in) ⊗ f(ε_out) and ε_b = f(ε_out): rank one, with ε_b as its columns'
        # scale, and f(ε_in) = ε_W[:, j] / ε_b[j] for every j.
        noise_in = noise_w / noise_b[None, :]
        np.testing.assert_allclose(noise_in, noise_in[:, :1].repeat(OUTPUTS, 1), rtol=1e-3)
        np.testing.assert_allclose(np.linalg.svd(noise_w, compute_uv=False)[1:], 0, atol=1e-3)
        # f is invertible: the normal draws behind it are sign(ε) ε².
        for scaled in (noise_in[:, 0], noise_b):
            draws = np.sign(scaled) * scaled**2
            np.testing.assert_allclose(f(draws), scaled, rtol=1e-6)


def test_the_scaled_noise_has_the_moments_of_f_of_a_normal():
    keys = jax.random.split(jax.random.key(1), 4000)
    _, noise = jax.vmap(lambda k: factorised_noise(k, 2, 64))(keys)
    noise = np.asarray(noise, np.float64).ravel()  # 256,000 draws of f(x), x ~ N(0, 1)
    # E f(x) = 0, E f(x)^2 = E|x| = sqrt(2/π), E f(x)^4 = E x^2 = 1.
    assert abs(noise.mean()) < 0.01
    np.testing.assert_allclose(np.mean(noise**2), np.sqrt(2 / np.pi), rtol=0.01)
    np.testing.assert_allclose(np.mean(noise**4), 1.0, rtol=0.02)


def test_initial_means_and_scales(layer):
    _, params = layer
    p = params["params"]
    bound = 1 / np.sqrt(INPUTS)
    for name in ("kernel", "bias"):
        assert np.all(np.abs(p[name]) <= bound) and np.std(p[name]) > 0
        np.testing.assert_allclose(p[f"{name}_sigma"], 0.5 * bound, rtol=1e-6)


def test_keys_change_the_noise_and_no_key_is_the_mean(layer):
    module, params = layer
    x = jax.random.normal(jax.random.key(2), (4, INPUTS))
    out = [module.apply(params, x, rngs={NOISE_RNG: jax.random.key(k)}) for k in (0, 0, 1)]
    np.testing.assert_array_equal(out[0], out[1])
    assert not np.allclose(out[0], out[2])
    p = params["params"]
    mean = module.apply(params, x)
    np.testing.assert_allclose(mean, x @ p["kernel"] + p["bias"], rtol=1e-6)
    np.testing.assert_array_equal(mean, module.apply(params, x))  # deterministic
    # Under vmap each seed's key gives its own noise.
    keys = jax.random.split(jax.random.key(3), 2)
    both = jax.vmap(lambda k: module.apply(params, x, rngs={NOISE_RNG: k}))(keys)
    assert not np.allclose(both[0], both[1])


CONFIG = jaxdqn.DQNConfig(
    env_id="CartPole-v1",
    total_timesteps=2_048,
    learning_starts=512,
    buffer_size=1_024,
    batch_size=32,
    exploration_steps=1_024,
    hidden_sizes=(16,),
    noisy=True,
    dueling=True,
    log_interval=512,
)


def test_a_noisy_config_explores_by_its_noise_alone():
    assert CONFIG.resolved_exploration() == "none"
    on = dataclasses.replace(CONFIG, exploration="epsilon_greedy")
    assert on.resolved_exploration() == "epsilon_greedy"
    assert dataclasses.replace(CONFIG, noisy=False).resolved_exploration() == "epsilon_greedy"
    components = jaxdqn.build(CONFIG)
    params = components.q_network.init(jax.random.key(0), jnp.zeros((1, 4)))
    layers = params["params"]
    assert {"kernel", "bias", "kernel_sigma", "bias_sigma"} <= set(layers["Dense_0"])
    assert {"kernel_sigma"} <= set(layers["DuelingHead_0"]["advantage"])


def test_noisy_runs_train_each_seed_with_its_own_noise_and_evaluate_deterministically():
    train = jax.jit(jax.vmap(jaxdqn.make_train(CONFIG)))
    keys = jax.random.split(jax.random.key(0), 2)
    states, metrics = train(keys)
    np.testing.assert_array_equal(metrics["exploration"], 0.0)  # no ε
    assert np.all(np.isfinite(metrics["loss"][:, 1:]))
    sigma = states.params["params"]["Dense_0"]["kernel_sigma"]
    assert not np.allclose(sigma[0], 1 / np.sqrt(4) * 0.5)  # the scales are learned
    # Evaluation plays the mean weights: the learned scales do not change a return.
    one = jax.tree.map(lambda x: x[0], states.params)
    no_noise = jax.tree_util.tree_map_with_path(
        lambda path, x: x * 0 if "sigma" in jax.tree_util.keystr(path) else x, one
    )
    returns = [
        jaxdqn.evaluate(CONFIG, p, jax.random.key(5), num_episodes=8) for p in (one, no_noise)
    ]
    np.testing.assert_array_equal(returns[0], returns[1])
