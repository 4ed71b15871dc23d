"""Full-training throughput against the bound set by its parts, over num_envs and seeds.

Every row trains ``seeds`` seeds at once (``jax.jit(jax.vmap(train))``) and, in the same
process, times the same work's parts alone, each vmapped over the same seeds:

* ``rollout``: the vectorised env steps of the run with uniformly random actions;
* ``replay``: the run's buffer adds and batch samples (index draw and gather);
* ``updates``: the run's gradient updates (TD loss, Adam, target sync) on a fixed batch.

Their summed time is the bound a fused loop can approach (it leaves out acting with the
Q-network and the metric sums); ``full/bound`` is the bound's time over the full run's
time, so 100% means the fused loop costs no more than its parts. Times are medians over
``--repeats``, compile excluded and reported apart. Memory: bytes per stored transition
(beside the common layout's, obs and next_obs in float32), the state of one seed, and the
compiled program's memory per seed.

Rows: a grid (CartPole preset hyperparameters, ``--grid-steps`` env steps per seed, over
``--num-envs`` x ``--seeds``, medians of ``--repeats``), the **reference setup** (the most
common published JAX DQN CartPole setup, 500k env steps) and the CartPole preset itself
(200k env steps), these long rows timed ``--long-repeats`` times.

    python benchmarks/throughput.py                    # CPU defaults: 36 minutes on 2 cores
    python benchmarks/throughput.py --seeds 1 8        # without the 64-seed grid rows
    python benchmarks/throughput.py --seeds 1 8 64 256 1024 --grid-steps 65536 \
        --reference-seeds 1 64 1024 --long-repeats 3   # a GPU
    python benchmarks/throughput.py --smoke            # seconds; what CI runs
    python benchmarks/throughput.py --seeds --preset-seeds --reference-seeds 8 \
        --processes 1 2                                # the reference setup over processes

``--processes 1 2`` adds rows of the reference setup's first ``--reference-seeds`` count
trained by ``jaxdqn train`` as 1 process holding every CPU device and as 2 processes of
one device each (``benchmarks/processes.py``, which checks both train the same params).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
from common import median, print_table, timed, write_results
from peer import peer_config, peer_train
from processes import COLUMNS as PROCESS_COLUMNS
from processes import process_rows

import jaxdqn
from jaxdqn.core.actor import reset_envs, step_envs
from jaxdqn.core.types import Batch, Transition
from jaxdqn.host.memory import (
    check_memory,
    pairs_f32_transition_bytes,
    state_bytes,
    transition_bytes,
)

# CleanRL's dqn_jax.py CartPole-v1 defaults (also PureJaxRL's): the setup most JAX DQN
# numbers are quoted for. Hard target copy every 500 env steps = every 50 updates here.
REFERENCE_SETUP = jaxdqn.DQNConfig(
    env_id="CartPole-v1",
    num_envs=10,
    total_timesteps=500_000,
    buffer_size=10_000,
    batch_size=128,
    learning_starts=10_000,
    train_frequency=10,
    target_update_period=50,
    optimizer="adam",
    learning_rate=2.5e-4,
    hidden_sizes=(120, 84),
    activation="relu",
    loss="l2",
    double_q=False,
    max_grad_norm=None,
    exploration_start=1.0,
    exploration_end=0.05,
    exploration_steps=250_000,
    gamma=0.99,
)


def grid_config(num_envs: int, steps: int) -> jaxdqn.DQNConfig:
    """The CartPole preset resized to ``num_envs`` envs and about ``steps`` env steps."""
    base = jaxdqn.get_preset("CartPole-v1")
    cycle = math.lcm(num_envs, base.train_frequency)
    total = max(2, round(steps / cycle)) * cycle
    learning_starts = math.ceil(base.batch_size / cycle) * cycle
    resized = dataclasses.replace(
        base,
        num_envs=num_envs,
        total_timesteps=total,
        learning_starts=learning_starts,
        buffer_size=min(base.buffer_size, total),
        exploration_steps=total // 2,
        target_update_period=1,
        log_interval=None,
    )
    # The preset's target period, or once per run when the run has fewer updates.
    period = min(base.target_update_period, resized.total_updates())
    return dataclasses.replace(resized, target_update_period=period)


def rollout_part(config):
    """The run's vectorised env steps with random actions, for one seed."""
    bound = jaxdqn.build(config).env
    n = config.num_envs

    def run(key):
        key, key_reset = jax.random.split(key)
        _, env_state = reset_envs(bound, key_reset, n)

        def step(carry, _):
            key, env_state, total = carry
            key, key_act, key_step = jax.random.split(key, 3)
            actions = jax.random.randint(key_act, (n,), 0, bound.spec.num_actions)
            _, env_state, reward, _, _, info = step_envs(bound, key_step, env_state, actions)
            total = total + jnp.sum(reward) + jnp.sum(info["final_observation"])
            return (key, env_state, total), None

        carry = (key, env_state, jnp.float32(0.0))
        (_, _, total), _ = jax.lax.scan(step, carry, None, config.total_timesteps // n)
        return total

    return run


def replay_part(config):
    """The run's replay adds (every env step), samples and priority updates (every
    update), for one seed, through the run's own replay component (uniform or
    prioritized as the config says; an n-step cut reads the initial network's Q-values)."""
    parts = jaxdqn.build(config)
    replay, spec = parts.replay, parts.env.spec
    time_limit = spec.max_episode_steps
    n, warmup = config.num_envs, config.learning_starts // config.cycle_env_steps()

    def run(key):
        rows = Transition(
            obs=jnp.zeros((n, *spec.obs_shape), spec.obs_dtype),
            action=jnp.zeros(n, jnp.int32),
            reward=jnp.ones(n, jnp.float32),
            terminated=jnp.zeros(n, bool),
            truncated=jnp.zeros(n, bool),
            next_obs=jnp.ones((n, *spec.obs_shape), spec.obs_dtype),
        )

        def add(carry, t):
            state, total = carry
            # Every env truncated at its time limit, as often as the ring allows.
            step_rows = rows._replace(
                obs=rows.obs + t.astype(spec.obs_dtype),
                truncated=jnp.full(n, t % time_limit == time_limit - 1),
            )
            return (replay.add(state, step_rows), total), None

        values = None
        if config.n_step_cut:  # the cut reads the initial network's Q-values
            learner = parts.learner.init(jax.random.fold_in(key, 1), rows.obs[:1])
            values = partial(parts.learner.action_values, learner)

        def sample(carry, key):
            state, total = carry
            drawn = replay.sample(state, key, config.gamma, 0.5, values)
            total += sum(jnp.sum(x.astype(jnp.float32)) for x in jax.tree.leaves(drawn.batch))
            # New priorities from numbers the draw produced (a no-op for uniform replay).
            td = drawn.batch.reward + drawn.batch.weight
            state = replay.update_priorities(state, drawn.slots, td, jnp.bool_(True))
            return (state, total), None

        def cycle(carry, xs, learn: bool):
            t, key = xs
            steps = t * config.steps_per_cycle() + jnp.arange(config.steps_per_cycle())
            carry, _ = jax.lax.scan(add, carry, steps)
            if learn:
                keys = jax.random.split(key, config.updates_per_cycle())
                carry, _ = jax.lax.scan(sample, carry, keys)
            return carry, None

        carry = (replay.init(rows.obs[0]), jnp.float32(0.0))
        cycles = jnp.arange(config.num_cycles())
        keys = jax.random.split(key, config.num_cycles())
        carry, _ = jax.lax.scan(
            lambda c, x: cycle(c, x, False), carry, (cycles[:warmup], keys[:warmup])
        )
        carry, _ = jax.lax.scan(
            lambda c, x: cycle(c, x, True), carry, (cycles[warmup:], keys[warmup:])
        )
        return carry[1]

    return run


def updates_part(config):
    """The run's gradient updates on one fixed batch, for one seed, through the run's own
    learner."""
    parts = jaxdqn.build(config)
    spec = parts.env.spec
    init = jaxdqn.make_trainer(config).init

    def run(key):
        key_init, key_obs, key_act = jax.random.split(key, 3)
        start = init(key_init)
        b = config.batch_size
        obs = jax.random.normal(key_obs, (2, b, *spec.obs_shape)).astype(spec.obs_dtype)
        batch = Batch(
            obs=obs[0],
            action=jax.random.randint(key_act, (b,), 0, spec.num_actions),
            reward=jnp.ones(b, jnp.float32),
            discount=jnp.where(jnp.arange(b) % 50 == 0, 0.0, config.gamma),
            next_obs=obs[1],
            weight=jnp.ones(b, jnp.float32),
        )

        def step(state, _):
            state, stats, _ = parts.learner.update(state, batch, start.hparams)
            return state, stats.loss

        state, losses = jax.lax.scan(step, start.learner, None, config.total_updates())
        return state.params, jnp.sum(losses)

    return run


# The peer programs a row can hold: purejaxrl's dqn.py as it is, and with its seeds' keys
# kept (--peer-keys-kept).
PEERS = ("peer", "peer_keys_kept")


def compile_and_time(programs: dict, placements: dict, seeds: int, repeats: int):
    """``(compiled, compile_s, times)`` of each ``train(key)`` in ``programs``, vmapped
    over ``seeds`` keys placed by ``placements[part]`` (a :func:`jaxdqn.seed_sharding`):
    compiled ahead of time, then run ``repeats`` times, interleaved."""
    compiled, compile_s, keys = {}, {}, {}
    for part, fn in programs.items():
        start = time.perf_counter()
        placed = placements[part]
        keys[part] = jax.device_put(jax.random.split(jax.random.key(0), seeds), placed)
        each_device = jaxdqn.on_each_device(jax.vmap(fn), placed)
        compiled[part] = jax.jit(each_device).lower(keys[part]).compile()
        compile_s[part] = time.perf_counter() - start
    times = {part: [] for part in programs}
    for _ in range(repeats):
        for part, fn in compiled.items():
            times[part].append(timed(lambda fn=fn, part=part: fn(keys[part])))
    return compiled, compile_s, times


def memory_bytes(compiled) -> tuple[int | None, int | None]:
    """``(program bytes, device peak bytes)``: the arguments, outputs and temporaries of
    one device's ``compiled`` program, and the first device's peak use (``None`` where
    the backend does not say: the peak on CPU)."""
    memory = compiled.memory_analysis()
    program_bytes = None
    if memory is not None:
        program_bytes = (
            memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes
        )
    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    peak = stats["peak_bytes_in_use"] if stats and "peak_bytes_in_use" in stats else None
    return program_bytes, peak


def measure(name: str, config, seeds: int, repeats: int, peers: dict | None = None) -> dict:
    """One row: the full run and its parts, each vmapped over ``seeds`` seeds, and
    ``peers`` (name -> a ``train(key)`` of the same work, :func:`peer.peer_train`) among
    them."""
    check_memory(config, seeds)
    # jaxdqn's programs, full run and parts alike, spread their seeds over the visible
    # devices; the peer runs as its users run it, on one device (it cannot shard).
    sharding = jaxdqn.seed_sharding(seeds)
    peer_sharding = jaxdqn.seed_sharding(seeds, jax.local_devices()[:1])
    programs = {
        "full": jaxdqn.make_train(config),
        "rollout": rollout_part(config),
        "replay": replay_part(config),
        "updates": updates_part(config),
    }
    programs.update(peers or {})
    placements = {part: peer_sharding if part in PEERS else sharding for part in programs}
    compiled, compile_s, times = compile_and_time(programs, placements, seeds, repeats)
    med = {part: median(t) for part, t in times.items()}
    bound = med["rollout"] + med["replay"] + med["updates"]
    steps = config.total_timesteps * seeds
    program_bytes, peak = memory_bytes(compiled["full"])
    row = {
        "row": name,
        "num_envs": config.num_envs,
        "seeds": seeds,
        "devices": sharding.num_devices,
        "peer_devices": peer_sharding.num_devices if peers else None,
        "env_steps_per_seed": config.total_timesteps,
        "updates_per_seed": config.total_updates(),
        "compile_s": compile_s["full"],
        "full_s": med["full"],
        "env_steps_per_s": steps / med["full"],
        "updates_per_s": config.total_updates() * seeds / med["full"],
        "rollout_s": med["rollout"],
        "replay_s": med["replay"],
        "updates_s": med["updates"],
        "bound_s": bound,
        "full_over_bound_pct": 100 * bound / med["full"],
        "bytes_per_transition": transition_bytes(config),
        "pairs_f32_bytes_per_transition": pairs_f32_transition_bytes(config),
        "state_mib_per_seed": state_bytes(config) / 2**20,
        # memory_analysis() describes one device's program, which holds its share of seeds.
        "program_mib_per_seed": (
            None if program_bytes is None else program_bytes * sharding.num_devices / seeds / 2**20
        ),
        "device_peak_mib": None if peak is None else peak / 2**20,
        "times_s": times,
        "parts_compile_s": compile_s,
    }
    for peer in PEERS:
        row[f"{peer}_s"] = med.get(peer)
        # Above 1 means jaxdqn trains faster than the peer, in the same process and run.
        row[f"speed_over_{peer}"] = med[peer] / med["full"] if peer in med else None
    print(
        f"  {name}: envs {config.num_envs} seeds {seeds}: full {med['full']:.2f} s, "
        f"bound {bound:.2f} s ({row['full_over_bound_pct']:.0f}%)"
        + "".join(f", {peer} {med[peer]:.2f} s" for peer in PEERS if peer in med),
        flush=True,
    )
    return row


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, nargs="*", default=[1, 8, 64, 512])
    parser.add_argument(
        "--seeds", type=int, nargs="*", default=[1, 8, 64], help="grid seeds; none: no grid"
    )
    parser.add_argument("--grid-steps", type=int, default=8_192, help="env steps/seed, grid")
    parser.add_argument("--reference-seeds", type=int, nargs="*", default=[1, 8])
    parser.add_argument("--preset-seeds", type=int, nargs="*", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3, help="repeats of grid rows")
    parser.add_argument(
        "--long-repeats", type=int, default=1, help="repeats of reference and preset rows"
    )
    parser.add_argument(
        "--peer-purejaxrl",
        default=None,
        metavar="DIR",
        help="a purejaxrl checkout: time its dqn.py beside the reference setup rows",
    )
    parser.add_argument(
        "--peer-keys-kept",
        action="store_true",
        help="also time the peer with its seeds' keys kept (its train replaces them with "
        "PRNGKey(0): purejaxrl issue #35)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        nargs="*",
        default=[],
        help="process counts to train the reference setup with (jaxdqn train, 1 first)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny settings, for CI")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = parser.parse_args()
    if args.smoke:
        # One row, the preset's: its replay (prioritized, n-step) covers the most code.
        args.num_envs, args.seeds, args.grid_steps, args.repeats = [8], [], 512, 1
        args.long_repeats = 1
        args.reference_seeds, args.preset_seeds = [], [2]
    return args


def print_rows(rows: list[dict], peers: dict, by_process: list[dict], repeats: int) -> None:
    print(f"\ndevice {jax.devices()[0].device_kind}, jax {jax.__version__}, "
          f"medians of {repeats} repeats")  # fmt: skip
    print_table(
        rows,
        [
            ("row", "row", ""), ("num_envs", "envs", "d"), ("seeds", "seeds", "d"),
            ("devices", "devices", "d"),
            ("env_steps_per_seed", "steps/seed", ",d"), ("compile_s", "compile s", ".1f"),
            ("full_s", "full s", ".2f"), ("env_steps_per_s", "env steps/s", ",.0f"),
            ("updates_per_s", "updates/s", ",.0f"), ("rollout_s", "rollout s", ".2f"),
            ("replay_s", "replay s", ".2f"), ("updates_s", "updates s", ".2f"),
            ("full_over_bound_pct", "bound/full %", ".0f"),
            ("bytes_per_transition", "B/transition", ".1f"),
            ("pairs_f32_bytes_per_transition", "obs+next f32 B", "d"),
            ("program_mib_per_seed", "MiB/seed", ".1f"),
            *([("peer_devices", "peer devices", "d")] if peers else []),
            *[column for peer in peers for column in (
                (f"{peer}_s", f"{peer} s", ".2f"),
                (f"speed_over_{peer}", f"speed/{peer}", ".2f"))],
        ],
    )  # fmt: skip
    if by_process:
        print_table(by_process, PROCESS_COLUMNS)


def main() -> None:
    args = parse_args()
    reference, preset = REFERENCE_SETUP, jaxdqn.get_preset("CartPole-v1")
    if args.smoke:
        small = {"total_timesteps": 2_000, "learning_starts": 1_000, "buffer_size": 2_000,
                 "exploration_steps": 1_000, "target_update_period": 20,
                 "log_interval": None}  # fmt: skip
        reference = dataclasses.replace(reference, **small)
        preset = dataclasses.replace(preset, **small)
    peers = {}
    if args.peer_purejaxrl is not None:
        peers["peer"] = peer_train(args.peer_purejaxrl, reference)
        if args.peer_keys_kept:
            peers["peer_keys_kept"] = peer_train(args.peer_purejaxrl, reference, True)
    settings = {
        "grid_steps": args.grid_steps, "repeats": args.repeats,
        "long_repeats": args.long_repeats,
        "grid_base": dataclasses.asdict(grid_config(8, args.grid_steps)),
        "reference_setup": dataclasses.asdict(reference),
        "cartpole_preset": dataclasses.asdict(preset),
        "peer": None if not peers else {
            "program": "purejaxrl/dqn.py", "checkout": args.peer_purejaxrl,
            "config": peer_config(reference), "programs": list(peers),
        },
    }  # fmt: skip
    # Runs with the peer write a file of their own, so the grid rows are not overwritten.
    name = "throughput" + ("_peer" if peers else "") + ("_smoke" if args.smoke else "")
    out_dir = None if args.out is None else Path(args.out)
    plan = [("grid", grid_config(n, args.grid_steps), s, args.repeats, None)
            for n in args.num_envs for s in args.seeds]  # fmt: skip
    plan += [("reference setup", reference, s, args.long_repeats, peers)
             for s in args.reference_seeds]  # fmt: skip
    plan += [("CartPole preset", preset, s, args.long_repeats, None) for s in args.preset_seeds]
    rows, by_process = [], []
    for row_name, config, seeds, repeats, row_peers in plan:
        rows.append(measure(row_name, config, seeds, repeats, row_peers))
        # Written after every row: a run stopped at a time limit keeps what it measured.
        write_results(name, {"settings": settings, "rows": rows}, out_dir=out_dir)
    if args.processes:
        seeds, long = args.reference_seeds[0], args.long_repeats
        by_process = process_rows("reference setup", reference, seeds, long, args.processes)
        write_results(name, {"settings": settings, "rows": rows, "process_rows": by_process},
                      out_dir=out_dir)  # fmt: skip
    print_rows(rows, peers, by_process, args.repeats)


if __name__ == "__main__":
    main()
