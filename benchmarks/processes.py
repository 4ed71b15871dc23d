"""Scaling over processes: one run trained by ``jaxdqn train`` as 1 process holding every
CPU device and as N processes on this machine holding one device each (``jax.distributed``
on localhost), alternating, in fresh processes.

Both layouts split the seeds over the same devices, so they must train the same
parameters bit for bit (checked); the time says what the processes' coordination costs
(a barrier per checkpoint, the merge at the end). ``run s`` is the training time the run
reports (compiling and the final evaluation excluded; with N processes, the slowest
process's), medians over ``--rounds``.

    python benchmarks/processes.py                    # the reference setup, 8 seeds, 3 rounds
    python benchmarks/processes.py --smoke            # seconds; what CI runs

:func:`process_rows` also gives ``benchmarks/throughput.py`` its rows (``--processes``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import jax
import numpy as np
from common import median, print_table, write_results

import jaxdqn
from jaxdqn.host.startup import usable_cores

COLUMNS = [
    ("row", "row", ""), ("processes", "processes", "d"), ("devices", "devices", "d"),
    ("seeds", "seeds", "d"), ("env_steps_per_seed", "steps/seed", ",d"),
    ("compile_s", "compile s", ".1f"), ("run_s", "run s", ".2f"),
    ("env_steps_per_s", "env steps/s", ",.0f"), ("speed_over_one", "speed/1 process", ".2f"),
    ("identical_params", "same params", ""),
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def _train(config_file: Path, seeds: int, processes: int, devices: int, out: Path) -> Path:
    """One ``jaxdqn train`` run of ``processes`` processes with ``devices`` CPU devices in
    all; its run folder."""
    command = [sys.executable, "-m", "jaxdqn", "train", "--config", str(config_file)]
    command += ["--seeds", str(seeds), "--eval-episodes", "10", "--checkpoint-every", "0"]
    command += ["--no-progress", "--no-compilation-cache", "--out", str(out)]
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": str(devices // processes)}
    port, launched = _free_port(), []
    for index in range(processes):
        extra = []
        if processes > 1:
            extra = ["--num-processes", str(processes), "--process-id", str(index)]
            extra += ["--coordinator", f"localhost:{port}"]
        launched.append(subprocess.Popen([*command, *extra], env=env, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True))  # fmt: skip
    for process in launched:
        output = process.communicate()[0]
        if process.returncode:
            raise RuntimeError(f"jaxdqn train failed:\n{output}")
    (run_dir,) = out.iterdir()
    return run_dir


def process_rows(
    name: str, config: jaxdqn.DQNConfig, seeds: int, rounds: int, counts: list[int]
) -> list[dict]:
    """Rows of ``config`` on ``seeds`` seeds trained by each process count in ``counts``
    (1 first), all on one CPU device per core (at least one per process), ``rounds``
    alternating rounds."""
    devices = max(usable_cores(), *counts)
    if any(devices % n for n in counts):
        raise ValueError(f"--processes {counts}: each must divide the {devices} CPU devices.")
    times = {n: [] for n in counts}
    params = {}
    with tempfile.TemporaryDirectory() as scratch:
        config_file = Path(scratch) / "config.json"
        config_file.write_text(json.dumps(dataclasses.asdict(config)))
        for round_index in range(rounds):
            for n in counts:
                out = Path(scratch) / f"{n}-{round_index}"
                run_dir = _train(config_file, seeds, n, devices, out)
                summary = json.loads((run_dir / "summary.json").read_text())
                times[n].append((summary["run_s"], summary["compile_s"]))
                with np.load(run_dir / "params.npz") as arrays:
                    params[n] = {k: arrays[k] for k in arrays.files}
    one = median([t for t, _ in times[counts[0]]])
    return [
        {
            "row": name, "processes": n, "devices": devices, "seeds": seeds,
            "env_steps_per_seed": config.total_timesteps,
            "compile_s": median([c for _, c in times[n]]),
            "run_s": median([t for t, _ in times[n]]),
            "env_steps_per_s": seeds * config.total_timesteps / median([t for t, _ in times[n]]),
            "speed_over_one": one / median([t for t, _ in times[n]]),
            "identical_params": all(
                np.array_equal(params[n][k], params[counts[0]][k]) for k in params[n]
            ),
            "run_s_each": [t for t, _ in times[n]],
        }
        for n in counts
    ]  # fmt: skip


def main() -> None:
    from throughput import REFERENCE_SETUP

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=8, help="seeds of the run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--processes", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--smoke", action="store_true", help="tiny settings, for CI")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = parser.parse_args()
    config = REFERENCE_SETUP
    if args.smoke:
        args.seeds, args.rounds = 2, 1
        config = dataclasses.replace(
            config, total_timesteps=2_000, learning_starts=1_000, buffer_size=2_000,
            exploration_steps=1_000, target_update_period=20, log_interval=None,
        )  # fmt: skip
    rows = process_rows("reference setup", config, args.seeds, args.rounds, args.processes)
    print(f"\n{usable_cores()} CPU devices, jax {jax.__version__}, medians of {args.rounds}")
    print_table(rows, COLUMNS)
    write_results(
        "processes" + ("_smoke" if args.smoke else ""),
        {"settings": {"config": dataclasses.asdict(config), "rounds": args.rounds}, "rows": rows},
        out_dir=None if args.out is None else Path(args.out),
    )


if __name__ == "__main__":
    main()
