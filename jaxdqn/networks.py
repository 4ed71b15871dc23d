"""Q-networks (flax linen) behind :func:`make_q_network`."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdqn.envs import env_spec

_ACTIVATIONS = {"relu": nn.relu, "tanh": nn.tanh, "gelu": nn.gelu, "silu": nn.silu}


class DuelingHead(nn.Module):
    """``Q = V + A - mean_a A`` from features ``[B, F]`` (Wang et al., 2016).

    The state value and the action advantages are separate outputs, so small differences
    between actions are learned apart from the (much larger) value they sit on.
    """

    num_actions: int

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        value = nn.Dense(1, name="value")(features)  # [B, 1]
        advantage = nn.Dense(self.num_actions, name="advantage")(features)  # [B, A]
        return value + advantage - jnp.mean(advantage, axis=-1, keepdims=True)


def _hidden_layers(x: jax.Array, sizes: Sequence[int], activation: str, layer_norm: bool):
    """Dense layers ``[B, F] -> [B, sizes[-1]]``, each optionally layer-normalised before
    its activation."""
    act = _ACTIVATIONS[activation]
    for width in sizes:
        x = nn.Dense(width)(x)
        x = act(nn.LayerNorm()(x) if layer_norm else x)
    return x


class MLPQNetwork(nn.Module):
    """A multilayer perceptron mapping observations to one Q-value per action.

    ``apply(params, obs)`` takes ``obs`` of shape ``[B, *obs_shape]`` in any dtype,
    flattens it to ``[B, prod(obs_shape)]`` as float32 and returns ``[B, num_actions]``.
    With ``layer_norm=True`` every hidden layer is layer-normalised before its
    activation; with ``dueling=True`` the last layer is a :class:`DuelingHead`.
    """

    num_actions: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "relu"
    dueling: bool = False
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.reshape((obs.shape[0], -1)).astype(jnp.float32)
        x = _hidden_layers(x, self.hidden_sizes, self.activation, self.layer_norm)
        if self.dueling:
            return DuelingHead(self.num_actions)(x)
        return nn.Dense(self.num_actions)(x)


class CNNQNetwork(nn.Module):
    """The MinAtar paper's Q-network (Young & Tian 2019): one 3x3 convolution with 16
    channels (stride 1, no padding) and ReLU, then dense layers (``hidden_sizes``,
    ``(128,)`` in the paper) and the head.

    ``apply(params, obs)`` takes ``obs`` of shape ``[B, H, W, C]`` in any dtype (MinAtar's
    are bool), casts it to float32 and returns ``[B, num_actions]``. ``layer_norm``
    normalises the dense hidden layers, as in :class:`MLPQNetwork`.
    """

    num_actions: int
    hidden_sizes: Sequence[int] = (128,)
    activation: str = "relu"
    dueling: bool = False
    layer_norm: bool = False
    channels: int = 16

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.astype(jnp.float32)
        act = _ACTIVATIONS[self.activation]
        x = act(nn.Conv(self.channels, (3, 3), strides=1, padding="VALID")(x))
        x = x.reshape((x.shape[0], -1))
        x = _hidden_layers(x, self.hidden_sizes, self.activation, self.layer_norm)
        if self.dueling:
            return DuelingHead(self.num_actions)(x)
        return nn.Dense(self.num_actions)(x)


def make_q_network(config) -> nn.Module:
    """The Q-network of a config, sized for its environment.

    Args:
      config: a :class:`jaxdqn.DQNConfig`.

    ``config.network`` picks :class:`CNNQNetwork` or :class:`MLPQNetwork` (``"auto"``: the
    CNN for image observations ``[H, W, C]``, else the MLP).

    Returns:
      A flax module; ``.init(key, obs_batch)`` and ``.apply(params, obs_batch)`` with
      ``obs_batch`` of shape ``[B, *obs_shape]`` give Q-values ``[B, num_actions]``.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxdqn
      >>> config = jaxdqn.DQNConfig(env_id="CartPole-v1")
      >>> q_net = jaxdqn.make_q_network(config)
      >>> params = q_net.init(jax.random.key(0), jnp.zeros((1, 4)))
      >>> q_net.apply(params, jnp.zeros((32, 4))).shape
      (32, 2)
    """
    obs_shape, _, num_actions = env_spec(config.env_id)
    kind = config.network
    if kind == "auto":
        kind = "cnn" if len(obs_shape) == 3 else "mlp"
    if kind == "cnn":  # DQNConfig checked that the observations are images
        return CNNQNetwork(
            num_actions=num_actions,
            hidden_sizes=tuple(config.hidden_sizes),
            activation=config.activation,
            dueling=config.dueling,
            layer_norm=config.layer_norm,
        )
    return MLPQNetwork(
        num_actions=num_actions,
        hidden_sizes=tuple(config.hidden_sizes),
        activation=config.activation,
        dueling=config.dueling,
        layer_norm=config.layer_norm,
    )
