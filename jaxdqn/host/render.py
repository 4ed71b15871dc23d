"""A trained policy's episode as an animated GIF (``jaxdqn render``).

Frames are drawn with Pillow: the discrete-action classic-control envs (CartPole,
Acrobot, MountainCar) from their state, in gymnasium's layout, and any env with image
observations ``[height, width, channels]`` (MinAtar, grid worlds) from the observation
itself, each channel a colour, scaled up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxdqn.dqn import bind_config_env, record_episode
from jaxdqn.envs import BoundEnv, StickyState

# A colour per observation channel (tab10), black where no channel is set.
_PALETTE = np.array(
    [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
     [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]],
    np.uint8,
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Rendered:
    """What :func:`render_episode` wrote."""

    path: Path
    frames: int  # frames drawn: one per step, the state the action was taken in (the GIF
    # holds fewer where Pillow merges identical consecutive frames into a longer one)
    episode_return: float  # undiscounted return of the episode drawn
    ending: str  # "terminated", "truncated" (its time limit) or "running" (max_steps hit)


def observation_image(obs: np.ndarray, height: int = 320) -> np.ndarray:
    """An image observation ``[H, W, C]`` as RGB uint8 ``[h, w, 3]``: each pixel in the
    colour of its highest set channel (black where none is), scaled up by a whole factor
    to about ``height`` pixels.

    Raises:
      ValueError: ``obs`` is not ``[height, width, channels]``.
    """
    obs = np.asarray(obs, np.float32)
    if obs.ndim != 3:
        raise ValueError(f"an image observation is [height, width, channels], not {obs.shape}")
    channels = obs.shape[-1]
    top = channels - 1 - np.argmax(obs[..., ::-1] > 0, axis=-1)  # the last set channel
    colours = _PALETTE[top % len(_PALETTE)]
    image = np.where((obs > 0).any(axis=-1, keepdims=True), colours, 0).astype(np.uint8)
    scale = max(1, height // obs.shape[0])
    return image.repeat(scale, axis=0).repeat(scale, axis=1)


def draw_cart_pole(state: Any, params: Any, size: tuple[int, int] = (600, 400)) -> np.ndarray:
    """CartPole: the cart on its track and the pole at angle ``theta`` (0 upright), to
    scale with the track of ``±x_threshold``. RGB uint8 ``[h, w, 3]``."""
    from PIL import Image, ImageDraw

    width, height = size
    scale = width / (2 * float(params.x_threshold))
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    track, cart_x = 0.75 * height, width / 2 + float(state.x) * scale
    draw.line([(0, track), (width, track)], fill="black")
    draw.rectangle([cart_x - 25, track - 15, cart_x + 25, track + 15], fill="black")
    theta, pole = float(state.theta), 2 * float(params.length) * scale
    tip = (cart_x + pole * np.sin(theta), track - 15 - pole * np.cos(theta))
    draw.line([(cart_x, track - 15), tip], fill=(202, 152, 101), width=10)
    draw.ellipse([cart_x - 5, track - 20, cart_x + 5, track - 10], fill=(129, 132, 203))
    return np.asarray(image)


def draw_acrobot(state: Any, params: Any, size: tuple[int, int] = (400, 400)) -> np.ndarray:
    """Acrobot: two links hanging from the centre (angles 0, 0 straight down) and the
    line the tip must rise above (one link length above the pivot). RGB uint8."""
    from PIL import Image, ImageDraw

    width, height = size
    l1, l2 = float(params.link_length_1), float(params.link_length_2)
    scale = min(width, height) / (2.2 * (l1 + l2))
    t1, t2 = float(state.joint_angle1), float(state.joint_angle2)
    pivot = np.array([width / 2, height / 2])
    elbow = pivot + scale * l1 * np.array([np.sin(t1), np.cos(t1)])
    tip = elbow + scale * l2 * np.array([np.sin(t1 + t2), np.cos(t1 + t2)])
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    goal = height / 2 - scale * l1
    draw.line([(0, goal), (width, goal)], fill="black")
    for start, end in ((pivot, elbow), (elbow, tip)):
        draw.line([tuple(start), tuple(end)], fill=(0, 204, 204), width=10)
        draw.ellipse([*(start - 5), *(start + 5)], fill=(204, 204, 0))
    return np.asarray(image)


def draw_mountain_car(state: Any, params: Any, size: tuple[int, int] = (600, 400)) -> np.ndarray:
    """MountainCar: the hill ``0.45 sin(3x) + 0.55``, the car at ``position`` and the
    flag at ``goal_position``. RGB uint8."""
    from PIL import Image, ImageDraw

    width, height = size
    low, high = float(params.min_position), float(params.max_position)
    scale = width / (high - low)

    def point(x: float) -> tuple[float, float]:
        return (x - low) * scale, height - (0.45 * np.sin(3 * x) + 0.55) * scale

    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.line([point(x) for x in np.linspace(low, high, 100)], fill="black", width=2)
    flag_x, flag_y = point(float(params.goal_position))
    draw.line([(flag_x, flag_y), (flag_x, flag_y - 40)], fill="black", width=2)
    draw.polygon([(flag_x, flag_y - 40), (flag_x + 25, flag_y - 35), (flag_x, flag_y - 30)],
                 fill=(204, 204, 0))  # fmt: skip
    car_x, car_y = point(float(state.position))
    draw.ellipse([car_x - 12, car_y - 24, car_x + 12, car_y], fill="black")
    return np.asarray(image)


# gymnax env name -> draw(state, env params) for the classic-control envs with discrete actions
STATE_DRAWERS = {
    "CartPole-v1": draw_cart_pole,
    "Acrobot-v1": draw_acrobot,
    "MountainCar-v0": draw_mountain_car,
}


def frame_drawer(bound: BoundEnv) -> Callable[[Any, np.ndarray], np.ndarray]:
    """``draw(env_state, obs) -> RGB uint8 [h, w, 3]`` for an env, one unbatched state.

    Raises:
      ValueError: an env neither kind of drawing covers.
    """
    name = getattr(bound.env, "name", bound.name)
    if name in STATE_DRAWERS:
        return lambda state, obs: STATE_DRAWERS[name](_unwrapped(state), bound.params)
    if len(bound.spec.obs_shape) == 3:
        return lambda state, obs: observation_image(obs)
    raise ValueError(
        f"jaxdqn render cannot draw {bound.name}: it draws {', '.join(STATE_DRAWERS)} and "
        "envs with image observations [height, width, channels]; this one observes "
        f"{list(bound.spec.obs_shape)}."
    )


def _unwrapped(state: Any) -> Any:
    """The env's own state inside the state of :class:`jaxdqn.envs.StickyActions`."""
    while isinstance(state, StickyState):
        state = state.env_state
    return state


def render_episode(
    config: Any,
    params: Any,
    key: jax.Array,
    out: str | Path,
    *,
    max_steps: int | None = None,
    epsilon: float | None = None,
    fps: int = 30,
    width: int = 360,
) -> Rendered:
    """Plays one episode of ``params`` (one seed's) and writes it as a looping GIF.

    Args:
      config: the run's :class:`jaxdqn.DQNConfig`.
      params: Q-network parameters of one seed.
      key: PRNG key of the episode.
      out: the GIF to write (its folder is created).
      max_steps: steps drawn at most; ``None`` takes the env's time limit.
      epsilon: ε of the policy; ``None`` uses ``config.eval_epsilon`` (0: greedy).
      fps: frames per second of the animation, >= 1.
      width: frame width in pixels (height follows the aspect ratio), >= 16.

    Returns:
      :class:`Rendered`.

    Raises:
      ValueError: an env that cannot be drawn (:func:`frame_drawer`), or ``fps`` /
        ``width`` / ``max_steps`` out of range, before anything is played.
    """
    from PIL import Image

    for name, value, low in (("fps", fps, 1), ("width", width, 16), ("max_steps", max_steps, 1)):
        if value is not None and value < low:
            raise ValueError(f"{name}={value} is invalid: must be >= {low}.")
    bound = bind_config_env(config)
    draw = frame_drawer(bound)
    recording = jax.jit(lambda p, k: record_episode(config, p, k, max_steps, epsilon))(params, key)
    recording = jax.device_get(recording)
    steps = int(recording.running.sum())  # the episode's steps within the recording
    last = steps - 1
    ending = (
        "terminated" if recording.terminated[last]
        else "truncated" if recording.truncated[last]
        else "running"
    )  # fmt: skip
    frames = []
    for t in range(steps):
        state = jax.tree.map(lambda x, t=t: x[t], recording.env_states)
        image = Image.fromarray(draw(state, recording.obs[t]))
        height = max(1, round(image.height * width / image.width))
        # Pixels of an observation stay sharp; drawings are smoothed when shrunk.
        smooth = image.width > width and len(bound.spec.obs_shape) != 3
        resample = Image.Resampling.LANCZOS if smooth else Image.Resampling.NEAREST
        frames.append(image.resize((width, height), resample))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=round(1000 / fps), loop=0)
    episode_return = float(recording.rewards[:steps].sum())
    return Rendered(out, len(frames), episode_return, ending)
