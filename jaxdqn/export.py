"""``jaxdqn export``: a trained Q-network as a portable ``.npz`` read by pure NumPy."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

import jaxdqn
from jaxdqn.envs import env_spec
from jaxdqn.networks import make_q_network
from jaxdqn.numpy_policy import FORMATS


def export_policy(config, params: Any, path: str | os.PathLike, seed: int | None = None) -> Path:
    """Writes one seed's Q-network for :class:`jaxdqn.numpy_policy.NumpyQPolicy`.

    Args:
      config: the :class:`jaxdqn.DQNConfig` the params were trained with.
      params: flax variables of one seed (no seed axis), as in ``TrainState.params``.
      path: the file to write; must end in ``.npz`` (its folder is created).
      seed: recorded in the metadata.

    Returns:
      The path written.

    Raises:
      ValueError: a path not ending in ``.npz`` (``np.savez`` would append it), or params
        whose layers do not match the config's network.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"path={str(path)!r} is invalid: must end in .npz.")
    obs_shape, obs_dtype, num_actions = env_spec(config.env_id)
    network = type(make_q_network(config)).__name__
    cnn = network == "CNNQNetwork"
    layers = params["params"]
    hidden = len(config.hidden_sizes)
    expected = {f"Dense_{i}" for i in range(hidden)} | ({"Conv_0"} if cnn else set())
    expected |= {f"LayerNorm_{i}" for i in range(hidden)} if config.layer_norm else set()
    expected |= {"DuelingHead_0"} if config.dueling else {f"Dense_{hidden}"}
    if set(layers) != expected:
        raise ValueError(
            f"params have layers {sorted(layers)}; the config's network has {sorted(expected)}."
        )
    arrays = {}
    if cnn:
        arrays["conv_kernel"] = layers["Conv_0"]["kernel"]
        arrays["conv_bias"] = layers["Conv_0"]["bias"]
    for i in range(hidden):
        arrays[f"hidden_{i}_kernel"] = layers[f"Dense_{i}"]["kernel"]
        arrays[f"hidden_{i}_bias"] = layers[f"Dense_{i}"]["bias"]
        if config.layer_norm:
            arrays[f"hidden_{i}_norm_scale"] = layers[f"LayerNorm_{i}"]["scale"]
            arrays[f"hidden_{i}_norm_bias"] = layers[f"LayerNorm_{i}"]["bias"]
    if config.dueling:
        for part in ("value", "advantage"):
            arrays[f"{part}_kernel"] = layers["DuelingHead_0"][part]["kernel"]
            arrays[f"{part}_bias"] = layers["DuelingHead_0"][part]["bias"]
    else:
        arrays["head_kernel"] = layers[f"Dense_{hidden}"]["kernel"]
        arrays["head_bias"] = layers[f"Dense_{hidden}"]["bias"]
    metadata = {
        "format": FORMATS[1] if config.layer_norm else FORMATS[0],
        "env_id": config.env_id,
        "obs_shape": list(obs_shape),
        "obs_dtype": np.dtype(obs_dtype).name,
        "num_actions": int(num_actions),
        "network": "cnn" if cnn else "mlp",
        "num_hidden": hidden,
        "activation": config.activation,
        "dueling": config.dueling,
        "layer_norm": config.layer_norm,
        "seed": seed,
        "jaxdqn_version": jaxdqn.__version__,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        metadata=np.array(json.dumps(metadata)),
        **{k: np.asarray(v, np.float32) for k, v in arrays.items()},
    )
    return path
