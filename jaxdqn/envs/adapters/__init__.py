"""Adapters for the JAX environment suites, each an optional extra.

An env of a suite is named ``suite/Id`` wherever jaxdqn takes an env id (``DQNConfig``,
``jaxdqn train --env``), for example ``jumanji/Snake-v1``, ``xminigrid/MiniGrid-Empty-5x5``,
``craftax/Craftax-Classic-Symbolic-v1``, ``pgx/2048`` or ``navix/Navix-Empty-5x5-v0``. To
adapt an env built by hand (other constructor arguments, another observation), use the
suite's adapter class, e.g. ``JumanjiAdapter(jumanji.make("Snake-v1", time_limit=500),
observation="grid")``, and pass it as ``env=``.

Each adapter is a :class:`~jaxdqn.envs.adapters.base.SuiteAdapter`: the suite's step and
its end-of-episode signals mapped to gymnax >= 1.0's ``terminated`` / ``truncated`` /
``final_observation``, one observation array, and the suite's legal-action mask where it
has one.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from jaxdqn.envs.adapters.base import (
    AdapterParams,
    AdapterState,
    SuiteAdapter,
    SuiteStep,
    flatten_observation,
)

# suite prefix -> (adapter module, adapter class, the pip extra that installs the suite)
SUITES: dict[str, tuple[str, str, str]] = {
    "jumanji": ("jaxdqn.envs.adapters.jumanji", "JumanjiAdapter", "jumanji"),
    "xminigrid": ("jaxdqn.envs.adapters.xminigrid", "XMiniGridAdapter", "xminigrid"),
    "craftax": ("jaxdqn.envs.adapters.craftax", "CraftaxAdapter", "craftax"),
    "pgx": ("jaxdqn.envs.adapters.pgx", "PGXAdapter", "pgx"),
    "navix": ("jaxdqn.envs.adapters.navix", "NavixAdapter", "navix"),
    "envpool": ("jaxdqn.envs.adapters.envpool", "EnvPoolEnv", "envpool"),
}


def is_suite_id(env_id: str) -> bool:
    """Whether ``env_id`` has the form ``suite/Id`` of a suite in :data:`SUITES`."""
    suite, _, name = env_id.partition("/")
    return suite in SUITES and bool(name)


def suite_module(suite: str, field: str = "env_id") -> Any:
    """The adapter module of ``suite``, imported (which imports the suite).

    Raises:
      ValueError: naming ``field`` and the extra to install where the suite is missing.
    """
    module_name, _, extra = SUITES[suite]
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(
            f"{field}: the {suite} suite does not import ({error}); install it with "
            f'pip install "jaxdqn[{extra}]".'
        ) from error


def make_suite_env(env_id: str, field: str = "env_id") -> SuiteAdapter:
    """The adapted env of an id ``suite/Id``.

    Raises:
      ValueError: naming ``field``, for a suite that is not installed or an id the suite
        does not know (listing close matches).
    """
    suite, _, name = env_id.partition("/")
    module = suite_module(suite, field)
    known = module.registered()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(f'{suite}/{c}' for c in close)}?" if close else ""
        raise ValueError(
            f"{field}={env_id!r} is not a {suite} env.{hint} {suite} has {len(known)} ids."
        )
    env = module.make(name)
    env.label = env_id
    return env


def __getattr__(name: str) -> Any:
    """The adapter classes, imported on first use (each imports its suite)."""
    for suite, (_, class_name, _) in SUITES.items():
        if name == class_name:
            return getattr(suite_module(suite, name), class_name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SUITES",
    "AdapterParams",
    "AdapterState",
    "SuiteAdapter",
    "SuiteStep",
    "flatten_observation",
    "is_suite_id",
    "make_suite_env",
    "suite_module",
]
