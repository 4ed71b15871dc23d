"""Training on an environment of one's own: an env defined here and registered nowhere,
env parameters from Python and the command line, import paths, the contract checks
(each violation with its message) and the adapter for the pre-1.0 gymnax step."""

from __future__ import annotations

import dataclasses
import json
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_ARGS, TINY_CHAIN, assert_resume_is_exact, readme_block
from gymnax.environments import spaces
from gymnax.wrappers.purerl import GymnaxWrapper

import jaxdqn
from jaxdqn.envs import ChainWalk, LegacyStepAPI
from jaxdqn.host import cli

CORRIDOR = readme_block("`corridor_env.py`:", "python")  # the README's own example env
corridor_module = types.ModuleType("readme_corridor")  # a module, as dataclasses need one
sys.modules[corridor_module.__name__] = corridor_module
exec(compile(CORRIDOR, "README.md", "exec"), corridor_module.__dict__)
Corridor = corridor_module.Corridor

CORRIDOR_CONFIG = dataclasses.replace(
    TINY_CHAIN, total_timesteps=8_000, buffer_size=8_000, batch_size=32, learning_starts=400,
    exploration_steps=4_000, target_update_period=50, learning_rate=1e-3, hidden_sizes=(32,),
    log_interval=800, gamma=0.9,
)  # fmt: skip


def test_an_env_defined_here_trains_to_its_optimum():
    """Corridor's optimum: 4 steps right from the start, return 1. Every seed's greedy
    policy must find it (evaluated on the same env object)."""
    env = Corridor()
    keys = jax.random.split(jax.random.key(0), 4)
    train = jax.jit(jax.vmap(jaxdqn.make_train(CORRIDOR_CONFIG, env=env)))
    states, _ = train(keys)
    evaluate = jax.vmap(lambda p, k: jaxdqn.evaluate(CORRIDOR_CONFIG, p, k, 4, env=env))
    returns = np.asarray(jax.jit(evaluate)(states.params, keys))
    np.testing.assert_array_equal(returns, 1.0)
    q_network = jaxdqn.build(CORRIDOR_CONFIG, env=env).q_network
    cells = jnp.eye(5)[:4]  # every cell before the goal
    q = jax.vmap(lambda p: q_network.apply(p, cells))(states.params)
    assert np.all(np.asarray(q).argmax(axis=-1) == 1), "every seed steps right everywhere"


def test_readme_examples_run_as_written(tmp_path, monkeypatch, capsys):
    """The README's corridor_env.py, its CLI command and its Python snippet, verbatim."""
    (tmp_path / "corridor_env.py").write_text(CORRIDOR)
    monkeypatch.chdir(tmp_path)
    command = readme_block("replace fields of its params with `--env-param`", "bash").split()
    assert command[:4] == ["python", "-m", "jaxdqn", "train"]
    assert cli.main(command[3:]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    print("README corridor: greedy returns per seed", summary["greedy_return"])
    assert json.loads((run_dir / "config.json").read_text())["env_params"] == [["length", 7]]
    assert cli.main(["eval", str(run_dir), "--episodes", "2"]) == 0
    snippet = readme_block("From Python, pass the object", "python")
    scope: dict = {}
    exec(compile(snippet, "README", "exec"), scope)
    assert scope["metrics"]["episode_return"].shape == (4, scope["config"].num_log_points())


def test_env_params_from_the_config_and_from_the_call():
    config = dataclasses.replace(
        TINY_CHAIN, env_id="CartPole-v1", env_params={"max_steps_in_episode": 200}
    )
    bound = jaxdqn.build(config).env
    assert bound.params.max_steps_in_episode == bound.spec.max_episode_steps == 200
    assert config.env_params == (("max_steps_in_episode", 200),)
    with pytest.raises(ValueError, match="env_params is given twice"):
        jaxdqn.make_train(config, env_params={"max_steps_in_episode": 100})
    bad = dataclasses.replace(config, env_params={"max_step": 3})
    with pytest.raises(ValueError, match=r"EnvParams has no field 'max_step'; its fields are"):
        jaxdqn.make_train(bad)
    with pytest.raises(ValueError, match=r"DQNConfig\.env_params=.* is invalid"):
        dataclasses.replace(config, env_params={"max_steps_in_episode": [1]})
    with pytest.raises(ValueError, match=r"DQNConfig\.env_params=.* is invalid"):
        dataclasses.replace(config, env_params={"gravity": float("nan")})
    wrong_type = dataclasses.replace(config, env_params={"max_steps_in_episode": "200"})
    with pytest.raises(
        ValueError, match=r"\['max_steps_in_episode'\]='200' is invalid: must be an int"
    ):
        jaxdqn.make_train(wrong_type)
    no_limit = dataclasses.replace(config, env_params={"max_steps_in_episode": 0})
    with pytest.raises(ValueError, match=r"max_steps_in_episode=0 is invalid: must be an int >= 1"):
        jaxdqn.make_train(no_limit)
    gravity = jaxdqn.build(dataclasses.replace(config, env_params={"gravity": 10})).env.params
    assert gravity.gravity == 10.0 and isinstance(gravity.gravity, float)


def test_import_paths_resolve_from_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "corridor_env.py").write_text(CORRIDOR)
    monkeypatch.chdir(tmp_path)
    bound = jaxdqn.bind_env("corridor_env:Corridor", {"length": 7})
    assert bound.spec.obs_shape == (7,) and bound.spec.num_actions == 2
    with pytest.raises(ValueError, match=r"'corridor_env:Nope' does not import: AttributeError"):
        jaxdqn.bind_env("corridor_env:Nope")
    with pytest.raises(ValueError, match=r"'no_such_module:X' does not import: ModuleNotFound"):
        jaxdqn.make_train(dataclasses.replace(TINY_CHAIN, env_id="no_such_module:X"))
    with pytest.raises(ValueError, match=r"DQNConfig\.env_id='corridor_env'.*or an import path"):
        jaxdqn.DQNConfig(env_id="corridor_env")
    (tmp_path / "pair_env.py").write_text(
        "import gymnax\ndef make():\n    return gymnax.make('CartPole-v1')\n"
    )
    with pytest.raises(
        ValueError, match=r"'pair_env:make' gave tuple, not an environment .*\(env, params\)"
    ):
        jaxdqn.bind_env("pair_env:make")


def test_cli_run_on_an_import_path_with_env_params_round_trips(tmp_path, capsys):
    """ChainWalk by import path with a 10-step time limit: every episode is 10 steps, and
    the run folder works with eval and with a resume that is bit-identical."""
    assert TINY_ARGS[:2] == ["--env", "ChainWalk-v0"]
    args = ["--env", "jaxdqn.envs:ChainWalk", *TINY_ARGS[2:], "--set", "target_update_period=25"]
    args.append("--env-param")
    out = tmp_path / "runs"
    assert cli.main(["train", *args, "max_steps_in_episode=10", "--out", str(out)]) == 0
    (run_dir,) = out.iterdir()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["env_id"] == "jaxdqn.envs:ChainWalk"
    assert config["env_params"] == [["max_steps_in_episode", 10]]
    rows = [json.loads(x) for x in (run_dir / "metrics_seed0.jsonl").read_text().splitlines()]
    assert {r["episode_length"] for r in rows} == {10.0}
    assert cli.main(["eval", str(run_dir), "--episodes", "2"]) == 0
    assert "jaxdqn eval: jaxdqn.envs:ChainWalk" in capsys.readouterr().out
    assert "resuming at 720" in assert_resume_is_exact(run_dir, tmp_path)
    assert cli.main(["train", "--resume", str(run_dir), "--env-param", "a=1"]) == 2
    assert "drop --env-param" in capsys.readouterr().err


class Tweak(GymnaxWrapper):
    """ChainWalk with its reset, step, action space or action mask changed, to break the
    contract."""

    def __init__(self, reset=None, step=None, space=None, mask=None):
        super().__init__(ChainWalk())
        self._reset, self._step, self._space = reset, step, space
        if mask is not None:
            self.action_mask = lambda state, params: mask

    def reset(self, key, params=None):
        out = self._env.reset(key, params)
        return self._reset(out) if self._reset else out

    def step(self, key, state, action, params=None):
        out = self._env.step(key, state, action, params)
        return self._step(out) if self._step else out

    def action_space(self, params=None):
        return self._space or self._env.action_space(params)


def _tweak_info(step, info):
    return (*step[:5], info)


VIOLATIONS = {  # what breaks the contract -> (error, message)
    "box actions": (
        {"space": spaces.Box(-1.0, 1.0, (1,))},
        ValueError, "has a Box action space; DQN needs",
    ),
    "dict obs": (
        {"reset": lambda o: ({"x": o[0]}, o[1])},
        ValueError, "reset's obs is dict; jaxdqn needs one array",
    ),
    "complex obs": (
        {"reset": lambda o: (o[0].astype(jnp.complex64), o[1])},
        ValueError, "dtype complex64; jaxdqn stores bool",
    ),
    "reset arity": (
        {"reset": lambda o: o[0]},
        TypeError, r"reset\(key, params\) must return \(obs, state\)",
    ),
    "reset fails": (
        {"reset": lambda o: 1 / 0},
        TypeError, r"reset\(key, params\) failed when traced: ZeroDivisionError",
    ),
    "step arity": (
        {"step": lambda s: s[:4]},
        TypeError, "step must return .*; got a tuple of 4 values",
    ),
    "pre-1.0 step": (
        {"step": lambda s: (*s[:3], s[3] | s[4], s[5])},
        TypeError, "step returned 5 values; that is the pre-1.0 gymnax step.*LegacyStepAPI",
    ),
    "step obs shape": (
        {"step": lambda s: (s[0][None], *s[1:])},
        ValueError, r"step's obs is float32\[1, 1\], reset's is float32\[1\]",
    ),
    "vector reward": (
        {"step": lambda s: (s[0], s[1], jnp.stack([s[2], s[2]]), *s[3:])},
        TypeError, r"step's reward must be a scalar .* shape \[2\]",
    ),
    "no final obs": (
        {"step": lambda s: _tweak_info(s, {})},
        ValueError, 'step\'s info has no "final_observation"',
    ),
    "mask shape": (
        {"mask": jnp.ones(3, bool)},
        ValueError, r"action_mask\(state, params\) is .*bool\[3\]; it must be bool\[2\]",
    ),
    "mask dtype": (
        {"mask": jnp.ones(2, jnp.float32)},
        ValueError, r"action_mask\(state, params\) is .*float32\[2\]; it must be bool\[2\]",
    ),
    "final obs shape": (
        {"step": lambda s: _tweak_info(s, {"final_observation": s[0][:0]})},
        ValueError, r'info\["final_observation"\] is .*float32\[0\]; it must match',
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(VIOLATIONS))
def test_contract_violations_are_named_before_anything_is_compiled(case):
    tweak, error, message = VIOLATIONS[case]
    with pytest.raises(error, match=f"env='Tweak'.*{message}"):
        jaxdqn.make_train(TINY_CHAIN, env=Tweak(**tweak))


def test_float_flags_are_read_as_bools():
    """gymnax accepts a float terminated; the loop reads the flags as bools."""
    env = Tweak(step=lambda s: (*s[:3], s[3].astype(jnp.float32), s[4].astype(jnp.float32), s[5]))
    state, metrics = jax.jit(jaxdqn.make_train(TINY_CHAIN, env=env))(jax.random.key(0))
    assert state.replay.rows.data.truncated.dtype == jnp.bool_
    np.testing.assert_allclose(metrics["episode_length"], 20.0)


def test_legacy_step_envs_train_with_every_done_terminal():
    legacy = Tweak(step=lambda s: (*s[:3], s[3] | s[4], {}))  # the pre-1.0 step
    with pytest.warns(UserWarning, match="every done counts as terminal, time limits included"):
        env = LegacyStepAPI(legacy)
    state, metrics = jax.jit(jaxdqn.make_train(TINY_CHAIN, env=env))(jax.random.key(0))
    rows = jax.tree.map(np.asarray, state.replay.rows.data)
    terminated = rows.terminated.reshape(-1, TINY_CHAIN.num_envs)
    np.testing.assert_array_equal(np.flatnonzero(terminated[:, 0]), np.arange(19, 400, 20))
    assert not rows.truncated.any()
    np.testing.assert_allclose(metrics["episode_length"], 20.0)


def test_cartpole_with_a_200_step_limit_truncates_at_200():
    """CartPole-v1 with ``max_steps_in_episode=200`` (500 by default), played by a
    balancing controller for 450 steps in 4 envs: every episode ends at exactly step 200,
    as a truncation (bootstrapped), never a termination, with its true final observation."""
    config = dataclasses.replace(jaxdqn.get_preset("CartPole-v1"), num_envs=4)
    parts = jaxdqn.build(config, env_params={"max_steps_in_episode": 200})
    assert parts.env.spec.max_episode_steps == 200

    def step(state, key):
        theta, theta_dot = state.obs[:, 2], state.obs[:, 3]
        actions = (3.0 * theta + theta_dot > 0).astype(jnp.int32)  # push under the pole
        state, transition, ends = parts.actor.step(key, state, actions)
        return state, (transition, ends, state.obs)

    state = parts.actor.reset(jax.random.key(0))
    _, (transition, ends, obs) = jax.jit(
        lambda s: jax.lax.scan(step, s, jax.random.split(jax.random.key(1), 450))
    )(state)
    done = np.asarray(ends.done)
    np.testing.assert_array_equal(np.nonzero(done)[0], np.repeat([199, 399], 4))
    assert np.asarray(transition.truncated)[done].all()
    assert not np.asarray(transition.terminated).any()
    np.testing.assert_array_equal(np.asarray(ends.episode_length)[done], 200)
    final, fresh = np.asarray(transition.next_obs)[done], np.asarray(obs)[done]
    assert (np.abs(fresh) <= 0.05).all() and not np.array_equal(final, fresh)


def test_cli_cartpole_with_env_params_round_trips(tmp_path, capsys):
    """``--env CartPole-v1 --env-param max_steps_in_episode=200``: the run folder records
    the limit, and eval and a bit-identical resume build the same env."""
    args = ["--env", "CartPole-v1", *TINY_ARGS[2:], "--env-param", "max_steps_in_episode=200"]
    out = tmp_path / "runs"
    assert cli.main(["train", *args, "--out", str(out)]) == 0
    (run_dir,) = out.iterdir()
    assert json.loads((run_dir / "config.json").read_text())["env_params"] == [
        ["max_steps_in_episode", 200]
    ]
    assert cli.main(["eval", str(run_dir), "--episodes", "2"]) == 0
    assert_resume_is_exact(run_dir, tmp_path)
