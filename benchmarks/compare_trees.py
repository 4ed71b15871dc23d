"""Full-training time of two jaxdqn source trees, side by side in one run: did a change
make training slower?

Each row (the reference setup or the CartPole preset, on ``--seeds`` seeds spread over
every visible device) is trained once per round by each tree, in its own process, the two
trees alternating (A B, then B A, ...), so both see the same machine over the same
minutes. Reported per row and tree: the median run time over the rounds (compile apart)
and the ratio B / A. A tree is a folder holding a ``jaxdqn`` package, e.g. a
``git worktree add /tmp/before HEAD~1`` of an earlier commit.

    JAX_NUM_CPU_DEVICES=2 python benchmarks/compare_trees.py /tmp/before . --rounds 2
    python benchmarks/compare_trees.py /tmp/before . --rows preset:1 --rounds 3 --smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from common import print_table, write_results
from throughput import REFERENCE_SETUP

import jaxdqn

# Runs in the child process: imports jaxdqn from the tree given, times one row.
CHILD = """
import json, sys, time
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, sys.argv[1])
import dataclasses, jax, jaxdqn
fields, seeds, steps = json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
known = {f.name for f in dataclasses.fields(jaxdqn.DQNConfig)}
config = jaxdqn.DQNConfig(**{k: v for k, v in fields.items() if k in known})
if steps:
    config = dataclasses.replace(
        config, total_timesteps=steps, learning_starts=steps // 2, exploration_steps=steps // 2,
        buffer_size=min(config.buffer_size, steps), target_update_period=20, log_interval=None,
    )
sharding = jaxdqn.seed_sharding(seeds)
keys = jax.device_put(jax.random.split(jax.random.key(0), seeds), sharding)
start = time.perf_counter()
# Each device on its own seeds where the tree can (jaxdqn.on_each_device), else partitioned.
each = getattr(jaxdqn, "on_each_device", None)
train = (jax.jit(each(jax.vmap(jaxdqn.make_train(config)), sharding)) if each
         else jax.jit(jax.vmap(jaxdqn.make_train(config)), out_shardings=sharding))
compiled = train.lower(keys).compile()
compile_s = time.perf_counter() - start
start = time.perf_counter()
jax.block_until_ready(compiled(keys))
print(json.dumps({"jaxdqn": jaxdqn.__file__, "version": jaxdqn.__version__,
                  "compile_s": compile_s, "run_s": time.perf_counter() - start,
                  "env_steps": config.total_timesteps * seeds}))
"""


def time_row(tree: Path, setup: str, seeds: int, steps: int) -> dict:
    """One training of a row by the jaxdqn in ``tree``, in a fresh process. The config
    goes as JSON (fields the tree's DQNConfig does not know are left out)."""
    config = REFERENCE_SETUP if setup == "reference" else jaxdqn.get_preset("CartPole-v1")
    fields = json.dumps(dataclasses.asdict(config))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tree.resolve()), fields, str(seeds), str(steps)],
        capture_output=True, text=True, env=os.environ,
    )  # fmt: skip
    if out.returncode:
        raise RuntimeError(f"{tree} failed on {setup}:{seeds}:\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if Path(result["jaxdqn"]).resolve().parents[1] != tree.resolve():
        raise RuntimeError(f"{tree}: the child imported {result['jaxdqn']} instead")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree_a", type=Path, help="the tree before the change")
    parser.add_argument("tree_b", type=Path, help="the tree after it")
    parser.add_argument(
        "--rows", nargs="+", default=["reference:1", "reference:8", "preset:1", "preset:8"],
        help="SETUP:SEEDS with SETUP reference or preset",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="2,000 env steps per row")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = parser.parse_args()
    trees = {"A": args.tree_a, "B": args.tree_b}
    steps = 2_000 if args.smoke else 0
    rows = []
    for spec in args.rows:
        setup, seeds = spec.split(":")
        times = {"A": [], "B": []}
        for round_ in range(args.rounds):
            for name in "AB" if round_ % 2 == 0 else "BA":
                result = time_row(trees[name], setup, int(seeds), steps)
                times[name].append(result["run_s"])
                print(f"  {spec} round {round_ + 1} {name}: {result['run_s']:.2f} s", flush=True)
        median = {name: statistics.median(t) for name, t in times.items()}
        rows.append({
            "row": setup, "seeds": int(seeds), "env_steps_per_seed": steps or None,
            "a_median_s": median["A"], "b_median_s": median["B"],
            "b_over_a": median["B"] / median["A"], "a_times_s": times["A"], "b_times_s": times["B"],
        })  # fmt: skip
    print(f"A = {args.tree_a}, B = {args.tree_b}, medians of {args.rounds} rounds")
    print_table(
        rows,
        [("row", "row", ""), ("seeds", "seeds", "d"), ("a_median_s", "A s", ".2f"),
         ("b_median_s", "B s", ".2f"), ("b_over_a", "B / A", ".3f")],
    )  # fmt: skip
    write_results(
        "compare_trees" + ("_smoke" if args.smoke else ""),
        {"settings": {"tree_a": str(args.tree_a), "tree_b": str(args.tree_b),
                      "rounds": args.rounds, "rows": args.rows}, "rows": rows},
        out_dir=None if args.out is None else Path(args.out),
    )  # fmt: skip


if __name__ == "__main__":
    main()
