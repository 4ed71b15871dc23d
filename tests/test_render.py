"""jaxdqn render: drawings checked pixel by pixel against hand-computed geometry, the
recorded episode against the env's own observations, the GIF and the command line."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import jax
import numpy as np
import pytest
from gymnax.environments.classic_control import acrobot, cartpole
from PIL import Image

import jaxdqn
from jaxdqn.dqn import bind_config_env, record_episode
from jaxdqn.host import cli
from jaxdqn.host.render import (
    draw_acrobot,
    draw_cart_pole,
    frame_drawer,
    observation_image,
    render_episode,
)

POLE = (202, 152, 101)
LINK = (0, 204, 204)
CARTPOLE = jaxdqn.get_preset("CartPole-v1")


def cart_state(x: float, theta: float) -> cartpole.EnvState:
    return cartpole.EnvState(x=x, x_dot=0.0, theta=theta, theta_dot=0.0, time=0)


def test_cart_pole_drawing_matches_hand_computed_geometry():
    params = cartpole.EnvParams()  # x_threshold 2.4, half-length 0.5
    # 600 px over 4.8 m: 125 px/m. The track at y = 300, the cart's top at 285, the pole
    # 2 x 0.5 m = 125 px long.
    upright = draw_cart_pole(cart_state(0.0, 0.0), params)
    assert upright.shape == (400, 600, 3)
    assert tuple(upright[220, 300]) == POLE and tuple(upright[150, 300]) == (255, 255, 255)
    moved = draw_cart_pole(cart_state(1.0, 0.3), params)
    cart_x = 300 + 125
    tip = (cart_x + 125 * np.sin(0.3), 285 - 125 * np.cos(0.3))
    middle = ((cart_x + tip[0]) / 2, (285 + tip[1]) / 2)
    assert tuple(moved[round(middle[1]), round(middle[0])]) == POLE
    assert tuple(moved[300, cart_x]) == (0, 0, 0)  # the cart
    assert tuple(moved[220, 300]) == (255, 255, 255)  # nothing left where it was


def test_acrobot_hanging_straight_down():
    params = acrobot.EnvParams()  # two 1 m links
    state = acrobot.EnvState(
        joint_angle1=0.0, joint_angle2=0.0, velocity_1=0.0, velocity_2=0.0, time=0
    )
    image = draw_acrobot(state, params)
    scale = 400 / (2.2 * 2)
    assert tuple(image[round(200 + 1.5 * scale), 200]) == LINK  # the lower link
    assert tuple(image[round(200 - 0.5 * scale), 200]) == (255, 255, 255)  # nothing above


def test_observation_image_colours_each_channel():
    obs = np.zeros((2, 3, 4), np.float32)
    obs[0, 0, 1] = 1.0
    obs[1, 2, 3] = 1.0
    obs[1, 2, 0] = 1.0  # two channels set: the last one's colour
    image = observation_image(obs, height=20)
    assert image.shape == (20, 30, 3) and image.dtype == np.uint8
    assert tuple(image[0, 0]) == (255, 127, 14)  # channel 1
    assert tuple(image[19, 29]) == (214, 39, 40)  # channel 3
    assert tuple(image[0, 29]) == (0, 0, 0)
    with pytest.raises(ValueError, match=r"\[height, width, channels\]"):
        observation_image(np.zeros(4))


@pytest.fixture(scope="module")
def cartpole_params():
    return jaxdqn.make_trainer(CARTPOLE).init(jax.random.key(0)).params


def test_recorded_states_match_the_observations_under_jit_and_vmap(cartpole_params):
    record = jax.jit(jax.vmap(lambda p, k: record_episode(CARTPOLE, p, k, steps=60), (None, 0)))
    recordings = record(cartpole_params, jax.random.split(jax.random.key(1), 3))
    assert recordings.obs.shape == (3, 60, 4) and recordings.running.shape == (3, 60)
    for i in range(3):
        rec = jax.tree.map(lambda x, i=i: np.asarray(x[i]), recordings)
        # CartPole observes its state: the drawn state is the one the action was taken in.
        np.testing.assert_array_equal(rec.obs[:, 0], rec.env_states.x)
        np.testing.assert_array_equal(rec.obs[:, 2], rec.env_states.theta)
        steps = int(rec.running.sum())
        assert rec.running[:steps].all() and not rec.running[steps:].any()  # a prefix
        assert rec.terminated[steps - 1] and not rec.terminated[: steps - 1].any()
        assert abs(rec.env_states.theta[steps - 1]) <= 0.21  # the pole fell after it


def write_run(run_dir: Path, config: jaxdqn.DQNConfig, params) -> Path:
    """A run folder with final params, as `jaxdqn train` leaves it, without training."""
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config)))
    (run_dir / "run.json").write_text(json.dumps({"seeds": [4]}))
    flat = {
        jax.tree_util.keystr(p): np.asarray(x)[None] for p, x in jax.tree.leaves_with_path(params)
    }
    np.savez(run_dir / "params.npz", **flat)
    return run_dir


def test_render_command_writes_a_gif(cartpole_params, tmp_path, capsys):
    run_dir = write_run(tmp_path / "run", CARTPOLE, cartpole_params)
    out = tmp_path / "episode.gif"
    args = ["render", str(run_dir), "--seed", "4", "--out", str(out), "--width", "120"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    with Image.open(out) as gif:
        frames = gif.n_frames
        assert gif.size == (120, 80) and gif.info["loop"] == 0
    drawn, returned = re.search(rf"wrote {out}: (\d+) frames, return (\d+)", printed).groups()
    assert int(drawn) == int(returned) >= frames  # CartPole pays 1 per step
    assert "(the episode terminated)" in printed  # an untrained policy drops the pole
    assert cli.main(args) == 2
    assert "exists: choose another --out, or pass --overwrite" in capsys.readouterr().err
    assert cli.main(["render", str(run_dir), "--seed", "0"]) == 2
    assert "--seed=0 is invalid: the run trained seeds [4]" in capsys.readouterr().err


def test_render_refuses_an_env_it_cannot_draw(tiny_run, tmp_path, capsys):
    assert cli.main(["render", str(tiny_run[0]), "--out", str(tmp_path / "x.gif")]) == 2
    err = capsys.readouterr().err
    assert "cannot draw ChainWalk-v0" in err and "CartPole-v1, Acrobot-v1" in err
    assert not (tmp_path / "x.gif").exists()


def test_image_observations_are_drawn(tmp_path):
    config = jaxdqn.get_preset("Breakout-MinAtar")
    params = jaxdqn.make_trainer(config).init(jax.random.key(0)).params
    rendered = render_episode(
        config, params, jax.random.key(2), tmp_path / "b.gif", max_steps=8, width=100
    )
    with Image.open(rendered.path) as gif:
        assert gif.size == (100, 100) and 1 <= gif.n_frames <= rendered.frames <= 8


def test_a_sticky_cart_pole_is_drawn_from_the_state_it_wraps():
    plain = jaxdqn.get_preset("CartPole-v1")
    bound = bind_config_env(dataclasses.replace(plain, sticky_actions=0.1))
    obs, state = bound.env.reset(jax.random.key(0), bound.params)
    expected = frame_drawer(bind_config_env(plain))(state.env_state, obs)
    np.testing.assert_array_equal(frame_drawer(bound)(state, obs), expected)
