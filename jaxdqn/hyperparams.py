"""Hyperparameters that are traced values, so one compiled program sweeps over them.

A run reads these fields from ``TrainState.hparams``, not from the config: ``init(key,
hparams)`` stores them, and ``jax.vmap`` over a batch of :class:`Hyperparams` (and keys)
trains every setting at once with a single compile. Every other field of
:class:`jaxdqn.DQNConfig` shapes the program (sizes, counts, choices) and stays static.

Examples:
  >>> import jax, jaxdqn
  >>> config = jaxdqn.get_preset("CartPole-v1")
  >>> hparams, configs = jaxdqn.sweep(config, learning_rate=[1e-4, 3e-4], gamma=[0.99, 0.995])
  >>> hparams.learning_rate.shape  # the 4 combinations, each validated as a DQNConfig
  (4,)
  >>> keys = jax.random.split(jax.random.key(0), 4)
  >>> states, metrics = jax.jit(jax.vmap(jaxdqn.make_train(config)))(keys, hparams)
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Hyperparams(NamedTuple):
    """The traced hyperparameters of one run (scalars; a leading axis for a sweep)."""

    learning_rate: jax.Array  # float32: peak step size (decayed by the config's schedule)
    gamma: jax.Array  # float32: discount
    target_tau: jax.Array  # float32: step of each target sync
    target_update_period: jax.Array  # int32: gradient updates between target syncs
    exploration_start: jax.Array  # float32: ε or temperature at count 0
    exploration_end: jax.Array  # float32: ε or temperature at the end of the schedule
    exploration_steps: jax.Array  # int32: length of the linear schedule
    exploration_decay: jax.Array  # float32: factor of the exponential schedule

    @classmethod
    def from_config(cls, config) -> Hyperparams:
        """The traced fields of ``config`` as scalar arrays (what ``init`` uses by default).

        Args:
          config: a :class:`jaxdqn.DQNConfig`.

        Returns:
          :class:`Hyperparams` of shape ``[]`` leaves: float32, except int32
          ``target_update_period`` and ``exploration_steps``.
        """
        return cls(
            **{f: jnp.asarray(getattr(config, f), _DTYPES.get(f, np.float32)) for f in cls._fields}
        )


TRACED_FIELDS: tuple[str, ...] = Hyperparams._fields
_DTYPES = {"target_update_period": np.int32, "exploration_steps": np.int32}


def sweep(config, **values: Sequence) -> tuple[Hyperparams, list]:
    """Every combination of the given values, as a batch of :class:`Hyperparams`.

    Each combination is validated as a full ``DQNConfig`` (so a bad value raises the
    config's ``ValueError`` naming the field, before anything is compiled).

    Args:
      config: the base :class:`jaxdqn.DQNConfig`; fields not swept keep its values.
      **values: field name -> sequence of values, for fields in ``TRACED_FIELDS``.

    Returns:
      ``(hparams, configs)``: ``hparams`` with leaves ``[G]`` (G = product of the lengths,
      the last field varying fastest) and the G validated configs in the same order.

    Raises:
      ValueError: an unknown or static field, an empty list, or an invalid value.
    """
    for field, options in values.items():
        if field not in TRACED_FIELDS:
            raise ValueError(
                f"sweep: {field!r} cannot be swept in one program; traced fields are "
                f"{', '.join(TRACED_FIELDS)}. Other fields change the program: compile "
                "one per value."
            )
        if isinstance(options, str) or not isinstance(options, Sequence) or not options:
            raise ValueError(f"sweep: {field}={options!r} is invalid: give a non-empty list.")
    fields = list(values)
    configs = [
        dataclasses.replace(config, **dict(zip(fields, combo, strict=True)))
        for combo in itertools.product(*(values[f] for f in fields))
    ]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *(Hyperparams.from_config(c) for c in configs))
    return stacked, configs
