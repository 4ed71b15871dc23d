"""One run's seeds trained by several processes, on one machine or many.

The processes join through ``jax.distributed`` (gloo collectives on CPU, NCCL on GPU) and
run the run's one program together: its seed axis is split over every process's devices
(:func:`jaxdqn.host.devices.seed_sharding` over ``jax.devices()``), so each process
computes its share of the seeds (:meth:`ProcessGroup.share`, a contiguous block) with the
same keys and the same partitioned program as one process holding all those devices.
Seeds are independent, so the program has no collectives; the processes meet only where
the driver asks: process 0 makes the run folder and hands its name to the others
(:func:`broadcast_text`), every process reaches each checkpoint before any saves it, and
at the end every process writes its seeds' results before process 0 merges them
(:func:`barrier`). A process reads and writes only its own rows (:func:`local_rows`).

The run folder must be on a filesystem every process sees (NFS, Lustre, or one machine's
disk): each process appends its own seeds' metric files and keeps its own checkpoints
under ``checkpoints/process-<i>/``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding

from jaxdqn.core.types import is_prng_key

_TEXT_BYTES = 4096  # longest text broadcast_text carries (a path, PATH_MAX on Linux)


@dataclasses.dataclass(frozen=True)
class ProcessGroup:
    """The processes that train one run together, and which of them this one is."""

    count: int = 1
    index: int = 0

    def __post_init__(self):
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"num_processes={self.count!r} is invalid: must be an int >= 1.")
        if not isinstance(self.index, int) or not 0 <= self.index < self.count:
            raise ValueError(
                f"process_id={self.index!r} is invalid: must be in 0..{self.count - 1} "
                f"(num_processes={self.count})."
            )

    @property
    def writes_shared_files(self) -> bool:
        """Whether this process writes the run's shared files (process 0 does)."""
        return self.index == 0

    def share(self, seeds: list[int]) -> list[int]:
        """This process's seeds: ``seeds`` cut into ``count`` contiguous blocks in order,
        the first ``len(seeds) % count`` of them one seed longer.

        Raises:
          ValueError: fewer seeds than processes (a process would train nothing).
        """
        if len(seeds) < self.count:
            raise ValueError(
                f"--seeds {len(seeds)} is invalid with --num-processes {self.count}: every "
                "process trains at least one seed."
            )
        base, extra = divmod(len(seeds), self.count)
        start = self.index * base + min(self.index, extra)
        return list(seeds[start : start + base + (self.index < extra)])


ONE_PROCESS = ProcessGroup()  # a run trained by this process alone


def join_processes(
    num_processes: int | None, process_id: int | None, coordinator: str | None
) -> ProcessGroup:
    """Joins this process to the others through ``jax.distributed.initialize``; call it
    before the first JAX computation.

    With all three ``None``, JAX detects the cluster (a SLURM job step, Open MPI's
    ``mpirun``) and reads them from its environment.

    Args:
      num_processes: the processes of the run, >= 1.
      process_id: this process's index, ``0 <= process_id < num_processes``.
      coordinator: ``HOST:PORT`` where process 0 listens, reachable from every process.

    Returns:
      The :class:`ProcessGroup` JAX reports once every process has joined.
    """
    jax.distributed.initialize(coordinator, num_processes, process_id)
    return ProcessGroup(jax.process_count(), jax.process_index())


def barrier(group: ProcessGroup, name: str) -> None:
    """Returns once every process of ``group`` has called it with the same ``name``."""
    if group.count > 1:
        multihost_utils.sync_global_devices(name)


def broadcast_text(group: ProcessGroup, text: str) -> str:
    """Process 0's ``text`` (at most 4096 bytes of UTF-8), returned on every process; the
    other processes' ``text`` is ignored."""
    if group.count == 1:
        return text
    data = text.encode() if group.writes_shared_files else b""
    if len(data) > _TEXT_BYTES:
        raise ValueError(f"{text[:80]!r}... is longer than {_TEXT_BYTES} bytes.")
    padded = np.frombuffer(data.ljust(_TEXT_BYTES, b"\0"), np.uint8)
    received = multihost_utils.broadcast_one_to_all(padded)
    return bytes(np.asarray(received)).rstrip(b"\0").decode()


def local_rows(tree):
    """This process's rows of every leaf of ``tree`` (arrays whose leading seed axis is
    split over processes), in seed order; a leaf held whole by this process is returned
    as it is. Nothing waits for the device."""

    def rows(leaf):
        if not isinstance(leaf, jax.Array) or leaf.is_fully_addressable:
            return leaf
        shards = sorted(leaf.addressable_shards, key=lambda shard: shard.index[0].start)
        return jnp.concatenate([shard.data for shard in shards])

    return jax.tree.map(rows, tree)


def global_rows(tree, sharding: NamedSharding, num_rows: int):
    """The inverse of :func:`local_rows`: every process gives its rows of each leaf, and
    gets arrays of ``num_rows`` rows placed with ``sharding`` (typed PRNG keys included)."""

    def place(leaf):
        if is_prng_key(leaf):
            data = place(jax.random.key_data(leaf))
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
        local = np.asarray(leaf)
        shape = (num_rows, *local.shape[1:])
        return jax.make_array_from_process_local_data(sharding, local, shape)

    return jax.tree.map(place, tree)


def gather_rows(group: ProcessGroup, tree):
    """Every process's rows of each leaf of ``tree`` (a seed axis split over processes),
    joined in order on every process as NumPy arrays: a collective all processes call."""
    if group.count == 1:
        return jax.device_get(tree)
    return multihost_utils.process_allgather(local_rows(tree), tiled=True)
