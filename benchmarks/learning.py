"""How fast each preset learns: greedy return against env steps and against wall seconds.

For each preset, all seeds train in one vmapped program, run in chunks (bit-identical to
one whole run); after every chunk the greedy policy of every seed is evaluated on fresh
episodes (evaluation time is excluded from the wall clock). Reported per preset: the
mean and 95% bootstrap interval over seeds at every evaluation point, and the env steps
and wall seconds (compile included and excluded) at the first point where *every* seed's
greedy mean reaches the solve threshold. Writes a PNG (return vs env steps and vs wall
seconds) and JSON per preset under ``benchmarks/results/``; a line per evaluation point
on stderr shows a long run's progress.

    python benchmarks/learning.py                        # CartPole and Acrobot presets, 16 seeds
    python benchmarks/learning.py --env CartPole-v1 --seeds 8 --evals 10
    python benchmarks/learning.py --env CartPole-v1 --set n_step=3 --set dueling=true \
        --name all-features                             # a preset with overrides
    python benchmarks/learning.py --env CartPole-v1 --preset rainbow  # the Rainbow preset
    python benchmarks/learning.py --smoke                # seconds; what CI runs
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
import time
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
from common import RESULTS, device_slug, write_results

import jaxdqn
from jaxdqn.host.driver import EVAL_SEED, build_config
from jaxdqn.host.plotting import mean_interval
from jaxdqn.presets import SOLVED_RETURN

# The training rows kept per log window: the ε-greedy episodes' statistics.
TRAINING_METRICS = ("env_steps", "episode_return", "completed_episodes", "exploration")


def learning_curve(
    config,
    seeds: int,
    evals: int,
    eval_episodes: int,
    threshold: float | None,
    overrides=(),
    key: int = 0,
    deadline: float | None = None,
):
    """Trains ``seeds`` seeds of ``config`` (keys ``split(key(key), seeds)``) in ``evals``
    chunks with greedy evaluations. With ``deadline`` (a ``time.monotonic()`` value) the
    run stops at the first evaluation point reached after it: the result is then the first
    ``env_steps[-1]`` steps of ``config``'s run, with ``stopped_early`` set."""
    points = config.num_log_points()
    if points % evals:
        raise ValueError(f"--evals={evals} must divide the {points} log points of the run.")
    start = time.perf_counter()
    programs = _compile(config, seeds, key, points // evals, eval_episodes)
    compile_s = time.perf_counter() - start
    state = programs.state
    steps, wall, returns = [], [], []
    training = {name: [] for name in TRAINING_METRICS}
    train_s = 0.0
    for _ in range(evals):
        start = time.perf_counter()
        state, metrics = programs.chunk(state)
        jax.block_until_ready(state)
        train_s += time.perf_counter() - start
        for name in TRAINING_METRICS:
            training[name].append(np.asarray(metrics[name]))
        greedy = np.asarray(programs.evaluate(state.params, programs.eval_keys).mean(axis=1))
        steps.append(int(np.asarray(state.env_steps)[0]))
        wall.append(train_s)
        returns.append(greedy.tolist())
        print(f"{config.env_id}: {steps[-1]:,} env steps, {train_s:.0f} s training, greedy "
              f"mean {greedy.mean():.2f}", file=sys.stderr, flush=True)  # fmt: skip
        if deadline is not None and time.monotonic() > deadline:
            break
    returns = np.array(returns)  # [evals, seeds]
    mean, low, high = mean_interval(returns.T)
    return {
        "env_id": config.env_id,
        "seeds": seeds,
        "key": key,  # seeds: jax.random.split(jax.random.key(key), seeds)
        "devices": programs.devices,
        "eval_episodes": eval_episodes,
        "threshold": threshold,
        "compile_s": compile_s,
        "env_steps": steps,
        "stopped_early": steps[-1] < config.total_timesteps,
        "wall_s": wall,
        "greedy_return_per_seed": returns.tolist(),
        "mean": mean.tolist(),
        "ci95_low": low.tolist(),
        "ci95_high": high.tolist(),
        "final_solved_seeds": None if threshold is None else int((returns[-1] >= threshold).sum()),
        "every_seed_solved_at": solved_at(returns, steps, wall, compile_s, threshold),
        # Every log window's training rows, [seeds, windows] per metric.
        "training": {k: np.concatenate(v, axis=1).tolist() for k, v in training.items()},
        "overrides": list(overrides),
        "config": dataclasses.asdict(config),
    }


class _Programs(NamedTuple):
    """The compiled programs of a learning curve, and the seeds' initial state."""

    state: object  # the trainer's state, leaves [seeds, ...]
    chunk: object  # state -> (state, metrics): one evaluation interval of training
    evaluate: object  # (params, eval_keys) -> greedy returns [seeds, episodes]
    eval_keys: jax.Array  # [seeds] evaluation keys, as the CLI's
    devices: int  # devices the seeds are sharded over


def _compile(config, seeds: int, key: int, chunk_points: int, eval_episodes: int) -> _Programs:
    """Compiles init, a training chunk of ``chunk_points`` log points and the greedy
    evaluation for ``seeds`` seeds sharded over every visible device; runs init."""
    sharding = jaxdqn.seed_sharding(seeds)  # every visible device trains its share
    keys = jax.device_put(jax.random.split(jax.random.key(key), seeds), sharding)
    trainer = jaxdqn.make_trainer(config)
    each_device = functools.partial(jaxdqn.on_each_device, sharding=sharding)
    init = jax.jit(each_device(jax.vmap(trainer.init))).lower(keys).compile()
    state = init(keys)
    run = jax.vmap(lambda s: trainer.run(s, chunk_points))
    chunk = jax.jit(each_device(run), donate_argnums=0).lower(state).compile()
    greedy = jax.vmap(lambda p, k: jaxdqn.evaluate(config, p, k, eval_episodes))
    eval_keys = jax.vmap(lambda k: jax.random.fold_in(k, EVAL_SEED))(keys)
    evaluate = jax.jit(each_device(greedy)).lower(state.params, eval_keys).compile()
    return _Programs(state, chunk, evaluate, eval_keys, sharding.num_devices)


def solved_at(returns, steps, wall, compile_s, threshold) -> dict | None:
    """The first evaluation where every seed's greedy return ``returns [evals, seeds]``
    reaches ``threshold``: its env steps and wall time; ``None`` if none does."""
    every = np.flatnonzero((returns >= threshold).all(axis=1)) if threshold is not None else []
    if not len(every):
        return None
    i = int(every[0])
    return {
        "env_steps": steps[i],
        "wall_s_excluding_compile": wall[i],
        "wall_s_including_compile": wall[i] + compile_s,
        "wall_s_per_seed_including_compile": (wall[i] + compile_s) / returns.shape[1],
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained", sharey=True)
    for ax, x, label in (
        (axes[0], np.array(result["env_steps"]), "env steps per seed"),
        (axes[1], np.array(result["wall_s"]), "wall seconds (compile excluded, all seeds)"),
    ):
        ax.plot(x, result["mean"], marker="o", label=f"mean of {result['seeds']} seeds")
        ax.fill_between(x, result["ci95_low"], result["ci95_high"], alpha=0.25, label="95% CI")
        if result["threshold"] is not None:
            ax.axhline(result["threshold"], color="k", ls="--", lw=1, label="solved")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"greedy return ({result['eval_episodes']} episodes per seed)")
    axes[0].legend(fontsize="small")
    changes = ", ".join([f"{result['preset']} preset", *result["overrides"]])
    figure.suptitle(f"{result['env_id']} ({changes}): jaxdqn on {jax.devices()[0].device_kind}")
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", nargs="+", default=["CartPole-v1", "Acrobot-v1"])
    parser.add_argument("--preset", choices=jaxdqn.PRESET_VARIANTS, default="dqn")
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--key", type=int, default=0, help="seeds are split(key(KEY), SEEDS)")
    parser.add_argument("--evals", type=int, default=20, help="evaluation points (chunks)")
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument(
        "--total-timesteps", type=int, default=None, help="env steps per seed (default: preset)"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE",
        help="override a DQNConfig field of every preset run, as in jaxdqn train (repeatable)",
    )  # fmt: skip
    parser.add_argument("--name", default=None, help="suffix of the result files' names")
    parser.add_argument("--smoke", action="store_true", help="tiny settings, for CI")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = parser.parse_args()
    out = RESULTS if args.out is None else Path(args.out)
    for env_id in args.env:
        try:
            config = build_config(env_id, args.total_timesteps, args.set, preset=args.preset)
        except ValueError as error:  # an unknown field or a value DQNConfig refuses
            parser.error(str(error))
        if args.smoke:
            args.seeds, args.evals, args.eval_episodes = 2, 2, 3
            config = dataclasses.replace(
                config, total_timesteps=2_000, learning_starts=1_000, buffer_size=2_000,
                exploration_steps=1_000, log_interval=200,
            )  # fmt: skip
        result = learning_curve(
            config, args.seeds, args.evals, args.eval_episodes, SOLVED_RETURN.get(env_id),
            args.set, args.key,
        )  # fmt: skip
        result["preset"] = args.preset
        changed = ", ".join([f"{args.preset} preset", *args.set])
        print(f"{env_id} ({changed}): {args.seeds} seeds on {result['devices']} device(s), "
              f"compile {result['compile_s']:.1f} s")  # fmt: skip
        print(f"{'env steps':>10} {'wall s':>8} {'mean':>8} {'95% CI':>17}  solved seeds")
        for i, step in enumerate(result["env_steps"]):
            row = np.array(result["greedy_return_per_seed"][i])
            solved = "-" if result["threshold"] is None else (row >= result["threshold"]).sum()
            low, high = result["ci95_low"][i], result["ci95_high"][i]
            print(f"{step:>10,} {result['wall_s'][i]:>8.1f} {result['mean'][i]:>8.1f} "
                  f"[{low:>7.1f}, {high:>7.1f}]  {solved}")  # fmt: skip
        print(f"every seed solved at: {result['every_seed_solved_at']}")
        name = f"learning_{env_id}" + (f"_{args.name}" if args.name else "")
        name += "_smoke" if args.smoke else ""
        write_results(name, result, out_dir=out)
        plot(result, out / f"{name}_{device_slug()}.png")


if __name__ == "__main__":
    main()
