"""Pictures of gymnax's classic-control envs, drawn with Pillow instead of pygame.

gymnax draws CartPole, Acrobot, Pendulum and MountainCar through gymnasium's renderer, which
needs pygame (not a pgjax dependency). This module draws scenes like gymnasium's from the
gymnax env state and params alone: :func:`draw` makes one RGB frame, and
:func:`write_animation` writes an episode's frames as a GIF (Pillow) or an MP4 (ffmpeg).
gymnax's adapter (:mod:`pgjax.envs.gymnax`) calls both from its ``render``; nothing here
imports gymnax.

Coordinates: each scene maps its world (``y`` up) onto a ``WIDTH`` x ``SCENE_HEIGHT`` picture,
as gymnasium's renderers do; a band of ``TITLE_HEIGHT`` pixels above it holds the title (the
step and the return so far). Angles follow the envs: CartPole's ``theta > 0`` tilts the pole
right; Pendulum's ``theta = 0`` is upright and ``theta > 0`` (and a positive torque) turns it
anticlockwise; Acrobot's links hang down at zero angles.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import subprocess
from typing import Any, Sequence

import numpy as np

WIDTH, SCENE_HEIGHT, TITLE_HEIGHT = 600, 400, 36
FPS = 20  # gymnax's visualiser plays classic control at 50 ms a frame

WHITE, BLACK, GREY = (255, 255, 255), (0, 0, 0), (170, 170, 170)
POLE, AXLE = (202, 152, 101), (129, 132, 203)  # gymnasium's cart-pole colours
LINK, JOINT = (0, 204, 204), (204, 204, 0)
ROD, TORQUE, FLAG = (204, 77, 77), (70, 70, 70), (204, 204, 0)


def _palette():
    """The GIF palette (a Pillow image): every scene colour, and greys for the title's
    smoothed edges."""
    from PIL import Image  # noqa: PLC0415  (Pillow is imported when something is drawn)

    colours = [WHITE, BLACK, GREY, POLE, AXLE, LINK, JOINT, ROD, TORQUE, FLAG]
    colours += [(v, v, v) for v in range(16, 255, 16)]
    image = Image.new("P", (1, 1))
    image.putpalette([c for colour in colours for c in colour])
    return image


class _View:
    """World coordinates (``y`` up) to pixels: ``origin`` is where world (0, 0) lands."""

    def __init__(self, pen: Any, scale: float, origin: tuple[float, float]):
        self.pen, self.scale, self.origin = pen, scale, origin  # pen: a PIL.ImageDraw

    def px(self, x: float, y: float) -> tuple[float, float]:
        return self.origin[0] + x * self.scale, self.origin[1] - y * self.scale

    def segment(self, a, b, width: float, colour) -> None:
        """A thick line from world point ``a`` to ``b`` with round ends (width in pixels)."""
        pa, pb = self.px(*a), self.px(*b)
        self.pen.line([pa, pb], fill=colour, width=max(1, round(width)))
        for p in (pa, pb):
            self.dot(p, width / 2, colour)

    def dot(self, p: tuple[float, float], radius: float, colour) -> None:
        """A disc of ``radius`` pixels at pixel ``p``."""
        self.pen.ellipse([p[0] - radius, p[1] - radius, p[0] + radius, p[1] + radius],
                         fill=colour)

    def box(self, centre, width: float, height: float, angle: float, colour) -> None:
        """A ``width`` x ``height`` pixel rectangle at world ``centre``, turned anticlockwise
        by ``angle`` radians."""
        cx, cy = self.px(*centre)
        c, s = math.cos(angle), math.sin(angle)
        corners = ((-1, -1), (1, -1), (1, 1), (-1, 1))
        self.pen.polygon([(cx + (dx * width * c - dy * height * s) / 2,
                           cy - (dx * width * s + dy * height * c) / 2) for dx, dy in corners],
                         fill=colour)


def _f(x: Any) -> float:
    return float(np.asarray(x))


def _cartpole(pen: Any, state: Any, params: Any) -> None:
    """The cart on its track (ticks at ``±x_threshold``) and the pole at ``theta``."""
    limit = _f(params.x_threshold)
    view = _View(pen, scale=WIDTH / (2 * limit + 0.8), origin=(WIDTH / 2, 0.75 * SCENE_HEIGHT))
    x, theta = _f(state.x), _f(state.theta)
    cart_w, cart_h = 50.0, 30.0
    view.pen.line([(0, view.origin[1]), (WIDTH, view.origin[1])], fill=BLACK, width=1)
    for side in (-limit, limit):
        px, py = view.px(side, 0)
        view.pen.line([(px, py - 8), (px, py + 8)], fill=GREY, width=2)
    view.box((x, 0), cart_w, cart_h, 0.0, BLACK)
    pole = 2 * _f(params.length)  # gymnax's length is half the pole
    top = (x + pole * math.sin(theta), pole * math.cos(theta))
    view.segment((x, 0), top, 10, POLE)
    view.dot(view.px(x, 0), 5, AXLE)


def _acrobot(pen: Any, state: Any, params: Any) -> None:
    """Two links from the pivot, and the line the tip must rise above to end the episode
    (gymnax's ``-cos(a1) - cos(a1 + a2) > 1``: 1.0 above the pivot)."""
    l1, l2 = _f(params.link_length_1), _f(params.link_length_2)
    bound = l1 + l2 + 0.2
    view = _View(pen, scale=SCENE_HEIGHT / (2 * bound), origin=(WIDTH / 2, SCENE_HEIGHT / 2))
    a1, a2 = _f(state.joint_angle1), _f(state.joint_angle2)
    y_goal = view.px(0, 1.0)[1]
    view.pen.line([(view.px(-bound, 0)[0], y_goal), (view.px(bound, 0)[0], y_goal)],
                  fill=BLACK, width=1)
    elbow = (l1 * math.sin(a1), -l1 * math.cos(a1))
    tip = (elbow[0] + l2 * math.sin(a1 + a2), elbow[1] - l2 * math.cos(a1 + a2))
    view.segment((0, 0), elbow, 16, LINK)
    view.segment(elbow, tip, 16, LINK)
    for joint in ((0, 0), elbow):
        view.dot(view.px(*joint), 6, JOINT)


def _pendulum(pen: Any, state: Any, params: Any) -> None:
    """The rod at ``theta`` and the last torque as an arc: its length ``|u| / max_torque``
    of a half turn, anticlockwise for a positive torque."""
    length = _f(params.l)
    view = _View(pen, scale=SCENE_HEIGHT / (2 * length + 0.6),
                 origin=(WIDTH / 2, SCENE_HEIGHT / 2))
    theta, u = _f(state.theta), _f(state.last_u)
    view.segment((0, 0), (-length * math.sin(theta), length * math.cos(theta)), 20, ROD)
    view.dot(view.origin, 5, BLACK)
    share = max(-1.0, min(1.0, u / _f(params.max_torque)))
    if abs(share) > 0.02:
        radius, start = 0.3 * view.scale, 270.0  # pixel degrees (clockwise from +x): up
        sweep = 180.0 * share
        lo, hi = sorted((start - sweep, start))  # pixel angles run clockwise
        cx, cy = view.origin
        view.pen.arc([cx - radius, cy - radius, cx + radius, cy + radius], lo, hi,
                     fill=TORQUE, width=4)
        end = math.radians(start - sweep)
        tip = (cx + radius * math.cos(end), cy + radius * math.sin(end))
        # The head points along the arc, in the direction of the torque.
        direction = (math.sin(end), -math.cos(end)) if share > 0 else (-math.sin(end),
                                                                        math.cos(end))
        side = (-direction[1], direction[0])
        view.pen.polygon([(tip[0] + 12 * direction[0], tip[1] + 12 * direction[1]),
                          (tip[0] + 7 * side[0], tip[1] + 7 * side[1]),
                          (tip[0] - 7 * side[0], tip[1] - 7 * side[1])], fill=TORQUE)


def _mountain_car(pen: Any, state: Any, params: Any) -> None:
    """The hill ``0.45 sin(3x) + 0.55``, the flag at the goal, the car at ``position``."""
    low, high = _f(params.min_position), _f(params.max_position)
    scale = WIDTH / (high - low)
    view = _View(pen, scale=scale, origin=(-low * scale, SCENE_HEIGHT - 20))

    def height(x: float) -> float:
        return 0.45 * math.sin(3 * x) + 0.55

    xs = np.linspace(low, high, 100)
    view.pen.line([view.px(x, height(x)) for x in xs], fill=BLACK, width=2)
    goal = _f(params.goal_position)
    base = view.px(goal, height(goal))
    view.pen.line([base, (base[0], base[1] - 50)], fill=BLACK, width=2)
    view.pen.polygon([(base[0], base[1] - 50), (base[0], base[1] - 40),
                      (base[0] + 25, base[1] - 45)], fill=FLAG)
    x = _f(state.position)
    angle = math.atan(1.35 * math.cos(3 * x))  # the hill's slope at x, as an angle
    normal = (-math.sin(angle), math.cos(angle))
    lift = 20 / view.scale  # the body's centre, half its height plus wheels above the hill
    view.box((x + normal[0] * lift, height(x) + normal[1] * lift), 40, 20, angle, BLACK)
    for along in (-12, 12):
        wheel = (x + (along * math.cos(angle) + 5 * normal[0]) / view.scale,
                 height(x) + (along * math.sin(angle) + 5 * normal[1]) / view.scale)
        view.dot(view.px(*wheel), 5, GREY)


_SCENES = {"CartPole-v1": _cartpole, "Acrobot-v1": _acrobot, "Pendulum-v1": _pendulum,
           "MountainCar-v0": _mountain_car, "MountainCarContinuous-v0": _mountain_car}
NAMES = tuple(_SCENES)  # the envs this module draws


def draw(name: str, state: Any, params: Any, title: str = "") -> np.ndarray:
    """One frame of a classic-control env.

    Args:
      name: one of :data:`NAMES`.
      state: the gymnax env state (one env, unbatched; arrays or numbers).
      params: the gymnax env params.
      title: the text of the band above the scene.

    Returns:
      ``[TITLE_HEIGHT + SCENE_HEIGHT, WIDTH, 3]`` uint8 RGB.

    Examples:
      >>> import types
      >>> frame = draw("CartPole-v1", types.SimpleNamespace(x=0.0, theta=0.1),
      ...              types.SimpleNamespace(x_threshold=2.4, length=0.5))
      >>> frame.shape, frame.dtype
      ((436, 600, 3), dtype('uint8'))
    """
    from PIL import Image, ImageDraw  # noqa: PLC0415

    image = Image.new("RGB", (WIDTH, TITLE_HEIGHT + SCENE_HEIGHT), WHITE)
    scene = Image.new("RGB", (WIDTH, SCENE_HEIGHT), WHITE)
    _SCENES[name](ImageDraw.Draw(scene), state, params)
    image.paste(scene, (0, TITLE_HEIGHT))
    if title:
        ImageDraw.Draw(image).text((WIDTH / 2, TITLE_HEIGHT / 2), title, fill=BLACK,
                                   font=_font(), anchor="mm")
    return np.asarray(image)


def title(name: str, step: int, episode_return: float) -> str:
    """The title gymnax's visualiser writes: name, step (from 1), return so far."""
    return f"{name}: Step {step:4d} - Return {episode_return:7.2f}"


@functools.cache
def _font():
    from PIL import ImageFont  # noqa: PLC0415

    # Pillow's built-in scalable font (needs FreeType, which Pillow's wheels carry); its
    # bitmap font otherwise.
    try:
        return ImageFont.load_default(size=18)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def write_animation(frames: Sequence[np.ndarray], path: str | os.PathLike,
                    fps: int = FPS) -> None:
    """Writes RGB frames ``[H, W, 3]`` uint8 as an animation: a looping GIF for ``.gif``,
    otherwise a video through ffmpeg (the format from the extension, e.g. ``.mp4``).

    Raises:
      OSError: the file cannot be written, or ffmpeg failed.
    """
    from PIL import Image  # noqa: PLC0415

    path = os.fspath(path)
    if path.lower().endswith(".gif"):
        # One fixed palette of the scene colours: each pixel keeps its exact colour (the
        # title's edges their nearest grey), without a costly per-frame quantisation.
        palette = _palette()
        quantised = [Image.fromarray(frame).quantize(palette=palette, dither=Image.Dither.NONE)
                     for frame in frames]
        quantised[0].save(path, save_all=True, append_images=quantised[1:],
                          duration=1000 // fps, loop=0, optimize=False)
        return
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise OSError(f"{path}: writing this format needs ffmpeg, which is not installed")
    height, width = frames[0].shape[:2]
    command = [ffmpeg, "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{width}x{height}", "-r", str(fps), "-i", "-", "-pix_fmt", "yuv420p",
               path]
    result = subprocess.run(command, input=b"".join(np.ascontiguousarray(f).tobytes()
                                                    for f in frames),
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise OSError(f"{path}: ffmpeg failed: {result.stderr.decode(errors='replace').strip()}")
