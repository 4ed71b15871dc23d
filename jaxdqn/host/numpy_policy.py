"""A greedy Q-network policy in pure NumPy, for files written by ``jaxdqn export``.

This module imports NumPy and the standard library only: copy it next to an exported
``.npz`` and act anywhere, with no JAX installed::

    from numpy_policy import NumpyQPolicy
    policy = NumpyQPolicy.load("policy_seed0.npz")
    action = policy.act(observation)          # one observation -> int
    q_values = policy.q_values(observations)  # [B, *obs_shape] -> [B, num_actions]

The file holds ``metadata`` (a JSON string: format, env id, observation shape, number of
actions, network, activation, dueling, layer_norm), for a CNN ``conv_kernel``
``[3, 3, C, F]`` / ``conv_bias`` (a "valid" 3x3 convolution, stride 1, on
``[B, H, W, C]``), for the Nature CNN ``conv_0`` .. ``conv_2`` (8x8 stride 4, 4x4 stride
2, 3x3 stride 1, on uint8 pixels scaled to [0, 1]), then the dense layers
``hidden_<i>_kernel`` / ``hidden_<i>_bias``
(with ``layer_norm``, then normalised over features with ``hidden_<i>_norm_scale`` /
``hidden_<i>_norm_bias``, ε = 1e-6, before the activation) and either ``head_kernel`` /
``head_bias`` or the dueling pair ``value_*`` and ``advantage_*``. Dense kernels are
``[inputs, outputs]``: ``y = x @ kernel + bias``. A distributional (C51) network has
``num_atoms``, ``v_min`` and ``v_max`` in its metadata: its head gives ``num_atoms``
logits per action (action-major; dueling combines them atom by atom), and the Q-values are
the means of their softmax over ``num_atoms`` evenly spaced atoms from ``v_min`` to
``v_max``.
"""

from __future__ import annotations

import json
import math

import numpy as np

# v2 adds layer norm and v3 distributional heads; a file without them is written as the
# oldest format that holds it, so older readers still load it.
FORMATS = ("jaxdqn-policy-v1", "jaxdqn-policy-v2", "jaxdqn-policy-v3")


def _gelu(x: np.ndarray) -> np.ndarray:  # the tanh approximation, as flax.linen.gelu
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "gelu": _gelu,
    "silu": lambda x: x / (1.0 + np.exp(-x)),
}


# The "valid" convolutions of each network, in order: (array name prefix, stride).
_CONVS = {
    "cnn": (("conv", 1),),
    "nature_cnn": (("conv_0", 4), ("conv_1", 2), ("conv_2", 1)),
}


class NumpyQPolicy:
    """Q-values and greedy actions of an exported Q-network (MLP, MinAtar CNN or Nature
    CNN)."""

    def __init__(self, metadata: dict, arrays: dict[str, np.ndarray]):
        if metadata.get("format") not in FORMATS:
            raise ValueError(f"format {metadata.get('format')!r} is not one of {FORMATS}.")
        self.metadata = metadata
        self.obs_shape = tuple(metadata["obs_shape"])
        self.num_actions = int(metadata["num_actions"])
        self._activation = ACTIVATIONS[metadata["activation"]]
        self._arrays = arrays

    @classmethod
    def load(cls, path) -> NumpyQPolicy:
        """Reads a file written by ``jaxdqn export`` (no pickle)."""
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name]) for name in data.files}
        return cls(json.loads(str(arrays.pop("metadata"))), arrays)

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """float32 ``[B, num_actions]`` for observations ``[B, *obs_shape]`` of any dtype."""
        obs = np.asarray(obs)
        if obs.shape[1:] != self.obs_shape:
            raise ValueError(f"obs shape {obs.shape} is invalid: expected [B, *{self.obs_shape}].")
        x = obs.astype(np.float32)
        if self.metadata["network"] == "nature_cnn" and obs.dtype == np.uint8:
            x = x / 255.0
        for name, stride in _CONVS.get(self.metadata["network"], ()):
            kernel = self._arrays[f"{name}_kernel"]
            windows = np.lib.stride_tricks.sliding_window_view(x, kernel.shape[:2], axis=(1, 2))
            windows = windows[:, ::stride, ::stride]
            x = np.einsum("bhwcij,ijcf->bhwf", windows, kernel) + self._arrays[f"{name}_bias"]
            x = self._activation(x)
        x = x.reshape(x.shape[0], -1)
        a = self._arrays
        for i in range(self.metadata["num_hidden"]):
            x = x @ a[f"hidden_{i}_kernel"] + a[f"hidden_{i}_bias"]
            if self.metadata.get("layer_norm", False):
                mean = x.mean(axis=-1, keepdims=True)
                variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
                x = (x - mean) / np.sqrt(variance + 1e-6)
                x = x * a[f"hidden_{i}_norm_scale"] + a[f"hidden_{i}_norm_bias"]
            x = self._activation(x)
        return self._head(x)

    def _head(self, x: np.ndarray) -> np.ndarray:
        a, atoms = self._arrays, int(self.metadata.get("num_atoms", 1))
        shape = (x.shape[0], self.num_actions, atoms)
        if self.metadata["dueling"]:
            value = (x @ a["value_kernel"] + a["value_bias"])[:, None, :]
            advantage = (x @ a["advantage_kernel"] + a["advantage_bias"]).reshape(shape)
            out = value + advantage - advantage.mean(axis=1, keepdims=True)
        else:
            out = (x @ a["head_kernel"] + a["head_bias"]).reshape(shape)
        if atoms == 1:
            return out[..., 0]
        exp = np.exp(out - out.max(axis=-1, keepdims=True))
        support = np.linspace(self.metadata["v_min"], self.metadata["v_max"], atoms)
        return (exp / exp.sum(axis=-1, keepdims=True) * support).sum(-1).astype(np.float32)

    def act(self, obs: np.ndarray) -> int:
        """The greedy action (lowest index on ties) for one observation ``[*obs_shape]``."""
        return int(np.argmax(self.q_values(np.asarray(obs)[None])[0]))
