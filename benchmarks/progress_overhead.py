"""What watching a run costs: the CLI's chunked loop against one fused call.

Three ways to train the same config and seeds, repeated in turn (ABCABC...) and compared
by their medians, compile excluded:

* ``whole``: ``jax.jit(jax.vmap(train))(keys)``, one call, no host work;
* ``chunked``: what ``jaxdqn train`` does: one compiled call per log point with the state
  donated, metric rows written to per-seed JSONL files and the progress line redrawn
  after every chunk (to a terminal-like stream, so every update is drawn);
* ``chunked+ckpt``: the same plus a full checkpoint every 10 log points (the default).

    python benchmarks/progress_overhead.py             # CartPole preset, 8 seeds, 50k steps
    python benchmarks/progress_overhead.py --smoke     # seconds; what CI runs
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import tempfile
from pathlib import Path

import jax
from common import interleaved_times, overhead_rows, print_table, write_results

import jaxdqn
from jaxdqn.host.checkpoint import save_checkpoint
from jaxdqn.host.monitor import MetricsWriter, Progress, run_chunks


class _Terminal(io.StringIO):
    def isatty(self) -> bool:  # draw every update, as on a terminal
        return True


def chunked(config, chunk, state, checkpoint_every: int):
    """Trains ``state`` (leaves ``[seeds, ...]``) as ``jaxdqn train`` does: one ``chunk``
    call per log point, metric rows written to per-seed JSONL files and the progress line
    redrawn, a checkpoint every ``checkpoint_every`` log points (0: none). Returns the
    final state."""
    seeds = jax.tree.leaves(state)[0].shape[0]
    with tempfile.TemporaryDirectory() as folder:
        writer = MetricsWriter(folder, list(range(seeds)))
        progress = Progress(config.total_timesteps, seeds, stream=_Terminal())

        def on_rows(rows):
            writer.write(rows)
            progress.update(rows)

        def on_pause(i, state):
            step = (i + 1) * config.resolved_log_interval()
            save_checkpoint(folder, state, step=step, config=config, keep=2)

        state = run_chunks(
            chunk, state, config.num_log_points(), on_rows,
            pause_after=lambda i: bool(checkpoint_every) and (i + 1) % checkpoint_every == 0,
            on_pause=on_pause if checkpoint_every else None,
        )  # fmt: skip
        writer.close()
        return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--total-timesteps", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny settings, for CI")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = parser.parse_args()
    config = jaxdqn.get_preset(args.env)
    if args.smoke:
        args.seeds, args.repeats = 2, 1
        config = dataclasses.replace(
            config, total_timesteps=2_000, learning_starts=1_000, buffer_size=2_000,
            exploration_steps=1_000, log_interval=200,
        )  # fmt: skip
    else:
        config = dataclasses.replace(config, total_timesteps=args.total_timesteps)
    keys = jax.random.split(jax.random.key(0), args.seeds)
    trainer = jaxdqn.make_trainer(config)
    whole = jax.jit(jax.vmap(trainer.train)).lower(keys).compile()
    init = jax.jit(jax.vmap(trainer.init))
    chunk = jax.jit(jax.vmap(lambda s: trainer.run(s, 1)), donate_argnums=0)
    chunk = chunk.lower(init(keys)).compile()
    points = config.num_log_points()

    modes = {
        "whole": lambda: whole(keys),
        "chunked": lambda: chunked(config, chunk, init(keys), 0),
        "chunked+ckpt": lambda: chunked(config, chunk, init(keys), 10),
    }
    times = interleaved_times(modes, args.repeats)
    rows = overhead_rows(times, "whole", config.total_timesteps * args.seeds, "mode")
    print(
        f"{config.env_id}, {args.seeds} seeds x {config.total_timesteps:,} env steps, "
        f"{points} chunks, {args.repeats} repeats, device {jax.devices()[0].device_kind}"
    )
    print_table(
        rows,
        [
            ("mode", "mode", ""),
            ("median_s", "median s", ".2f"),
            ("env_steps_per_s", "env steps/s", ",.0f"),
            ("overhead_pct", "vs whole %", "+.1f"),
            ("all_s", "runs (s)", ""),
        ],
    )
    write_results(
        "progress_overhead" + ("_smoke" if args.smoke else ""),
        {"settings": {"config": dataclasses.asdict(config), "seeds": args.seeds,
                      "repeats": args.repeats, "chunks": points},
         "rows": rows, "times_s": times},
        out_dir=None if args.out is None else Path(args.out),
    )  # fmt: skip


if __name__ == "__main__":
    main()
