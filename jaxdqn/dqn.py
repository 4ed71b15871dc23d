"""DQN from a :class:`jaxdqn.DQNConfig`: the one place the user-facing record becomes
components with explicit arguments.

:func:`build` binds the environment once and makes the Q-network, actor, replay and
learner from the config's fields; :func:`make_trainer` composes them with the loop
skeleton (:func:`jaxdqn.core.loop.make_loop`); :func:`evaluate` plays a trained network.
Nothing below this module reads a ``DQNConfig`` or looks an environment up by id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax

from jaxdqn.config import DQNConfig
from jaxdqn.core.actor import Actor, make_actor
from jaxdqn.core.evaluation import EpisodeValues, Recording, evaluate_policy, evaluate_values
from jaxdqn.core.evaluation import record_episode as record_policy_episode
from jaxdqn.core.learner import Learner, make_learner, make_optimizer
from jaxdqn.core.loop import LoopLayout, Metrics, Trainer, TrainState, make_loop
from jaxdqn.core.networks import make_q_network
from jaxdqn.core.replay import Replay, make_replay
from jaxdqn.envs import BoundEnv, EnvSpec, StickyActions, bind_env, is_batched
from jaxdqn.hyperparams import Hyperparams


class Components(NamedTuple):
    """What a config is made of, each built with explicit arguments."""

    env: BoundEnv  # the environment, its parameters and its spec
    q_network: nn.Module  # apply(params, obs [B, *obs_shape]) -> [B, num_actions]
    actor: Actor
    replay: Replay
    learner: Learner
    layout: LoopLayout  # the loop's static counts
    hparams: Hyperparams  # the config's traced hyperparameters (init's default)


def bind_config_env(config: DQNConfig, env: Any = None, env_params: Any = None) -> BoundEnv:
    """Binds the environment of a run (``env``, else ``config.env_id``) with its
    parameters (``env_params``, else the defaults with ``config.env_params`` replaced) and
    runs the config's checks that need it.

    Raises:
      ValueError: naming the field, for ``env_params`` given both here and in the config,
        an env that breaks the contract (:mod:`jaxdqn.envs.contract`) or a config that
        does not fit it (``network="cnn"`` on non-image observations).
    """
    if env_params is not None and config.env_params:
        raise ValueError(
            f"env_params is given twice: DQNConfig.env_params={dict(config.env_params)!r} "
            "and the env_params argument; give one."
        )
    bound = bind_env(
        config.env_id if env is None else env,
        dict(config.env_params) if env_params is None else env_params,
        field="DQNConfig.env_id" if env is None else "env",
        params_field="env_params" if env_params is not None else "DQNConfig.env_params",
    )
    config.check_env(bound.spec, bound.name)
    if config.sticky_actions > 0:
        bound = bound._replace(env=StickyActions(_sticky_env(config, bound), config.sticky_actions))
    return bound


def _sticky_env(config: DQNConfig, bound: BoundEnv) -> Any:
    """The env to make sticky; refuses the envs that cannot repeat an action safely."""
    why = None
    if is_batched(bound):
        why = (
            "a batched env (EnvPool) steps outside the wrapper (EnvPool's Atari tasks take "
            "repeat_action_probability in env_params)"
        )
    elif bound.spec.action_masked:
        why = "the previous action may be illegal where an env masks actions"
    if why:
        raise ValueError(
            f"DQNConfig.sticky_actions={config.sticky_actions!r} is invalid for "
            f"{bound.name}: {why}. Allowed there: 0."
        )
    return bound.env


def q_network_for(config: DQNConfig, spec: EnvSpec) -> nn.Module:
    """The Q-network of ``config``'s network fields, sized for ``spec``."""
    return make_q_network(
        spec,
        network=config.network,
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        dueling=config.dueling,
        layer_norm=config.layer_norm,
        num_atoms=config.num_atoms if config.distributional else 1,
        v_min=config.v_min,
        v_max=config.v_max,
        noisy=config.noisy,
        noisy_sigma0=config.noisy_sigma0,
    )


def build(config: DQNConfig, env: Any = None, env_params: Any = None) -> Components:
    """The components of a run, with the environment bound once. Nothing is traced.

    Args:
      config: a :class:`jaxdqn.DQNConfig`.
      env: an environment object with the gymnax >= 1.0 interface, an id or an import
        path; ``None`` takes ``config.env_id``.
      env_params: its parameters, or a mapping of fields to replace in its defaults;
        ``None`` takes the defaults with ``config.env_params`` replaced.

    Returns:
      :class:`Components`.

    Raises:
      ValueError: naming the field, for the config checks that need the environment.
    """
    bound = bind_config_env(config, env, env_params)
    q_network = q_network_for(config, bound.spec)
    actor = make_actor(
        bound,
        q_network,
        config.num_envs,
        exploration=config.resolved_exploration(),
        schedule=config.exploration_schedule,
        unit=config.exploration_unit,
        truncation_is_terminal=config.truncation_is_terminal,
    )
    replay = make_replay(
        config.buffer_size,
        config.num_envs,
        bound.spec.max_episode_steps,
        batch_size=config.batch_size,
        n_step=config.n_step,
        n_step_cut=config.n_step_cut,
        n_step_cut_tolerance=config.n_step_cut_tolerance,
        valid_flags=is_batched(bound),
        prioritized=config.prioritized,
        priority_alpha=config.priority_alpha,
        priority_beta=config.priority_beta,
        priority_eps=config.priority_eps,
    )
    learner = make_learner(
        q_network,
        make_optimizer(config.optimizer, config.optimizer_eps, config.max_grad_norm),
        double_q=config.double_q,
        loss=config.loss,
        huber_delta=config.huber_delta,
        learning_rate_schedule=config.learning_rate_schedule,
        total_updates=config.total_updates(),
        inspect=config.diagnostics,
    )
    return Components(
        env=bound,
        q_network=q_network,
        actor=actor,
        replay=replay,
        learner=learner,
        layout=config.loop_layout(),
        hparams=Hyperparams.from_config(config),
    )


def make_trainer(config: DQNConfig, env: Any = None, env_params: Any = None) -> Trainer:
    """Builds the pure functions of a run. Nothing is traced or compiled here.

    Args:
      config: a :class:`jaxdqn.DQNConfig`.
      env, env_params: the environment, as for :func:`build` (default ``config.env_id``).

    Returns:
      A :class:`jaxdqn.Trainer` (``init``, ``run``, ``train``, ``metric_names``).
    """
    parts = build(config, env, env_params)
    return make_loop(parts.actor, parts.replay, parts.learner, parts.layout, parts.hparams)


def make_train(
    config: DQNConfig, env: Any = None, env_params: Any = None
) -> Callable[..., tuple[TrainState, Metrics]]:
    """The whole run of ``config`` as one pure function of a PRNG key.

    Args:
      config: a :class:`jaxdqn.DQNConfig` (validated when it was built).
      env, env_params: the environment, as for :func:`build` (default ``config.env_id``).

    Returns:
      ``train(key, hparams=None) -> (TrainState, metrics)``; ``hparams`` is a
      :class:`jaxdqn.Hyperparams` (default: the config's values), so
      ``jax.vmap(train)(keys, hparams)`` sweeps learning rate, gamma, target sync and
      exploration in one compiled program. Build ``hparams`` with :func:`jaxdqn.sweep`,
      which validates every value: inside the program they are traced and not checked.
      ``metrics`` maps each of the trainer's ``metric_names`` to an array
      ``[config.num_log_points()]`` (one row per log window; ``jax.vmap`` adds a leading
      seed axis). Means over a window with no completed episode (``episode_return``,
      ``episode_length``) or no update (``loss``, ...) are NaN. Nothing is compiled until
      the caller jits it.

    Examples:
      >>> import jax, jaxdqn
      >>> config = jaxdqn.get_preset("CartPole-v1").with_budget(20_000)
      >>> train = jax.jit(jax.vmap(jaxdqn.make_train(config)))
      >>> states, metrics = train(jax.random.split(jax.random.key(0), 4))
      >>> metrics["episode_return"].shape  # [seeds, log points]
      (4, 100)
    """
    return make_trainer(config, env, env_params).train


def evaluate(
    config: DQNConfig,
    params: Any,
    key: jax.Array,
    num_episodes: int,
    epsilon: float | None = None,
    *,
    env: Any = None,
    env_params: Any = None,
) -> jax.Array:
    """Returns of ``num_episodes`` fresh episodes played by the Q-network's policy.

    Every episode runs in its own env (vmapped) until it terminates or is truncated, for
    at most the env's time limit. Pure and jittable; ``jax.vmap`` it over params and keys
    of several seeds.

    Args:
      config: the :class:`jaxdqn.DQNConfig` the params were trained with.
      params: Q-network parameters of one seed.
      key: PRNG key (resets, ε draws, env randomness; an EnvPool env's randomness comes
        from its pool's seed instead).
      num_episodes: static positive int.
      epsilon: ε of the ε-greedy policy; ``None`` uses ``config.eval_epsilon`` (0 by
        default: greedy).
      env, env_params: the environment, as for :func:`build` (default ``config.env_id``).

    Returns:
      float32 ``[num_episodes]``: the undiscounted return of each episode.

    Examples:
      >>> import jax, jaxdqn
      >>> config = jaxdqn.get_preset("CartPole-v1").with_budget(20_000)
      >>> state, _ = jax.jit(jaxdqn.make_train(config))(jax.random.key(0))
      >>> evaluate = jax.jit(lambda p, k: jaxdqn.evaluate(config, p, k, 100))
      >>> evaluate(state.params, jax.random.key(1)).shape
      (100,)
    """
    bound, q_network, epsilon = _policy(config, env, env_params, epsilon)
    return evaluate_policy(bound, q_network, params, key, num_episodes, epsilon)


def estimate_values(
    config: DQNConfig,
    params: Any,
    key: jax.Array,
    num_episodes: int,
    epsilon: float | None = None,
    *,
    env: Any = None,
    env_params: Any = None,
) -> EpisodeValues:
    """Q(s_0, a_0) against the discounted return then obtained, over ``num_episodes``
    episodes with the env's time limit lifted (:func:`jaxdqn.core.evaluation.evaluate_values`);
    ``mean(q_first - discounted)`` is the overestimation of van Hasselt et al. (2016).

    Args:
      config: the :class:`jaxdqn.DQNConfig` the params were trained with (its ``gamma``).
      params: Q-network parameters of one seed.
      key: PRNG key.
      num_episodes: static positive int.
      epsilon: ε of the policy; ``None`` uses ``config.eval_epsilon``.
      env, env_params: the environment, as for :func:`build`.

    Returns:
      :class:`jaxdqn.core.evaluation.EpisodeValues`, leaves float32 ``[num_episodes]``.
    """
    bound, q_network, epsilon = _policy(config, env, env_params, epsilon)
    return evaluate_values(bound, q_network, params, key, num_episodes, config.gamma, epsilon)


def record_episode(
    config: DQNConfig,
    params: Any,
    key: jax.Array,
    steps: int | None = None,
    epsilon: float | None = None,
    *,
    env: Any = None,
    env_params: Any = None,
) -> Recording:
    """One episode of the Q-network's policy, every env state kept
    (:func:`jaxdqn.core.evaluation.record_episode`), for drawing it. Pure and jittable.

    Args:
      config: the :class:`jaxdqn.DQNConfig` the params were trained with.
      params: Q-network parameters of one seed.
      key: PRNG key.
      steps: steps recorded (static); ``None`` takes the env's time limit.
      epsilon: ε of the policy; ``None`` uses ``config.eval_epsilon``.
      env, env_params: the environment, as for :func:`build`.

    Returns:
      :class:`jaxdqn.core.evaluation.Recording`, leaves with a leading axis ``[steps]``.

    Raises:
      ValueError: ``steps`` is ``None`` for an env without a time limit.
    """
    bound, q_network, epsilon = _policy(config, env, env_params, epsilon)
    steps = bound.spec.max_episode_steps if steps is None else steps
    if steps is None:
        raise ValueError(f"env {bound.name!r} has no time limit: give steps.")
    return record_policy_episode(bound, q_network, params, key, steps, epsilon)


def _policy(
    config: DQNConfig, env: Any, env_params: Any, epsilon: float | None
) -> tuple[BoundEnv, nn.Module, float]:
    """The bound env, the Q-network and ε (``config.eval_epsilon`` when ``None``) that
    play a trained policy."""
    bound = bind_config_env(config, env, env_params)
    q_network = q_network_for(config, bound.spec)
    return bound, q_network, config.eval_epsilon if epsilon is None else epsilon
