"""Shared pieces of the benchmark scripts: the machine's description, timing, tables, JSON.

Every script writes ``benchmarks/results/<name>_<device>.json`` naming the device, the
JAX version, the settings and the date, and prints the same numbers as a table.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    """The device and library versions (as ``jaxdqn train`` records them), plus the host."""
    from jaxdqn.host.driver import versions

    device = jax.devices()[0]
    return {
        **versions(),
        "platform": device.platform,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def device_slug() -> str:
    """A file-name-safe name of the devices, e.g. ``cpu``, ``cpu-x2`` (two CPU devices,
    ``JAX_NUM_CPU_DEVICES=2``) or ``nvidia-h200``."""
    device = jax.devices()[0]
    kind = "cpu" if device.platform == "cpu" else device.device_kind.lower()
    slug = "".join(c if c.isalnum() else "-" for c in kind).strip("-")
    count = jax.local_device_count()
    return slug if count == 1 else f"{slug}-x{count}"


def timed(fn: Callable[[], Any]) -> float:
    """Seconds ``fn()`` takes, waiting for every array it returns."""
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values)


def interleaved_times(modes: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list]:
    """Seconds of each mode's call, ``repeats`` rounds of every mode in turn (ABCABC...),
    so slow phases of a shared machine fall on every mode alike."""
    times = {name: [] for name in modes}
    for _ in range(repeats):
        for name, fn in modes.items():
            times[name].append(timed(fn))
    return times


def overhead_rows(
    times: dict[str, list[float]], base: str, steps: int, label: str
) -> list[dict[str, Any]]:
    """One row per mode: median seconds, env steps per second and the overhead (%) of
    its median over ``base``'s; the mode's name under ``label``."""
    base_s = median(times[base])
    return [
        {
            label: name,
            "median_s": median(t),
            "env_steps_per_s": steps / median(t),
            "overhead_pct": 100 * (median(t) / base_s - 1),
            "all_s": " ".join(f"{x:.2f}" for x in t),
        }
        for name, t in times.items()
    ]


def print_table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> None:
    """Prints ``rows`` with ``columns`` given as (key, header, format spec)."""
    cells = [
        [format(row[key], spec) if row.get(key) is not None else "-" for key, _, spec in columns]
        for row in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (_, h, _) in enumerate(columns)]
    print("  ".join(h.rjust(w) for (_, h, _), w in zip(columns, widths, strict=True)))
    for line in cells:
        print("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)))


def write_results(name: str, payload: dict[str, Any], out_dir: Path | None = None) -> Path:
    """Writes ``{"machine": ..., **payload}`` to ``<out_dir>/<name>_<device>.json``."""
    out_dir = out_dir or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}_{device_slug()}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    print(f"wrote {path}")
    return path
