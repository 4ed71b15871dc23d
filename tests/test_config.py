"""DQNConfig: every invalid value is refused when the config is built, naming the field."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

import jaxdqn
from jaxdqn import DQNConfig

# (field named in the message, overrides). At least 15 rows, each a different mistake.
INVALID = [
    ("env_id", {"env_id": "CartPole-v2"}),
    ("env_id", {"env_id": 3}),
    ("num_envs", {"num_envs": 0}),
    ("num_envs", {"num_envs": 2.0}),
    ("num_envs", {"num_envs": True}),
    ("total_timesteps", {"total_timesteps": -8}),
    ("total_timesteps", {"total_timesteps": 1_001}),  # not a multiple of the cycle (8)
    ("total_timesteps", {"total_timesteps": 2**31}),  # past the int32 step counters
    ("buffer_size", {"buffer_size": 4}),  # smaller than num_envs=8
    ("batch_size", {"batch_size": 0}),
    ("batch_size", {"batch_size": 200_000}),  # larger than buffer_size
    ("batch_size", {"batch_size": 512, "learning_starts": 256}),  # more than stored at start
    ("learning_starts", {"learning_starts": -1}),
    ("learning_starts", {"learning_starts": 1_004}),  # not on an update boundary
    ("learning_starts", {"learning_starts": 200_000}),  # never starts
    ("train_frequency", {"train_frequency": 0}),
    ("gradient_steps", {"gradient_steps": 0}),
    ("gamma", {"gamma": 1.5}),
    ("gamma", {"gamma": -0.1}),
    ("gamma", {"gamma": math.nan}),
    ("gamma", {"gamma": "0.99"}),
    ("optimizer", {"optimizer": "adagrad"}),
    ("learning_rate", {"learning_rate": 0.0}),
    ("learning_rate", {"learning_rate": math.inf}),
    ("learning_rate_schedule", {"learning_rate_schedule": "cosine"}),
    ("optimizer_eps", {"optimizer_eps": 0.0}),
    ("max_grad_norm", {"max_grad_norm": -1.0}),
    ("loss", {"loss": "mse"}),
    ("huber_delta", {"huber_delta": 0.0}),
    ("n_step_cut_tolerance", {"n_step_cut": True, "n_step_cut_tolerance": 1.0}),
    ("n_step_cut_tolerance", {"n_step_cut_tolerance": 0.1}),  # without n_step_cut
    ("double_q", {"double_q": 1}),
    ("truncation_is_terminal", {"truncation_is_terminal": "no"}),
    ("target_update_period", {"target_update_period": 0}),
    ("target_update_period", {"target_update_period": 50_000}),  # > the 49,750 updates
    ("target_tau", {"target_tau": 0.0}),
    ("target_tau", {"target_tau": 1.01}),
    ("exploration", {"exploration": "ucb"}),
    ("exploration_schedule", {"exploration_schedule": "cosine"}),
    ("exploration_unit", {"exploration_unit": "updates"}),
    ("exploration_start", {"exploration_start": 1.2}),
    ("exploration_end", {"exploration_end": -0.01}),
    ("exploration_start", {"exploration": "boltzmann", "exploration_start": 0.0}),
    ("exploration_steps", {"exploration_steps": 0}),
    ("exploration_steps", {"exploration_steps": 400_000}),  # a ramp that cannot finish
    ("exploration_decay", {"exploration_decay": 0.0}),
    ("exploration_decay", {"exploration_decay": 1.5}),
    ("eval_epsilon", {"eval_epsilon": 2.0}),
    ("hidden_sizes", {"hidden_sizes": ()}),
    ("hidden_sizes", {"hidden_sizes": (64, 0)}),
    ("hidden_sizes", {"hidden_sizes": "64"}),
    ("activation", {"activation": "sigmoid"}),
    ("log_interval", {"log_interval": 12}),  # not a multiple of the cycle
    ("log_interval", {"log_interval": 3_000 * 8}),  # does not divide total_timesteps
]


@pytest.mark.parametrize(("field", "overrides"), INVALID, ids=lambda x: str(x))
def test_invalid_config_names_field_and_value(field, overrides):
    with pytest.raises(ValueError) as info:
        DQNConfig(**overrides)
    message = str(info.value)
    assert f"DQNConfig.{field}=" in message
    assert repr(overrides[field]) in message


def test_invalid_values_also_refused_by_replace():
    with pytest.raises(ValueError, match=r"DQNConfig\.gamma="):
        dataclasses.replace(DQNConfig(), gamma=2.0)


def test_unknown_env_lists_close_matches():
    with pytest.raises(ValueError, match="Did you mean 'CartPole-v1'"):
        DQNConfig(env_id="Cartpole-v1")


def test_unmeetable_schedule_suggests_nearest_values():
    with pytest.raises(ValueError, match=r"nearest: 1000 or 1008"):
        DQNConfig(learning_starts=1_004)


def test_defaults_and_presets_are_valid():
    DQNConfig()
    for env_id in jaxdqn.PRESET_IDS:
        assert jaxdqn.get_preset(env_id).env_id == env_id


def test_unknown_preset():
    with pytest.raises(ValueError, match=r"has no preset.*CartPole-v1"):
        jaxdqn.get_preset("Pong-misc")


def test_config_is_frozen_and_list_sizes_kept_as_tuple():
    config = DQNConfig(hidden_sizes=[32, 16])
    assert config.hidden_sizes == (32, 16)
    hash(config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.gamma = 0.5  # type: ignore[misc]


def test_numpy_scalars_are_stored_as_the_same_python_values():
    config = DQNConfig(
        num_envs=np.int64(4),
        gamma=np.float32(0.5),
        double_q=np.bool_(False),
        hidden_sizes=[np.int32(32), np.int64(16)],
    )
    assert config == DQNConfig(num_envs=4, gamma=0.5, double_q=False, hidden_sizes=(32, 16))
    assert type(config.num_envs) is int and type(config.gamma) is float
    assert type(config.double_q) is bool and {type(h) for h in config.hidden_sizes} == {int}
    json.dumps(dataclasses.asdict(config))  # what the CLI writes to config.json


@pytest.mark.parametrize(
    ("num_envs", "train_frequency", "gradient_steps", "steps", "updates"),
    [
        (1, 4, 1, 4, 1),  # 4 single steps, then one update
        (8, 4, 1, 1, 2),  # one vectorised step covers two update boundaries
        (6, 4, 2, 2, 6),  # lcm 12: two steps of 6 envs, 3 boundaries x 2 updates
        (10, 10, 1, 1, 1),
    ],
)
def test_cycle_layout_counts_env_steps_exactly(
    num_envs, train_frequency, gradient_steps, steps, updates
):
    config = DQNConfig(
        num_envs=num_envs,
        train_frequency=train_frequency,
        gradient_steps=gradient_steps,
        total_timesteps=120_000,
        learning_starts=1_200,
    )
    assert config.steps_per_cycle() == steps
    assert config.updates_per_cycle() == updates
    # Hand count: an update event at every multiple of train_frequency after learning_starts.
    events = sum(1 for e in range(train_frequency, 120_000 + 1, train_frequency) if e > 1_200)
    assert config.total_updates() == events * gradient_steps
    assert 120_000 % config.resolved_log_interval() == 0
    assert config.num_log_points() >= 100
