"""EnvPool through its XLA interface (:mod:`jaxdqn.envs.adapters.envpool`), checked against
EnvPool's own host API: an Atari env stepped inside the compiled loop stores exactly the
steps EnvPool gives, no transition crosses a reset, EnvPool's reset steps are never learned
from, and truncation stays apart from termination. Skipped, with the reason, where EnvPool
is not installed (CI installs it).
"""

from __future__ import annotations

import dataclasses
import json
import shlex

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import readme_block

import jaxdqn
from jaxdqn.core.replay import n_step_batch
from jaxdqn.host import driver
from jaxdqn.host.cli import main
from jaxdqn.host.export import export_policy
from jaxdqn.host.numpy_policy import NumpyQPolicy

envpool = pytest.importorskip("envpool", reason='EnvPool: pip install "jaxdqn[envpool]"')

pytestmark = pytest.mark.suites

NUM_ENVS = 4
SEEDS = 2
STEPS = 600  # vectorised steps: episodes of Breakout end by a lost life or at 30 steps
BREAKOUT = jaxdqn.DQNConfig(
    env_id="envpool/Breakout-v5",
    env_params={"max_steps_in_episode": 30, "episodic_life": True, "reward_clip": True},
    network="mlp",
    hidden_sizes=(8,),
    num_envs=NUM_ENVS,
    buffer_size=NUM_ENVS * STEPS,
    batch_size=32,
    learning_starts=NUM_ENVS * STEPS // 2,
    train_frequency=4,
    total_timesteps=NUM_ENVS * STEPS,
    log_interval=NUM_ENVS * STEPS // 4,
    target_update_period=50,
    exploration_steps=NUM_ENVS * STEPS,
    gamma=0.9,
)


@pytest.fixture(scope="module")
def breakout_run():
    """``SEEDS`` seeds of ``BREAKOUT`` trained in the compiled loop under ``jax.vmap`` (as
    the driver runs them), the replay component they stored into and their states."""
    parts = jaxdqn.build(BREAKOUT)
    trainer = jaxdqn.make_trainer(BREAKOUT)
    keys = jax.random.split(jax.random.key(3), SEEDS)
    states, metrics = jax.jit(jax.vmap(trainer.train))(keys)
    return parts.replay, states, metrics


def host_rollout(actions: np.ndarray) -> dict[str, np.ndarray]:
    """EnvPool's host API stepped with ``actions`` ``[T, SEEDS * NUM_ENVS]`` from a fresh
    pool of seed 0 (the first pool the adapter opens, all seeds' envs in one): observations
    before each step (as ``[H, W, C]``), rewards, flags and the observation each step
    returned, each ``[T, SEEDS * NUM_ENVS, ...]``."""
    env = envpool.make(
        "Breakout-v5",
        env_type="gymnasium",
        num_envs=SEEDS * NUM_ENVS,
        seed=0,
        max_episode_steps=30,
        episodic_life=True,
        reward_clip=True,
    )
    obs, _ = env.reset()
    rows = {k: [] for k in ("obs", "reward", "terminated", "truncated", "returned")}
    for action in actions:
        rows["obs"].append(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        for k, v in (("reward", reward), ("terminated", terminated), ("truncated", truncated)):
            rows[k].append(v)
        rows["returned"].append(obs)
    out = {k: np.stack(v) for k, v in rows.items()}
    for k in ("obs", "returned"):
        out[k] = np.moveaxis(out[k], 2, -1)  # [T, E, C, H, W] -> [T, E, H, W, C]
    return out


def seeds_side_by_side(x: np.ndarray) -> np.ndarray:
    """Rows ``[SEEDS, STEPS * NUM_ENVS, ...]`` as ``[STEPS, SEEDS * NUM_ENVS, ...]``: seed
    ``s`` has envs ``s * NUM_ENVS ..`` of the one pool."""
    x = x.reshape(SEEDS, STEPS, NUM_ENVS, *x.shape[2:])
    return np.swapaxes(x, 0, 1).reshape(STEPS, SEEDS * NUM_ENVS, *x.shape[3:])


def assert_equal(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """``np.testing.assert_array_equal`` for frames: ``np.array_equal`` decides, since
    numpy's assertion scans both arrays for NaN and inf (seconds per 100 MB) even where
    they are equal; numpy's report runs only to describe a difference."""
    assert got.shape == want.shape, (what, got.shape, want.shape)
    if not np.array_equal(got, want):
        np.testing.assert_array_equal(got, want, err_msg=what)


def test_stored_steps_are_envpools_and_no_transition_crosses_a_reset(breakout_run):
    _, states, _ = breakout_run
    data = jax.tree.map(np.asarray, states.replay.rows.data)
    by_step = jax.tree.map(seeds_side_by_side, data)
    host = host_rollout(by_step.action)
    assert_equal(by_step.obs, host["obs"], "observations")
    np.testing.assert_array_equal(by_step.reward, host["reward"])
    ended = host["terminated"] | host["truncated"]
    # EnvPool resets an env on the step after its episode ended, ignoring the action.
    reset_step = np.zeros_like(ended)
    reset_step[1:] = ended[:-1]
    np.testing.assert_array_equal(by_step.valid, ~reset_step)
    np.testing.assert_array_equal(by_step.terminated, host["terminated"])
    np.testing.assert_array_equal(by_step.truncated, host["truncated"] & ~host["terminated"])
    assert by_step.terminated.sum() >= 8 and by_step.truncated.sum() >= 8  # both kinds of end

    # Every real transition's next observation is what EnvPool returned for that step: the
    # episode's last frame on a terminated or truncated step, never the next episode's first.
    slots = jnp.arange(STEPS * NUM_ENVS)
    batch = jax.vmap(lambda replay: n_step_batch(replay, slots, n=1, gamma=0.9))(states.replay)
    next_obs = seeds_side_by_side(np.asarray(batch.next_obs))
    discount = seeds_side_by_side(np.asarray(batch.discount))
    assert_equal(next_obs[by_step.valid], host["returned"][by_step.valid], "next observations")
    np.testing.assert_allclose(discount, np.where(by_step.terminated, 0.0, 0.9))


def test_reset_steps_are_never_learned_from(breakout_run):
    replay, states, metrics = breakout_run
    state = jax.tree.map(lambda x: x[0], states)
    valid = np.asarray(state.replay.rows.data.valid)
    assert 0 < (~valid).sum() < valid.size // 10
    samples = jax.vmap(lambda k: replay.sample(state.replay, k, 0.9, 0.0))(
        jax.random.split(jax.random.key(0), 200)
    )
    slots, weight = np.asarray(samples.slots).ravel(), np.asarray(samples.batch.weight).ravel()
    np.testing.assert_array_equal(weight, valid[slots].astype(np.float32))
    assert (~valid[slots]).any()  # uniform draws do land on them, with weight 0
    assert np.isfinite(np.asarray(metrics["loss"])[:, -1]).all()
    # Episodes are counted without the reset steps: at most 30 steps each.
    assert np.nanmax(np.asarray(metrics["episode_length"])) <= 30


def test_prioritized_replay_never_draws_a_reset_step():
    total = NUM_ENVS * 600
    config = dataclasses.replace(
        BREAKOUT, prioritized=True, total_timesteps=total, buffer_size=total,
        learning_starts=total // 2, log_interval=total // 2, exploration_steps=total,
    )  # fmt: skip
    parts = jaxdqn.build(config)
    state, _ = jax.jit(jaxdqn.make_train(config))(jax.random.key(0))
    valid = np.asarray(state.replay.rows.data.valid)
    assert (~valid).any()
    keys = jax.random.split(jax.random.key(1), 300)
    draw = jax.vmap(lambda k: parts.replay.sample(state.replay, k, 0.9, 0.5).slots)
    slots = np.asarray(draw(keys))
    assert valid[slots.ravel()].all()
    leaf_priorities = np.asarray(state.replay.priorities.levels[0])[: valid.size]
    assert (leaf_priorities[~valid] == 0).all() and (leaf_priorities[valid] > 0).all()


def test_seeds_on_one_vmap_axis_and_clear_errors():
    trainer = jaxdqn.make_trainer(BREAKOUT)
    keys = jax.random.split(jax.random.key(0), 6).reshape(2, 3)
    with pytest.raises(ValueError, match=r"a jax.vmap around it \(of size 2\) is refused"):
        jax.eval_shape(jax.vmap(jax.vmap(trainer.init)), keys)
    # One key for every seed resets the envs outside the vmap that steps them.
    q_network = jaxdqn.build(BREAKOUT).q_network
    params = jax.vmap(lambda k: q_network.init(k, jnp.zeros((1, 84, 84, 4), jnp.uint8)))(keys[0])
    shared_key = jax.random.key(1)
    with pytest.raises(ValueError, match=r"stepped under a jax\.vmap it was not reset under"):
        jax.eval_shape(jax.vmap(lambda p: jaxdqn.evaluate(BREAKOUT, p, shared_key, 2)), params)
    with pytest.raises(ValueError, match=r"'envpool/Pong-v55' is not a envpool env\. Did you"):
        jaxdqn.bind_env("envpool/Pong-v55")
    with pytest.raises(ValueError, match="Box action space; DQN needs a discrete one"):
        jaxdqn.bind_env("envpool/Pendulum-v1")
    with pytest.raises(ValueError, match="has no field 'max_episode_steps'"):
        jaxdqn.bind_env("envpool/Pong-v5", {"max_episode_steps": 100})
    sticky = dataclasses.replace(BREAKOUT, sticky_actions=0.25)
    with pytest.raises(ValueError, match=r"^DQNConfig.sticky_actions=0.25 is invalid for envpool"):
        jaxdqn.build(sticky)


README_LINES = [
    shlex.split(line)[3:]  # from "train" on
    for line in readme_block("### Atari and Gymnasium's classic control", "bash").splitlines()
    if line.startswith("python -m jaxdqn")
]


def test_cartpole_through_envpool_from_the_command_line(tmp_path, capsys):
    """The README's EnvPool CartPole line as written: its seeds learn (greedy return against
    a uniformly random policy's ~22), eval and export work, resume is refused. The README's
    Atari line builds its config (it is a GPU-sized job)."""
    cartpole, atari = README_LINES
    code = main([*cartpole, "--out", str(tmp_path), "--eval-episodes", "20"])
    out = capsys.readouterr().out
    assert code == 0, out
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["seeds"] == [0, 1, 2, 3]
    assert min(summary["greedy_return"]) > 100, summary["greedy_return"]
    assert main(["export", str(run_dir)]) == 0
    policy = NumpyQPolicy.load(run_dir / "policy_seed0.npz")
    assert policy.act(np.zeros(4, np.float32)) in (0, 1)
    with pytest.raises(ValueError, match="cannot be resumed"):
        driver.resume_run(run_dir)
    env, total, overrides = atari[2], atari[4], atari[6::2]
    config = driver.build_config(env, int(total), overrides, [], None)
    assert config.network == "nature_cnn" and config.buffer_size == 50_000
    assert jaxdqn.build(config).env.spec.obs_shape == (84, 84, 4)


def test_nature_cnn_on_atari_frames_exports_to_numpy(tmp_path):
    config = jaxdqn.get_preset("envpool/Pong-v5")
    q_network = jaxdqn.build(config).q_network
    frames = jax.random.randint(jax.random.key(0), (3, 84, 84, 4), 0, 256).astype(jnp.uint8)
    params = q_network.init(jax.random.key(1), frames)
    path = export_policy(config, params, tmp_path / "pong.npz")
    expected = np.asarray(q_network.apply(params, frames))
    np.testing.assert_allclose(
        NumpyQPolicy.load(path).q_values(np.asarray(frames)), expected, rtol=1e-4, atol=1e-5
    )
    assert expected.shape == (3, 6)
