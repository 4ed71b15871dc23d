"""Why a run does not train: findings from its metric rows and its config.

:func:`diagnose` reads the rows a run logs (the loop's health signals among them, see
:mod:`jaxdqn.core.diagnostics`) and returns :class:`Finding` s, each with a stable code,
the seeds it affects, the evidence (numbers, with the env step), the likely cause and the
config change to try. :func:`diagnose_run` does the same for a run folder and writes
``diagnosis.json``; ``jaxdqn doctor RUN_DIR`` prints it. :func:`first_non_finite` is the
guard's check: the first seed whose loss, gradients or parameters went NaN or infinite.

Every check works on the rows alone, so it is the same for a run trained from Python
(``metrics`` of ``jax.vmap(train)``) and for a run folder.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxdqn.config import DQNConfig
from jaxdqn.core.diagnostics import DORMANT_THRESHOLDS

CODES = (
    "non_finite",
    "soft_divergence",
    "overestimation",
    "no_improvement",
    "exploration_ends_early",
    "gradient_spikes",
    "dormant_units",
    "rank_collapse",
    "action_collapse",
    "healthy",
)
# Thresholds of the checks; each is a property of a broken run, far from a healthy one.
Q_BOUND_FACTOR = 2.0  # soft divergence: max |Q| above this many times r_max / (1 - γ)
# (or above 1 while every reward seen so far is 0)
SPIKE_FACTOR = 25.0  # a window's largest gradient norm over the median of earlier windows'
DORMANT_LIMIT = 0.5  # share of hidden units dormant at τ = 0.1 at the end of the run ...
DORMANT_GROWTH = 0.2  # ... that grew by this much since the first update
RANK_DROP = 0.4  # srank of the last hidden layer at the end over its peak in the run
RANDOM_EPSILON = 0.5  # windows before learning at ε >= this count as a random policy
ENTROPY_LIMIT = 0.05  # nats: one greedy action on nearly every reference observation
IMPROVEMENT_MARGIN = 0.05  # share of |random return| (at least 1 reward unit x 0.05)
END_SHARE = 0.2  # the last fifth of the rows is "the end of the run"
OVERESTIMATION_SHARE = 0.5  # Q(s_0, a_0) above the return obtained by half its size


@dataclasses.dataclass(frozen=True)
class Finding:
    """One thing the doctor found.

    Attributes:
      code: one of :data:`CODES`.
      severity: ``"error"`` (the run is broken), ``"warning"`` (it may be) or ``"ok"``.
      seeds: the seeds it affects.
      evidence: numbers, with the env step they come from.
      cause: the likely cause, with the config settings that point to it.
      fix: the config change to try.
    """

    code: str
    severity: str
    seeds: tuple[int, ...]
    evidence: str
    cause: str
    fix: str

    def line(self) -> str:
        """One line: the code, the seeds and the evidence."""
        seeds = ", ".join(map(str, self.seeds[:8])) + (" ..." if len(self.seeds) > 8 else "")
        return f"{self.severity.upper():7s} {self.code} (seeds {seeds}): {self.evidence}"


@dataclasses.dataclass(frozen=True)
class _Rows:
    """A run's rows: each metric ``[S, T]`` (float64, NaN where missing), its seeds and
    config, and the greedy returns of its final evaluation if there was one."""

    config: DQNConfig
    seeds: tuple[int, ...]
    metrics: Mapping[str, np.ndarray]
    greedy_return: np.ndarray | None
    random_return: np.ndarray | None  # [S] or [], the random policy's mean return if known
    value_gap: np.ndarray | None  # [S]: mean Q(s_0, a_0) - discounted return, if evaluated
    value_return: np.ndarray | None  # [S]: the mean discounted return it is measured against

    def get(self, name: str) -> np.ndarray:
        """``[S, T]``: the metric, all NaN if the run did not log it."""
        shape = self.metrics["env_steps"].shape
        return self.metrics.get(name, np.full(shape, np.nan))

    def end(self, name: str) -> np.ndarray:
        """``[S]``: the metric's mean over the last :data:`END_SHARE` of the rows."""
        values = self.get(name)
        tail = values[:, -max(1, math.ceil(values.shape[1] * END_SHARE)) :]
        return _nanmean(tail)

    def final_return(self) -> np.ndarray:
        """``[S]``: the better of the training return at the end and the greedy return."""
        end = self.end("episode_return")
        return end if self.greedy_return is None else np.fmax(end, self.greedy_return)


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN where every value is NaN."""
    count = np.sum(~np.isnan(values), axis=-1)
    total = np.nansum(values, axis=-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _first(mask: np.ndarray, env_steps: np.ndarray) -> np.ndarray:
    """``[S]``: the env step of each seed's first row where ``mask`` holds, -1 if none."""
    index = np.argmax(mask, axis=1)
    steps = np.take_along_axis(env_steps, index[:, None], axis=1)[:, 0]
    return np.where(mask.any(axis=1), steps, -1).astype(np.int64)


def first_non_finite(
    metrics: Mapping[str, Any], seeds: list[int] | tuple[int, ...]
) -> list[tuple[int, int, str]]:
    """The guard's check: every seed whose loss or gradients (``non_finite``) or parameters
    (``params_finite``) went NaN or infinite.

    Args:
      metrics: rows of a run, each ``[S, T]`` (or ``[T]`` for one seed), with
        ``env_steps`` and the learner's ``non_finite`` (and ``params_finite`` if logged).
      seeds: the ``S`` seeds, in order.

    Returns:
      ``(seed, env_step, signal)`` for each affected seed: the env step at the end of the
      first window where it happened and which signal went bad first.
    """
    rows = {k: np.atleast_2d(np.asarray(v, np.float64)) for k, v in metrics.items()}
    steps = rows["env_steps"]
    nan = np.full(steps.shape, np.nan)
    bad_update = rows.get("non_finite", nan) > 0
    bad_params = rows.get("params_finite", nan) == 0
    found = []
    for i, seed in enumerate(seeds):
        update_at = _first(bad_update[i : i + 1], steps[i : i + 1])[0]
        params_at = _first(bad_params[i : i + 1], steps[i : i + 1])[0]
        if update_at < 0 and params_at < 0:
            continue
        if update_at >= 0 and (params_at < 0 or update_at <= params_at):
            found.append((seed, int(update_at), "the loss or a gradient"))
        else:
            found.append((seed, int(params_at), "the online parameters"))
    return found


def config_causes(config: DQNConfig) -> list[str]:
    """The settings of ``config`` known to make Q-learning unstable or slow, in words."""
    causes = []
    if config.target_update_period == 1 and config.target_tau == 1.0:
        causes.append(
            "no target network (target_update_period=1, target_tau=1.0): the targets move "
            "with every update"
        )
    if config.buffer_size <= max(config.batch_size, config.num_envs * config.train_frequency):
        causes.append(
            f"no replay (buffer_size={config.buffer_size}): every update learns from the "
            "latest, correlated steps"
        )
    if config.truncation_is_terminal:
        causes.append(
            "truncation_is_terminal=True: time-limit ends stop bootstrapping, so the same "
            "state gets contradictory targets"
        )
    preset = _preset_of(config.env_id)
    if preset is not None and not 0.1 <= config.learning_rate / preset.learning_rate <= 10:
        causes.append(
            f"learning_rate={config.learning_rate:g} is far from the {config.env_id} "
            f"preset's {preset.learning_rate:g}"
        )
    return causes


def _preset_of(env_id: str) -> DQNConfig | None:
    from jaxdqn.presets import PRESET_IDS, get_preset

    return get_preset(env_id) if env_id in PRESET_IDS else None


def _seeds(rows: _Rows, mask: np.ndarray) -> tuple[int, ...]:
    return tuple(s for s, m in zip(rows.seeds, mask, strict=True) if m)


def _because(rows: _Rows, default: str) -> str:
    causes = config_causes(rows.config)
    return "; ".join(causes) if causes else default


def _non_finite(rows: _Rows) -> Finding | None:
    found = first_non_finite(rows.metrics, rows.seeds)
    if not found:
        return None
    seed, step, signal = found[0]
    config = rows.config
    return Finding(
        code="non_finite",
        severity="error",
        seeds=tuple(s for s, _, _ in found),
        evidence=f"{signal} went NaN or infinite by env step {step:,} (seed {seed}); "
        f"{len(found)} of {len(rows.seeds)} seeds",
        cause=_because(rows, "updates too large for the network to absorb")
        + f"; learning_rate={config.learning_rate:g}, max_grad_norm={config.max_grad_norm}",
        fix="lower learning_rate (x0.1), keep max_grad_norm set (10), use loss='huber' or "
        "layer_norm=True",
    )


def _soft_divergence(rows: _Rows) -> Finding | None:
    """max |Q| against ``r_max / (1 - γ)``, the largest discounted return of rewards with
    ``|r| <= r_max`` whatever the policy or n (van Hasselt et al. 2018, "Deep
    Reinforcement Learning and the Deadly Triad"), r_max being the largest seen so far."""
    reward_max = np.fmax.accumulate(np.nan_to_num(rows.get("reward_abs_max")), axis=1)
    bound = reward_max / (1.0 - rows.config.gamma)
    limit = np.where(bound > 0, Q_BOUND_FACTOR * bound, 1.0)
    q_max = rows.get("q_abs_max")
    over = q_max > limit
    hit = over.any(axis=1)
    if not hit.any():
        return None
    first = _first(over, rows.metrics["env_steps"])
    worst = int(np.nanargmax(np.where(hit[:, None], q_max / np.maximum(bound, 1e-12), np.nan)))
    seed_row, peak = divmod(worst, q_max.shape[1])
    return Finding(
        code="soft_divergence",
        severity="error",
        seeds=_seeds(rows, hit),
        evidence=f"max |Q| passed {Q_BOUND_FACTOR:g} x r_max/(1-γ) = "
        f"{limit[seed_row, peak]:.4g} first at env step "
        f"{int(first[hit].min()):,}; largest {q_max[seed_row, peak]:.4g} "
        f"(seed {rows.seeds[seed_row]}); {int(hit.sum())} of {len(rows.seeds)} seeds",
        cause=_because(rows, "bootstrapped targets chase the network's own estimates "
                       "(the deadly triad)"),
        fix="a target network (target_update_period >= 100, or target_tau=0.005 every "
        "update), a replay of 10,000+ steps, double_q=True, a lower learning_rate, or "
        "layer_norm=True",
    )  # fmt: skip


def _first_value(values: np.ndarray) -> np.ndarray:
    """``[S]``: each row's first value that is not NaN (NaN if none)."""
    index = np.argmax(~np.isnan(values), axis=1)
    return np.take_along_axis(values, index[:, None], axis=1)[:, 0]


def _overestimation(rows: _Rows) -> Finding | None:
    if rows.value_gap is None or rows.value_return is None:
        return None
    scale = np.maximum(np.abs(rows.value_return), np.nanmax(rows.get("reward_abs_max")))
    hit = rows.value_gap > OVERESTIMATION_SHARE * scale
    if not hit.any():
        return None
    i = int(np.argmax(np.where(hit, rows.value_gap, -np.inf)))
    return Finding(
        code="overestimation",
        severity="warning",
        seeds=_seeds(rows, hit),
        evidence=f"Q(s_0, a_0) is {rows.value_gap[i]:.4g} above the discounted return the "
        f"policy then obtains ({rows.value_return[i]:.4g}, seed {rows.seeds[i]}); "
        f"{int(hit.sum())} of {len(rows.seeds)} seeds",
        cause="the max in the target picks actions whose values are overestimated "
        f"(double_q={rows.config.double_q}), or the values have not settled",
        fix="double_q=True, a slower target (larger target_update_period or smaller "
        "target_tau), or a lower learning_rate",
    )


def _random_level(rows: _Rows) -> np.ndarray:
    """``[S]``: the random policy's mean return: ``random_return`` if given, else the
    mean over windows before the first update played at ε >= :data:`RANDOM_EPSILON`
    (NaN where there are none)."""
    shape = rows.metrics["env_steps"].shape[:1]
    if rows.random_return is not None:
        return np.broadcast_to(rows.random_return, shape).astype(np.float64)
    if rows.config.resolved_exploration() != "epsilon_greedy":
        return np.full(shape, np.nan)
    random = (rows.get("updates") == 0) & (rows.get("exploration") >= RANDOM_EPSILON)
    return _nanmean(np.where(random, rows.get("episode_return"), np.nan))


def _no_improvement(rows: _Rows) -> Finding | None:
    start = _random_level(rows)
    end = rows.final_return()
    margin = IMPROVEMENT_MARGIN * np.maximum(np.abs(start), 1.0)
    flat = ~np.isnan(start) & ~np.isnan(end) & ~(end > start + margin) & ~_solved(rows, end)
    if not flat.any():
        return None
    i = int(np.argmax(flat))
    cause = _because(rows, "")
    loss_note = ""
    if rows.config.loss == "huber":
        td = float(np.nanmax(rows.end("td_error_p90")))
        if td > 10 * rows.config.huber_delta:
            loss_note = (
                f"loss='huber' with huber_delta={rows.config.huber_delta:g} on TD errors "
                f"of {td:.3g} (90th percentile): every gradient is clipped to the same size"
            )
    cause = "; ".join(c for c in (cause, loss_note) if c) or (
        "too little exploration, a learning rate too small or too large, or too short a run"
    )
    return Finding(
        code="no_improvement",
        severity="error",
        seeds=_seeds(rows, flat),
        evidence=f"returns at the end ({end[i]:.4g}, seed {rows.seeds[i]}) are no better "
        f"than a random policy's ({start[i]:.4g}); {int(flat.sum())} of {len(rows.seeds)} seeds",
        cause=cause,
        fix="explore longer (exploration_steps), check the reward reaches the agent, try the "
        "preset's learning_rate, or train longer",
    )


def _exploration_ends_early(rows: _Rows) -> Finding | None:
    config = rows.config
    if config.exploration_schedule == "constant" or config.resolved_exploration() == "none":
        return None
    floor = config.exploration_end
    exploration = rows.get("exploration")
    at_floor = np.isclose(exploration, floor, rtol=1e-4, atol=1e-6) | (exploration < floor)
    step = _first(at_floor, rows.metrics["env_steps"])
    early = (step >= 0) & (step <= config.learning_starts)
    if not early.any():
        return None
    return Finding(
        code="exploration_ends_early",
        severity="warning",
        seeds=_seeds(rows, early),
        evidence=f"exploration reached its floor {floor:g} by env step {int(step[early].min()):,}, "
        f"before learning starts at {config.learning_starts:,}",
        cause="the replay the first updates learn from holds almost no exploratory actions "
        f"(exploration_steps={config.exploration_steps:,}, "
        f"exploration_unit={config.exploration_unit!r})",
        fix="end the schedule well after learning_starts (e.g. exploration_steps of 10-50% "
        "of total_timesteps)",
    )


def _gradient_spikes(rows: _Rows) -> Finding | None:
    peaks = rows.get("grad_norm_max")
    ratio = np.full(peaks.shape, np.nan)
    for t in range(3, peaks.shape[1]):
        earlier = peaks[:, :t]
        seen = (~np.isnan(earlier)).sum(axis=1) >= 3
        median = np.nanmedian(np.where(seen[:, None], earlier, 0.0), axis=1)
        ratio[:, t] = np.where(seen & (median > 0), peaks[:, t] / np.maximum(median, 1e-30), np.nan)
    spikes = ratio > SPIKE_FACTOR
    hit = spikes.any(axis=1)
    if not hit.any():
        return None
    return Finding(
        code="gradient_spikes",
        severity="warning",
        seeds=_seeds(rows, hit),
        evidence=f"{int(spikes.sum())} windows with a gradient norm over {SPIKE_FACTOR:g} x "
        f"the median of earlier windows' largest, first at env step "
        f"{int(_first(spikes, rows.metrics['env_steps'])[hit].min()):,}; largest ratio "
        f"{np.nanmax(ratio):.3g}",
        cause="rare large TD errors (a reward far larger than usual, a stale target) or an "
        f"unstable network; max_grad_norm={rows.config.max_grad_norm}",
        fix="keep max_grad_norm set, use loss='huber', scale the rewards, or layer_norm=True",
    )


def _dormant_units(rows: _Rows) -> Finding | None:
    share, first = rows.end("dormant_units"), _first_value(rows.get("dormant_units"))
    hit = (share > DORMANT_LIMIT) & (share - first > DORMANT_GROWTH)
    if not hit.any():
        return None
    return Finding(
        code="dormant_units",
        severity="warning",
        seeds=_seeds(rows, hit),
        evidence=f"{np.nanmax(share[hit]):.0%} of hidden units dormant (τ = "
        f"{DORMANT_THRESHOLDS[0]}) at the end of the run, up from "
        f"{np.nanmin(first[hit]):.0%} after the first update",
        cause="units that stopped responding to any observation cannot learn again "
        "(the dormant neuron phenomenon, Sokar et al. 2023)",
        fix="a smaller learning_rate, layer_norm=True, a non-saturating activation, or fewer "
        "gradient_steps per env step",
    )


def _rank_collapse(rows: _Rows) -> Finding | None:
    rank, peak = rows.end("feature_rank"), np.nanmax(rows.get("feature_rank"), axis=1)
    hit = rank < RANK_DROP * peak
    if not hit.any():
        return None
    return Finding(
        code="rank_collapse",
        severity="warning",
        seeds=_seeds(rows, hit),
        evidence=f"feature rank {np.nanmin(rank[hit]):.3g} at the end of the run, down "
        f"from {np.nanmax(peak[hit]):.3g}",
        cause="the last hidden layer spans few directions (implicit under-"
        "parameterization, Kumar et al. 2021), so Q cannot tell states apart",
        fix="fewer gradient_steps per env step, a larger replay, or layer_norm=True",
    )


def _action_collapse(rows: _Rows, poor: np.ndarray) -> Finding | None:
    entropy = rows.end("action_entropy")
    hit = (entropy < ENTROPY_LIMIT) & poor
    if not hit.any():
        return None
    return Finding(
        code="action_collapse",
        severity="error",
        seeds=_seeds(rows, hit),
        evidence=f"the greedy action is the same on nearly every observation (entropy "
        f"{np.nanmax(entropy[hit]):.3g} nats) while returns stay poor",
        cause="one action's value ran away from the others, often with too little "
        f"exploration (exploration_end={rows.config.exploration_end:g})",
        fix="explore longer or more (exploration_steps, exploration_end), double_q=True, "
        "or a lower learning_rate",
    )


def _solved(rows: _Rows, end: np.ndarray) -> np.ndarray:
    """``[S]``: seeds whose return ``end`` reaches the env's solved level (none if unknown)."""
    from jaxdqn.presets import SOLVED_RETURN

    solved = SOLVED_RETURN.get(rows.config.env_id)
    return np.zeros(end.shape, bool) if solved is None else end >= solved


def _poor_returns(rows: _Rows, no_improvement: Finding | None) -> np.ndarray:
    """``[S]``: seeds whose returns did not improve, or end below a known solved level."""
    from jaxdqn.presets import SOLVED_RETURN

    end = rows.final_return()
    poor = np.isin(rows.seeds, no_improvement.seeds if no_improvement else ())
    if rows.config.env_id in SOLVED_RETURN:
        poor |= ~_solved(rows, end)
    return poor


def diagnose(
    config: DQNConfig,
    metrics: Mapping[str, Any],
    seeds: list[int] | tuple[int, ...] | None = None,
    greedy_return: Any = None,
    random_return: Any = None,
    value_gap: Any = None,
    value_return: Any = None,
) -> list[Finding]:
    """Findings on a run from its metric rows.

    Args:
      config: the run's :class:`jaxdqn.DQNConfig` (its ``gamma`` sets the Q bound).
      metrics: each metric ``[S, T]`` (``jax.vmap(train)``'s) or ``[T]`` (one seed), with
        the loop's health signals (``config.diagnostics=True``); checks whose signals are
        missing find nothing.
      seeds: the ``S`` seeds' names (default ``0 .. S-1``).
      greedy_return: ``[S]`` mean returns of a final evaluation, if there was one.
      random_return: the random policy's mean return (``[]`` or ``[S]``) for
        ``no_improvement``; ``None`` takes the windows before learning played at ε >=
        :data:`RANDOM_EPSILON` (the check is skipped if there are none).
      value_gap, value_return: ``[S]`` mean ``Q(s_0, a_0)`` minus the discounted return
        then obtained, and that return (:func:`jaxdqn.dqn.estimate_values`), for
        ``overestimation``; ``None`` skips it.

    Returns:
      The findings, errors first; a single ``healthy`` finding when nothing is wrong.
    """
    arrays = {k: np.atleast_2d(np.asarray(v, np.float64)) for k, v in metrics.items()}
    count = arrays["env_steps"].shape[0]
    seeds = tuple(range(count)) if seeds is None else tuple(int(s) for s in seeds)
    if len(seeds) != count:
        raise ValueError(f"seeds has {len(seeds)} entries; metrics hold {count} seeds.")
    extra = (greedy_return, random_return, value_gap, value_return)
    rows = _Rows(config, seeds, arrays, *(_optional(v) for v in extra))
    # Signals a run did not log, and windows without updates, are all-NaN slices: the
    # checks read them as "nothing found", so NumPy's warnings about them are noise.
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        no_improvement = _no_improvement(rows)
        found = [
            _non_finite(rows),
            _soft_divergence(rows),
            _overestimation(rows),
            no_improvement,
            _action_collapse(rows, _poor_returns(rows, no_improvement)),
            _exploration_ends_early(rows),
            _gradient_spikes(rows),
            _dormant_units(rows),
            _rank_collapse(rows),
        ]
        findings = [f for f in found if f is not None]
        if not findings:
            return [_healthy(rows)]
    return sorted(findings, key=lambda f: f.severity != "error")


def _optional(values: Any) -> np.ndarray | None:
    return None if values is None else np.atleast_1d(np.asarray(values, np.float64))


def _healthy(rows: _Rows) -> Finding:
    end = rows.end("episode_return")
    greedy = ""
    if rows.greedy_return is not None:
        greedy = (
            f", greedy {np.nanmin(rows.greedy_return):.4g} to {np.nanmax(rows.greedy_return):.4g}"
        )
    return Finding(
        code="healthy",
        severity="ok",
        seeds=rows.seeds,
        evidence=f"no check fired; training returns over the last fifth {np.nanmin(end):.4g} "
        f"to {np.nanmax(end):.4g}{greedy}",
        cause="",
        fix="",
    )


def diagnose_run(run_dir: str | Path) -> list[Finding]:
    """:func:`diagnose` on a run folder (its config, metric files and, if finished, its
    final evaluation); writes the findings to ``<run_dir>/diagnosis.json`` as
    ``{"findings": [{"code", "severity", "seeds", "evidence", "cause", "fix"}], ...}``.

    Raises:
      ValueError: a folder that is not a run, or one with no metric rows yet.
    """
    from jaxdqn.host.driver import load_run
    from jaxdqn.host.monitor import stacked_metrics

    config, seeds = load_run(run_dir)
    try:
        metrics = stacked_metrics(run_dir, seeds)
    except ValueError:
        metrics = {}
    if not metrics:
        raise ValueError(f"{run_dir} has no metric rows for every seed yet; nothing to diagnose.")
    summary_path = Path(run_dir) / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    random = None if _logs_random_play(metrics, config) else random_policy_return(config)
    findings = diagnose(
        config,
        metrics,
        seeds,
        summary.get("greedy_return"),
        random,
        summary.get("overestimation"),
        summary.get("discounted_return"),
    )
    write_diagnosis(run_dir, findings)
    return findings


def _logs_random_play(metrics: Mapping[str, np.ndarray], config: DQNConfig) -> bool:
    """Whether every seed's rows hold a window before learning played at ε >=
    :data:`RANDOM_EPSILON` (what :func:`diagnose` reads as the random policy's level)."""
    if config.resolved_exploration() != "epsilon_greedy":
        return False
    random = (metrics["updates"] == 0) & (metrics["exploration"] >= RANDOM_EPSILON)
    played = random & ~np.isnan(metrics["episode_return"])
    return bool(played.any(axis=1).all())


def random_policy_return(config: DQNConfig, episodes: int = 32, seed: int = 0) -> float:
    """Mean return of ``episodes`` episodes of uniformly random actions in ``config``'s
    env (ε-greedy at ε = 1, which never reads the Q-network)."""
    import jax

    from jaxdqn.dqn import bind_config_env, evaluate, q_network_for

    bound = bind_config_env(config)
    network = q_network_for(config, bound.spec)
    key = jax.random.key(seed)
    obs = jax.numpy.zeros((1, *bound.spec.obs_shape), bound.spec.obs_dtype)
    params = network.init(key, obs)
    returns = jax.jit(lambda p, k: evaluate(config, p, k, episodes, 1.0))(params, key)
    return float(returns.mean())


def write_diagnosis(run_dir: str | Path, findings: list[Finding]) -> Path:
    """Writes ``<run_dir>/diagnosis.json`` and returns its path."""
    path = Path(run_dir) / "diagnosis.json"
    record = {
        "findings": [dataclasses.asdict(f) for f in findings],
        "healthy": all(f.code == "healthy" for f in findings),
    }
    path.write_text(json.dumps(record, indent=2))
    return path
