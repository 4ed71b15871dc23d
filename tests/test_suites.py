"""The JAX env suites through their adapters (:mod:`jaxdqn.envs.adapters`), each on a real
env of the suite: the end-of-episode signals against the suite's own, the legal-action
mask, and a short training run that beats a random policy.

Each suite is an optional extra; its tests are skipped, with the reason, where it is not
installed (CI installs them all).
"""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdqn
from jaxdqn.envs import bind_env
from jaxdqn.envs.adapters import SUITES, make_suite_env

pytestmark = pytest.mark.suites


def suite(name: str):
    """The suite's package, or a skip that names the extra to install."""
    return pytest.importorskip(name, reason=f'the {name} suite: pip install "jaxdqn[{name}]"')


def rollout(env, params, steps: int, key: jax.Array, reference, masked_actions: bool = False):
    """``steps`` steps of ``env`` under uniformly random actions (legal ones where
    ``masked_actions``), each beside ``reference(key, inner, action, params)``: the suite's
    own step from the same state and key, giving ``(terminated, truncated, obs)`` in the
    suite's own terms. Returns a dict of stacked per-step arrays."""

    def step(state, key):
        key_action, key_step = jax.random.split(key)
        logits = (
            jnp.where(env.action_mask(state, params), 0.0, -jnp.inf)
            if masked_actions
            else (jnp.zeros(env.num_actions))
        )
        action = jax.random.categorical(key_action, logits).astype(jnp.int32)
        suite_key = jax.random.split(key_step)[0]  # the key gymnax's step hands to step_env
        ref_terminated, ref_truncated, ref_obs = reference(suite_key, state.inner, action, params)
        obs, new_state, _, terminated, truncated, info = env.step(key_step, state, action, params)
        row = {
            "terminated": terminated,
            "truncated": truncated & ~terminated,
            "ref_terminated": ref_terminated,
            "ref_truncated": ref_truncated | (state.time + 1 >= params.max_steps_in_episode),
            "final_obs": info["final_observation"],
            "ref_obs": ref_obs,
            "time": state.time + 1,
            "obs": obs,
        }
        return new_state, row

    @jax.jit
    def run(key):
        _, state = env.reset(key, params)
        return jax.lax.scan(step, state, jax.random.split(key, steps))[1]

    return jax.tree.map(np.asarray, run(key))


def check_episode_ends(rows, limit: int) -> None:
    """The adapter's flags equal the suite's; both kinds of end occur; truncation comes
    exactly at the time limit or the suite's own; ``final_observation`` is the suite's."""
    np.testing.assert_array_equal(rows["terminated"], rows["ref_terminated"])
    np.testing.assert_array_equal(
        rows["truncated"], rows["ref_truncated"] & ~rows["ref_terminated"]
    )
    assert rows["terminated"].any() and rows["truncated"].any()  # both kinds were checked
    assert not (rows["terminated"] & rows["truncated"]).any()
    assert (rows["time"] <= limit).all()
    np.testing.assert_array_equal(rows["final_obs"], rows["ref_obs"])
    done = rows["terminated"] | rows["truncated"]
    # after an end the next obs is a fresh episode's, not the final one
    assert not np.array_equal(rows["obs"][done], rows["final_obs"][done])


LEARN = dict(
    num_envs=8, buffer_size=10_000, learning_starts=1_000, batch_size=64, train_frequency=4,
    target_update_period=500, exploration_end=0.05, learning_rate=1e-3, hidden_sizes=(128, 128),
    n_step=3, network="mlp",
)  # fmt: skip


def learns(env, total, seeds=4, eval_epsilon=0.05, env_params=None, **overrides):
    """Trains ``seeds`` seeds on ``env`` and returns ``(trained, random)``: each seed's mean
    return over 32 evaluation episodes, ε-greedy at ``eval_epsilon`` and uniformly random
    (legal actions where the env has a mask)."""
    config = jaxdqn.DQNConfig(
        env_id="CartPole-v1", total_timesteps=total, exploration_steps=total // 2,
        **{**LEARN, **overrides},
    )  # fmt: skip
    keys = jax.random.split(jax.random.key(100), seeds)
    states, _ = jax.jit(jax.vmap(jaxdqn.make_train(config, env=env, env_params=env_params)))(keys)
    eval_keys = jax.random.split(jax.random.key(1), seeds)

    def evaluate(epsilon):
        def play_one(params, key):
            return jaxdqn.evaluate(config, params, key, 32, epsilon, env=env, env_params=env_params)

        play = jax.vmap(play_one)
        return np.asarray(jax.jit(play)(states.params, eval_keys)).mean(axis=1)

    trained, random = evaluate(eval_epsilon), evaluate(1.0)
    print(f"{env.name}: trained {np.round(trained, 3)}, random {np.round(random, 3)} per seed")
    return trained, random


# ---------------------------------------------------------------- ids and registry


def test_every_suite_has_an_extra_and_ids_resolve():
    for name in SUITES:
        suite(name)
    env = make_suite_env("navix/Navix-Empty-5x5-v0")
    assert env.name == "navix/Navix-Empty-5x5-v0"
    with pytest.raises(
        ValueError, match=r"env_id='xminigrid/MiniGrid-Empty-55' is not a xminigrid"
    ):
        make_suite_env("xminigrid/MiniGrid-Empty-55")
    with pytest.raises(ValueError, match=r"Did you mean xminigrid/MiniGrid-Empty-5x5"):
        make_suite_env("xminigrid/MiniGrid-Empty-55")
    with pytest.raises(ValueError, match=r"max_steps_in_episode=101 is invalid: the env's own"):
        bind_env("navix/Navix-Empty-5x5-v0", {"max_steps_in_episode": 101})


# ---------------------------------------------------------------- Jumanji


def test_jumanji_snake_ends_as_jumanji_says():
    jumanji = suite("jumanji")
    from jumanji.types import StepType

    from jaxdqn.envs.adapters.jumanji import JumanjiAdapter

    inner = jumanji.make("Snake-v1", time_limit=6)
    env = JumanjiAdapter(inner, observation="grid")

    def reference(key, state, action, params):
        _, timestep = inner.step(state, action)
        last = timestep.step_type == StepType.LAST
        # Jumanji's convention: discount 0 ends the episode for good, 1 is a time limit;
        # Snake ends at its time_limit with discount 0, which is a time limit all the same.
        at_limit = timestep.observation.step_count >= 6
        terminated = last & (timestep.discount == 0) & ~at_limit
        return terminated, last & ((timestep.discount == 1) | at_limit), timestep.observation.grid

    rows = rollout(env, env.default_params, 300, jax.random.key(0), reference)
    check_episode_ends(rows, limit=6)
    assert bind_env(env).spec.action_masked


def test_jumanji_game2048_learns():
    suite("jumanji")
    env = make_suite_env("jumanji/Game2048-v1")
    trained, random = learns(env, 30_000, loss="huber", learning_rate=3e-4)
    assert trained.mean() > 1.2 * random.mean(), (trained, random)


# ---------------------------------------------------------------- xminigrid


def test_xminigrid_ends_as_xminigrid_says():
    suite("xminigrid")
    from xminigrid.types import StepType

    env = make_suite_env("xminigrid/MiniGrid-Empty-5x5")
    params = dataclasses.replace(env.default_params, max_steps_in_episode=25)

    def reference(key, timestep, action, params):
        inner = env._env.step(
            params.suite.replace(max_steps=params.max_steps_in_episode), timestep, action
        )
        last = inner.step_type == StepType.LAST
        return last & (inner.discount == 0), last & (inner.discount == 1), inner.observation

    rows = rollout(env, params, 1_000, jax.random.key(0), reference)
    check_episode_ends(rows, limit=25)


def test_xminigrid_learns():
    suite("xminigrid")
    trained, random = learns(make_suite_env("xminigrid/MiniGrid-Empty-5x5"), 30_000)
    assert trained.mean() > 1.5 * random.mean(), (trained, random)


# ---------------------------------------------------------------- Navix


def test_navix_ends_as_navix_says():
    navix = suite("navix")
    from jaxdqn.envs.adapters.navix import NavixAdapter

    inner = navix.make("Navix-Empty-5x5-v0", max_steps=60)
    env = NavixAdapter(inner)

    def reference(key, timestep, action, params):
        out = inner.step(timestep, action)
        return out.step_type == 2, out.step_type == 1, out.observation  # navix: 2 ends, 1 cuts

    rows = rollout(env, env.default_params, 3_000, jax.random.key(0), reference)
    check_episode_ends(rows, limit=60)


def test_navix_learns():
    suite("navix")
    trained, random = learns(make_suite_env("navix/Navix-Empty-5x5-v0"), 30_000)
    assert trained.mean() > 2.0 * random.mean(), (trained, random)


# ---------------------------------------------------------------- Craftax


def test_craftax_keeps_its_time_limit_apart_from_death():
    suite("craftax")
    from craftax.craftax_classic.constants import BlockType

    env = make_suite_env("craftax/Craftax-Classic-Symbolic-v1")
    params = dataclasses.replace(env.default_params, max_steps_in_episode=150)

    def reference(key, state, action, params):
        suite_params = params.suite.replace(max_timesteps=params.max_steps_in_episode)
        obs, new, _, _, _ = env._env.step_env(key, state, action, suite_params)
        timed_out = new.timestep >= params.max_steps_in_episode
        row, column = new.player_position
        dead = (new.player_health <= 0) | (new.map[row, column] == BlockType.LAVA.value)
        return dead, timed_out & ~dead, obs

    rows = rollout(env, params, 1_500, jax.random.key(3), reference)
    check_episode_ends(rows, limit=150)


# ---------------------------------------------------------------- PGX


def test_pgx_2048_ends_as_pgx_says_and_masks_illegal_moves():
    suite("pgx")
    env = make_suite_env("pgx/2048")
    params = dataclasses.replace(env.default_params, max_steps_in_episode=120)

    def reference(key, state, action, params):
        new = env._env.step(state, action, key)
        return new.terminated, new.truncated, new.observation

    rows = rollout(env, params, 2_000, jax.random.key(0), reference, masked_actions=True)
    check_episode_ends(rows, limit=120)
    spec = bind_env(env).spec
    assert spec.action_masked and spec.num_actions == 4


def test_pgx_policies_take_only_legal_actions():
    """ε-greedy (ε = 1: every action random) and the greedy policy of Q-values that
    prefer an illegal move both pick legal moves only, on 2048 boards with illegal moves."""
    suite("pgx")
    from jaxdqn.core.exploration import epsilon_greedy

    env = make_suite_env("pgx/2048")
    params = env.default_params
    _, states = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(jax.random.key(0), 256), params
    )
    masks = np.asarray(jax.vmap(env.action_mask, in_axes=(0, None))(states, params))
    assert (~masks).any()  # some boards have an illegal move
    q_values = jnp.where(masks, 0.0, 10.0)  # the illegal moves look best
    keys = jax.random.split(jax.random.key(1), 256)
    for epsilon in (0.0, 1.0):
        actions = np.asarray(
            jax.vmap(epsilon_greedy, in_axes=(0, 0, None, 0))(keys, q_values, epsilon, masks)
        )
        assert masks[np.arange(256), actions].all()


def test_pgx_2048_learns():
    suite("pgx")
    trained, random = learns(make_suite_env("pgx/2048"), 30_000, loss="huber", learning_rate=3e-4)
    assert trained.mean() > 1.05 * random.mean(), (trained, random)


def test_a_suite_env_by_id_round_trips_through_the_run_folder(tmp_path):
    """``--env navix/...`` with ``--env-param``: the run folder records both, and eval and
    resume build the same env again."""
    suite("navix")
    from conftest import TINY_ARGS, assert_resume_is_exact

    from jaxdqn.host import cli

    args = ["--env", "navix/Navix-Empty-5x5-v0", *TINY_ARGS[2:], "--set", "target_update_period=25"]
    out = tmp_path / "runs"
    assert (
        cli.main(["train", *args, "--env-param", "max_steps_in_episode=40", "--out", str(out)]) == 0
    )
    (run_dir,) = out.iterdir()
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["env_id"], config["env_params"]) == (
        "navix/Navix-Empty-5x5-v0",
        [["max_steps_in_episode", 40]],
    )
    rows = [json.loads(x) for x in (run_dir / "metrics_seed0.jsonl").read_text().splitlines()]
    assert max(r["episode_length"] for r in rows if r["episode_length"] is not None) <= 40
    assert cli.main(["eval", str(run_dir), "--episodes", "2"]) == 0
    assert_resume_is_exact(run_dir, tmp_path)


@pytest.mark.heavy
def test_craftax_classic_learns():
    """Craftax-Classic (symbolic) with a 200-step limit: 30,000 env steps lift the return
    above a random policy's. Minutes of compiling on a CPU: marked heavy."""
    suite("craftax")
    env = make_suite_env("craftax/Craftax-Classic-Symbolic-v1")
    params = dataclasses.replace(env.default_params, max_steps_in_episode=200)
    trained, random = learns(env, 30_000, seeds=2, env_params=params)
    assert trained.mean() > 1.1 * random.mean(), (trained, random)
