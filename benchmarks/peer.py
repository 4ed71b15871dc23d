"""purejaxrl's ``dqn.py`` (github:luchris429/purejaxrl), loaded from a checkout the user
gives, as a program the throughput benchmark times beside jaxdqn's reference setup.

Nothing of the peer is in this repository: :func:`peer_train` imports ``purejaxrl/dqn.py``
from ``peer_dir`` unmodified. Two shims make it run on today's gymnax and JAX, as
``../shared/tools/peers/peer_pjrl.py`` does: its outermost env wrapper gets gymnax's
``LegacyStepAPIWrapper`` (the 5-value step it was written for, ``done = terminated or
truncated``) and the removed ``jax.tree_map`` is aliased to ``jax.tree.map``. The peer
needs ``flashbax`` (0.1.3 was used) and imports ``wandb``, which is stubbed when missing.

The peer's ``train`` replaces the seed's key with ``PRNGKey(0)`` before it initialises the
network (purejaxrl issue #35), so its seeds share the initial parameters, every ε-greedy
draw and every replay sample. ``keep_seed_keys=True`` times it with that fixed: the dummy
key that shapes its buffer gets a name of its own (:func:`seed_keys_kept`).
"""

from __future__ import annotations

import re
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


# The line of the peer's train that replaces the seed's key (purejaxrl issue #35).
SEED_KEY_LOST = "rng = jax.random.PRNGKey(0)  # use a dummy rng here"


def seed_keys_kept(source: str) -> str:
    """``dqn.py``'s source with the seed's key kept: from :data:`SEED_KEY_LOST` to the
    line that initialises the buffer, ``rng`` in the code is renamed ``dummy_rng``.

    Raises:
      ValueError: if the source does not hold that line once, followed by the buffer's
        ``buffer.init(`` (another version of the peer).
    """
    lines = source.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.strip() == SEED_KEY_LOST]
    if len(starts) != 1:
        raise ValueError(f"dqn.py holds {SEED_KEY_LOST!r} {len(starts)} times, not once.")
    start = starts[0]
    end = next((i for i in range(start, len(lines)) if "buffer.init(" in lines[i]), None)
    if end is None:
        raise ValueError("dqn.py: no buffer.init( after the dummy key; another version?")
    for i in range(start, end + 1):
        code, hash_, comment = lines[i].partition("#")
        lines[i] = re.sub(r"\brng\b", "dummy_rng", code) + hash_ + comment
    return "".join(lines)


def peer_train(
    peer_dir: str | Path, config: jaxdqn.DQNConfig, keep_seed_keys: bool = False
) -> Callable:
    """The peer's ``train`` for ``config``, taking a typed PRNG key like jaxdqn's.

    Args:
      peer_dir: a checkout of github:luchris429/purejaxrl (holding ``purejaxrl/dqn.py``).
      config: a config of the reference setup's shape (:func:`peer_config`).
      keep_seed_keys: run the peer with its seeds' keys kept (:func:`seed_keys_kept`).

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
    if keep_seed_keys:
        fixed = types.ModuleType("purejaxrl.dqn_seed_keys_kept")
        fixed.__file__ = dqn.__file__
        sys.modules[fixed.__name__] = fixed  # its dataclasses look their module up
        source = seed_keys_kept(Path(dqn.__file__).read_text())
        exec(compile(source, dqn.__file__, "exec"), fixed.__dict__)
        fixed.LogWrapper = dqn.LogWrapper
        dqn = fixed
    train = dqn.make_train(peer_config(config))
    return lambda key: train(jax.random.key_data(key))
