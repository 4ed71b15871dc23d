"""``jaxdqn export``: a trained Q-network as a portable ``.npz`` read by pure NumPy."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

import jaxdqn
from jaxdqn.core.networks import CNNQNetwork, NatureCNNQNetwork, portable_arrays
from jaxdqn.dqn import bind_config_env, q_network_for
from jaxdqn.host.numpy_policy import FORMATS


def export_policy(
    config,
    params: Any,
    path: str | os.PathLike,
    seed: int | None = None,
    *,
    env: Any = None,
    env_params: Any = None,
) -> Path:
    """Writes one seed's Q-network for :class:`jaxdqn.host.numpy_policy.NumpyQPolicy`.

    Args:
      config: the :class:`jaxdqn.DQNConfig` the params were trained with.
      params: flax variables of one seed (no seed axis), as in ``TrainState.params``.
      path: the file to write; must end in ``.npz`` (its folder is created).
      seed: recorded in the metadata.
      env, env_params: the environment trained on, as for :func:`jaxdqn.make_train`
        (default: ``config.env_id``).

    Returns:
      The path written.

    Raises:
      ValueError: a path not ending in ``.npz`` (``np.savez`` would append it), or params
        whose layers do not match the config's network.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"path={str(path)!r} is invalid: must end in .npz.")
    spec = bind_config_env(config, env, env_params).spec
    network = q_network_for(config, spec)
    arrays = portable_arrays(network, params)
    metadata = {
        "format": FORMATS[2 if config.distributional else 1 if config.layer_norm else 0],
        "env_id": config.env_id,
        "obs_shape": list(spec.obs_shape),
        "obs_dtype": np.dtype(spec.obs_dtype).name,
        "num_actions": spec.num_actions,
        "network": _network_name(network),
        "num_hidden": len(config.hidden_sizes),
        "activation": config.activation,
        "dueling": config.dueling,
        "layer_norm": config.layer_norm,
        **_support(config),
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


def _network_name(network) -> str:
    """The ``network`` of the metadata: ``"cnn"``, ``"nature_cnn"`` or ``"mlp"``."""
    if isinstance(network, CNNQNetwork):
        return "cnn"
    return "nature_cnn" if isinstance(network, NatureCNNQNetwork) else "mlp"


def _support(config) -> dict:
    """The atoms of a distributional head (metadata ``num_atoms``, ``v_min``, ``v_max``)."""
    if not config.distributional:
        return {}
    return {"num_atoms": config.num_atoms, "v_min": config.v_min, "v_max": config.v_max}
