"""Settings that must reach JAX before it starts: one CPU device per core, and a
persistent compilation cache. Importing this module does not import JAX.

JAX shows one CPU device on a multi-core host unless ``JAX_NUM_CPU_DEVICES`` is set before
its backends start; jaxdqn then trains each device's share of the seeds on its own core
(:mod:`jaxdqn.host.devices`). The compilation cache keeps compiled programs on disk, so a
second run of the same config and layout loads its programs instead of compiling them.

A setting the user made always wins: ``JAX_NUM_CPU_DEVICES`` or
``--xla_force_host_platform_device_count`` in ``XLA_FLAGS`` keep their device count, and
``JAX_COMPILATION_CACHE_DIR`` keeps its cache folder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NamedTuple

CACHE_ENV = "JAXDQN_COMPILATION_CACHE"  # a folder, or "off"


class JaxSetup(NamedTuple):
    """What :func:`prepare_jax` arranged.

    ``cpu_devices``: the CPU device count requested (``None``: left to JAX or the user);
    ``cpu_devices_source``: ``"every core"``, ``"user"`` (the environment chose),
    ``"off"`` (not requested) or ``"too late"`` (JAX had started); ``cache_dir``: the
    compilation cache folder in use (``None``: no cache)."""

    cpu_devices: int | None
    cpu_devices_source: str
    cache_dir: str | None


def usable_cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")  # a coordinator on this machine


def share_cores(num_processes: int, process_id: int) -> list[int] | None:
    """Restricts this process to its share of the cores it may use, when ``num_processes``
    processes share this machine: process ``i`` gets the ``i``-th of ``num_processes``
    equal blocks. Call it before JAX starts: XLA sizes its thread pools by these cores,
    and processes whose thread pools each span every core slow each other down several
    times.

    Returns:
      The cores kept, or ``None`` where nothing changed (fewer cores than processes, or no
      ``sched_setaffinity`` on this system).
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    each = len(cores) // num_processes
    if each < 1:
        return None
    mine = cores[process_id * each : (process_id + 1) * each]
    os.sched_setaffinity(0, mine)
    return mine


def default_cache_dir() -> Path:
    """``$JAXDQN_COMPILATION_CACHE``, else ``$XDG_CACHE_HOME/jaxdqn/xla``, else
    ``~/.cache/jaxdqn/xla``."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen and chosen != "off":
        return Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxdqn" / "xla"


def prepare_jax(every_core: bool = True, compilation_cache: bool | str | Path = True) -> JaxSetup:
    """Gives JAX one CPU device per core and a persistent compilation cache; call it before
    the first JAX computation (``import jax`` before it is fine).

    Args:
      every_core: request ``usable_cores()`` CPU devices unless the environment already
        sets a count. It changes nothing on a GPU or TPU backend, which has its own devices.
      compilation_cache: ``True``: the folder of :func:`default_cache_dir` (``"off"`` in
        ``$JAXDQN_COMPILATION_CACHE`` turns it off); a path: that folder; ``False``: none.
        A folder in ``JAX_COMPILATION_CACHE_DIR`` is kept.

    Returns:
      A :class:`JaxSetup`. Once JAX has started (its backends are up), neither setting can
      take effect any more: nothing changes and the source is ``"too late"``.

    Raises:
      TypeError: for a ``compilation_cache`` that is not a bool, str or path.
    """
    if not isinstance(compilation_cache, bool | str | Path):
        raise TypeError(
            f"compilation_cache={compilation_cache!r} must be True, False or a folder path."
        )
    if _jax_started():
        return JaxSetup(None, "too late", None)
    cpu_devices, source = _request_cpu_devices(every_core)
    return JaxSetup(cpu_devices, source, _use_cache(compilation_cache))


def _jax_started() -> bool:
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge

    return xla_bridge.backends_are_initialized()


def _request_cpu_devices(every_core: bool) -> tuple[int | None, str]:
    if not every_core:
        return None, "off"
    xla_flags = os.environ.get("XLA_FLAGS", "")
    if os.environ.get("JAX_NUM_CPU_DEVICES") or "xla_force_host_platform_device_count" in xla_flags:
        return None, "user"
    cores = usable_cores()
    if "jax" not in sys.modules:
        os.environ["JAX_NUM_CPU_DEVICES"] = str(cores)  # read when JAX is imported
    else:
        import jax

        jax.config.update("jax_num_cpu_devices", cores)
    return cores, "every core"


def _use_cache(compilation_cache: bool | str | Path) -> str | None:
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return os.environ["JAX_COMPILATION_CACHE_DIR"]
    if compilation_cache is False or (
        compilation_cache is True and os.environ.get(CACHE_ENV) == "off"
    ):
        return None
    folder = default_cache_dir() if compilation_cache is True else Path(compilation_cache)
    folder = folder.expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # an unwritable folder: no cache, which only costs compile time
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    return str(folder)
