"""Command line: ``jaxdqn train`` (also ``python -m jaxdqn train``).

Host-side only: it builds a config, compiles and runs the fused program once, then writes
the run folder and prints a summary. Nothing here runs inside the compiled loop.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import sys
import time
import typing
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxdqn.config import DQNConfig
from jaxdqn.evaluate import evaluate
from jaxdqn.presets import PRESET_IDS, SOLVED_RETURN, get_preset
from jaxdqn.train import METRIC_NAMES, make_train

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
    if total_timesteps is not None:
        changes["total_timesteps"] = total_timesteps
    return dataclasses.replace(base, **changes)


def versions() -> dict[str, str]:
    """Library versions and the device a run used."""
    import flax
    import gymnax
    import jaxlib
    import optax

    import jaxdqn

    device = jax.devices()[0]
    return {
        "jaxdqn": jaxdqn.__version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "gymnax": getattr(gymnax, "__version__", "unknown"),
        "python": platform.python_version(),
        "device": f"{device.platform}: {device.device_kind}",
        "device_count": str(jax.device_count()),
    }


def _to_json(value: Any) -> Any:
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and not np.isfinite(value) else value


def write_run(
    run_dir: Path,
    config: DQNConfig,
    seeds: np.ndarray,
    params: Any,
    metrics: dict[str, np.ndarray],
    summary: dict[str, Any],
) -> None:
    """Writes config.json, versions.json, metrics_seed<N>.jsonl, params.npz, summary.json."""
    run_dir.mkdir(parents=True, exist_ok=False)
    (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    (run_dir / "versions.json").write_text(json.dumps(versions(), indent=2))
    for i, seed in enumerate(seeds):
        with open(run_dir / f"metrics_seed{seed}.jsonl", "w") as f:
            for row in range(metrics["env_steps"].shape[1]):
                record = {name: _to_json(metrics[name][i, row]) for name in METRIC_NAMES}
                f.write(json.dumps(record) + "\n")
    flat = {
        jax.tree_util.keystr(path): np.asarray(leaf)
        for path, leaf in jax.tree_util.tree_leaves_with_path(params)
    }
    np.savez(run_dir / "params.npz", **flat)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=_to_json))


def train_command(args: argparse.Namespace) -> int:
    try:
        config = build_config(args.env, args.total_timesteps, args.set)
    except ValueError as error:  # a bad setting: say what is wrong, no traceback
        print(f"jaxdqn: error: {error}", file=sys.stderr)
        return 2
    seeds = np.arange(args.seed, args.seed + args.seeds)
    keys = jax.vmap(jax.random.key)(seeds)
    print(
        f"jaxdqn: {config.env_id}, {args.seeds} seeds x {config.total_timesteps:,} env steps "
        f"on {jax.devices()[0].platform}",
        flush=True,
    )

    train = jax.jit(jax.vmap(make_train(config)))
    start = time.perf_counter()
    compiled = train.lower(keys).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    states, metrics = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - start

    eval_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
    returns = jax.jit(jax.vmap(lambda p, k: evaluate(config, p, k, args.eval_episodes)))(
        states.params, eval_keys
    )
    per_seed = np.asarray(returns.mean(axis=1))
    env_steps = int(np.asarray(states.env_steps)[0])
    summary = {
        "env_id": config.env_id,
        "seeds": seeds.tolist(),
        "greedy_return": per_seed.tolist(),
        "greedy_return_mean": float(per_seed.mean()),
        "greedy_return_std": float(per_seed.std()),
        "eval_episodes": args.eval_episodes,
        "env_steps_per_seed": env_steps,
        "compile_s": compile_s,
        "run_s": run_s,
        "env_steps_per_s": env_steps * len(seeds) / run_s,
        "solved_return": SOLVED_RETURN.get(config.env_id),
    }
    run_dir = Path(args.out) / (
        f"{config.env_id}-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}"
    )
    write_run(run_dir, config, seeds, states.params, jax.tree.map(np.asarray, metrics), summary)
    print(format_summary(summary))
    print(f"run folder: {run_dir}")
    return 0


def format_summary(summary: dict[str, Any]) -> str:
    """The per-seed table and the totals, as printed by ``jaxdqn train``."""
    solved = summary["solved_return"]
    lines = [f"{'seed':>6} {'greedy return':>14}" + ("  solved" if solved is not None else "")]
    for seed, ret in zip(summary["seeds"], summary["greedy_return"], strict=True):
        mark = ("     yes" if ret >= solved else "      no") if solved is not None else ""
        lines.append(f"{seed:>6} {ret:>14.1f}{mark}")
    lines += [
        f"greedy return over {summary['eval_episodes']} episodes: "
        f"{summary['greedy_return_mean']:.1f} ± {summary['greedy_return_std']:.1f} "
        "(mean ± std over seeds)",
        f"env steps per seed: {summary['env_steps_per_seed']:,}",
        f"compile: {summary['compile_s']:.1f} s   run: {summary['run_s']:.1f} s   "
        f"throughput: {summary['env_steps_per_s']:,.0f} env steps/s (all seeds)",
    ]
    return "\n".join(lines)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxdqn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a preset (or any gymnax env) over seeds")
    train.add_argument("--env", default="CartPole-v1", help="env id (default: CartPole-v1)")
    train.add_argument("--seeds", type=int, default=8, help="seeds trained at once (vmapped)")
    train.add_argument("--seed", type=int, default=0, help="first seed")
    train.add_argument("--total-timesteps", type=int, default=None, help="env steps per seed")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override any DQNConfig field, e.g. --set learning_rate=3e-4 (repeatable)",
    )
    train.add_argument("--eval-episodes", type=int, default=100, help="greedy episodes per seed")
    train.add_argument("--out", default="runs", help="parent folder of the run folder")
    train.set_defaults(func=train_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.command == "train" and args.seeds < 1:
        parser.error(f"--seeds={args.seeds} is invalid: must be >= 1")
    if args.command == "train" and args.eval_episodes < 1:
        parser.error(f"--eval-episodes={args.eval_episodes} is invalid: must be >= 1")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
