"""jaxdqn: Deep Q-Learning in JAX, one compiled XLA program per run, vmapped over seeds."""

from jaxdqn import losses
from jaxdqn.buffer import ReplayBuffer, ReplayBufferState, make_replay_buffer
from jaxdqn.config import DQNConfig
from jaxdqn.devices import seed_sharding
from jaxdqn.envs import ENV_IDS, make_env
from jaxdqn.evaluate import evaluate
from jaxdqn.hyperparams import Hyperparams, hyperparams, sweep
from jaxdqn.learner import sync_target
from jaxdqn.networks import make_q_network
from jaxdqn.presets import PRESET_IDS, get_preset
from jaxdqn.state import TrainState, Transition
from jaxdqn.train import Trainer, make_train, make_trainer

__version__ = "0.1.0"

__all__ = [
    "ENV_IDS",
    "PRESET_IDS",
    "DQNConfig",
    "Hyperparams",
    "ReplayBuffer",
    "ReplayBufferState",
    "TrainState",
    "Trainer",
    "Transition",
    "evaluate",
    "get_preset",
    "hyperparams",
    "losses",
    "make_env",
    "make_q_network",
    "make_replay_buffer",
    "make_train",
    "make_trainer",
    "seed_sharding",
    "sweep",
    "sync_target",
]
