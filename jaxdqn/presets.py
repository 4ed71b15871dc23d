"""Tuned configs, in two variants (:data:`PRESET_VARIANTS`): DQN and Rainbow.

The DQN presets of CartPole-v1, Acrobot-v1 and ChainWalk-v0 are proven to solve their
environments by the learning tests (``tests/test_learning.py``); the MinAtar presets, DQN
and Rainbow (see ``benchmarks/minatar.py``), and the Atari ones (EnvPool) are starting
points, not yet proven over their full budget.
"""

from __future__ import annotations

import dataclasses
import difflib

from jaxdqn.config import DQNConfig

# Solve thresholds: the mean greedy return over 100 episodes that counts as solved.
SOLVED_RETURN = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0}

# The n-step cut of the presets with 3-step sums: a sum stops at a stored action whose
# value is more than 10% of |max Q| below the greedy one's. Uncut sums learn the exploring
# behaviour's value where the choice matters (jaxdqn probe's NextMax); a strict cut ends
# nearly every sum after one step where the actions are worth about the same (CartPole).
_NEAR_GREEDY_CUT = {"n_step_cut": True, "n_step_cut_tolerance": 0.1}

_PRESETS: dict[str, DQNConfig] = {
    # gamma 0.995: a late failure of CartPole is the cart drifting out of bounds a few
    # hundred steps ahead, which gamma 0.99 (horizon ~100) barely sees. Prioritized replay,
    # 3-step returns cut near-greedily (_NEAR_GREEDY_CUT), a dueling head and layer norm
    # are all on. The buffer keeps the whole run: once episodes reach the 500-step limit a
    # smaller one holds no failures, nothing separates the actions and the policy
    # collapses. The learning rate decays linearly to 0 and ε ends at 0.01, so the final
    # policy settles.
    # CHANGELOG.md has the seed counts behind each choice.
    "CartPole-v1": DQNConfig(
        env_id="CartPole-v1",
        num_envs=8,
        total_timesteps=200_000,
        buffer_size=200_000,
        batch_size=128,
        learning_starts=5_000,
        train_frequency=4,
        gamma=0.995,
        learning_rate=5e-4,
        learning_rate_schedule="linear",
        max_grad_norm=10.0,
        loss="l2",
        double_q=True,
        target_update_period=100,
        exploration_steps=50_000,
        exploration_end=0.01,
        hidden_sizes=(120, 84),
        prioritized=True,
        n_step=3,
        **_NEAR_GREEDY_CUT,
        dueling=True,
        layer_norm=True,
    ),
    "Acrobot-v1": DQNConfig(
        env_id="Acrobot-v1",
        num_envs=8,
        total_timesteps=100_000,
        buffer_size=100_000,
        batch_size=128,
        learning_starts=5_000,
        train_frequency=4,
        gamma=0.99,
        learning_rate=5e-4,
        learning_rate_schedule="linear",
        target_update_period=100,
        exploration_steps=20_000,
        exploration_end=0.05,
        hidden_sizes=(120, 84),
    ),
    # Q must bootstrap through the 20-step time limit to values near 100: frequent target
    # syncs (every 25 updates) carry the value back, and a floor of ε = 0.1 keeps action 0
    # tried in every state so its Q is learned too.
    "ChainWalk-v0": DQNConfig(
        env_id="ChainWalk-v0",
        num_envs=8,
        total_timesteps=100_000,
        buffer_size=10_000,
        batch_size=64,
        learning_starts=1_000,
        train_frequency=2,
        target_update_period=100,
        learning_rate=1e-3,
        learning_rate_schedule="linear",
        exploration_steps=10_000,
        exploration_end=0.1,
    ),
}


def _minatar(env_id: str) -> DQNConfig:
    """The MinAtar paper's DQN (Young & Tian 2019), vectorised over 16 envs: one 3x3 conv
    of 16 channels then 128 units, batch 32, buffer 100k, hard target copy every 1,000
    updates, ε 1 -> 0.1 over the first 100k steps, 5,000 steps before learning, Huber
    loss (the paper's smooth L1; MinAtar rewards are 0/1, so δ = 1 suits them). The paper
    updates once per env step; one update per 4 env steps (Adam instead of RMSProp)
    keeps 16 vectorised envs affordable. Observations are stored as bool."""
    return DQNConfig(
        env_id=env_id,
        num_envs=16,
        total_timesteps=5_000_000,
        buffer_size=100_000,
        batch_size=32,
        learning_starts=5_120,
        train_frequency=4,
        gamma=0.99,
        learning_rate=2.5e-4,
        loss="huber",
        double_q=True,
        target_update_period=1_000,
        exploration_steps=100_000,
        exploration_end=0.1,
        network="cnn",
        hidden_sizes=(128,),
    )


_MINATAR_IDS = ("Breakout-MinAtar", "Asterix-MinAtar", "SpaceInvaders-MinAtar", "Freeway-MinAtar")
_PRESETS.update({env_id: _minatar(env_id) for env_id in _MINATAR_IDS})


def _atari(env_id: str) -> DQNConfig:
    """A starting point for Atari through EnvPool (``pip install "jaxdqn[envpool]"``), from
    CleanRL's ``dqn_atari_jax`` and RL Zoo's Atari DQN: the Nature CNN on 4 stacked 84x84
    grey frames (EnvPool's frame skip 4, up to 30 no-op starts, FIRE on reset), clipped
    rewards, Adam 1e-4, batch 32, one update per 4 env steps, a hard target copy every
    1,000 env steps (250 updates), ε 1 -> 0.01 over the first 1M of 10M env steps,
    80,000 env steps before learning. The replay keeps 100,000 transitions (RL Zoo's; 2.8
    GB as uint8 frames; CleanRL keeps 1M). Life losses do not end episodes (Machado et al.
    2018). Episode returns are the unclipped game scores. Evaluation plays ε = 0.05, the
    usual Atari protocol."""
    return DQNConfig(
        env_id=env_id,
        env_params={"reward_clip": True, "episodic_life": False},
        num_envs=8,
        total_timesteps=10_000_000,
        buffer_size=100_000,
        batch_size=32,
        learning_starts=80_000,
        train_frequency=4,
        gamma=0.99,
        learning_rate=1e-4,
        max_grad_norm=None,
        loss="l2",
        target_update_period=250,
        exploration_steps=1_000_000,
        exploration_end=0.01,
        eval_epsilon=0.05,
        network="nature_cnn",
        hidden_sizes=(512,),
    )


_PRESETS.update({env_id: _atari(env_id) for env_id in ("envpool/Pong-v5", "envpool/Breakout-v5")})


# Freeway scores one point per crossing, a crossing every few dozen steps: its action
# values are a few units and differ between actions by less than one, finer than atoms 4
# apart on [-100, 100] resolve; 51 atoms on [-10, 10] lie 0.4 apart.
_RAINBOW_SUPPORT = {"Freeway-MinAtar": (-10.0, 10.0)}  # (v_min, v_max); else (-100, 100)


def _minatar_rainbow(env_id: str) -> DQNConfig:
    """The MinAtar DQN preset made Rainbow, with settings of "Revisiting Rainbow"
    (Obando-Ceron & Castro 2021) for MinAtar: 51 atoms on [-100, 100] (on Freeway on
    [-10, 10], :data:`_RAINBOW_SUPPORT`), Adam with ε = 3.125e-4, a hard target copy
    every 1,000 env steps, 3-step prioritized replay, noisy dense layers, a dueling head,
    and learning from 1,024 env steps on; Adam's learning rate is the DQN preset's
    2.5e-4; ε-greedy acts beside the noise with the schedule of Revisiting Rainbow's
    MinAtar agents (Dopamine's defaults), ε 1 -> 0.01 over the first 250k env steps; its
    3-step sums are cut near-greedily (:data:`_NEAR_GREEDY_CUT`, as in the CartPole
    preset). A starting point: not yet proven over its budget."""
    v_min, v_max = _RAINBOW_SUPPORT.get(env_id, (-100.0, 100.0))
    return dataclasses.replace(
        _minatar(env_id),
        learning_starts=1_024,
        learning_rate=2.5e-4,
        exploration="epsilon_greedy",
        exploration_end=0.01,
        exploration_steps=250_000,
        optimizer_eps=3.125e-4,
        target_update_period=250,
        prioritized=True,
        n_step=3,
        **_NEAR_GREEDY_CUT,
        dueling=True,
        distributional=True,
        num_atoms=51,
        v_min=v_min,
        v_max=v_max,
        noisy=True,
    )


# Rainbow (Hessel et al. 2018): C51's distributional loss, noisy nets (here with
# ε-greedy beside them), prioritized replay, 3-step returns, a dueling head and Double
# targets.
_RAINBOW = {env_id: _minatar_rainbow(env_id) for env_id in _MINATAR_IDS}

_VARIANTS = {"dqn": _PRESETS, "rainbow": _RAINBOW}
PRESET_VARIANTS: tuple[str, ...] = tuple(_VARIANTS)  # get_preset's variants
PRESET_IDS: tuple[str, ...] = tuple(_PRESETS)  # the envs with a DQN preset


def preset_ids(variant: str = "dqn") -> tuple[str, ...]:
    """The envs with a preset of ``variant`` (one of :data:`PRESET_VARIANTS`)."""
    _check_variant(variant)
    return tuple(_VARIANTS[variant])


def get_preset(env_id: str, variant: str = "dqn") -> DQNConfig:
    """The tuned :class:`DQNConfig` for ``env_id``.

    Change fields with ``dataclasses.replace(get_preset(...), total_timesteps=...)``.

    Args:
      env_id: one of :func:`preset_ids` of ``variant``.
      variant: ``"dqn"`` or ``"rainbow"`` (:data:`PRESET_VARIANTS`).

    Returns:
      The preset's frozen, validated config.

    Raises:
      ValueError: for an unknown variant, or no such preset for ``env_id`` (lists those
        there are).
    """
    ids = preset_ids(variant)
    if env_id not in ids:
        close = difflib.get_close_matches(str(env_id), ids, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        name = "preset" if variant == "dqn" else f"{variant} preset"
        raise ValueError(
            f"env_id={env_id!r} has no {name}.{hint} {name.capitalize()}s: {', '.join(ids)}. "
            "Any gymnax id works with a DQNConfig of your own."
        )
    return _VARIANTS[variant][env_id]


def _check_variant(variant: str) -> None:
    if variant not in _VARIANTS:
        raise ValueError(
            f"variant={variant!r} is invalid: must be one of {', '.join(PRESET_VARIANTS)}."
        )
