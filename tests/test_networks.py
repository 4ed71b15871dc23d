"""Q-networks against a NumPy forward pass written from the parameters."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdqn


def numpy_mlp(params, obs: np.ndarray, dueling: bool, layer_norm: bool = False) -> np.ndarray:
    layers = params["params"]
    x = obs.reshape(obs.shape[0], -1).astype(np.float64)
    dense = sorted((k for k in layers if k.startswith("Dense_")), key=lambda k: int(k[6:]))
    hidden = dense if dueling else dense[:-1]
    for i, name in enumerate(hidden):
        x = x @ np.asarray(layers[name]["kernel"]) + np.asarray(layers[name]["bias"])
        if layer_norm:  # zero mean, unit variance over features, then scale and shift
            norm = layers[f"LayerNorm_{i}"]
            x = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-6)
            x = x * np.asarray(norm["scale"]) + np.asarray(norm["bias"])
        x = np.maximum(x, 0)
    if not dueling:
        last = layers[dense[-1]]
        return x @ np.asarray(last["kernel"]) + np.asarray(last["bias"])
    head = layers["DuelingHead_0"]
    value = x @ np.asarray(head["value"]["kernel"]) + np.asarray(head["value"]["bias"])
    adv = x @ np.asarray(head["advantage"]["kernel"]) + np.asarray(head["advantage"]["bias"])
    return value + adv - adv.mean(axis=1, keepdims=True)


@pytest.mark.parametrize(("dueling", "layer_norm"), [(False, False), (True, False), (True, True)])
def test_mlp_matches_numpy(dueling, layer_norm):
    config = jaxdqn.DQNConfig(
        env_id="Acrobot-v1", hidden_sizes=(16, 8), dueling=dueling, layer_norm=layer_norm
    )
    q_net = jaxdqn.build(config).q_network
    obs = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    params = q_net.init(jax.random.key(0), jnp.asarray(obs))
    # Non-trivial norm parameters, so that scale and shift are checked too.
    params = jax.tree.map(lambda x: x + 0.2 * jax.random.normal(jax.random.key(2), x.shape), params)
    assert ("LayerNorm_1" in params["params"]) == layer_norm
    expected = numpy_mlp(params, obs, dueling, layer_norm)
    q_values = jax.jit(q_net.apply)(params, obs)
    assert q_values.shape == (5, 3) and q_values.dtype == jnp.float32
    np.testing.assert_allclose(q_values, expected, rtol=1e-5, atol=1e-5)
    batched = jax.vmap(q_net.apply, in_axes=(None, 0))(params, obs.reshape(5, 1, 6))
    np.testing.assert_allclose(batched[:, 0], expected, rtol=1e-5, atol=1e-5)


def test_dueling_advantages_average_to_value():
    config = jaxdqn.DQNConfig(env_id="CartPole-v1", hidden_sizes=(8,), dueling=True)
    q_net = jaxdqn.build(config).q_network
    obs = jnp.ones((3, 4))
    params = q_net.init(jax.random.key(1), obs)
    head = params["params"]["DuelingHead_0"]
    head["value"]["bias"] = head["value"]["bias"] + 7.0  # shifts V, and so every Q, by 7
    shifted = q_net.apply(params, obs)
    head["value"]["bias"] = head["value"]["bias"] - 7.0
    np.testing.assert_allclose(shifted - q_net.apply(params, obs), 7.0, rtol=1e-6)


def test_any_observation_shape_is_flattened_and_cast():
    config = jaxdqn.DQNConfig(env_id="CartPole-v1", hidden_sizes=(4,))
    q_net = jaxdqn.build(config).q_network
    obs = jnp.zeros((2, 3, 5), jnp.uint8)
    params = q_net.init(jax.random.key(0), obs)
    assert q_net.apply(params, obs).shape == (2, 2)
    assert params["params"]["Dense_0"]["kernel"].shape == (15, 4)


@pytest.mark.parametrize("field", ["dueling", "layer_norm"])
def test_network_flags_are_validated(field):
    with pytest.raises(ValueError, match=rf"DQNConfig\.{field}='yes' is invalid"):
        dataclasses.replace(jaxdqn.DQNConfig(), **{field: "yes"})


def test_auto_network_picks_cnn_for_images_and_minatar_presets_train():
    import dataclasses

    assert type(jaxdqn.build(jaxdqn.DQNConfig()).q_network).__name__ == "MLPQNetwork"
    for env_id in (
        "Breakout-MinAtar",
        "Asterix-MinAtar",
        "SpaceInvaders-MinAtar",
        "Freeway-MinAtar",
    ):
        config = jaxdqn.get_preset(env_id)
        assert type(jaxdqn.build(config).q_network).__name__ == "CNNQNetwork"
    config = dataclasses.replace(
        jaxdqn.get_preset("Breakout-MinAtar"), total_timesteps=640, learning_starts=320,
        buffer_size=640, log_interval=320, exploration_steps=320, target_update_period=40,
    )  # fmt: skip
    state, metrics = jax.jit(jaxdqn.make_train(config))(jax.random.key(0))
    assert state.replay.rows.data.obs.shape[1:] == (50,)  # 400 bools as bits, not 1,600 bytes
    assert state.replay.rows.data.obs.dtype == jnp.uint8
    assert np.isfinite(metrics["loss"][-1])
