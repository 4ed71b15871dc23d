"""MinAtar against the paper: the DQN and Rainbow presets on the four MinAtar games.

The MinAtar paper (Young & Tian 2019) reports DQN after 5M frames (one frame = one env
step, no frame skip) as the training return averaged over the last 100 episodes,
ε-greedy with final ε 0.1. This script measures the same statistic for each preset, with
the greedy return (ε = 0, 100 episodes per seed) beside it, at the budget asked for. The
presets' exploration, learning start and target period stay as they are (not scaled to
the budget), so a 1M-step run is the first 1M steps of the paper's protocol.

    python benchmarks/minatar.py --total-timesteps 1000000 --seeds 3   # CPU: hours
    python benchmarks/minatar.py --games Breakout --presets rainbow --seeds 3
    python benchmarks/minatar.py --games SpaceInvaders --presets rainbow --key 100 \
        --set learning_rate=1e-4 --name lr1e-4   # a tuning run on keys no table uses
    python benchmarks/minatar.py --smoke              # the Rainbow preset, seconds; CI

Writes ``minatar_<budget>_<device>.json`` (every curve) and a PNG of the training
statistic against env steps under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
from common import RESULTS, device_slug, print_table, write_results
from learning import learning_curve

from jaxdqn.host.driver import build_config

GAMES = ("Breakout", "Asterix", "SpaceInvaders", "Freeway")
# DQN in the MinAtar paper after 5M frames, read off its learning curves (30 seeds).
PAPER_DQN_5M = {"Breakout": 10.0, "Asterix": 17.0, "SpaceInvaders": 43.0, "Freeway": 50.0}
LAST_EPISODES = 100  # the paper's window of training episodes
KEPT = ("exploration_steps", "learning_starts", "target_update_period")  # not scaled


def last_episodes_return(training: dict, episodes: int = LAST_EPISODES) -> np.ndarray:
    """Per seed ``[S]``: the mean training return of the last log windows holding at least
    ``episodes`` episodes in all (fewer where the run has fewer), each window's mean
    weighted by its episode count. ``training`` holds ``[S, W]`` rows per metric."""
    returns = np.nan_to_num(np.asarray(training["episode_return"], np.float64))
    counts = np.asarray(training["completed_episodes"], np.float64)
    out = []
    for seed_returns, seed_counts in zip(returns, counts, strict=True):
        held = np.cumsum(seed_counts[::-1])
        last = min(int(np.searchsorted(held, episodes)) + 1, len(held))  # windows from the end
        window = slice(len(seed_counts) - last, None)
        total = seed_counts[window].sum()
        out.append((seed_returns[window] * seed_counts[window]).sum() / max(total, 1.0))
    return np.array(out)


def running_statistic(training: dict, episodes: int = LAST_EPISODES) -> np.ndarray:
    """:func:`last_episodes_return` at every log window ``[S, W]`` (the curve)."""
    windows = np.asarray(training["env_steps"]).shape[1]
    rows = [
        last_episodes_return({k: np.asarray(v)[:, : w + 1] for k, v in training.items()}, episodes)
        for w in range(windows)
    ]
    return np.stack(rows, axis=1)


def measure(game, preset, total, seeds, evals, episodes, smoke, deadline=None, overrides=(), key=0):
    config = build_config(f"{game}-MinAtar", None, list(overrides), preset=preset)
    if smoke:
        config = dataclasses.replace(
            config, total_timesteps=total, buffer_size=2_048, learning_starts=1_024,
            exploration_steps=1_024, target_update_period=16, log_interval=256,
        )  # fmt: skip
    else:
        set_fields = [text.split("=", 1)[0] for text in overrides]
        config = config.with_budget(total, keep=(*KEPT, *set_fields))
    result = learning_curve(
        config, seeds, evals, episodes, None, [f"preset={preset}", *overrides], key, deadline
    )
    curve = running_statistic(result["training"])
    result |= {
        "game": game,
        "preset": preset,
        "last_100_training_return": curve[:, -1].tolist(),
        "last_100_curve": curve.tolist(),
        "curve_env_steps": np.asarray(result["training"]["env_steps"])[0].tolist(),
    }
    return result


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    games = sorted({r["game"] for r in results}, key=GAMES.index)
    figure, axes = plt.subplots(1, len(games), figsize=(4 * len(games), 3.5), squeeze=False)
    for ax, game in zip(axes[0], games, strict=True):
        for r in (r for r in results if r["game"] == game):
            curve = np.asarray(r["last_100_curve"])
            x = np.asarray(r["curve_env_steps"])
            ax.plot(x, curve.mean(axis=0), label=f"{r['preset']} ({r['seeds']} seeds)")
            ax.fill_between(x, curve.min(axis=0), curve.max(axis=0), alpha=0.2)
        ax.axhline(PAPER_DQN_5M[game], color="k", ls="--", lw=1, label="paper DQN, 5M")
        ax.set_title(f"{game}-MinAtar")
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"training return, last {LAST_EPISODES} episodes")
    axes[0][0].legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", nargs="+", choices=GAMES, default=list(GAMES))
    parser.add_argument(
        "--presets", nargs="+", choices=("dqn", "rainbow"), default=["dqn", "rainbow"]
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--key", type=int, default=0, help="seeds are split(key(KEY), SEEDS)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE",
        help="override a DQNConfig field of every run, as in jaxdqn train (repeatable)",
    )  # fmt: skip
    parser.add_argument("--name", default=None, help="suffix of the result files' names")
    parser.add_argument("--total-timesteps", type=int, default=1_000_000)
    parser.add_argument("--evals", type=int, default=10, help="greedy evaluation points")
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument(
        "--deadline-s",
        type=float,
        default=None,
        help="seconds from the start after which every run stops at its next evaluation "
        "point (a time-boxed machine); the table names the env steps each run reached",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny settings, for CI")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    return parser


def main() -> None:
    parser = make_parser()
    args = parser.parse_args()
    for game in args.games:  # a bad --set is refused before anything compiles
        for preset in args.presets:
            try:
                build_config(f"{game}-MinAtar", None, args.set, preset=preset)
            except ValueError as error:
                parser.error(str(error))
    deadline = None if args.deadline_s is None else time.monotonic() + args.deadline_s
    out = RESULTS if args.out is None else Path(args.out)
    if args.smoke:
        args.games, args.presets, args.seeds = args.games[:1], ["rainbow"], 2
        args.total_timesteps = 2_048
        args.evals, args.eval_episodes = 2, 2
    results = []
    for game in args.games:
        for preset in args.presets:
            results.append(
                measure(game, preset, args.total_timesteps, args.seeds, args.evals,
                        args.eval_episodes, args.smoke, deadline, args.set, args.key)
            )  # fmt: skip
    report(results, args, out)


def report(results: list[dict], args: argparse.Namespace, out: Path) -> None:
    """Prints the table of ``results`` and writes its JSON and PNG under ``out``."""
    rows = [
        {
            "game": r["game"],
            "preset": r["preset"],
            "budget": f"{r['env_steps'][-1]:,}",
            "seeds": r["seeds"],
            "train": float(np.mean(r["last_100_training_return"])),
            "greedy": float(np.mean(r["greedy_return_per_seed"][-1])),
            "paper": PAPER_DQN_5M[r["game"]],
        }
        for r in results
    ]
    print(
        f"training return over the last {LAST_EPISODES} episodes (ε-greedy, as the paper) and "
        f"greedy return ({args.eval_episodes} episodes per seed), means over seeds"
    )
    print_table(
        rows,
        [("game", "game", "s"), ("preset", "preset", "s"), ("budget", "env steps", "s"),
         ("seeds", "seeds", "d"), ("train", "train last-100", ".2f"),
         ("greedy", "greedy", ".2f"), ("paper", "paper DQN 5M", ".0f")],
    )  # fmt: skip
    name = f"minatar_{args.total_timesteps}" + (f"_{args.name}" if args.name else "")
    name += "_smoke" if args.smoke else ""
    write_results(name, {"rows": rows, "runs": results}, out_dir=out)
    plot(results, out / f"{name}_{device_slug()}.png")


if __name__ == "__main__":
    main()
