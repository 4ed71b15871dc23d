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
# Noisy layers draw their noise from this rng stream (``apply(..., rngs={NOISE_RNG: key})``);
# applied without it they use their mean weights (greedy evaluation, export).
NOISE_RNG = "noise"


def hidden_name(i: int) -> str:
    """Name of dense hidden layer ``i`` (from the input side)."""
    return f"Dense_{i}"


def norm_name(i: int) -> str:
    """Name of the layer norm of hidden layer ``i``."""
    return f"LayerNorm_{i}"


def head_name(num_hidden: int) -> str:
    """Name of the plain (not dueling) output layer after ``num_hidden`` hidden layers."""
    return hidden_name(num_hidden)


def scaled_noise(key: jax.Array, size: int) -> jax.Array:
    """``f(x) = sign(x) sqrt(|x|)`` of ``size`` standard normal draws, float32 ``[size]``
    (the factorised noise of Fortunato et al. 2018, eq. 11)."""
    x = jax.random.normal(key, (size,), jnp.float32)
    return jnp.sign(x) * jnp.sqrt(jnp.abs(x))


def factorised_noise(key: jax.Array, inputs: int, outputs: int) -> tuple[jax.Array, jax.Array]:
    """Factorised Gaussian noise of a noisy dense layer: ``(ε_w [inputs, outputs],
    ε_b [outputs])`` with ``ε_w = f(ε_in) ⊗ f(ε_out)`` and ``ε_b = f(ε_out)``
    (:func:`scaled_noise`), from ``inputs + outputs`` normal draws."""
    noise = scaled_noise(key, inputs + outputs)  # one draw: each random op costs a kernel
    noise_in, noise_out = noise[:inputs], noise[inputs:]
    return jnp.outer(noise_in, noise_out), noise_out


class NoisyDense(nn.Module):
    """A dense layer with factorised Gaussian noise on its weights (Fortunato et al. 2018).

    ``y = x @ (kernel + kernel_sigma * ε_w) + bias + bias_sigma * ε_b`` with the noise of
    :func:`factorised_noise`, one draw per call, shared by the batch. Means are drawn from
    ``U[-1/√p, 1/√p]`` and every σ starts at ``sigma0 / √p`` (``p`` inputs). Without a
    :data:`NOISE_RNG` stream the layer is the plain dense layer of its mean weights
    (``kernel``, ``bias``). ``[B, p] -> [B, features]``.
    """

    features: int
    sigma0: float = 0.5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        inputs = x.shape[-1]
        bound = inputs**-0.5

        def mean_init(key, shape, dtype=jnp.float32):  # U[-1/√p, 1/√p]
            return jax.random.uniform(key, shape, dtype, -bound, bound)

        sigma_init = nn.initializers.constant(self.sigma0 * bound)
        kernel = self.param("kernel", mean_init, (inputs, self.features))
        bias = self.param("bias", mean_init, (self.features,))
        kernel_sigma = self.param("kernel_sigma", sigma_init, (inputs, self.features))
        bias_sigma = self.param("bias_sigma", sigma_init, (self.features,))
        if self.has_rng(NOISE_RNG):
            noise_w, noise_b = factorised_noise(self.make_rng(NOISE_RNG), inputs, self.features)
            kernel = kernel + kernel_sigma * noise_w
            bias = bias + bias_sigma * noise_b
        return x @ kernel + bias


def dense_layer(features: int, name: str, noisy: bool, sigma0: float) -> nn.Module:
    """A dense layer ``[B, F] -> [B, features]``: a :class:`NoisyDense` or a plain one."""
    if noisy:
        return NoisyDense(features, sigma0, name=name)
    return nn.Dense(features, name=name)


class DuelingHead(nn.Module):
    """``V + A - mean_a A`` from features ``[B, F]`` (Wang et al., 2016): Q-values
    ``[B, num_actions]``, or with ``num_atoms > 1`` logits ``[B, num_actions * num_atoms]``
    combined atom by atom.

    The state value and the action advantages are separate outputs, so small differences
    between actions are learned apart from the (much larger) value they sit on.
    """

    num_actions: int
    num_atoms: int = 1
    noisy: bool = False
    noisy_sigma0: float = 0.5

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        atoms, actions, batch = self.num_atoms, self.num_actions, features.shape[0]
        value = dense_layer(atoms, "value", self.noisy, self.noisy_sigma0)(features)
        advantage = dense_layer(actions * atoms, "advantage", self.noisy, self.noisy_sigma0)
        if atoms == 1:  # [B, 1] and [B, A]
            advantage = advantage(features)
            return value + advantage - jnp.mean(advantage, axis=-1, keepdims=True)
        advantage = advantage(features).reshape(batch, actions, atoms)
        out = value[:, None, :] + advantage - jnp.mean(advantage, axis=1, keepdims=True)
        return out.reshape(batch, actions * atoms)


class QNetwork(nn.Module):
    """The fields every Q-network here shares, its dense layers and its head.

    ``apply(params, obs)`` returns Q-values ``[B, num_actions]``;
    ``apply(params, obs, return_logits=True)`` returns ``(q_values, logits)``, the logits
    ``[B, num_actions, num_atoms]`` of the return distributions over :func:`support`
    (``None`` with ``num_atoms=1``); ``q_values`` are then the distributions' means.
    A noisy network draws fresh noise per call from ``rngs={NOISE_RNG: key}`` and uses its
    mean weights without it.

    Attributes:
      num_actions: actions of the env.
      hidden_sizes: widths of the dense hidden layers.
      activation: one of :data:`ACTIVATIONS`.
      dueling: a dueling head (on the logits when distributional).
      layer_norm: layer-normalise every dense hidden layer before its activation.
      num_atoms: atoms of each action's return distribution (C51, Bellemare et al. 2017);
        1 is one Q-value per action.
      v_min, v_max: the ends of the atoms' evenly spaced support.
      noisy: every dense layer a :class:`NoisyDense` (noisy nets, Fortunato et al. 2018).
      noisy_sigma0: the noisy layers' σ₀.
    """

    num_actions: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "relu"
    dueling: bool = False
    layer_norm: bool = False
    num_atoms: int = 1
    v_min: float = -10.0
    v_max: float = 10.0
    noisy: bool = False
    noisy_sigma0: float = 0.5

    def torso_and_head(self, x: jax.Array, return_logits: bool):
        """The dense hidden layers, then the head, on flat features ``[B, F]``. Each hidden
        layer's activations are sown as ``intermediates/hidden`` (see
        :data:`HIDDEN_COLLECTION`)."""
        act = _ACTIVATIONS[self.activation]
        for i, width in enumerate(self.hidden_sizes):
            x = dense_layer(width, hidden_name(i), self.noisy, self.noisy_sigma0)(x)
            x = act(nn.LayerNorm(name=norm_name(i))(x) if self.layer_norm else x)
            if not self.is_initializing():
                self.sow(HIDDEN_COLLECTION, HIDDEN_NAME, x)
        q_values, logits = self.head(x)
        return (q_values, logits) if return_logits else q_values

    def head(self, x: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        """``(q_values [B, A], logits [B, A, num_atoms] or None)`` from features
        ``[B, F]``."""
        atoms, actions = self.num_atoms, self.num_actions
        if self.dueling:
            head = DuelingHead(actions, atoms, self.noisy, self.noisy_sigma0, name=DUELING_NAME)
        else:
            name = head_name(len(self.hidden_sizes))
            head = dense_layer(actions * atoms, name, self.noisy, self.noisy_sigma0)
        out = head(x)
        if atoms == 1:
            return out, None
        logits = out.reshape(out.shape[0], actions, atoms)
        return jnp.sum(jax.nn.softmax(logits) * support(self), axis=-1), logits


def apply_q(
    network: nn.Module,
    params: Any,
    obs: jax.Array,
    noise_key: jax.Array | None = None,
    return_logits: bool = False,
):
    """``network`` on ``obs`` ``[B, ...]``: Q-values ``[B, A]`` (with ``return_logits``,
    ``(q_values, logits [B, A, num_atoms])``), a noisy network's noise drawn from
    ``noise_key`` (``None``: its mean weights)."""
    rngs = None if noise_key is None else {NOISE_RNG: noise_key}
    if return_logits:
        return network.apply(params, obs, return_logits=True, rngs=rngs)
    return network.apply(params, obs, rngs=rngs)


def is_noisy(network: nn.Module) -> bool:
    """Whether ``network`` has noisy layers (and so draws noise when given a key)."""
    return bool(getattr(network, "noisy", False))


def is_distributional(network: nn.Module) -> bool:
    """Whether ``network`` has a distributional (C51) head."""
    return getattr(network, "num_atoms", 1) > 1


def support(network: QNetwork) -> jax.Array:
    """The atoms of a distributional network's return distributions, float32
    ``[num_atoms]``: ``num_atoms`` evenly spaced values from ``v_min`` to ``v_max``."""
    return jnp.linspace(network.v_min, network.v_max, network.num_atoms, dtype=jnp.float32)


class MLPQNetwork(QNetwork):
    """A multilayer perceptron mapping observations to one Q-value per action.

    ``apply(params, obs)`` takes ``obs`` of shape ``[B, *obs_shape]`` in any dtype,
    flattens it to ``[B, prod(obs_shape)]`` as float32 and returns ``[B, num_actions]``
    (:class:`QNetwork` has the logits of a distributional head).
    """

    @nn.compact
    def __call__(self, obs: jax.Array, return_logits: bool = False):
        x = obs.reshape((obs.shape[0], -1)).astype(jnp.float32)
        return self.torso_and_head(x, return_logits)


class CNNQNetwork(QNetwork):
    """The MinAtar paper's Q-network (Young & Tian 2019): one 3x3 convolution with 16
    channels (stride 1, no padding) and ReLU, then dense layers (``hidden_sizes``,
    ``(128,)`` in the paper) and the head.

    ``apply(params, obs)`` takes ``obs`` of shape ``[B, H, W, C]`` in any dtype (MinAtar's
    are bool), casts it to float32 and returns ``[B, num_actions]``.
    """

    hidden_sizes: Sequence[int] = (128,)
    channels: int = 16

    @nn.compact
    def __call__(self, obs: jax.Array, return_logits: bool = False):
        x = obs.astype(jnp.float32)
        act = _ACTIVATIONS[self.activation]
        x = act(nn.Conv(self.channels, (3, 3), strides=1, padding="VALID", name=CONV_NAME)(x))
        return self.torso_and_head(x.reshape((x.shape[0], -1)), return_logits)


class NatureCNNQNetwork(QNetwork):
    """The Nature DQN's Q-network (Mnih et al. 2015) for Atari frames: convolutions of 32
    8x8 filters (stride 4), 64 4x4 (stride 2) and 64 3x3 (stride 1), "valid" padding and
    ReLU, then dense layers (``hidden_sizes``, ``(512,)`` in the paper) and the head.

    ``apply(params, obs)`` takes ``obs`` of shape ``[B, H, W, C]`` (84x84x4 stacked grey
    frames); uint8 pixels are scaled to [0, 1], other dtypes are cast to float32 as they
    are. Returns ``[B, num_actions]``.
    """

    hidden_sizes: Sequence[int] = (512,)

    @nn.compact
    def __call__(self, obs: jax.Array, return_logits: bool = False):
        x = obs.astype(jnp.float32)
        x = x / 255.0 if obs.dtype == jnp.uint8 else x
        act = _ACTIVATIONS[self.activation]
        for i, (features, size, stride) in enumerate(NATURE_CONVS):
            conv = nn.Conv(features, (size, size), stride, padding="VALID", name=f"Conv_{i}")
            x = act(conv(x))
        return self.torso_and_head(x.reshape((x.shape[0], -1)), return_logits)


def make_q_network(
    spec: EnvSpec,
    *,
    network: str = "auto",
    hidden_sizes: Sequence[int] = (64, 64),
    activation: str = "relu",
    dueling: bool = False,
    layer_norm: bool = False,
    num_atoms: int = 1,
    v_min: float = -10.0,
    v_max: float = 10.0,
    noisy: bool = False,
    noisy_sigma0: float = 0.5,
) -> QNetwork:
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
      num_atoms: atoms per action of a distributional (C51) head, >= 2; 1 is one
        Q-value per action.
      v_min, v_max: the support of the atoms, ``v_min < v_max``.
      noisy: noisy dense layers (:class:`NoisyDense`).
      noisy_sigma0: their σ₀, > 0.

    Returns:
      A :class:`QNetwork`; ``.init(key, obs_batch)`` and ``.apply(params, obs_batch)``
      with ``obs_batch`` of shape ``[B, *obs_shape]`` give Q-values ``[B, num_actions]``.

    Raises:
      ValueError: naming the argument, for an unknown choice, a CNN on observations
        that are not images, or a bad support or σ₀.

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
    _check_head(num_atoms, v_min, v_max, noisy_sigma0)
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
        num_atoms=num_atoms,
        v_min=float(v_min),
        v_max=float(v_max),
        noisy=noisy,
        noisy_sigma0=float(noisy_sigma0),
    )


def _check_head(num_atoms: int, v_min: float, v_max: float, noisy_sigma0: float) -> None:
    if not isinstance(num_atoms, int) or isinstance(num_atoms, bool) or num_atoms < 1:
        raise ValueError(f"num_atoms={num_atoms!r} is invalid: must be an integer >= 1.")
    if num_atoms > 1 and not v_min < v_max:
        raise ValueError(f"v_min={v_min!r}, v_max={v_max!r} are invalid: need v_min < v_max.")
    if not noisy_sigma0 > 0:
        raise ValueError(f"noisy_sigma0={noisy_sigma0!r} is invalid: must be > 0.")


def portable_arrays(network: nn.Module, params: Any) -> dict[str, jax.Array]:
    """The layers of a Q-network's ``params`` (one seed) under portable names, read by
    :class:`jaxdqn.host.numpy_policy.NumpyQPolicy`.

    ``conv_kernel/bias`` (CNN), ``conv_<j>_kernel/bias`` (Nature CNN),
    ``hidden_<i>_kernel/bias``, ``hidden_<i>_norm_scale/bias`` (layer norm), then
    ``value_*`` and ``advantage_*`` (dueling) or ``head_*``. A distributional head's
    outputs are ``num_actions * num_atoms`` logits, action-major. A noisy layer gives its
    mean weights (its σs are left out): the policy of greedy evaluation.

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
                arrays |= _mean_weights(part, layers[layer][part])
        else:
            arrays |= _mean_weights(portable, layers[layer])
    return arrays


def _mean_weights(portable: str, layer: dict) -> dict[str, jax.Array]:
    """A layer's arrays under ``<portable>_<name>``, without a noisy layer's σs."""
    return {f"{portable}_{k}": v for k, v in layer.items() if not k.endswith("_sigma")}
