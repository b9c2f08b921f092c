"""``pgjax render``: one episode of a seed's trained policy, drawn by the env's ``render``.

The env is reached only through pgjax's Env protocol (:mod:`pgjax.envs.base`): ``reset``,
``step``, and the optional ``render(states, returns, path)`` and ``render_problem()``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pgjax.config import apply_overrides
from pgjax.host.checks import build_trainer
from pgjax.host.commands import restore
from pgjax.host.config_io import run_config
from pgjax.host.distributed import say
from pgjax.host.programs import seed_keys
from pgjax.host.errors import RunError, StorageError
from pgjax.host.rundir import check_writable


def render(args: argparse.Namespace) -> int:
    import jax  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    directory = Path(args.run_dir)
    out = Path(args.out)
    check_output(out)
    config = run_config(directory)
    seeds = config.training.num_seeds
    if not 0 <= args.seed_index < seeds:
        raise RunError(f"--seed-index {args.seed_index}: the run has {seeds} seed(s), "
                       f"so it must be in 0..{seeds - 1}")
    # One episode of one seed: one device, whatever the run trained on.
    trainer = build_trainer(apply_overrides(config, ["training.eval_episodes=1",
                                                     "training.devices=1"]))
    render_problem = getattr(trainer.env, "render_problem", None)
    problem = (f"{config.env.name} cannot be drawn: its env has no render method"
               if not hasattr(trainer.env, "render") else render_problem and render_problem())
    if problem:
        raise RunError(problem)
    state, step = restore(directory, trainer, args.checkpoint, config)
    state = jax.tree.map(lambda x: x[args.seed_index], state)
    key = jax.random.split(seed_keys(config, seeds)[args.seed_index])[1]
    states, returns, alive = jax.device_get(
        jax.jit(episode_fn(trainer, greedy=not args.sample))(state, key))
    length = int(np.asarray(alive).sum())
    frames = [jax.tree.map(lambda x: x[t], states) for t in range(length)]
    # Drawn to a temporary file of the same format, then renamed: never half an animation.
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        trainer.env.render(frames, [float(r) for r in np.asarray(returns)[:length]], tmp)
        os.replace(tmp, out)
    except OSError as error:
        raise StorageError.from_os(error, out) from None
    finally:
        tmp.unlink(missing_ok=True)
    say(f"{out}: seed {args.seed_index}, {args.checkpoint} checkpoint (chunk {step}), "
        f"{length} steps, return {float(np.asarray(returns)[length - 1]):.1f}")
    return 0


def formats() -> tuple[str, ...]:
    """The animation formats ``--out`` may name: GIF always, MP4 where ffmpeg is installed."""
    import shutil  # noqa: PLC0415

    return (".gif", ".mp4") if shutil.which("ffmpeg") else (".gif",)


def check_output(out: Path) -> None:
    """``--out``'s format and place, checked before the episode runs (not after)."""
    if out.suffix.lower() not in formats():
        raise RunError(f"--out {out}: the animation format comes from the extension, which "
                       f"must be {' or '.join(formats())}")
    if out.is_dir():
        raise RunError(f"--out {out}: is a directory; name a file, e.g. {out / 'episode.gif'}")
    check_writable(out, "--out")


def episode_fn(trainer, *, greedy: bool):
    """``(state, key) -> (env states [T], return so far [T], alive [T])`` of one episode.

    ``state`` is one seed's TrainState; T is the env's ``max_steps_in_episode``, and the
    steps after the episode ends (``alive`` False) are to be dropped.
    """
    import jax  # noqa: PLC0415

    from pgjax.policy import make_policy  # noqa: PLC0415

    env, spec = trainer.env, trainer.env.spec

    def episode(state, key):
        act = make_policy(trainer, state, greedy=greedy)  # obs statistics, actor, env units
        reset_key, key = jax.random.split(key)
        obs, env_state = env.reset(reset_key)

        def step(carry, step_key):
            obs, env_state, alive, total = carry
            act_key, env_key = jax.random.split(step_key)
            next_obs, next_state, reward, terminated, truncated, _ = env.step(
                env_key, env_state, act(obs, act_key))
            total = total + reward
            done = terminated | truncated
            return (next_obs, next_state, alive & ~done, total), (env_state, total, alive)

        carry = (obs, env_state, True, 0.0)
        _, out = jax.lax.scan(step, carry, jax.random.split(key, spec.max_steps_in_episode))
        return out

    return episode
