"""Spreading a batch of seeds over devices: every GPU of a host, or every CPU core.

A vmapped run is one program whose arrays all lead with the seed axis. Given inputs
placed with :func:`seed_sharding` and the program wrapped by :func:`on_each_device`,
every device trains its own seeds, with no communication between them.

On a multi-core CPU, JAX shows a single CPU device unless ``JAX_NUM_CPU_DEVICES`` is set
before JAX starts. A single device runs a program's operations on a thread pool shared by
the cores, and for the many small operations of a DQN step, handing them between threads
costs more than it gains; with ``JAX_NUM_CPU_DEVICES`` set to the core count each core
trains its share of the seeds (the README's "every core" section has the measurements).
``jaxdqn train`` sets it (:mod:`jaxdqn.host.startup`; from Python, ``jaxdqn.prepare_jax``),
and the CLI, the benchmarks and the learning tests spread their seeds this way whenever
more than one device is visible.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

SEED_AXIS = "seeds"


def seed_sharding(num_seeds: int, devices: list[jax.Device] | None = None) -> NamedSharding:
    """How to place arrays ``[num_seeds, ...]`` so that ``jax.jit`` splits the seeds.

    The seed axis is split evenly over the largest number of ``devices`` that divides
    ``num_seeds`` (8 seeds on 3 devices: 2 devices of 4 seeds), so every device runs the
    same program on the same number of seeds.

    Args:
      num_seeds: the length of the leading seed axis, >= 1.
      devices: default ``jax.local_devices()`` (the default backend's devices).

    Returns:
      A ``NamedSharding`` over a one-axis mesh named :data:`SEED_AXIS`. Pass it to
      ``jax.device_put`` for the keys (the outputs of a jitted vmapped function follow) or
      as ``out_shardings``: it applies to every leaf of a vmapped state or metrics tree.

    Raises:
      ValueError: if ``num_seeds`` is not a positive int or ``devices`` is empty.
    """
    if isinstance(num_seeds, bool) or not isinstance(num_seeds, int | np.integer):
        raise ValueError(f"num_seeds={num_seeds!r} must be an int >= 1.")
    if num_seeds < 1:
        raise ValueError(f"num_seeds={num_seeds} must be >= 1.")
    devices = jax.local_devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices=[] is empty: give at least one device.")
    used = max(d for d in range(1, len(devices) + 1) if num_seeds % d == 0)
    mesh = Mesh(np.array(devices[:used]), (SEED_AXIS,))
    return NamedSharding(mesh, PartitionSpec(SEED_AXIS))


def on_each_device(fn: Callable, sharding: NamedSharding) -> Callable:
    """``fn`` run by every device of ``sharding`` on its own seeds, nothing crossing devices.

    ``jax.jit(jax.vmap(train), out_shardings=sharding)`` alone partitions one program over
    the devices, and every reduction over the seed axis inside it (the loop's branch taken
    once for all seeds, :mod:`jaxdqn.core.lockstep`; an evaluation's wait for the last
    episode) becomes a collective: the devices wait for each other at every env step.
    Under ``jax.shard_map`` each device runs the program of its own seeds instead: the
    computation of one device training those seeds alone.

    Args:
      fn: a function of arrays (pytrees) that all lead with the seed axis and returns
        such arrays, e.g. ``jax.vmap(train)``.
      sharding: from :func:`seed_sharding`.

    Returns:
      ``fn`` mapped over the sharding's devices (``fn`` itself for one device); jit it.

    Examples:
      >>> sharding = jaxdqn.seed_sharding(16)
      >>> keys = jax.device_put(jax.random.split(jax.random.key(0), 16), sharding)
      >>> train = jax.jit(on_each_device(jax.vmap(jaxdqn.make_train(config)), sharding))
      >>> states, metrics = train(keys)  # each device trains 16 / devices seeds
    """
    if sharding.num_devices == 1:
        return fn
    spec = PartitionSpec(SEED_AXIS)
    # No collectives inside: every value is per device, so the varying-axis check has
    # nothing to find (and would ask for casts in every scan carry).
    return jax.shard_map(fn, mesh=sharding.mesh, in_specs=spec, out_specs=spec, check_vma=False)


def cores_hint(platform_name: str, num_devices: int, num_seeds: int, cores: int) -> str | None:
    """The tip to print when several seeds would train on one CPU device of a multi-core
    host (JAX's default), where ``JAX_NUM_CPU_DEVICES`` would give each core its seeds."""
    if platform_name != "cpu" or num_devices > 1 or num_seeds < 2 or cores < 2:
        return None
    return (
        f"jaxdqn: tip: JAX sees one CPU device on {cores} cores; run with "
        f"JAX_NUM_CPU_DEVICES={cores} to train the seeds on every core (see jaxdqn.host.devices)."
    )
