"""jaxdqn: Deep Q-Learning in JAX, one compiled XLA program per run, vmapped over seeds.

Layout: ``jaxdqn.core`` holds what runs inside the compiled program (pure functions over
pytrees: networks, losses, exploration, the actor, the replay, the learner, the loop
skeleton); ``jaxdqn.envs`` binds environments; ``jaxdqn.host`` holds what runs on the host
between compiled chunks (the run driver, checkpoints, metrics files, devices, export, the
command line, the doctor). ``DQNConfig`` is the user-facing record and ``jaxdqn.dqn`` turns it into
components.

The names below load on first use, so ``import jaxdqn`` (and the command line's ``--help``)
answers without importing JAX; ``jaxdqn.prepare_jax`` can then run before JAX starts.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jaxdqn.config import DQNConfig
    from jaxdqn.core import exploration, losses
    from jaxdqn.core.circular_buffer import (
        CircularBuffer,
        CircularBufferState,
        make_circular_buffer,
    )
    from jaxdqn.core.learner import Learner, make_learner, sync_target
    from jaxdqn.core.loop import Trainer, TrainState
    from jaxdqn.core.networks import make_q_network
    from jaxdqn.core.replay import Replay, ReplayState, make_replay
    from jaxdqn.core.types import Batch, Transition
    from jaxdqn.dqn import Components, build, estimate_values, evaluate, make_train, make_trainer
    from jaxdqn.envs import ENV_IDS, BoundEnv, EnvSpec, bind_env, make_env
    from jaxdqn.host.devices import on_each_device, seed_sharding
    from jaxdqn.host.doctor import Finding, diagnose, diagnose_run
    from jaxdqn.host.startup import JaxSetup, prepare_jax
    from jaxdqn.hyperparams import Hyperparams, sweep
    from jaxdqn.presets import PRESET_IDS, PRESET_VARIANTS, get_preset, preset_ids

__version__ = "0.2.0"

# Public name -> the module that defines it.
_SOURCES = {
    "ENV_IDS": "jaxdqn.envs",
    "PRESET_IDS": "jaxdqn.presets",
    "PRESET_VARIANTS": "jaxdqn.presets",
    "Batch": "jaxdqn.core.types",
    "BoundEnv": "jaxdqn.envs",
    "CircularBuffer": "jaxdqn.core.circular_buffer",
    "CircularBufferState": "jaxdqn.core.circular_buffer",
    "Components": "jaxdqn.dqn",
    "DQNConfig": "jaxdqn.config",
    "EnvSpec": "jaxdqn.envs",
    "Finding": "jaxdqn.host.doctor",
    "Hyperparams": "jaxdqn.hyperparams",
    "JaxSetup": "jaxdqn.host.startup",
    "Learner": "jaxdqn.core.learner",
    "Replay": "jaxdqn.core.replay",
    "ReplayState": "jaxdqn.core.replay",
    "TrainState": "jaxdqn.core.loop",
    "Trainer": "jaxdqn.core.loop",
    "Transition": "jaxdqn.core.types",
    "bind_env": "jaxdqn.envs",
    "build": "jaxdqn.dqn",
    "diagnose": "jaxdqn.host.doctor",
    "diagnose_run": "jaxdqn.host.doctor",
    "estimate_values": "jaxdqn.dqn",
    "evaluate": "jaxdqn.dqn",
    "exploration": "jaxdqn.core",
    "get_preset": "jaxdqn.presets",
    "losses": "jaxdqn.core",
    "make_circular_buffer": "jaxdqn.core.circular_buffer",
    "make_env": "jaxdqn.envs",
    "make_learner": "jaxdqn.core.learner",
    "make_q_network": "jaxdqn.core.networks",
    "make_replay": "jaxdqn.core.replay",
    "make_train": "jaxdqn.dqn",
    "make_trainer": "jaxdqn.dqn",
    "prepare_jax": "jaxdqn.host.startup",
    "preset_ids": "jaxdqn.presets",
    "seed_sharding": "jaxdqn.host.devices",
    "on_each_device": "jaxdqn.host.devices",
    "sweep": "jaxdqn.hyperparams",
    "sync_target": "jaxdqn.core.learner",
}

__all__ = sorted(_SOURCES)


def __getattr__(name: str) -> Any:
    """Imports a public name's module the first time the name is used."""
    if name not in _SOURCES:
        if importlib.util.find_spec(f"jaxdqn.{name}") is not None:  # a subpackage, jaxdqn.host
            return importlib.import_module(f"jaxdqn.{name}")
        raise AttributeError(f"module 'jaxdqn' has no attribute {name!r}")
    module = importlib.import_module(_SOURCES[name])
    value = (
        getattr(module, name)
        if hasattr(module, name)
        else importlib.import_module(f"{_SOURCES[name]}.{name}")
    )
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SOURCES))
