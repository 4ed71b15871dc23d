"""An env in C++ through EnvPool against the same env in JAX: training time in the loop.

The same ``DQNConfig`` (defaults, scaled to ``--total-timesteps``) trains on gymnax's
``CartPole-v1`` and on EnvPool's (``envpool/CartPole-v1``, stepped inside the compiled
program through EnvPool's XLA interface). Both programs are compiled first, then timed
alternately (``--repeats`` rounds), compile excluded; the table gives medians, the ratio
and each seed's greedy return. Needs ``pip install "jaxdqn[envpool]"``.

    python benchmarks/envpool_speed.py                 # 4 seeds x 20,000 env steps
    python benchmarks/envpool_speed.py --smoke         # seconds
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import numpy as np
from common import interleaved_times, overhead_rows, print_table, write_results

import jaxdqn

ENVS = {"gymnax": "CartPole-v1", "envpool": "envpool/CartPole-v1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--total-timesteps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny settings, for CI")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = parser.parse_args()
    if args.smoke:
        args.seeds, args.total_timesteps, args.repeats = 2, 4_000, 1
    keys = jax.random.split(jax.random.key(0), args.seeds)
    configs = {
        name: jaxdqn.DQNConfig(env_id=env_id).with_budget(args.total_timesteps)
        for name, env_id in ENVS.items()
    }
    programs = {
        name: jax.jit(jax.vmap(jaxdqn.make_train(config))).lower(keys).compile()
        for name, config in configs.items()
    }
    times = interleaved_times(
        {name: (lambda p=p: p(keys)) for name, p in programs.items()}, args.repeats
    )
    rows = overhead_rows(times, "gymnax", args.total_timesteps * args.seeds, "env")
    for row in rows:
        config = configs[row["env"]]
        states, _ = programs[row["env"]](keys)
        play = jax.jit(jax.vmap(lambda p, k, c=config: jaxdqn.evaluate(c, p, k, 20)))
        returns = np.asarray(play(states.params, keys).mean(axis=1))
        row["greedy_return"] = [round(float(r), 1) for r in returns]
    print(
        f"CartPole-v1, default DQNConfig, {args.seeds} seeds x {args.total_timesteps:,} env "
        f"steps, {args.repeats} interleaved repeats, device {jax.devices()[0].device_kind}"
    )
    print_table(
        rows,
        [
            ("env", "env", ""),
            ("median_s", "median s", ".2f"),
            ("env_steps_per_s", "env steps/s", ",.0f"),
            ("overhead_pct", "vs gymnax %", "+.1f"),
            ("all_s", "all s", ""),
        ],
    )
    for row in rows:
        print(f"{row['env']}: greedy return per seed (20 episodes) {row['greedy_return']}")
    name = "envpool_speed_smoke" if args.smoke else "envpool_speed"
    write_results(
        name,
        {"seeds": args.seeds, "total_timesteps": args.total_timesteps, "rows": rows},
        Path(args.out) if args.out else None,
    )


if __name__ == "__main__":
    main()
