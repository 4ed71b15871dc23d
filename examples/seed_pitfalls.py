"""The three setups of "Why isn't Q-learning with function approximation learning?" on
ChainWalk-v0, each over 32 seeds in one vmapped call.

1. No target network, no replay (learn from the latest step), greedy actions.
2. The same with ε-greedy, ε decayed ×0.995 per episode from 0.5 to 0.01.
3. Target network (synced every 10 episodes) + replay (1000, batch 32, an update every
   5 steps) + the same ε-greedy.

Each trains 1000 episodes of 20 steps, as in the source. For every setup the script
prints the fraction of seeds whose greedy policy is optimal (move right in all 6 states),
how far Q is from the analytic infinite-horizon Q* (gamma 0.99), and what
``jaxdqn.diagnose`` finds in the run's rows. ``--plot`` draws the largest |Q| of each
setup over training against the largest Q*.

    python examples/seed_pitfalls.py [--seeds 32] [--plot docs/seed_pitfalls_q.png]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

import jaxdqn
from jaxdqn.envs import chain_walk_observations, chain_walk_optimal_q
from jaxdqn.host.doctor import random_policy_return

EPISODES, EPISODE_STEPS = 1_000, 20

# What the three setups share: the source's 64-64 MLP, Adam, squared TD error, no clipping.
COMMON = dict(
    env_id="ChainWalk-v0",
    num_envs=1,
    total_timesteps=EPISODES * EPISODE_STEPS,
    gamma=0.99,
    hidden_sizes=(64, 64),
    loss="l2",
    double_q=False,
    max_grad_norm=None,
    log_interval=EPISODE_STEPS * 10,
)
# Online Q-learning: a one-slot buffer holds only the latest transition, targets come
# from the online network (a hard copy after every update).
ONLINE = dict(
    buffer_size=1,
    batch_size=1,
    learning_starts=1,
    train_frequency=1,
    target_update_period=1,
    target_tau=1.0,
)
EPSILON_PER_EPISODE = dict(
    exploration="epsilon_greedy",
    exploration_schedule="exponential",
    exploration_unit="episodes",
    exploration_start=0.5,
    exploration_end=0.01,
    exploration_decay=0.995,
)

SETUPS = {
    "1: no target, no replay, greedy": jaxdqn.DQNConfig(
        **COMMON,
        **ONLINE,
        learning_rate=0.01,
        exploration_schedule="constant",
        exploration_start=0.0,
    ),
    "2: + epsilon-greedy": jaxdqn.DQNConfig(
        **COMMON,
        **ONLINE,
        learning_rate=0.001,
        **EPSILON_PER_EPISODE,
    ),
    "3: + target net + replay": jaxdqn.DQNConfig(
        **COMMON,
        learning_rate=0.001,
        buffer_size=1_000,
        batch_size=32,
        learning_starts=35,
        train_frequency=5,
        target_update_period=10 * EPISODE_STEPS // 5,  # every 10 episodes, in updates
        **EPSILON_PER_EPISODE,
    ),
}


def q_table(config: jaxdqn.DQNConfig, params) -> jax.Array:
    """Q-values ``[6, 2]`` of all chain states for one seed's params."""
    return jaxdqn.build(config).q_network.apply(params, chain_walk_observations())


def assess(config: jaxdqn.DQNConfig, params) -> tuple[np.ndarray, np.ndarray]:
    """Per seed: is the greedy policy optimal, and the worst relative error of Q vs Q*."""
    q = np.asarray(jax.vmap(lambda p: q_table(config, p))(params))  # [seeds, 6, 2]
    q_star = chain_walk_optimal_q(config.gamma)
    optimal = np.all(q.argmax(axis=-1) == 1, axis=-1)
    worst = np.max(np.abs(q - q_star) / np.abs(q_star), axis=(1, 2))
    return optimal, worst


def plot_q(runs: dict[str, dict[str, np.ndarray]], q_star_max: float, path: str) -> None:
    """The median seed's largest |Q| over training, per setup, against the largest Q*."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    for name, metrics in runs.items():
        axes.plot(metrics["env_steps"][0], np.nanmedian(metrics["q_abs_max"], axis=0), label=name)
    axes.axhline(q_star_max, color="black", linestyle="--", label="largest Q*")
    axes.set(yscale="log", xlabel="env steps", ylabel="max |Q| (median seed)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--plot", default=None, help="PNG of max |Q| against Q* over training")
    args = parser.parse_args()
    keys = jax.random.split(jax.random.key(0), args.seeds)
    print(
        f"ChainWalk-v0, {EPISODES} episodes x {EPISODE_STEPS} steps, {args.seeds} seeds per setup"
    )
    print(
        f"{'setup':<34} {'optimal policy':>15} {'max |Q-Q*|/Q*: median seed':>28} "
        f"{'worst seed':>11} {'time':>7}"
    )
    runs = {}
    for name, config in SETUPS.items():
        start = time.perf_counter()
        states, metrics = jax.jit(jax.vmap(jaxdqn.make_train(config)))(keys)
        optimal, worst = assess(config, states.params)
        runs[name] = {k: np.asarray(v) for k, v in metrics.items()}
        print(
            f"{name:<34} {optimal.mean():>15.0%} {np.median(worst):>28.3g} "
            f"{worst.max():>11.3g} {time.perf_counter() - start:>6.1f}s"
        )
    # The setups play greedily or at ε <= 0.5 from the first step: no window of the runs
    # shows a random policy, so its return is measured apart.
    random = random_policy_return(next(iter(SETUPS.values())))
    for name, config in SETUPS.items():
        print(f"\n{name}: the doctor's findings")
        for finding in jaxdqn.diagnose(config, runs[name], random_return=random):
            print(f"  {finding.line()}")
            if finding.cause:
                print(f"      cause: {finding.cause}")
    if args.plot:
        plot_q(runs, float(chain_walk_optimal_q(0.99).max()), args.plot)
        print(f"\nwritten: {args.plot}")


if __name__ == "__main__":
    main()
