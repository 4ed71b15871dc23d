"""Environments, resolved once: an id or an env object becomes a :class:`BoundEnv`.

Every environment follows the gymnax >= 1.0 API: ``env.step(key, state, action, params)``
returns ``(obs, state, reward, terminated, truncated, info)`` with the automatic reset
already applied to ``obs`` and the true last observation of an ended episode in
``info["final_observation"]``. Ids are every gymnax id plus the project's
``ChainWalk-v0`` and probes ``Probe-<Name>-v0`` (:data:`ENV_IDS`), and ``suite/Id`` for
an env of a JAX suite (:mod:`jaxdqn.envs.adapters`: Jumanji, xminigrid, Craftax, PGX,
Navix).

:func:`bind_env` is the one place an environment is built and inspected. What the rest of
the library needs to know about it (observation shape and dtype, number of actions, time
limit) is in its :class:`EnvSpec`, found by tracing one reset abstractly.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import os
import re
import sys
from collections.abc import Mapping
from typing import Any, NamedTuple

import gymnax
import jax
import numpy as np
from gymnax.environments import environment

from jaxdqn.envs.adapters import SUITES, is_suite_id, make_suite_env
from jaxdqn.envs.chain_walk import (
    CHAIN_WALK_ID,
    ChainWalk,
    ChainWalkParams,
    ChainWalkState,
    chain_walk_observations,
    chain_walk_optimal_q,
)
from jaxdqn.envs.contract import EnvSpec, env_spec
from jaxdqn.envs.probes import PROBE_IDS, ProbeEnv, probe_of
from jaxdqn.envs.wrappers import BoolObservations, LegacyStepAPI, StickyActions, StickyState

_PROJECT_ENVS = {
    CHAIN_WALK_ID: ChainWalk,
    **{env_id: functools.partial(ProbeEnv, probe_of(env_id)) for env_id in PROBE_IDS},
}
ENV_IDS: tuple[str, ...] = (*gymnax.registered_envs, *_PROJECT_ENVS)


class BoundEnv(NamedTuple):
    """An environment with the parameters it runs with, and its :class:`EnvSpec`."""

    env: environment.Environment  # gymnax >= 1.0 Environment interface
    params: Any  # its EnvParams
    spec: EnvSpec
    name: str  # the id it was built from, or the env's class name


_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def check_env_id(env_id: object, field: str = "env_id") -> None:
    """Raises ``ValueError`` naming ``field`` unless ``env_id`` is one of :data:`ENV_IDS`,
    a suite's ``suite/Id`` or an import path ``package.module:Name``.

    The message lists close matches (``difflib``) and where to find every id. Nothing is
    built or imported: that happens in :func:`bind_env`.
    """
    if isinstance(env_id, str) and (_is_known_id(env_id) or _IMPORT_PATH.match(env_id)):
        return
    close = difflib.get_close_matches(str(env_id), ENV_IDS, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"{field}={env_id!r} is not a known environment.{hint} "
        f"Known ids: jaxdqn.ENV_IDS ({len(ENV_IDS)} ids: every gymnax id and {CHAIN_WALK_ID!r}), "
        f"suite/Id for an env of {', '.join(SUITES)} (jaxdqn.envs.adapters), "
        "or an import path package.module:Name of an Environment class or factory."
    )


def bind_env(
    env: Any, env_params: Any = None, *, field: str = "env", params_field: str = "env_params"
) -> BoundEnv:
    """Resolves an environment once: builds it from an id or import path, or takes the
    object given, and checks it against the contract (:mod:`jaxdqn.envs.contract`).

    Args:
      env: an id from :data:`ENV_IDS`, a suite's ``suite/Id``, an import path
        ``package.module:Name`` (a class or factory called without arguments; the current
        directory is importable, as with ``python -m``), or an object with the gymnax >=
        1.0 ``Environment`` interface.
      env_params: the env's parameters; ``None`` takes ``env.default_params``; a mapping
        replaces those fields of ``env.default_params`` (e.g.
        ``{"max_steps_in_episode": 200}``).
      field: the name errors give the environment (``DQNConfig.env_id`` for a config's).
      params_field: the name errors give ``env_params``.

    Returns:
      A :class:`BoundEnv`.

    Raises:
      ValueError, TypeError: naming what is wrong: an unknown id, an import path that
        does not import, unknown parameter names, or an env that breaks the contract.
    """
    if isinstance(env, str):
        check_env_id(env, field)
        name = env
        # Suites compute arrays when an env is made: eagerly, even when bind_env runs
        # inside a traced function (jaxdqn.evaluate under jax.jit, say).
        with jax.ensure_compile_time_eval():
            env = _build(env, field) if _is_known_id(env) else _import_env(env, field)
    else:
        name = type(env).__name__
    params = _params(env, env_params, params_field)
    return BoundEnv(env=env, params=params, spec=env_spec(env, params, name, field), name=name)


def is_batched(bound: BoundEnv) -> bool:
    """Whether the env steps all its envs at once (EnvPool) instead of one env per call
    under ``jax.vmap``."""
    return bool(getattr(bound.env, "batched", False))


def open_envs(bound: BoundEnv, num_envs: int, stream: int = 0) -> BoundEnv:
    """``bound`` ready to reset and step ``num_envs`` envs: a batched env opens envs of its
    own, seeded for ``stream`` (0: training, 1: evaluation); any other env is returned as
    it is."""
    if is_batched(bound) and hasattr(bound.env, "open"):
        return bound._replace(env=bound.env.open(num_envs, bound.params, stream))
    return bound


def _is_known_id(env_id: str) -> bool:
    """An id of the project, of gymnax's registry as it is now, or of a suite (whose
    registry is read when the env is built)."""
    return env_id in _PROJECT_ENVS or env_id in gymnax.registered_envs or is_suite_id(env_id)


def _params(env: Any, env_params: Any, field: str) -> Any:
    """``env_params``, the env's defaults, or the defaults with the fields of a mapping
    replaced (each value of its field's type: a bool for a bool, a number for a number)."""
    if env_params is not None and not isinstance(env_params, Mapping):
        return env_params
    default = env.default_params
    if not env_params:
        return default
    if dataclasses.is_dataclass(default):
        known = {f.name: getattr(default, f.name) for f in dataclasses.fields(default)}
    else:
        known = default._asdict() if hasattr(default, "_asdict") else {}
    given = dict(env_params)
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(
            f"{field}={given!r} is invalid: {type(default).__name__} has no field "
            f"{', '.join(map(repr, unknown))}; its fields are {', '.join(known) or 'none'}."
        )
    for name, value in given.items():
        given[name] = _as_type_of(known[name], value, f"{field}[{name!r}]")
    return replace_params(default, **given)


def replace_params(params: Any, **fields: Any) -> Any:
    """``params`` with ``fields`` replaced: a NamedTuple (EnvPool's) or a dataclass
    (gymnax's flax dataclasses)."""
    if hasattr(params, "_replace"):
        return params._replace(**fields)
    return dataclasses.replace(params, **fields)


def _as_type_of(current: Any, value: Any, where: str) -> Any:
    """``value`` as a replacement for a field whose default is ``current``."""
    if isinstance(current, bool | np.bool_):
        kind, ok = "a bool", isinstance(value, bool)
    elif isinstance(current, int | np.integer):
        kind, ok = "an int", isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(current, float | np.floating):
        kind, ok = "a number", isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        kind, ok = "", True  # other kinds of field: the env's own code decides
    if not ok:
        raise ValueError(
            f"{where}={value!r} is invalid: must be {kind}, as the default {current!r}."
        )
    return value


def _import_env(path: str, field: str) -> Any:
    """The env an import path names: ``module:Name``, called if it is a class or factory."""
    module_name, attribute = path.split(":")
    if os.getcwd() not in sys.path:  # as `python -m`: modules in the current directory
        sys.path.insert(0, os.getcwd())
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(
            f"{field}={path!r} does not import: {type(error).__name__}: {error}"
        ) from error
    is_env = hasattr(target, "step") and hasattr(target, "reset")
    if isinstance(target, type) or (callable(target) and not is_env):
        try:
            target = target()  # an Environment class or a factory
        except Exception as error:
            raise ValueError(
                f"{field}={path!r}: calling it without arguments failed: "
                f"{type(error).__name__}: {error}"
            ) from error
    if not all(hasattr(target, name) for name in ("reset", "step", "default_params")):
        raise ValueError(
            f"{field}={path!r} gave {type(target).__name__}, not an environment with reset, "
            "step and default_params (a factory must return the env alone, not (env, params))."
        )
    return target


def make_env(env_id: str) -> tuple[environment.Environment, environment.EnvParams]:
    """Builds an environment and its default parameters.

    Args:
      env_id: a gymnax id (``gymnax.registered_envs``), ``"ChainWalk-v0"`` or an import
        path ``package.module:Name``.

    Returns:
      ``(env, env_params)`` in the gymnax >= 1.0 API.

    Raises:
      ValueError: for an unknown id (listing close matches).
    """
    bound = bind_env(env_id, field="env_id")
    return bound.env, bound.params


def _build(env_id: str, field: str = "env_id") -> environment.Environment:
    """The env of a known id (the only place one is built from an id)."""
    if env_id in _PROJECT_ENVS:
        return _PROJECT_ENVS[env_id]()
    if is_suite_id(env_id):
        return make_suite_env(env_id, field)
    env, _ = gymnax.make(env_id)
    return BoolObservations(env) if env_id.endswith("-MinAtar") else env


__all__ = [
    "CHAIN_WALK_ID",
    "ENV_IDS",
    "BoolObservations",
    "BoundEnv",
    "ChainWalk",
    "ChainWalkParams",
    "ChainWalkState",
    "EnvSpec",
    "LegacyStepAPI",
    "StickyActions",
    "StickyState",
    "bind_env",
    "chain_walk_observations",
    "chain_walk_optimal_q",
    "check_env_id",
    "is_batched",
    "make_env",
    "open_envs",
    "replace_params",
]
