"""Sweep the learning rate of the CartPole preset: 8 rates x 4 seeds in one compiled call.

    python examples/sweep.py                      # 32 runs of 200k env steps
    python examples/sweep.py --total-timesteps 50000 --seeds 2

Every (learning rate, seed) pair is one element of a ``jax.vmap``: the learning rate is a
traced value in ``TrainState.hparams`` (see ``jaxdqn.sweep``), so the 32 runs share one
program and compile once; the script counts the traces to show it.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import numpy as np

import jaxdqn

RATES = [1e-4, 2e-4, 3e-4, 5e-4, 7e-4, 1e-3, 2e-3, 5e-3]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--total-timesteps", type=int, default=None)
    parser.add_argument("--eval-episodes", type=int, default=20)
    args = parser.parse_args()
    config = jaxdqn.get_preset(args.env)
    if args.total_timesteps:
        config = dataclasses.replace(config, total_timesteps=args.total_timesteps)
    grid, _ = jaxdqn.sweep(config, learning_rate=RATES)
    # Repeat every rate for each seed: runs = rates x seeds, rate-major.
    hparams = jax.tree.map(lambda x: np.repeat(x, args.seeds, axis=0), grid)
    keys = jax.random.split(jax.random.key(0), args.seeds)
    keys = jax.numpy.concatenate([keys] * len(RATES))

    traces = 0

    def train_all(keys, hparams):
        nonlocal traces
        traces += 1
        return jax.vmap(jaxdqn.make_train(config))(keys, hparams)

    train_all = jax.jit(train_all)
    start = time.perf_counter()
    compiled = train_all.lower(keys, hparams).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    states, metrics = jax.block_until_ready(compiled(keys, hparams))
    run_s = time.perf_counter() - start
    evaluate = jax.jit(jax.vmap(lambda p, k: jaxdqn.evaluate(config, p, k, args.eval_episodes)))
    greedy = np.asarray(evaluate(states.params, keys).mean(axis=1)).reshape(len(RATES), -1)
    final_q = np.asarray(metrics["q_value"][:, -1]).reshape(len(RATES), -1)

    runs = len(RATES) * args.seeds
    print(f"{config.env_id}: {len(RATES)} learning rates x {args.seeds} seeds = {runs} runs "
          f"of {config.total_timesteps:,} env steps in one call")  # fmt: skip
    print(f"traced {traces} time(s); compile {compile_s:.1f} s, run {run_s:.1f} s "
          f"({runs * config.total_timesteps / run_s:,.0f} env steps/s)")  # fmt: skip
    print(f"{'learning rate':>14} {'greedy return per seed':>32} {'mean':>7} {'final Q':>8}")
    for rate, returns, q in zip(RATES, greedy, final_q, strict=True):
        per_seed = " ".join(f"{r:6.1f}" for r in returns)
        print(f"{rate:>14.0e} {per_seed:>32} {returns.mean():>7.1f} {np.mean(q):>8.1f}")
    assert traces == 1, f"the sweep traced {traces} times"


if __name__ == "__main__":
    main()
