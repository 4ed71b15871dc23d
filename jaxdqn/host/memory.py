"""How much device memory a run needs, known before anything is compiled."""

from __future__ import annotations

import math
import os

import jax
import numpy as np

from jaxdqn.core.types import is_prng_key
from jaxdqn.dqn import make_trainer
from jaxdqn.host.devices import seed_sharding


def _nbytes(tree) -> int:
    return sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def state_bytes(config, trainer=None) -> int:
    """Bytes of one seed's ``TrainState`` (replay buffer, params, optimizer, envs).

    Computed from shapes alone (``jax.eval_shape`` of ``trainer.init``, default
    ``make_trainer(config)``): nothing is compiled or allocated.
    """
    trainer = make_trainer(config) if trainer is None else trainer
    shapes = jax.eval_shape(trainer.init, jax.random.key(0))
    return _nbytes(jax.tree.map(_key_as_data, shapes))


def transition_bytes(config) -> float:
    """Bytes the replay memory takes per stored transition: one row (observation in its
    native dtype or as bits, action, reward, end flags) plus its share of the final
    observations of truncated steps and of the newest next observations
    (:mod:`jaxdqn.core.replay`).
    The priorities of prioritized replay are not counted (float32 per row, plus the sum
    tree's sums: about 4.3 bytes per row); :func:`state_bytes` counts everything."""
    return _nbytes(_replay_shapes(config)._replace(priorities=None)) / config.buffer_size


def row_bytes(config) -> int:
    """Bytes of one observation as the rows keep it (its native dtype; a boolean one as
    bits, eight to a byte) plus the scalar fields of a transition: the least any layout
    that keeps every transition can take per transition."""
    return _nbytes(_replay_shapes(config).rows.data) // config.buffer_size


def pairs_f32_transition_bytes(config) -> int:
    """Bytes per transition of the common layout that stores ``obs`` and ``next_obs`` as
    float32 beside the same scalar fields, for comparison with :func:`transition_bytes`."""
    replay = _replay_shapes(config)
    scalars = _nbytes(replay.rows.data._replace(obs=())) // config.buffer_size
    return scalars + 2 * 4 * math.prod(replay.next_obs.shape[1:])


def _replay_shapes(config):
    return jax.eval_shape(make_trainer(config).init, jax.random.key(0)).replay


def _key_as_data(x):
    if is_prng_key(x):
        return jax.eval_shape(jax.random.key_data, x)
    return x


def device_memory_bytes(device: jax.Device | None = None) -> int | None:
    """Memory a run can use on ``device``: the accelerator's limit, or on a CPU the
    host's available memory; ``None`` when neither is known."""
    device = device or jax.local_devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(
    config,
    num_seeds: int,
    device: jax.Device | None = None,
    trainer=None,
    one_device: bool = False,
) -> int:
    """Raises before compiling if ``num_seeds`` states of ``config`` cannot fit.

    The seeds are spread as :func:`jaxdqn.seed_sharding` spreads them. Accelerators each
    have their own memory, so the check is per device: the seeds one device holds against
    its free memory. CPU devices share the host's memory, so there all seeds count.

    Args:
      config: a :class:`jaxdqn.DQNConfig`.
      num_seeds: seeds trained together (``jax.vmap``).
      device: the device to check; default ``jax.local_devices()[0]``.
      trainer: ``make_trainer(config)`` where the caller has it (else it is built).
      one_device: every seed goes on one device (an env outside JAX, such as EnvPool's).

    Returns:
      The bytes the states need on the most loaded device (on a CPU: in all).

    Raises:
      ValueError: naming the bytes needed, where they go and what the device has.
    """
    device = device or jax.local_devices()[0]
    per_seed = state_bytes(config, trainer)
    spread_out = device.platform != "cpu" and not one_device
    devices = seed_sharding(num_seeds).num_devices if spread_out else 1
    seeds_here = num_seeds // devices
    needed = seeds_here * per_seed
    available = device_memory_bytes(device)
    if available is not None and needed > 0.9 * available:
        per_row = transition_bytes(config)
        spread = "" if devices == 1 else f" ({seeds_here} on each of {devices} devices)"
        raise ValueError(
            f"{num_seeds} seeds{spread} x {per_seed / 2**20:,.1f} MiB of state "
            f"per seed need {needed / 2**30:,.2f} GiB, more than 90% of the "
            f"{available / 2**30:,.2f} GiB free on {device.device_kind}. The replay buffer "
            f"takes {config.buffer_size:,} x {per_row:,.1f} bytes per seed: lower buffer_size "
            f"or the seed count (at most {devices * int(0.9 * available // per_seed):,} "
            "seeds fit)."
        )
    return needed
