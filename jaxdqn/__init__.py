"""jaxdqn: Deep Q-Learning in JAX, one compiled XLA program per run, vmapped over seeds.

Layout: ``jaxdqn.core`` holds what runs inside the compiled program (pure functions over
pytrees: networks, losses, exploration, the actor, the replay, the learner, the loop
skeleton); ``jaxdqn.envs`` binds environments; ``jaxdqn.host`` holds what runs on the host
between compiled chunks (the run driver, checkpoints, metrics files, devices, export, the
command line, the doctor). ``DQNConfig`` is the user-facing record and ``jaxdqn.dqn`` turns it into
components.
"""

from jaxdqn.config import DQNConfig
from jaxdqn.core import exploration, losses
from jaxdqn.core.circular_buffer import CircularBuffer, CircularBufferState, make_circular_buffer
from jaxdqn.core.learner import Learner, make_learner, sync_target
from jaxdqn.core.loop import Trainer, TrainState
from jaxdqn.core.networks import make_q_network
from jaxdqn.core.replay import Replay, ReplayState, make_replay
from jaxdqn.core.types import Batch, Transition
from jaxdqn.dqn import Components, build, estimate_values, evaluate, make_train, make_trainer
from jaxdqn.envs import ENV_IDS, BoundEnv, EnvSpec, bind_env, make_env
from jaxdqn.host.devices import seed_sharding
from jaxdqn.host.doctor import Finding, diagnose, diagnose_run
from jaxdqn.hyperparams import Hyperparams, sweep
from jaxdqn.presets import PRESET_IDS, get_preset

__version__ = "0.2.0"

__all__ = [
    "ENV_IDS",
    "PRESET_IDS",
    "Batch",
    "BoundEnv",
    "CircularBuffer",
    "CircularBufferState",
    "Components",
    "DQNConfig",
    "EnvSpec",
    "Finding",
    "Hyperparams",
    "Learner",
    "Replay",
    "ReplayState",
    "TrainState",
    "Trainer",
    "Transition",
    "bind_env",
    "build",
    "diagnose",
    "diagnose_run",
    "estimate_values",
    "evaluate",
    "exploration",
    "get_preset",
    "losses",
    "make_circular_buffer",
    "make_env",
    "make_learner",
    "make_q_network",
    "make_replay",
    "make_train",
    "make_trainer",
    "seed_sharding",
    "sweep",
    "sync_target",
]
