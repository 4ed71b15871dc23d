"""One run's seeds trained by several processes, on one machine or many.

The processes join through ``jax.distributed`` (gloo collectives on CPU, NCCL on GPU) and
run the run's one program together: its seed axis is split over every process's devices
(:func:`jaxdqn.host.devices.seed_sharding` over ``jax.devices()``, each device on its own
seeds: :func:`jaxdqn.host.devices.on_each_device`), so each process computes its share of
the seeds (:meth:`ProcessGroup.share`, a contiguous block) with the same keys and the
same per-device program as one process holding all those devices. Seeds are
independent, so the program has no collectives; the processes meet only where
the driver asks: they check that they were given the same command (:func:`agree`),
process 0 makes the run folder and hands its name to the others (:func:`broadcast_text`),
every process reaches each checkpoint before any saves it, and at the end every process
writes its seeds' results before process 0 merges them (:func:`barrier`). A process reads
and writes only its own rows (:func:`local_rows`, :func:`host_rows`).

The run folder must be on a filesystem every process sees (NFS, Lustre, or one machine's
disk): each process appends its own seeds' metric files and keeps its own checkpoints
under ``checkpoints/process-<i>/``.
"""

from __future__ import annotations

import dataclasses
import hashlib

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


class ProcessLost(RuntimeError):
    """Another process of the group stopped (killed, crashed, preempted) before a barrier."""


def barrier(group: ProcessGroup, name: str) -> None:
    """Returns once every process of ``group`` has called it with the same ``name``.

    Raises:
      ProcessLost: another process is gone (its connection closed), naming the barrier.
    """
    if group.count == 1:
        return
    try:
        multihost_utils.sync_global_devices(name)
    except (RuntimeError, ValueError) as error:  # gloo: "Connection closed by peer"
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise ProcessLost(
            f"process {group.index} of {group.count}: another process stopped before "
            f"'{name}' ({reason})"
        ) from None


def agree(group: ProcessGroup, what: str, text: str) -> None:
    """Checks that every process of ``group`` holds the same ``text`` (a command line, a
    config): a collective all processes call.

    Raises:
      ValueError: on every process, naming those whose ``what`` differs from process 0's.
    """
    if group.count == 1:
        return
    digest = np.frombuffer(hashlib.sha256(text.encode()).digest()[:8], np.uint32)
    digests = np.asarray(multihost_utils.process_allgather(digest)).reshape(group.count, -1)
    differ = [i for i in range(group.count) if not np.array_equal(digests[i], digests[0])]
    if differ:
        raise ValueError(
            f"the processes were given different {what}: process(es) "
            f"{', '.join(map(str, differ))} differ from process 0; give every process the "
            "same command but for --process-id."
        )


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
    split over processes), in seed order, joined on one of its devices (for small trees:
    metrics); a leaf held whole by this process is returned as it is. Nothing waits for
    the device."""

    def rows(leaf):
        shards = _own_shards(leaf)
        if shards is None:
            return leaf
        return shards[0].data if len(shards) == 1 else jnp.concatenate([s.data for s in shards])

    return jax.tree.map(rows, tree)


def host_rows(tree):
    """:func:`local_rows` joined in host memory instead (for large trees: a state to
    checkpoint, parameters), so no device holds more than its own shard. Typed PRNG keys
    stay typed."""

    def rows(leaf):
        shards = _own_shards(leaf)
        if shards is None:
            return leaf
        if is_prng_key(leaf):
            data = np.concatenate([np.asarray(jax.random.key_data(s.data)) for s in shards])
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
        return np.concatenate([np.asarray(s.data) for s in shards])

    return jax.tree.map(rows, tree)


def _own_shards(leaf) -> list | None:
    """This process's shards of a leaf split over processes, in row order; ``None`` for a
    leaf this process holds whole."""
    if not isinstance(leaf, jax.Array) or leaf.is_fully_addressable:
        return None
    return sorted(leaf.addressable_shards, key=lambda shard: shard.index[0].start)


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
