"""Play an exported jaxdqn policy in Gymnasium with NumPy only (no JAX in the loop).

    jaxdqn train --env CartPole-v1                    # writes runs/CartPole-v1-<time>/
    jaxdqn export runs/CartPole-v1-<time> --seed 0    # writes .../policy_seed0.npz
    python examples/numpy_policy_gymnasium.py runs/CartPole-v1-<time>/policy_seed0.npz

The policy is read by ``jaxdqn/host/numpy_policy.py``, which imports NumPy alone; this script
loads that file by path, so it runs where the jaxdqn package (and JAX) is not installed:
copy ``numpy_policy.py`` and the ``.npz`` anywhere. Gymnasium's CartPole-v1 and
Acrobot-v1 have the same dynamics as the gymnax ports jaxdqn trains on.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import gymnasium as gym
import numpy as np

POLICY_MODULE = Path(__file__).resolve().parents[1] / "jaxdqn" / "host" / "numpy_policy.py"


def load_policy_class(module_path: Path):
    spec = importlib.util.spec_from_file_location("numpy_policy", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.NumpyQPolicy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", help="a .npz written by `jaxdqn export`")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--env", default=None, help="Gymnasium id (default: the trained env)")
    parser.add_argument("--module", type=Path, default=POLICY_MODULE, help="numpy_policy.py")
    args = parser.parse_args()

    policy = load_policy_class(args.module).load(args.policy)
    env = gym.make(args.env or policy.metadata["env_id"])
    returns = []
    for episode in range(args.episodes):
        obs, _ = env.reset(seed=episode)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy.act(obs))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    print(f"{env.spec.id}: {args.episodes} episodes with the NumPy policy of {args.policy}")
    low, high = np.min(returns), np.max(returns)
    print(f"returns: mean {np.mean(returns):.1f}, min {low:.1f}, max {high:.1f}")


if __name__ == "__main__":
    main()
