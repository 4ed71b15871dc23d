"""What the health signals cost: a preset trained with ``diagnostics`` on and off.

Both programs are compiled first; then the two runs alternate (on, off, on, off, ...) and
are compared by their medians, compile excluded. The signals draw their own random
numbers, so both runs train the same parameters; the script checks that too.

    python benchmarks/diagnostics_overhead.py             # CartPole preset, 8 seeds, full run
    python benchmarks/diagnostics_overhead.py --smoke     # seconds; what CI runs
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import jax
import numpy as np
from common import interleaved_times, overhead_rows, print_table, write_results

import jaxdqn


def same_params(a, b) -> bool:
    """Whether two parameter pytrees are bit-identical."""
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return all(np.array_equal(x, y) for x, y in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--total-timesteps", type=int, default=None, help="default: preset's")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny settings, for CI")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = parser.parse_args()
    config = jaxdqn.get_preset(args.env)
    if args.smoke:
        args.seeds, args.repeats = 2, 1
        config = config.with_budget(4_000)
    elif args.total_timesteps is not None:
        config = config.with_budget(args.total_timesteps)
    keys = jax.random.split(jax.random.key(0), args.seeds)
    configs = {"on": config, "off": dataclasses.replace(config, diagnostics=False)}
    programs = {
        name: jax.jit(jax.vmap(jaxdqn.make_train(c))).lower(keys).compile()
        for name, c in configs.items()
    }
    same = same_params(*(program(keys)[0].params for program in programs.values()))
    times = interleaved_times(
        {name: (lambda p=p: p(keys)) for name, p in programs.items()}, args.repeats
    )
    rows = overhead_rows(times, "off", config.total_timesteps * args.seeds, "diagnostics")
    print(
        f"{config.env_id}, {args.seeds} seeds x {config.total_timesteps:,} env steps, "
        f"{config.num_log_points()} log windows, {args.repeats} repeats, device "
        f"{jax.devices()[0].device_kind}; same params on and off: {same}"
    )
    print_table(
        rows,
        [
            ("diagnostics", "signals", ""),
            ("median_s", "median s", ".2f"),
            ("env_steps_per_s", "env steps/s", ",.0f"),
            ("overhead_pct", "vs off %", "+.1f"),
            ("all_s", "runs (s)", ""),
        ],
    )
    if not same:
        raise SystemExit("the signals changed the trained parameters")
    write_results(
        "diagnostics_overhead" + ("_smoke" if args.smoke else ""),
        {"settings": {"config": dataclasses.asdict(config), "seeds": args.seeds,
                      "repeats": args.repeats},
         "same_params": same, "rows": rows, "times_s": times},
        out_dir=None if args.out is None else Path(args.out),
    )  # fmt: skip


if __name__ == "__main__":
    main()
