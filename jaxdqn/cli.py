"""Command line: ``jaxdqn train`` (also ``python -m jaxdqn train``).

Host-side only: it builds a config, compiles and runs the fused program once, then writes
the run folder and prints a summary. Nothing here runs inside the compiled loop.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import platform
import sys
import time
import typing
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxdqn.checkpoint import checkpoint_path, checkpoint_steps, restore_checkpoint, save_checkpoint
from jaxdqn.config import DQNConfig
from jaxdqn.devices import cores_hint, seed_sharding, usable_cores
from jaxdqn.evaluate import evaluate
from jaxdqn.memory import check_memory
from jaxdqn.monitor import MetricsWriter, Progress, run_chunks, truncate_metrics
from jaxdqn.presets import PRESET_IDS, SOLVED_RETURN, get_preset
from jaxdqn.train import make_trainer

_FIELD_TYPES = typing.get_type_hints(DQNConfig)


def parse_override(text: str) -> tuple[str, Any]:
    """Parses ``FIELD=VALUE`` into a DQNConfig field and a value of the field's type.

    Raises:
      ValueError: for an unknown field or a value that does not parse.
    """
    if "=" not in text:
        raise ValueError(f"--set {text!r} is invalid: expected FIELD=VALUE, e.g. gamma=0.98.")
    field, raw = text.split("=", 1)
    if field not in _FIELD_TYPES:
        raise ValueError(
            f"--set {text!r}: DQNConfig has no field {field!r}. "
            f"Fields: {', '.join(f.name for f in dataclasses.fields(DQNConfig))}."
        )
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # a bare string such as huber or epsilon_greedy
    if isinstance(value, list):
        value = tuple(value)
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and "float" in str(_FIELD_TYPES[field])
    ):
        value = float(value)
    return field, value


def build_config(env_id: str, total_timesteps: int | None, overrides: list[str]) -> DQNConfig:
    """The preset of ``env_id`` (or the defaults for an env without one) with overrides."""
    base = get_preset(env_id) if env_id in PRESET_IDS else DQNConfig(env_id=env_id)
    changes = dict(parse_override(o) for o in overrides)
    if "env_id" in changes:
        raise ValueError(
            f"--set env_id={changes['env_id']} is refused: use --env {changes['env_id']}, "
            "which also loads that env's preset (the hyperparameters of the --env preset "
            "would otherwise be kept)."
        )
    if total_timesteps is not None:
        changes["total_timesteps"] = total_timesteps
    return dataclasses.replace(base, **changes)


def versions() -> dict[str, str]:
    """Installed versions of the libraries a run depends on, and the device it used."""
    packages = ("jaxdqn", "jax", "jaxlib", "flax", "optax", "chex", "gymnax", "numpy")
    device = jax.devices()[0]
    return {
        **{name: importlib.metadata.version(name) for name in packages},
        "python": platform.python_version(),
        "device": f"{device.platform}: {device.device_kind}",
        "device_count": str(jax.device_count()),
    }


def new_run_dir(parent: str | Path, env_id: str) -> Path:
    """A fresh ``<parent>/<env_id>-<timestamp>`` folder (never an existing one)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    run_dir = Path(parent) / f"{env_id}-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=False)
    return run_dir


def load_run(run_dir: str | Path) -> tuple[DQNConfig, list[int]]:
    """The config and seeds of a run folder written by ``jaxdqn train``.

    Raises:
      ValueError: a folder without, or with unreadable, ``config.json`` / ``run.json``.
    """
    run_dir = Path(run_dir)
    try:
        config = DQNConfig(**json.loads((run_dir / "config.json").read_text()))
        seeds = json.loads((run_dir / "run.json").read_text())["seeds"]
    except FileNotFoundError as error:
        raise ValueError(
            f"{run_dir} is not a jaxdqn run folder: {error.filename} is missing."
        ) from None
    except (OSError, KeyError, TypeError, ValueError) as error:
        # Unreadable, not JSON, a key DQNConfig does not know, no "seeds", a bad value.
        raise ValueError(
            f"{run_dir} is not a readable jaxdqn run folder: {type(error).__name__}: {error}"
        ) from None
    return config, seeds


def load_params(run_dir: str | Path, config: DQNConfig, seeds: list[int]) -> Any:
    """The final params of every seed of a run (``params.npz``), leaves ``[seeds, ...]``."""
    path = Path(run_dir) / "params.npz"
    if not path.is_file():
        raise ValueError(f"{path} is missing: the run has not finished (resume it first).")
    keys = jax.vmap(jax.random.key)(np.asarray(seeds))
    template = jax.eval_shape(jax.vmap(make_trainer(config).init), keys).params
    names = [jax.tree_util.keystr(p) for p, _ in jax.tree.leaves_with_path(template)]
    with np.load(path) as arrays:
        missing = [name for name in names if name not in arrays.files]
        if missing:
            raise ValueError(
                f"{path} does not match the network of {Path(run_dir) / 'config.json'}: "
                f"it lacks {', '.join(missing)}."
            )
        leaves = [arrays[name] for name in names]
    return jax.tree.unflatten(jax.tree.structure(template), leaves)


def _run_setup(args: argparse.Namespace) -> tuple[Path, DQNConfig, list[int], bool]:
    """The run folder, config and seeds of a new or resumed run (ValueError if invalid)."""
    if args.resume is None:
        config = build_config(args.env, args.total_timesteps, args.set)
        seeds = list(range(args.seed, args.seed + args.seeds))
        check_memory(config, len(seeds))  # before anything is written or compiled
        environment = versions()
        run_dir = new_run_dir(args.out, config.env_id)
        (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
        (run_dir / "run.json").write_text(json.dumps({"seeds": seeds}))
        (run_dir / "versions.json").write_text(json.dumps(environment, indent=2))
        return run_dir, config, seeds, False
    given = [flag for flag, value in _RUN_FLAGS.items() if getattr(args, value) != _DEFAULTS[value]]
    if given:
        raise ValueError(
            f"--resume continues a run with its own config and seeds; drop {', '.join(given)}."
        )
    config, seeds = load_run(args.resume)
    check_memory(config, len(seeds))
    return Path(args.resume), config, seeds, True


def train_command(args: argparse.Namespace) -> int:
    try:
        run_dir, config, seeds, resuming = _run_setup(args)
        # Seeds are spread over every visible device (see jaxdqn.devices).
        sharding = seed_sharding(len(seeds))
        keys = jax.device_put(jax.vmap(jax.random.key)(np.asarray(seeds)), sharding)
        trainer = make_trainer(config)
        init = jax.jit(jax.vmap(trainer.init), out_shardings=sharding)
        checkpoints = run_dir / "checkpoints"
        if resuming:
            steps = checkpoint_steps(checkpoints)
            if not steps:
                raise ValueError(f"{checkpoints} holds no checkpoint to resume from.")
            state, meta = restore_checkpoint(
                checkpoint_path(checkpoints, steps[-1]), jax.eval_shape(init, keys), config=config
            )
            start_steps = meta["step"]
            if start_steps >= config.total_timesteps:
                if (run_dir / "summary.json").exists():
                    raise ValueError(
                        f"{run_dir} is complete ({start_steps:,} env steps); nothing to resume. "
                        f"Evaluate it again with: jaxdqn eval {run_dir}"
                    )
                print(f"jaxdqn: {run_dir} finished training; evaluating its final state.")
            state = jax.device_put(state, sharding)
            truncate_metrics(run_dir, seeds, start_steps)
    except (ValueError, OSError) as error:
        # A bad setting or run folder, an --out that is a file or cannot be written: say
        # what is wrong, no traceback.
        print(f"jaxdqn: error: {error}", file=sys.stderr)
        return 2
    platform_name = jax.devices()[0].platform
    num_devices = sharding.num_devices
    hint = cores_hint(platform_name, jax.local_device_count(), len(seeds), usable_cores())
    if hint:
        print(hint, file=sys.stderr)
    print(
        f"jaxdqn: {config.env_id}, {len(seeds)} seeds x {config.total_timesteps:,} env steps "
        f"on {platform_name}"
        + (f" ({num_devices} devices)" if num_devices > 1 else "")
        + (f", resuming at {start_steps:,}" if resuming else ""),
        flush=True,
    )
    start = time.perf_counter()
    if not resuming:
        state, start_steps = init(keys), 0
    run = (
        jax.jit(jax.vmap(lambda s: trainer.run(s, 1)), donate_argnums=0, out_shardings=sharding)
        .lower(state)
        .compile()
    )
    compile_s = time.perf_counter() - start

    interval = config.resolved_log_interval()
    writer = MetricsWriter(run_dir, seeds)
    progress = Progress(config.total_timesteps, len(seeds), start_steps, stream=sys.stderr)

    def on_rows(metrics):
        writer.write(metrics)
        if args.progress:
            progress.update(metrics)

    def on_pause(chunk, state):
        save_checkpoint(
            checkpoints, state, step=(first + chunk + 1) * interval, config=config,
            versions=versions(), keep=args.keep_checkpoints,
        )  # fmt: skip

    start = time.perf_counter()
    first = start_steps // interval
    every = args.checkpoint_every
    try:
        state = run_chunks(
            run,
            state,
            config.num_log_points() - first,
            on_rows,
            pause_after=lambda chunk: bool(every) and (first + chunk + 1) % every == 0,
            on_pause=on_pause,
        )
    except KeyboardInterrupt:
        done = checkpoint_steps(checkpoints)
        print(
            f"\njaxdqn: interrupted; metrics so far are in {run_dir}. "
            + (
                f"Resume from {done[-1]:,} env steps with: jaxdqn train --resume {run_dir}"
                if done
                else "No checkpoint was written yet."
            ),
            file=sys.stderr,
        )
        return 130
    finally:
        writer.close()
    run_s = time.perf_counter() - start

    eval_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
    returns = jax.jit(jax.vmap(lambda p, k: evaluate(config, p, k, args.eval_episodes)))(
        state.params, eval_keys
    )
    per_seed = np.asarray(returns.mean(axis=1))
    done_steps = config.total_timesteps - start_steps
    summary = {
        "env_id": config.env_id,
        "seeds": seeds,
        "epsilon": config.eval_epsilon,
        "greedy_return": per_seed.tolist(),
        "greedy_return_mean": float(per_seed.mean()),
        "greedy_return_std": float(per_seed.std()),
        "eval_episodes": args.eval_episodes,
        "env_steps_per_seed": config.total_timesteps,
        "resumed_at": start_steps if resuming else None,
        "compile_s": compile_s,
        "run_s": run_s,
        "env_steps_per_s": done_steps * len(seeds) / run_s if done_steps else None,
        "solved_return": SOLVED_RETURN.get(config.env_id),
    }
    flat = {
        jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree.leaves_with_path(state.params)
    }
    np.savez(run_dir / "params.npz", **flat)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(format_summary(summary))
    print(f"run folder: {run_dir}")
    return 0


def format_returns(summary: dict[str, Any]) -> list[str]:
    """The per-seed return table (greedy, or ε-greedy when ``summary["epsilon"] > 0``)
    and its mean ± std."""
    solved = summary["solved_return"]
    epsilon = summary["epsilon"]
    policy = "greedy" if epsilon == 0 else f"ε={epsilon:g}"
    lines = [f"{'seed':>6} {policy + ' return':>14}" + ("  solved" if solved is not None else "")]
    for seed, ret in zip(summary["seeds"], summary["greedy_return"], strict=True):
        mark = ("     yes" if ret >= solved else "      no") if solved is not None else ""
        lines.append(f"{seed:>6} {ret:>14.1f}{mark}")
    lines.append(
        f"{policy} return over {summary['eval_episodes']} episodes: "
        f"{summary['greedy_return_mean']:.1f} ± {summary['greedy_return_std']:.1f} "
        "(mean ± std over seeds)"
    )
    return lines


def format_summary(summary: dict[str, Any]) -> str:
    """The per-seed table and the totals, as printed by ``jaxdqn train``."""
    rate = summary["env_steps_per_s"]
    return "\n".join(
        [
            *format_returns(summary),
            f"env steps per seed: {summary['env_steps_per_seed']:,}"
            + (f" (resumed at {summary['resumed_at']:,})" if summary["resumed_at"] else ""),
            f"compile: {summary['compile_s']:.1f} s   run: {summary['run_s']:.1f} s "
            "(checkpoints included)   throughput: "
            + ("n/a" if rate is None else f"{rate:,.0f} env steps/s (all seeds)"),
        ]
    )


def eval_command(args: argparse.Namespace) -> int:
    try:
        config, seeds = load_run(args.run_dir)
        keys = jax.vmap(jax.random.key)(np.asarray(seeds))
        params = load_params(args.run_dir, config, seeds)
    except ValueError as error:
        print(f"jaxdqn: error: {error}", file=sys.stderr)
        return 2
    eval_keys = jax.vmap(lambda k: jax.random.fold_in(k, args.eval_seed))(keys)
    epsilon = config.eval_epsilon if args.epsilon is None else args.epsilon
    returns = jax.jit(jax.vmap(lambda p, k: evaluate(config, p, k, args.episodes, epsilon)))(
        params, eval_keys
    )
    per_seed = np.asarray(returns.mean(axis=1))
    summary = {
        "seeds": seeds,
        "epsilon": epsilon,
        "greedy_return": per_seed.tolist(),
        "greedy_return_mean": float(per_seed.mean()),
        "greedy_return_std": float(per_seed.std()),
        "eval_episodes": args.episodes,
        "solved_return": SOLVED_RETURN.get(config.env_id),
    }
    print(f"jaxdqn eval: {config.env_id}, {args.run_dir}")
    print("\n".join(format_returns(summary)))
    return 0


def plot_command(args: argparse.Namespace) -> int:
    from jaxdqn.plotting import plot_runs  # matplotlib is imported only for this command

    try:
        _refuse_existing(args.out, args.overwrite)
        out = plot_runs(args.run_dirs, args.out, metric=args.metric)
    except (ValueError, OSError) as error:
        print(f"jaxdqn: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


def export_command(args: argparse.Namespace) -> int:
    from jaxdqn.export import export_policy

    try:
        config, seeds = load_run(args.run_dir)
        if args.seed not in seeds:
            raise ValueError(f"--seed={args.seed} is invalid: the run trained seeds {seeds}.")
        params = jax.tree.map(
            lambda x: x[seeds.index(args.seed)], load_params(args.run_dir, config, seeds)
        )
        out = Path(args.out) if args.out else Path(args.run_dir) / f"policy_seed{args.seed}.npz"
        _refuse_existing(out, args.overwrite)
        export_policy(config, params, out, seed=args.seed)
    except (ValueError, OSError) as error:
        print(f"jaxdqn: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out} (load it with jaxdqn/numpy_policy.py, which needs only NumPy)")
    return 0


def _refuse_existing(path: str | Path, overwrite: bool) -> None:
    """Raises ValueError if ``path`` exists and ``overwrite`` was not given."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--out {path} is a folder: give a file name.")
    if path.exists() and not overwrite:
        raise ValueError(f"{path} exists: choose another --out, or pass --overwrite.")


# Flags that choose a new run's config and seeds; --resume refuses them.
_RUN_FLAGS = {
    "--env": "env",
    "--seeds": "seeds",
    "--seed": "seed",
    "--total-timesteps": "total_timesteps",
    "--set": "set",
}
_DEFAULTS = {"env": "CartPole-v1", "seeds": 8, "seed": 0, "total_timesteps": None, "set": []}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is invalid: must be >= 1")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text} is invalid: must be in [0, 1]")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is invalid: must be >= 0")
    return value


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxdqn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a preset (or any gymnax env) over seeds")
    d = _DEFAULTS
    train.add_argument("--env", default=d["env"], help="env id (default: CartPole-v1)")
    train.add_argument("--seeds", type=_positive, default=d["seeds"], help="seeds trained at once")
    train.add_argument("--seed", type=int, default=d["seed"], help="first seed")
    train.add_argument("--total-timesteps", type=_positive, default=None, help="env steps per seed")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override any DQNConfig field, e.g. --set learning_rate=3e-4 (repeatable)",
    )
    train.add_argument("--eval-episodes", type=_positive, default=100, help="greedy episodes/seed")
    train.add_argument("--out", default="runs", help="parent folder of the run folder")
    train.add_argument(
        "--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint"
    )
    train.add_argument(
        "--checkpoint-every",
        type=_non_negative,
        default=10,
        metavar="LOG_POINTS",
        help="checkpoint every this many log points (0: only at the end; default 10)",
    )
    train.add_argument("--keep-checkpoints", type=_positive, default=2, help="newest kept (2)")
    train.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no live progress line"
    )
    train.set_defaults(func=train_command)

    evaluate_cmd = commands.add_parser("eval", help="evaluate a finished run greedily, per seed")
    evaluate_cmd.add_argument("run_dir")
    evaluate_cmd.add_argument("--episodes", type=_positive, default=100)
    evaluate_cmd.add_argument(
        "--epsilon",
        type=_probability,
        default=None,
        help="ε of the ε-greedy policy (default: the run's eval_epsilon, 0 = greedy)",
    )
    evaluate_cmd.add_argument("--eval-seed", type=int, default=1, help="folded into each key")
    evaluate_cmd.set_defaults(func=eval_command)

    plot = commands.add_parser("plot", help="learning curves of runs (mean, 95%% interval)")
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    plot.add_argument("--out", default="learning_curves.png", help="PNG file to write")
    plot.add_argument("--metric", default="episode_return", help="metric on the y axis")
    plot.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    plot.set_defaults(func=plot_command)

    export = commands.add_parser("export", help="write one seed's policy as a NumPy .npz")
    export.add_argument("run_dir")
    export.add_argument("--seed", type=int, default=0, help="which trained seed (default 0)")
    export.add_argument("--out", default=None, help="default: RUN_DIR/policy_seed<SEED>.npz")
    export.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    export.set_defaults(func=export_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
