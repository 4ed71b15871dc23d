"""``jaxdqn probe``: a configuration's learner on the probe environments, whose exact
Q-values are known (:mod:`jaxdqn.envs.probes`).

:func:`run_probes` keeps everything that makes up the learner (network, optimizer, loss,
target network, n-step returns, replay, exploration) and swaps the environment for each
probe, with the schedules scaled to a short budget and ε-greedy's ε kept at
:data:`PROBE_MIN_EPSILON` or above, so that every action is tried often enough for its
value to be learned: a probe checks the learner, and an action its exploration starves
would fail it with a verdict that blames the loss. Probes with the same action count and
time limit train in one program, vmapped over their tables (three programs for the seven
probes). A probe passes when every seed's learned Q-table is within ``tolerance`` of the
exact one.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdqn.config import DQNConfig
from jaxdqn.core.types import check_int
from jaxdqn.dqn import build, make_train
from jaxdqn.envs.probes import (
    PROBE_IDS,
    ProbeEnv,
    ProbeParams,
    probe_of,
    probe_params,
    probe_q_star,
)

PROBE_STEPS = 10_000  # env steps per probe run
TOLERANCE = 0.1  # largest |Q - Q*| that passes; every |Q*| of a probe is at most 1
PROBE_SUPPORT = (-2.0, 2.0)  # a distributional head's atoms on the probes: holds every Q*
PROBE_MIN_EPSILON = 0.1  # ε-greedy's least ε on the probes (the MinAtar paper's final ε)


class ProbeResult(NamedTuple):
    """What one probe found."""

    env_id: str
    exact: np.ndarray  # [S, A]: Q*
    learned: np.ndarray  # [S, A]: the Q-table of the worst seed
    error: float  # the worst seed's max |Q - Q*|
    passed: bool
    checks: str  # the part of a learner a failure points to


def probe_epsilon(config: DQNConfig) -> tuple[float, float]:
    """``(exploration_start, exploration_end)`` on the probes: an ε-greedy learner's raised
    to :data:`PROBE_MIN_EPSILON` where below it, any other exploration's kept."""
    start, end = config.exploration_start, config.exploration_end
    if config.resolved_exploration() != "epsilon_greedy":
        return start, end
    return max(start, PROBE_MIN_EPSILON), max(end, PROBE_MIN_EPSILON)


def probe_config(config: DQNConfig, env_id: str, total_timesteps: int) -> DQNConfig:
    """``config`` on the probe ``env_id``: the same learner, the schedules scaled to
    ``total_timesteps``, an MLP where it had a CNN (probes observe one number), a
    distributional head's atoms spread over :data:`PROBE_SUPPORT` (the probes' values, not
    its own env's), no env params or sticky actions of its own env (the probes' exact
    values are those of their own dynamics), ε-greedy's ε no lower than
    :data:`PROBE_MIN_EPSILON`, and no mid-run log points beyond the automatic ones."""
    network = "mlp" if config.network in ("cnn", "nature_cnn") else config.network
    v_min, v_max = PROBE_SUPPORT if config.distributional else (config.v_min, config.v_max)
    start, end = probe_epsilon(config)
    moved = dataclasses.replace(
        config,
        env_id=env_id,
        env_params=(),
        sticky_actions=0.0,
        network=network,
        log_interval=None,
        v_min=v_min,
        v_max=v_max,
        exploration_start=start,
        exploration_end=end,
    )
    return moved.with_budget(total_timesteps)


def run_probes(
    config: DQNConfig,
    *,
    seeds: int = 4,
    total_timesteps: int = PROBE_STEPS,
    tolerance: float = TOLERANCE,
    env_ids: tuple[str, ...] = PROBE_IDS,
) -> list[ProbeResult]:
    """Trains ``config``'s learner on each probe (``seeds`` seeds vmapped, keys
    ``split(key(0), seeds)``) and compares the learned Q-tables with the exact ones.

    Args:
      config: any :class:`jaxdqn.DQNConfig` (its env is ignored).
      seeds: seeds per probe.
      total_timesteps: env steps of each probe run.
      tolerance: the largest ``|Q - Q*|`` that passes.
      env_ids: the probes to run, ids from :data:`jaxdqn.envs.probes.PROBE_IDS`.

    Returns:
      One :class:`ProbeResult` per probe, in order.

    Raises:
      ValueError: naming the argument, for a bad count, tolerance or probe id, or a
        config whose fields do not fit a probe's short run (before compiling).
    """
    check_int("seeds", seeds)
    check_int("total_timesteps", total_timesteps)
    if not tolerance > 0:
        raise ValueError(f"tolerance={tolerance!r} is invalid: must be > 0.")
    unknown = [e for e in env_ids if e not in PROBE_IDS]
    if unknown:
        raise ValueError(f"env_ids {unknown} are not probes; known: {', '.join(PROBE_IDS)}.")
    configs = {e: probe_config(config, e, total_timesteps) for e in env_ids}  # all checked
    keys = jax.random.split(jax.random.key(0), seeds)
    results = {}
    for group in probe_groups(env_ids):
        tables = _train_group(configs[group[0]], group, keys)
        for env_id, probe_tables in zip(group, tables, strict=True):
            results[env_id] = _result(configs[env_id], probe_tables, tolerance)
    return [results[env_id] for env_id in env_ids]


def probe_groups(env_ids: tuple[str, ...]) -> list[tuple[str, ...]]:
    """``env_ids`` grouped by action count and time limit, the two things a probe's
    program depends on; each group trains as one program (first appearance order)."""
    groups: dict[tuple[int, int], list[str]] = {}
    for env_id in env_ids:
        probe = probe_of(env_id)
        groups.setdefault((len(probe.reward[0]), probe.time_limit), []).append(env_id)
    return [tuple(group) for group in groups.values()]


def _train_group(config: DQNConfig, env_ids: tuple[str, ...], keys: jax.Array) -> np.ndarray:
    """Trains ``config``'s learner on every probe of ``env_ids`` (one action count and time
    limit) and every key, in one program. Returns the learned Q-tables of each probe's
    states, float64 ``[probes, seeds, S, A]`` (``S`` padded to ``PROBE_STATES``)."""
    env = ProbeEnv(probe_of(env_ids[0]))
    params = jax.tree.map(lambda *x: jnp.stack(x), *(probe_params(probe_of(e)) for e in env_ids))
    network = build(config, env, env.default_params).q_network

    def train_probe(env_params: ProbeParams) -> jax.Array:
        states, _ = jax.vmap(make_train(config, env, env_params))(keys)
        observations = env_params.observations[:, None]  # [S, 1]
        return jax.vmap(lambda p: network.apply(p, observations))(states.params)

    return np.asarray(jax.jit(jax.vmap(train_probe))(params), np.float64)


def _result(config: DQNConfig, tables: np.ndarray, tolerance: float) -> ProbeResult:
    """The verdict on one probe from its learned Q-tables ``[seeds, S_padded, A]``."""
    probe = probe_of(config.env_id)
    tables = tables[:, : len(probe.observations)]  # [seeds, S, A]
    exact = probe_q_star(probe, config.gamma)
    errors = np.abs(tables - exact).max(axis=(1, 2))
    worst = int(np.nanargmax(errors)) if np.isfinite(errors).any() else 0
    error = float(errors[worst]) if np.isfinite(errors).all() else float("inf")
    checks = probe.checks
    if probe.name == "NextMax" and config.n_step > 1 and not config.n_step_cut:
        checks += (
            f"; with n_step={config.n_step} the target sums the rewards of the actions taken "
            "and takes the max only after n steps, so Q leans toward the replayed behaviour's "
            "value (the bias of uncorrected n-step returns; n_step_cut=true cuts each sum at "
            "the first action that is not greedy)"
        )
    return ProbeResult(
        env_id=config.env_id,
        exact=exact,
        learned=tables[worst],
        error=error,
        passed=error <= tolerance,
        checks=checks,
    )


def format_results(results: list[ProbeResult]) -> str:
    """The results as a table: probe, exact Q, learned Q (worst seed), error, verdict."""
    exact = [_table(r.exact) for r in results]
    learned = [_table(r.learned) for r in results]
    wide = max(len("learned Q (worst seed)"), *map(len, exact), *map(len, learned))
    header = f"{'probe':<26} {'exact Q':<{wide}} {'learned Q (worst seed)':<{wide}} {'error':>6}"
    lines = [header + "  result"]
    for r, e, q in zip(results, exact, learned, strict=True):
        verdict = "pass" if r.passed else f"FAIL: check {r.checks}"
        lines.append(f"{r.env_id:<26} {e:<{wide}} {q:<{wide}} {r.error:>6.3f}  {verdict}")
    return "\n".join(lines)


def _table(q: np.ndarray) -> str:
    """``[S, A]`` as ``s0:(a0,a1) s1:(...)``, two decimals."""
    return " ".join("(" + ",".join(f"{v:.2f}" for v in row) + ")" for row in q)
