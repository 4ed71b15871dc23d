"""``DQNConfig``: every hyperparameter of a run, frozen and validated when it is built.

A config is checked in ``__post_init__``: a bad value raises ``ValueError`` naming the
field, the value and what is allowed, before anything is traced or compiled. The few
checks that need the environment (discrete actions; a CNN needs image observations) run
when the environment is bound (:func:`jaxdqn.build`), still before anything is traced.

Counting units are explicit: ``total_timesteps``, ``learning_starts``,
``train_frequency`` and (by default) the exploration schedule count *env steps summed
over the vectorised envs*; ``target_update_period`` counts *gradient updates*.

How the loop is laid out (derived, see :meth:`DQNConfig.cycle_env_steps`): one *cycle*
is the smallest whole number of vectorised steps after which an integer number of
gradient updates is due, ``lcm(num_envs, train_frequency)`` env steps. Every schedule is
then met exactly for any ``num_envs``; values that no cycle layout can meet exactly are
refused with the nearest values that can.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import partial
from typing import Literal

import numpy as np

from jaxdqn.budget import scale_schedules
from jaxdqn.core.actor import EXPLORATION_UNITS
from jaxdqn.core.exploration import EXPLORATIONS, SCHEDULES
from jaxdqn.core.learner import LEARNING_RATE_SCHEDULES, OPTIMIZERS
from jaxdqn.core.loop import LoopLayout, cycle_env_steps, run_updates
from jaxdqn.core.losses import LOSSES
from jaxdqn.core.networks import ACTIVATIONS, NETWORKS
from jaxdqn.envs import EnvSpec, check_env_id

# Env steps, updates and episodes are counted in int32 inside the compiled loop.
_INT32_MAX = 2**31 - 1

# Auto log interval aims for about this many logging points per run.
_TARGET_LOG_POINTS = 100


@dataclasses.dataclass(frozen=True, kw_only=True)
class DQNConfig:
    """Hyperparameters of one DQN run. Frozen; invalid values raise ``ValueError``.

    Attributes:
      env_id: gymnax id or ``"ChainWalk-v0"`` (see ``jaxdqn.ENV_IDS``), a suite's
        ``suite/Id`` (``jaxdqn.envs.adapters``), or an import path ``package.module:Name``
        of an env class or factory with the gymnax >= 1.0 interface. Its action space
        must be discrete (checked when the env is bound).
      env_params: fields of the env's ``default_params`` to replace, as ``(name, value)``
        pairs (a dict is accepted), e.g. ``{"max_steps_in_episode": 200}``; values are
        numbers, bools or strings, so the config stays JSON. Names are checked when the
        env is bound.
      num_envs: environments stepped in lockstep per seed (vmapped).
      total_timesteps: env steps per seed, summed over the ``num_envs`` envs (at most
        ``2**31 - 1``: the step counters are int32).
      buffer_size: replay capacity in transitions (per seed). ``buffer_size=num_envs``
        with ``batch_size=num_envs`` is "no replay": each batch is drawn (with
        replacement) from the latest vectorised step only.
      batch_size: transitions per gradient update.
      learning_starts: env steps collected before learning; one update event is due at
        every ``train_frequency``-th env step strictly after it (the SB3 convention).
        The events due within a cycle (see :meth:`cycle_env_steps`) run together at its
        end: with ``num_envs`` a multiple of ``train_frequency`` (every preset) that is
        after each vectorised step; with ``num_envs=3, train_frequency=4`` it is 3
        events after every 4 vectorised steps (12 env steps).
      train_frequency: env steps between two update events.
      gradient_steps: gradient updates per update event.
      gamma: discount factor in ``[0, 1]``.
      optimizer: one of ``OPTIMIZERS``.
      learning_rate: optimizer step size (> 0).
      learning_rate_schedule: ``"constant"`` or ``"linear"`` (decays to 0 at the last
        update; steadies the final policy).
      optimizer_eps: epsilon of adam/adamw/rmsprop (> 0).
      max_grad_norm: global-norm gradient clipping; ``None`` disables it.
      loss: ``"l2"`` (default) or ``"huber"`` on the TD error. Huber with
        ``huber_delta=1`` suits rewards clipped to [-1, 1] (Mnih et al. 2015). With
        unscaled returns (CartPole's Q is near 100) the rare terminal transitions have TD
        errors far above delta; Huber then weighs them like any other sample (a median
        fit), nothing anchors the values and Q diverges (the README shows it on
        CartPole-v1).
      huber_delta: Huber threshold (> 0); scale it with the TD errors you expect.
      double_q: Double DQN targets (van Hasselt et al. 2016).
      n_step: steps summed before bootstrapping: ``r_t + … + γ^{n-1} r_{t+n-1} +
        γ^n max Q``, cut at a terminated step (no bootstrap) and at a truncated one
        (bootstrap from its true final observation with γ to the steps summed). Built at
        sample time from the replay rows (``jaxdqn.core.replay``); 1 is plain DQN. At most
        1000 (the sum is unrolled when the program is traced).
      n_step_cut: also stop an n-step sum before the first later stored action that is
        not the online network's greedy action now, and bootstrap there (Watkins's Q(λ)
        cut; one forward pass over the n - 1 later observations per update). Without it
        the sum mixes in the returns of other actions, so Q learns a value between the
        greedy policy's and the behaviour's (``jaxdqn probe``'s NextMax shows it).
      n_step_cut_tolerance: with ``n_step_cut``, a later stored action also continues the
        sum when its Q-value is within this fraction of ``|max Q|`` of the max, in [0, 1)
        (0: only the greedy action). Where the actions' values are close (CartPole), a
        strict cut stops most sums after one step; a tolerance keeps those sums long
        while still cutting at clearly worse actions, and moves each later step's value
        by at most ``n_step_cut_tolerance * |max Q|``.
      prioritized: proportional prioritized replay (Schaul et al. 2016): rows are drawn
        with probability proportional to ``|δ|^priority_alpha + priority_eps`` (new rows
        at the largest priority so far) and the loss is weighted by importance weights
        ``(N P(i))^-β`` normalised by the batch's largest, β rising linearly from
        ``priority_beta`` to 1 over the run (``jaxdqn.core.replay``).
      priority_alpha: exponent of ``|δ|`` in [0, 1] (0 is uniform).
      priority_beta: initial importance-weight exponent in [0, 1].
      priority_eps: added to every priority (> 0), so no row becomes undrawable.
      target_update_period: gradient updates between target syncs, at most
        :meth:`total_updates` (else the target network would never be synced). ``1``
        with ``target_tau=1.0`` means no target network (targets from the online net).
      target_tau: step of each sync, ``target <- tau * online + (1 - tau) * target``;
        1.0 is a hard copy, small values with period 1 are Polyak averaging.
      truncation_is_terminal: a deliberate mistake, for ablations only: store time-limit
        truncations as terminal, so their targets stop bootstrapping (what many DQN
        implementations get wrong). Keep False.
      exploration: ``"epsilon_greedy"`` (the schedule gives ε), ``"boltzmann"`` (the
        schedule gives the softmax temperature), ``"none"`` (greedy; only a noisy
        network's own noise explores) or ``"auto"``: ``"none"`` with ``noisy=True``, else
        ``"epsilon_greedy"`` (:meth:`resolved_exploration`). The exploration fields below
        are unused with ``"none"``.
      exploration_schedule: ``"linear"`` from start to end over ``exploration_steps``
        units, ``"exponential"`` as ``max(end, start * decay**n)``, or ``"constant"``
        (``exploration_start`` throughout).
      exploration_unit: what the schedule counts: ``"env_steps"`` or ``"episodes"``
        (completed episodes, summed over envs).
      exploration_start: ε (in [0, 1]) or temperature (> 0) at count 0.
      exploration_end: final ε (in [0, 1]) or temperature (> 0).
      exploration_steps: length of the linear schedule, in ``exploration_unit``.
      exploration_decay: multiplier per unit of the exponential schedule, in (0, 1].
      eval_epsilon: ε of :func:`jaxdqn.evaluate` (0 is greedy).
      network: ``"auto"`` (a CNN for image observations ``[H, W, C]`` such as MinAtar's,
        else an MLP), ``"mlp"``, ``"cnn"`` (the MinAtar paper's: one 3x3 convolution
        of 16 channels, then the dense ``hidden_sizes``) or ``"nature_cnn"`` (the Nature
        DQN's three convolutions for 84x84 Atari frames, ``hidden_sizes=(512,)`` in the
        paper); the CNNs take image observations only, checked when the env is bound.
      hidden_sizes: widths of the dense hidden layers (after the convolution for a CNN).
      activation: one of ``ACTIVATIONS``.
      dueling: a dueling head, ``Q = V + A - mean(A)`` (Wang et al. 2016).
      layer_norm: layer normalisation of every dense hidden layer before its activation
        (Ba et al. 2016). It keeps the features that bootstrapped targets are built from
        bounded, which makes Q-learning markedly faster and steadier (Gallici et al. 2024,
        "Simplifying Deep Temporal Difference Learning").
      distributional: learn each action's return distribution on ``num_atoms`` atoms
        evenly spaced over ``[v_min, v_max]`` by C51's projected cross-entropy (Bellemare
        et al. 2017); ``loss`` and ``huber_delta`` are then unused. Q-values are the
        distributions' means; returns outside the support are clipped to it, so choose
        it to hold every discounted return of the env.
      num_atoms: atoms per action, an integer in [2, 1001] (51 in the paper).
      v_min: the low end of the atoms' support (finite; below ``v_max`` when
        ``distributional``).
      v_max: the high end of the atoms' support (finite; above ``v_min`` when
        ``distributional``).
      noisy: noisy nets (Fortunato et al. 2018): every dense layer has factorised
        Gaussian noise on its weights with learned scales, drawn anew at every acting
        step and for each of an update's forward passes; evaluation and export use the
        mean weights. ``exploration="auto"`` then turns ε-greedy off.
      noisy_sigma0: initial noise scale σ₀ (> 0; 0.5 in the paper): every σ starts at
        ``σ₀ / sqrt(inputs)``.
      sticky_actions: the probability, in [0, 1), that an env repeats its previous action
        instead of the chosen one, in training and evaluation (Machado et al. 2018;
        :class:`jaxdqn.envs.StickyActions`). The MinAtar paper uses 0.1. 0 turns it off.
        Not for EnvPool envs (their Atari tasks take ``repeat_action_probability`` in
        ``env_params``) or envs with action masks.
      log_interval: env steps per logging point (a multiple of
        :meth:`cycle_env_steps` dividing ``total_timesteps``); ``None`` picks about
        100 points.
      diagnostics: compute the health signals (max |Q|, dormant units, feature rank,
        policy churn, ...; :mod:`jaxdqn.core.diagnostics`) once per log window on a batch
        drawn from the replay, for :func:`jaxdqn.diagnose`. They draw their own random
        numbers: a run's parameters are the same with them on or off.
    """

    # Environment and budget.
    env_id: str = "CartPole-v1"
    env_params: tuple[tuple[str, int | float | bool | str], ...] = ()
    num_envs: int = 8
    total_timesteps: int = 200_000
    # Replay and update cadence.
    buffer_size: int = 100_000
    batch_size: int = 128
    learning_starts: int = 1_000
    train_frequency: int = 4
    gradient_steps: int = 1
    # TD learning.
    gamma: float = 0.99
    optimizer: Literal["adam", "adamw", "rmsprop", "sgd"] = "adam"
    learning_rate: float = 3e-4
    learning_rate_schedule: Literal["constant", "linear"] = "constant"
    optimizer_eps: float = 1e-8
    max_grad_norm: float | None = 10.0
    loss: Literal["huber", "l2"] = "l2"
    huber_delta: float = 1.0
    double_q: bool = True
    n_step: int = 1
    n_step_cut: bool = False
    n_step_cut_tolerance: float = 0.0
    prioritized: bool = False
    priority_alpha: float = 0.6
    priority_beta: float = 0.4
    priority_eps: float = 1e-6
    target_update_period: int = 250
    target_tau: float = 1.0
    truncation_is_terminal: bool = False
    # Exploration.
    exploration: Literal["auto", "epsilon_greedy", "boltzmann", "none"] = "auto"
    exploration_schedule: Literal["linear", "exponential", "constant"] = "linear"
    exploration_unit: Literal["env_steps", "episodes"] = "env_steps"
    exploration_start: float = 1.0
    exploration_end: float = 0.05
    exploration_steps: int = 20_000
    exploration_decay: float = 0.999
    eval_epsilon: float = 0.0
    # Network.
    network: Literal["auto", "mlp", "cnn", "nature_cnn"] = "auto"
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: Literal["relu", "tanh", "gelu", "silu"] = "relu"
    dueling: bool = False
    layer_norm: bool = False
    distributional: bool = False
    num_atoms: int = 51
    v_min: float = -10.0
    v_max: float = 10.0
    noisy: bool = False
    noisy_sigma0: float = 0.5
    sticky_actions: float = 0.0
    # Logging.
    log_interval: int | None = None
    diagnostics: bool = True

    def __post_init__(self) -> None:
        # Same values, stored as Python scalars and a tuple: a list or np.int64(8) is
        # the value a user meant, and the config must hash and serialise (config.json,
        # checkpoints) like one built from plain Python values.
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, np.generic):
                object.__setattr__(self, field.name, value.item())
        if isinstance(self.env_params, Mapping | list | tuple):
            object.__setattr__(self, "env_params", _pairs(self.env_params))
        if _is_int_sequence(self.hidden_sizes):
            sizes = tuple(h.item() if isinstance(h, np.generic) else h for h in self.hidden_sizes)
            object.__setattr__(self, "hidden_sizes", sizes)
        _validate(self)

    def resolved_exploration(self) -> str:
        """How the actor explores: ``exploration``, with ``"auto"`` resolved to ``"none"``
        for a noisy network and to ``"epsilon_greedy"`` otherwise."""
        if self.exploration != "auto":
            return self.exploration
        return "none" if self.noisy else "epsilon_greedy"

    # ---- Derived layout of the compiled loop (all static Python ints). ----

    def cycle_env_steps(self) -> int:
        """Env steps per cycle: ``lcm(num_envs, train_frequency)``."""
        return cycle_env_steps(self.num_envs, self.train_frequency)

    def steps_per_cycle(self) -> int:
        """Vectorised env steps per cycle."""
        return self.cycle_env_steps() // self.num_envs

    def updates_per_cycle(self) -> int:
        """Gradient updates per cycle once learning has started."""
        return self.gradient_steps * self.cycle_env_steps() // self.train_frequency

    def num_cycles(self) -> int:
        """Cycles in the whole run."""
        return self.total_timesteps // self.cycle_env_steps()

    def total_updates(self) -> int:
        """Gradient updates in the whole run (exact).

        One update event at every multiple of ``train_frequency`` strictly after
        ``learning_starts``: the cycles that start at or after ``learning_starts`` run
        :meth:`updates_per_cycle` each.
        """
        return run_updates(
            self.total_timesteps,
            self.learning_starts,
            self.num_envs,
            self.train_frequency,
            self.gradient_steps,
        )

    def resolved_log_interval(self) -> int:
        """Env steps per logging point (``log_interval`` or the automatic choice)."""
        if self.log_interval is not None:
            return self.log_interval
        cycles = self.num_cycles()
        fits = [d for d in _divisors(cycles) if cycles // d >= _TARGET_LOG_POINTS]
        return max(fits, default=1) * self.cycle_env_steps()

    def num_log_points(self) -> int:
        """Logging points in the whole run (leading axis of the metrics)."""
        return self.total_timesteps // self.resolved_log_interval()

    def cycles_per_log(self) -> int:
        """Cycles between two logging points."""
        return self.resolved_log_interval() // self.cycle_env_steps()

    def loop_layout(self) -> LoopLayout:
        """The static counts of the compiled loop (:class:`jaxdqn.core.loop.LoopLayout`)."""
        return LoopLayout(
            num_envs=self.num_envs,
            steps_per_cycle=self.steps_per_cycle(),
            updates_per_cycle=self.updates_per_cycle(),
            cycles_per_log=self.cycles_per_log(),
            num_log_points=self.num_log_points(),
            learning_starts=self.learning_starts,
            total_updates=self.total_updates(),
        )

    def with_budget(self, total_timesteps: int, keep: Collection[str] = ()) -> DQNConfig:
        """This config for a run of ``total_timesteps`` env steps, its schedules scaled to
        follow (:func:`jaxdqn.budget.scale_schedules`: exploration, ``learning_starts``,
        a target period that would never sync, ``log_interval``).

        Args:
          total_timesteps: the new budget (checked as always: a multiple of the cycle).
          keep: fields to leave as they are.

        Returns:
          A validated :class:`DQNConfig`.

        Raises:
          ValueError: naming the field, where the result is still invalid.

        Examples:
          >>> import jaxdqn
          >>> config = jaxdqn.get_preset("CartPole-v1").with_budget(20_000)
          >>> config.exploration_steps, config.learning_starts
          (5000, 496)
        """
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["total_timesteps"] = total_timesteps
        return DQNConfig(**scale_schedules(fields, self.total_timesteps, keep))

    def check_env(self, spec: EnvSpec, env_name: str) -> None:
        """The checks that need the environment, run when it is bound (before tracing).

        Raises:
          ValueError: naming the field, for a CNN ``network`` on observations that are
            not images ``[height, width, channels]``.
        """
        if self.network in ("cnn", "nature_cnn") and len(spec.obs_shape) != 3:
            _fail(
                "network",
                self.network,
                f"needs image observations [height, width, channels]; {env_name} "
                f"observes {list(spec.obs_shape)}",
            )


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return small + [n // d for d in small]


def _pairs(value: Mapping | Sequence) -> tuple:
    """``(name, value)`` pairs sorted by name, numpy scalars as Python values; anything
    that is not a list of pairs is returned as it is, for :func:`_validate` to refuse."""
    items = value.items() if isinstance(value, Mapping) else value
    if not all(isinstance(item, list | tuple) and len(item) == 2 for item in items):
        return tuple(value) if not isinstance(value, Mapping) else value
    plain = [(k, v.item() if isinstance(v, np.generic) else v) for k, v in items]
    return tuple(sorted(plain, key=lambda pair: str(pair[0])))


def _is_int_sequence(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def _message(field: str, value: object, allowed: str) -> str:
    return f"DQNConfig.{field}={value!r} is invalid: {allowed}."


def _fail(field: str, value: object, allowed: str) -> None:
    raise ValueError(_message(field, value, allowed))


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _int_field(cfg: DQNConfig, field: str, low: int, high: float = math.inf) -> int:
    value = getattr(cfg, field)
    if not (_is_int(value) and low <= value <= high):
        _fail(field, value, f"must be an integer in [{low}, {high}]")
    return int(value)


def _real_field(
    cfg: DQNConfig, field: str, low: float, high: float, *, open_low=False, open_high=False
) -> float:
    value = getattr(cfg, field)
    lo, hi = ("(" if open_low else "["), (")" if open_high else "]")
    allowed = f"must be a finite number in {lo}{low}, {high}{hi}"
    if not _is_real(value):
        _fail(field, value, allowed)
    v = float(value)
    if v < low or v > high or (open_low and v == low) or (open_high and v == high):
        _fail(field, value, allowed)
    return v


def _choice_field(cfg: DQNConfig, field: str, choices: tuple[str, ...]) -> str:
    value = getattr(cfg, field)
    if value not in choices:
        _fail(field, value, f"must be one of {', '.join(map(repr, choices))}")
    return value


def _bool_field(cfg: DQNConfig, field: str) -> None:
    if not isinstance(getattr(cfg, field), bool):
        _fail(field, getattr(cfg, field), "must be True or False")


def _nearest_multiples(value: int, step: int) -> str:
    below, above = (value // step) * step, (value // step + 1) * step
    return " or ".join(str(v) for v in (below, above) if v > 0)


def _validate(cfg: DQNConfig) -> None:
    """Reports every problem of a stage in one ``ValueError``: first each field on its
    own, then (when those pass) the relations between fields."""
    problems = []
    for check in _field_checks(cfg):
        try:
            check()
        except ValueError as error:
            problems.append(str(error))
    if not problems:
        problems = [_message(*problem) for problem in _relation_problems(cfg)]
    if len(problems) == 1:
        raise ValueError(problems[0])
    if problems:
        raise ValueError(
            f"DQNConfig has {len(problems)} problems:\n"
            + "\n".join(f"  {problem}" for problem in problems)
        )


def _env_params_field(cfg: DQNConfig) -> None:
    params = cfg.env_params
    if (
        not isinstance(params, tuple)
        or not all(isinstance(p, tuple) and len(p) == 2 for p in params)
        or not all(isinstance(k, str) and k.isidentifier() for k, _ in params)
        or not all(isinstance(v, int | float | bool | str) for _, v in params)
        or not all(math.isfinite(v) for _, v in params if isinstance(v, float))
        or len({k for k, _ in params}) != len(params)
    ):
        _fail(
            "env_params",
            params,
            "must map distinct field names to finite numbers, bools or strings, e.g. "
            "{'max_steps_in_episode': 200}",
        )


def _field_checks(cfg: DQNConfig) -> list[Callable[[], object]]:
    """Checks of each field on its own, each raising ``ValueError`` naming its field."""
    ints = {
        "num_envs": (1,),
        "total_timesteps": (1, _INT32_MAX),
        "buffer_size": (1,),
        "batch_size": (1,),
        "learning_starts": (0,),
        "train_frequency": (1,),
        "gradient_steps": (1,),
        "n_step": (1, 1_000),
        "num_atoms": (2, 1_001),
        "target_update_period": (1,),
        "exploration_steps": (1,),
    }
    positive = ("learning_rate", "optimizer_eps", "huber_delta", "priority_eps", "noisy_sigma0")
    unit = ("gamma", "priority_alpha", "priority_beta", "eval_epsilon")
    choices = {
        "optimizer": OPTIMIZERS,
        "learning_rate_schedule": LEARNING_RATE_SCHEDULES,
        "loss": LOSSES,
        "exploration": ("auto", *EXPLORATIONS),
        "exploration_schedule": SCHEDULES,
        "exploration_unit": EXPLORATION_UNITS,
        "activation": ACTIVATIONS,
        "network": NETWORKS,
    }
    bools = ("double_q", "truncation_is_terminal", "dueling", "layer_norm", "diagnostics")
    bools += ("prioritized", "n_step_cut", "distributional", "noisy")
    # ε is a probability; a Boltzmann temperature only has to be positive.
    temperature = cfg.resolved_exploration() == "boltzmann"
    return [
        partial(check_env_id, cfg.env_id, field="DQNConfig.env_id"),
        partial(_env_params_field, cfg),
        *(partial(_int_field, cfg, name, *bounds) for name, bounds in ints.items()),
        *(partial(_real_field, cfg, name, 0.0, math.inf, open_low=True) for name in positive),
        *(partial(_real_field, cfg, name, 0.0, 1.0) for name in unit),
        *(partial(_choice_field, cfg, name, allowed) for name, allowed in choices.items()),
        *(partial(_bool_field, cfg, name) for name in bools),
        partial(_optional_positive, cfg, "max_grad_norm"),
        partial(_real_field, cfg, "target_tau", 0.0, 1.0, open_low=True),
        partial(_real_field, cfg, "exploration_decay", 0.0, 1.0, open_low=True),
        partial(_real_field, cfg, "sticky_actions", 0.0, 1.0, open_high=True),
        partial(_real_field, cfg, "n_step_cut_tolerance", 0.0, 1.0, open_high=True),
        *(
            partial(_real_field, cfg, name, 0.0, math.inf if temperature else 1.0,
                    open_low=temperature)
            for name in ("exploration_start", "exploration_end")
        ),
        *(partial(_real_field, cfg, name, -math.inf, math.inf) for name in ("v_min", "v_max")),
        partial(_hidden_sizes_field, cfg),
        partial(_optional_int, cfg, "log_interval"),
    ]  # fmt: skip


def _optional_positive(cfg: DQNConfig, field: str) -> None:
    if getattr(cfg, field) is not None:
        _real_field(cfg, field, 0.0, math.inf, open_low=True)


def _optional_int(cfg: DQNConfig, field: str) -> None:
    if getattr(cfg, field) is not None:
        _int_field(cfg, field, 1)


def _hidden_sizes_field(cfg: DQNConfig) -> None:
    sizes = cfg.hidden_sizes
    if not isinstance(sizes, tuple) or not sizes or not all(_is_int(h) and h >= 1 for h in sizes):
        _fail("hidden_sizes", sizes, "must be a non-empty sequence of positive ints")


def _relation_problems(cfg: DQNConfig) -> list[tuple[str, object, str]]:
    """``(field, value, what is allowed)`` for each check between fields that fails; the
    fields are each valid on their own."""
    num_envs, buffer_size, batch_size, total = (
        cfg.num_envs, cfg.buffer_size, cfg.batch_size, cfg.total_timesteps
    )  # fmt: skip
    cycle = cfg.cycle_env_steps()
    why = f"lcm(num_envs={num_envs}, train_frequency={cfg.train_frequency})"
    starts = cfg.learning_starts
    checks = [
        (buffer_size < num_envs, "buffer_size", buffer_size,
         f"must be >= num_envs={num_envs} (each vectorised step adds num_envs transitions)"),
        (cfg.n_step * num_envs > buffer_size, "n_step", cfg.n_step,
         f"must be <= buffer_size // num_envs = {buffer_size // num_envs}: the buffer must "
         "hold n consecutive steps of every env"),
        (batch_size > buffer_size, "batch_size", batch_size,
         f"must be <= buffer_size={buffer_size}"),
        (total % cycle, "total_timesteps", total,
         f"must be a multiple of {cycle} env steps, {why}, so that every scheduled update "
         f"happens; nearest: {_nearest_multiples(total, cycle)}"),
        (starts % cycle, "learning_starts", starts,
         f"must be a multiple of {cycle} env steps, {why}, to start exactly on an update "
         f"boundary; nearest: {_nearest_multiples(starts, cycle)}"),
        (starts >= total, "learning_starts", starts, f"must be < total_timesteps={total}"),
        (starts + cycle < batch_size, "batch_size", batch_size,
         f"must be <= learning_starts={starts} + {cycle} env steps of one cycle, the "
         "transitions stored when the first update samples"),
        (cfg.exploration_schedule == "linear" and cfg.exploration_unit == "env_steps"
         and cfg.exploration_steps > total, "exploration_steps", cfg.exploration_steps,
         f"a linear schedule over env steps must end within total_timesteps={total}: lower "
         "exploration_steps or raise total_timesteps"),
        (starts < total and cfg.target_update_period > cfg.total_updates(),
         "target_update_period", cfg.target_update_period,
         f"must be <= the run's {cfg.total_updates()} gradient updates, or the target "
         "network is never synced and every target comes from the initial network"),
        (cfg.n_step_cut_tolerance > 0 and not cfg.n_step_cut, "n_step_cut_tolerance",
         cfg.n_step_cut_tolerance,
         "is the slack of the n-step cut: set n_step_cut=true too, or leave it at 0"),
        (cfg.distributional and cfg.v_min >= cfg.v_max, "v_max", cfg.v_max,
         f"must be > v_min={cfg.v_min}: the atoms' support is [v_min, v_max]"),
        (cfg.log_interval is not None
         and bool(cfg.log_interval % cycle or total % cfg.log_interval),
         "log_interval", cfg.log_interval,
         f"must be a multiple of {cycle} env steps ({why}) that divides "
         f"total_timesteps={total}"),
    ]  # fmt: skip
    return [(field, value, allowed) for failed, field, value, allowed in checks if failed]
