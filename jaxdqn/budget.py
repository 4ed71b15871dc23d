"""Schedules that follow the run: a config's schedules scaled to another env-step budget.

A preset's schedules are tuned for its ``total_timesteps``. Shortening the run without
them refuses (an exploration schedule longer than the run) or quietly breaks (learning
that starts after most of the run, a target network that never syncs). :func:`scale_schedules`
scales them by ``new_total / old_total``:

* ``exploration_steps`` of a linear schedule, or ``exploration_decay`` of an exponential
  one (``decay ** (old / new)``), so ε reaches the same value at the same fraction of the
  run;
* ``learning_starts``, to the nearest cycle boundary below, and never so low that the
  first update finds fewer than ``batch_size`` transitions;
* ``target_update_period``, only where it would exceed the run's gradient updates
  (then the target would never sync), scaled and capped at that number;
* ``log_interval``, back to automatic where it no longer divides the run.

The learning-rate schedule already spans the run's updates, and ``buffer_size`` stays as
it is. Fields named in ``keep`` (what the user set) are never changed.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from jaxdqn.core.loop import cycle_env_steps, run_updates

# The fields scale_schedules may change, in the order a message lists them.
SCALED_FIELDS = (
    "exploration_steps",
    "exploration_decay",
    "learning_starts",
    "target_update_period",
    "log_interval",
)


def scale_schedules(
    fields: dict[str, Any], from_total: int, keep: Collection[str] = ()
) -> dict[str, Any]:
    """The config fields ``fields`` (with the new ``total_timesteps``) with the schedules
    of a ``from_total``-step run scaled to the new budget.

    Args:
      fields: every ``DQNConfig`` field by name (``dataclasses.asdict`` of a config, with
        ``total_timesteps`` and any overrides already replaced); not validated here.
      from_total: the env-step budget the schedules were set for, >= 1.
      keep: names of fields to leave as they are (the ones a user gave).

    Returns:
      A new dict; only :data:`SCALED_FIELDS` differ from ``fields``.
    """
    out = dict(fields)
    total = out["total_timesteps"]
    if total == from_total:
        return out
    ratio = total / from_total
    cycle = cycle_env_steps(out["num_envs"], out["train_frequency"])

    def scale(name: str, value: Any) -> None:
        if name not in keep:
            out[name] = value

    if out["exploration_schedule"] == "linear":
        scale("exploration_steps", max(1, min(total, round(out["exploration_steps"] * ratio))))
    if out["exploration_schedule"] == "exponential":
        scale("exploration_decay", out["exploration_decay"] ** (1.0 / ratio))
    scale("learning_starts", _learning_starts(out, ratio, cycle, total))
    updates = run_updates(
        total,
        out["learning_starts"],
        out["num_envs"],
        out["train_frequency"],
        out["gradient_steps"],
    )
    if out["target_update_period"] > updates:
        period = max(1, min(updates, round(out["target_update_period"] * ratio)))
        scale("target_update_period", period)
    interval = out.get("log_interval")
    if interval is not None and (total % interval or interval % cycle):
        scale("log_interval", None)
    return out


def _learning_starts(fields: dict[str, Any], ratio: float, cycle: int, total: int) -> int:
    """``learning_starts`` scaled, on a cycle boundary, below the run's end, and late enough
    that the first update samples ``batch_size`` stored transitions."""
    scaled = int(fields["learning_starts"] * ratio) // cycle * cycle
    lowest = max(0, math.ceil((fields["batch_size"] - cycle) / cycle) * cycle)
    highest = max(0, (total - 1) // cycle * cycle)
    return min(max(scaled, lowest), highest)
