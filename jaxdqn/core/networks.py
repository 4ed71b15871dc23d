"""Q-networks (flax linen) behind :func:`make_q_network`, and their layers as named arrays
for export (:func:`portable_arrays`).

Every layer is named explicitly (:func:`hidden_name`, :func:`norm_name`, ...), so a
network's parameter tree, and the files written from it, are fixed by this module and not
by flax's naming of unnamed submodules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdqn.envs import EnvSpec

NETWORKS = ("auto", "mlp", "cnn", "nature_cnn")
_ACTIVATIONS = {"relu": nn.relu, "tanh": nn.tanh, "gelu": nn.gelu, "silu": nn.silu}
ACTIVATIONS = tuple(_ACTIVATIONS)
CONV_NAME = "Conv_0"  # the CNN's convolution
# The Nature CNN's convolutions (Mnih et al. 2015): (features, kernel size, stride).
NATURE_CONVS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))
DUELING_NAME = "DuelingHead_0"  # the dueling head, with Dense children "value", "advantage"
# A Q-network may sow each dense hidden layer's activations [B, U] under this collection
# and name, in order from the input; the loop's health signals read them
# (``apply(params, obs, mutable=[HIDDEN_COLLECTION])``). Networks that do not get NaN
# dormant-unit and rank signals.
HIDDEN_COLLECTION = "intermediates"
HIDDEN_NAME = "hidden"


def hidden_name(i: int) -> str:
    """Name of dense hidden layer ``i`` (from the input side)."""
    return f"Dense_{i}"


def norm_name(i: int) -> str:
    """Name of the layer norm of hidden layer ``i``."""
    return f"LayerNorm_{i}"


def head_name(num_hidden: int) -> str:
    """Name of the plain (not dueling) output layer after ``num_hidden`` hidden layers."""
    return hidden_name(num_hidden)


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


def _hidden_layers(
    module: nn.Module, x: jax.Array, sizes: Sequence[int], activation: str, layer_norm: bool
):
    """Dense layers ``[B, F] -> [B, sizes[-1]]``, each optionally layer-normalised before
    its activation. Each layer's activations are sown as ``intermediates/hidden`` (see
    :data:`HIDDEN_COLLECTION`)."""
    act = _ACTIVATIONS[activation]
    for i, width in enumerate(sizes):
        x = nn.Dense(width, name=hidden_name(i))(x)
        x = act(nn.LayerNorm(name=norm_name(i))(x) if layer_norm else x)
        if not module.is_initializing():
            module.sow(HIDDEN_COLLECTION, HIDDEN_NAME, x)
    return x


def _head(x: jax.Array, num_actions: int, num_hidden: int, dueling: bool) -> jax.Array:
    """Q-values ``[B, num_actions]`` from the last hidden features ``[B, F]``."""
    if dueling:
        return DuelingHead(num_actions, name=DUELING_NAME)(x)
    return nn.Dense(num_actions, name=head_name(num_hidden))(x)


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
        x = _hidden_layers(self, x, self.hidden_sizes, self.activation, self.layer_norm)
        return _head(x, self.num_actions, len(self.hidden_sizes), self.dueling)


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
        x = act(nn.Conv(self.channels, (3, 3), strides=1, padding="VALID", name=CONV_NAME)(x))
        x = x.reshape((x.shape[0], -1))
        x = _hidden_layers(self, x, self.hidden_sizes, self.activation, self.layer_norm)
        return _head(x, self.num_actions, len(self.hidden_sizes), self.dueling)


class NatureCNNQNetwork(nn.Module):
    """The Nature DQN's Q-network (Mnih et al. 2015) for Atari frames: convolutions of 32
    8x8 filters (stride 4), 64 4x4 (stride 2) and 64 3x3 (stride 1), "valid" padding and
    ReLU, then dense layers (``hidden_sizes``, ``(512,)`` in the paper) and the head.

    ``apply(params, obs)`` takes ``obs`` of shape ``[B, H, W, C]`` (84x84x4 stacked grey
    frames); uint8 pixels are scaled to [0, 1], other dtypes are cast to float32 as they
    are. Returns ``[B, num_actions]``.
    """

    num_actions: int
    hidden_sizes: Sequence[int] = (512,)
    activation: str = "relu"
    dueling: bool = False
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.astype(jnp.float32)
        x = x / 255.0 if obs.dtype == jnp.uint8 else x
        act = _ACTIVATIONS[self.activation]
        for i, (features, size, stride) in enumerate(NATURE_CONVS):
            conv = nn.Conv(features, (size, size), stride, padding="VALID", name=f"Conv_{i}")
            x = act(conv(x))
        x = x.reshape((x.shape[0], -1))
        x = _hidden_layers(self, x, self.hidden_sizes, self.activation, self.layer_norm)
        return _head(x, self.num_actions, len(self.hidden_sizes), self.dueling)


def make_q_network(
    spec: EnvSpec,
    *,
    network: str = "auto",
    hidden_sizes: Sequence[int] = (64, 64),
    activation: str = "relu",
    dueling: bool = False,
    layer_norm: bool = False,
) -> nn.Module:
    """A Q-network sized for an environment.

    Args:
      spec: the environment's :class:`jaxdqn.envs.EnvSpec` (observation shape, actions).
      network: ``"cnn"`` (:class:`CNNQNetwork`, image observations ``[H, W, C]``),
        ``"nature_cnn"`` (:class:`NatureCNNQNetwork`, Atari frames), ``"mlp"``
        (:class:`MLPQNetwork`) or ``"auto"`` (the CNN for image observations,
        else the MLP).
      hidden_sizes: widths of the dense hidden layers (after the convolution for a CNN).
      activation: one of :data:`ACTIVATIONS`.
      dueling: a dueling head, ``Q = V + A - mean(A)``.
      layer_norm: layer-normalise every dense hidden layer before its activation.

    Returns:
      A flax module; ``.init(key, obs_batch)`` and ``.apply(params, obs_batch)`` with
      ``obs_batch`` of shape ``[B, *obs_shape]`` give Q-values ``[B, num_actions]``.

    Raises:
      ValueError: naming the argument, for an unknown choice or a CNN on observations
        that are not images.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxdqn
      >>> spec = jaxdqn.bind_env("CartPole-v1").spec
      >>> q_net = jaxdqn.make_q_network(spec, hidden_sizes=(64, 64))
      >>> params = q_net.init(jax.random.key(0), jnp.zeros((1, 4)))
      >>> q_net.apply(params, jnp.zeros((32, 4))).shape
      (32, 2)
    """
    if network not in NETWORKS:
        raise ValueError(f"network={network!r} is invalid: must be one of {', '.join(NETWORKS)}.")
    if activation not in _ACTIVATIONS:
        raise ValueError(
            f"activation={activation!r} is invalid: must be one of {', '.join(ACTIVATIONS)}."
        )
    image = len(spec.obs_shape) == 3
    if network in ("cnn", "nature_cnn") and not image:
        raise ValueError(
            f"network={network!r} needs image observations [height, width, channels]; the "
            f"env observes {list(spec.obs_shape)}."
        )
    if network == "nature_cnn":
        module = NatureCNNQNetwork
    elif network == "cnn" or (network == "auto" and image):
        module = CNNQNetwork
    else:
        module = MLPQNetwork
    return module(
        num_actions=spec.num_actions,
        hidden_sizes=tuple(hidden_sizes),
        activation=activation,
        dueling=dueling,
        layer_norm=layer_norm,
    )


def portable_arrays(network: nn.Module, params: Any) -> dict[str, jax.Array]:
    """The layers of a Q-network's ``params`` (one seed) under portable names, read by
    :class:`jaxdqn.host.numpy_policy.NumpyQPolicy`.

    ``conv_kernel/bias`` (CNN), ``conv_<j>_kernel/bias`` (Nature CNN),
    ``hidden_<i>_kernel/bias``, ``hidden_<i>_norm_scale/bias`` (layer norm), then
    ``value_*`` and ``advantage_*`` (dueling) or ``head_*``.

    Raises:
      ValueError: if the params' layers are not the network's.
    """
    layers = params["params"]
    hidden = len(network.hidden_sizes)
    names = {hidden_name(i): f"hidden_{i}" for i in range(hidden)}
    if network.layer_norm:
        names |= {norm_name(i): f"hidden_{i}_norm" for i in range(hidden)}
    if isinstance(network, CNNQNetwork):
        names[CONV_NAME] = "conv"
    elif isinstance(network, NatureCNNQNetwork):
        names |= {f"Conv_{j}": f"conv_{j}" for j in range(len(NATURE_CONVS))}
    names |= {DUELING_NAME: None} if network.dueling else {head_name(hidden): "head"}
    if set(layers) != set(names):
        raise ValueError(f"params have layers {sorted(layers)}; the network has {sorted(names)}.")
    arrays = {}
    for layer, portable in names.items():
        if portable is None:  # the dueling head: its value and advantage layers
            for part in ("value", "advantage"):
                arrays |= {f"{part}_{k}": v for k, v in layers[layer][part].items()}
        else:
            arrays |= {f"{portable}_{k}": v for k, v in layers[layer].items()}
    return arrays
