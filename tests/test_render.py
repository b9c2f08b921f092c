"""Env pictures: every env `pgjax envs` lists that can be drawn animates an episode, with the
default install (classic control without pygame); the classic-control frames show the state."""

import os
import stat
import sys
import types

import jax
import numpy as np
import pytest
from PIL import Image, ImageSequence

from pgjax.envs import classic_control, env_names, make_env
from pgjax.types import DiscreteSpace

STEPS = 8


def _renderable() -> list[str]:
    names = []
    for _, name, unsupported in env_names():
        if unsupported is None:
            try:
                env = make_env(name)
            except ValueError:  # needs params to be built (an XLand task: its ruleset)
                continue
            problem = getattr(env, "render_problem", lambda: "no render method")
            if hasattr(env, "render") and problem() is None:
                names.append(name)
    return names


RENDERABLE = _renderable()


def test_classic_control_is_renderable():
    assert set(classic_control.NAMES) <= set(RENDERABLE)


def _episode(env, steps):
    """The env states before each of ``steps`` random actions, and the return so far."""
    space = env.spec.action_space

    def step(carry, key):
        state, total = carry
        act_key, env_key = jax.random.split(key)
        if isinstance(space, DiscreteSpace):
            action = jax.random.randint(act_key, (), 0, space.n)
        else:
            action = jax.random.uniform(act_key, space.shape, minval=np.asarray(space.low),
                                        maxval=np.asarray(space.high))
        out = env.step(env_key, state, action)
        return (out.state, total + out.reward), (state, total + out.reward)

    _, state = env.reset(jax.random.key(0))
    _, (states, returns) = jax.device_get(jax.jit(lambda s: jax.lax.scan(
        step, (s, 0.0), jax.random.split(jax.random.key(1), steps)))(state))
    return [jax.tree.map(lambda x: x[t], states) for t in range(steps)], list(returns)


@pytest.mark.parametrize("name", RENDERABLE)
def test_every_renderable_env_animates_an_episode(name, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)  # `import pygame` fails: not needed
    env = make_env(name)
    states, returns = _episode(env, STEPS)
    path = tmp_path / "episode.gif"
    env.render(states, returns, path)
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        # Each frame's title holds its step, so no two are merged: one frame per state.
        frames = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(gif)]
    assert len(frames) == STEPS
    # The title differs anyway; the picture itself must move too (below the title band for
    # classic control, anywhere for gymnax's visualiser).
    first, last = frames[0], frames[-1]
    if name in classic_control.NAMES:
        first, last = (f[classic_control.TITLE_HEIGHT:] for f in (first, last))
    assert not np.array_equal(first, last)


def _params(name):
    return make_env(name).params


def _columns(frame, colour):
    """The x pixel coordinates of the scene's pixels of ``colour``."""
    scene = frame[classic_control.TITLE_HEIGHT:]
    return np.nonzero(np.all(scene == np.array(colour, np.uint8), axis=-1))[1]


def test_cartpole_frame_puts_cart_and_pole_where_the_state_says():
    params, centre = _params("CartPole-v1"), classic_control.WIDTH / 2
    for theta in (0.2, -0.2):
        frame = classic_control.draw("CartPole-v1", types.SimpleNamespace(x=0.0, theta=theta),
                                     params)
        pole = _columns(frame, classic_control.POLE)
        right, left = (pole > centre + 5).sum(), (pole < centre - 5).sum()
        assert (right > 10 * max(left, 1)) if theta > 0 else (left > 10 * max(right, 1))
    cart = _columns(classic_control.draw("CartPole-v1", types.SimpleNamespace(x=1.2, theta=0.0),
                                         params), classic_control.BLACK)
    # The track line is black too: the cart is the run of columns with most black pixels.
    counts = np.bincount(cart, minlength=classic_control.WIDTH)
    cart_centre = np.mean(np.nonzero(counts > 5)[0])
    assert cart_centre == pytest.approx(centre + 1.2 * classic_control.WIDTH / (2 * 2.4 + 0.8),
                                        abs=2)


def test_pendulum_frame_turns_anticlockwise_for_positive_theta_and_shows_the_torque():
    params, centre = _params("Pendulum-v1"), classic_control.WIDTH / 2
    upright = classic_control.draw("Pendulum-v1", types.SimpleNamespace(theta=0.0, last_u=0.0),
                                   params)
    rod = _columns(upright, classic_control.ROD)
    assert abs(rod.mean() - centre) < 2
    assert not _columns(upright, classic_control.TORQUE).size
    left = classic_control.draw("Pendulum-v1", types.SimpleNamespace(theta=1.0, last_u=2.0),
                                params)
    assert _columns(left, classic_control.ROD).mean() < centre - 50
    assert _columns(left, classic_control.TORQUE).size > 50


def test_acrobot_and_mountain_car_frames_follow_the_state():
    params = _params("Acrobot-v1")

    def link_rows(a1, a2):
        frame = classic_control.draw("Acrobot-v1", types.SimpleNamespace(
            joint_angle1=a1, joint_angle2=a2), params)[classic_control.TITLE_HEIGHT:]
        return np.nonzero(np.all(frame == np.array(classic_control.LINK, np.uint8), -1))[0]

    middle = classic_control.SCENE_HEIGHT / 2
    assert link_rows(0.0, 0.0).mean() > middle + 20  # hanging down (rows grow downwards)
    assert link_rows(np.pi, 0.0).mean() < middle - 20  # swung up
    params = _params("MountainCar-v0")
    car = [_columns(classic_control.draw("MountainCar-v0", types.SimpleNamespace(position=x),
                                         params), classic_control.GREY).mean()
           for x in (-1.0, -0.5, 0.4)]  # the wheels
    assert car[0] < car[1] < car[2]


def test_write_animation_hands_video_frames_to_ffmpeg(tmp_path, monkeypatch):
    # A stand-in ffmpeg that copies its input to the output file: the raw frames arrive whole.
    fake = tmp_path / "bin" / "ffmpeg"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nfor last; do :; done\ncat > "$last"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    frames = [np.full((4, 6, 3), v, np.uint8) for v in (0, 128, 255)]
    classic_control.write_animation(frames, tmp_path / "episode.mp4")
    assert (tmp_path / "episode.mp4").read_bytes() == b"".join(f.tobytes() for f in frames)
