"""purejaxrl's ``dqn.py`` (github:luchris429/purejaxrl), loaded from a checkout the user
gives, as a program the throughput benchmark times beside jaxdqn's reference setup.

Nothing of the peer is in this repository: :func:`peer_train` imports ``purejaxrl/dqn.py``
from ``peer_dir`` unmodified. Two shims make it run on today's gymnax and JAX, as
``../shared/tools/peers/peer_pjrl.py`` does: its outermost env wrapper gets gymnax's
``LegacyStepAPIWrapper`` (the 5-value step it was written for, ``done = terminated or
truncated``) and the removed ``jax.tree_map`` is aliased to ``jax.tree.map``. The peer
needs ``flashbax`` (0.1.3 was used) and imports ``wandb``, which is stubbed when missing.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path

import jax

import jaxdqn


def peer_config(config: jaxdqn.DQNConfig) -> dict:
    """The peer's config dict for a jaxdqn config of the reference setup's shape.

    Raises:
      ValueError: for a config the peer cannot express (it always uses Adam, an MLP of
        120-84 units, the L2 loss, no Double DQN and no gradient clipping).
    """
    fixed = {
        "optimizer": "adam", "hidden_sizes": (120, 84), "loss": "l2", "double_q": False,
        "max_grad_norm": None, "n_step": 1, "prioritized": False, "target_tau": 1.0,
    }  # fmt: skip
    for field, value in fixed.items():
        if getattr(config, field) != value:
            raise ValueError(f"{field}={getattr(config, field)!r}: the peer only runs {value!r}.")
    return {
        "NUM_ENVS": config.num_envs,
        "BUFFER_SIZE": config.buffer_size,
        "BUFFER_BATCH_SIZE": config.batch_size,
        "TOTAL_TIMESTEPS": config.total_timesteps,
        "EPSILON_START": config.exploration_start,
        "EPSILON_FINISH": config.exploration_end,
        "EPSILON_ANNEAL_TIME": config.exploration_steps,
        # The peer counts its target period in env steps, jaxdqn in updates.
        "TARGET_UPDATE_INTERVAL": config.target_update_period * config.train_frequency,
        "LR": config.learning_rate,
        "LEARNING_STARTS": config.learning_starts,
        "TRAINING_INTERVAL": config.train_frequency,
        "LR_LINEAR_DECAY": False,
        "GAMMA": config.gamma,
        "TAU": 1.0,
        "ENV_NAME": config.env_id,
        "SEED": 0,
        "NUM_SEEDS": 1,
        "WANDB_MODE": "disabled",
        "ENTITY": "",
        "PROJECT": "",
    }


def peer_train(peer_dir: str | Path, config: jaxdqn.DQNConfig) -> Callable:
    """The peer's ``train`` for ``config``, taking a typed PRNG key like jaxdqn's.

    Args:
      peer_dir: a checkout of github:luchris429/purejaxrl (holding ``purejaxrl/dqn.py``).
      config: a config of the reference setup's shape (:func:`peer_config`).

    Returns:
      ``train(key) -> dict`` (the peer's output), to ``jax.jit(jax.vmap(...))``.

    Raises:
      FileNotFoundError: if ``peer_dir`` holds no ``purejaxrl/dqn.py``.
      ImportError: if the peer's own dependencies (flashbax) are missing.
    """
    peer_dir = Path(peer_dir)
    if not (peer_dir / "purejaxrl" / "dqn.py").is_file():
        raise FileNotFoundError(f"--peer-purejaxrl {peer_dir}: no purejaxrl/dqn.py there.")
    if not hasattr(jax, "tree_map"):
        jax.tree_map = jax.tree.map
    if "wandb" not in sys.modules:
        try:
            import wandb  # noqa: F401
        except ImportError:
            sys.modules["wandb"] = types.ModuleType("wandb")
    from gymnax.wrappers import LegacyStepAPIWrapper, LogWrapper

    sys.path.insert(0, str(peer_dir))
    from purejaxrl import dqn

    dqn.LogWrapper = lambda env: LegacyStepAPIWrapper(LogWrapper(env))
    train = dqn.make_train(peer_config(config))
    return lambda key: train(jax.random.key_data(key))
