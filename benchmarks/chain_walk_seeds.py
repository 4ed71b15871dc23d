"""Does the ChainWalk-v0 preset learn Q* on every seed of keys no test uses?

ChainWalk has an analytic Q*, so a soft divergence (Q off by orders of magnitude while
the greedy policy stays right) is seen directly. For each key, ``--seeds`` seeds train in
one vmapped call; a seed passes when its greedy policy moves right in every state and
every ``|Q(s, a) - Q*(s, a)| / |Q*(s, a)| <= 0.10``, the learning test's bar.

    python benchmarks/chain_walk_seeds.py --keys 11 12 13 14
    python benchmarks/chain_walk_seeds.py --keys 7 8 --set target_update_period=25 --name old
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import jax
import numpy as np
from common import print_table, write_results

import jaxdqn
from jaxdqn.envs import chain_walk_observations, chain_walk_optimal_q
from jaxdqn.host.driver import parse_override


def key_results(config: jaxdqn.DQNConfig, key: int, seeds: int) -> dict:
    """Trains ``seeds`` seeds of ``split(key(key), seeds)``; each seed's worst relative Q
    error and whether it passes."""
    sharding = jaxdqn.seed_sharding(seeds)
    train = jax.jit(jaxdqn.on_each_device(jax.vmap(jaxdqn.make_train(config)), sharding))
    keys = jax.device_put(jax.random.split(jax.random.key(key), seeds), sharding)
    start = time.perf_counter()
    states, _ = train(keys)
    q_net = jaxdqn.build(config).q_network
    q = np.asarray(jax.vmap(lambda p: q_net.apply(p, chain_walk_observations()))(states.params))
    seconds = time.perf_counter() - start
    q_star = chain_walk_optimal_q(config.gamma)
    error = (np.abs(q - q_star) / np.abs(q_star)).reshape(seeds, -1).max(axis=1)
    passed = (q.argmax(axis=-1) == 1).all(axis=-1) & (error <= 0.10)
    return {
        "key": key,
        "seeds": seeds,
        "passed": int(passed.sum()),
        "failing_seeds": np.flatnonzero(~passed).tolist(),
        "worst_relative_error": float(error.max()),
        "relative_error_per_seed": error.round(6).tolist(),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[11, 12, 13, 14])
    parser.add_argument("--seeds", type=int, default=16, help="seeds per key")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--name", default=None, help="suffix of the result file's name")
    parser.add_argument("--smoke", action="store_true", help="tiny settings, for CI")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = parser.parse_args()
    config = jaxdqn.get_preset("ChainWalk-v0")
    config = dataclasses.replace(config, **dict(parse_override(o) for o in args.set))
    if args.smoke:
        config, args.keys, args.seeds = config.with_budget(4_000), args.keys[:1], 2
    rows = [key_results(config, key, args.seeds) for key in args.keys]
    print_table(
        rows,
        [
            ("key", "key", "d"),
            ("passed", "passed", "d"),
            ("seeds", "of", "d"),
            ("worst_relative_error", "worst |Q-Q*|/Q*", ".3g"),
            ("seconds", "s", ".1f"),
        ],
    )
    name = "chain_walk_seeds" + (f"_{args.name}" if args.name else "")
    name += "_smoke" if args.smoke else ""
    write_results(
        name,
        {"config": dataclasses.asdict(config), "overrides": args.set, "keys": rows},
        None if args.out is None else Path(args.out),
    )


if __name__ == "__main__":
    main()
