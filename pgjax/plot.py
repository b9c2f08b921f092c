"""Learning curves for the ``pgjax`` command (host layer).

Curves are drawn with matplotlib's Agg backend (no display needed): the mean over seeds of
each chunk's episode return against env steps, a band of one standard deviation, and a dashed
line at the environment's solve threshold where it has one (:data:`SOLVE_THRESHOLDS`).
Episode animations are the env adapter's (``Env.render``, e.g. :mod:`pgjax.envs.gymnax`).
"""

from __future__ import annotations

import contextlib
import csv
import os
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

# Gym's registered reward thresholds ("solved") for the gymnax envs that have one, at their
# default episode length. Pendulum and the MinAtar games have none.
SOLVE_THRESHOLDS = {
    "CartPole-v1": 475.0,
    "Acrobot-v1": -100.0,
    "MountainCar-v0": -110.0,
    "MountainCarContinuous-v0": 90.0,
}


class Curve(NamedTuple):
    """One learning curve: ``returns[s, c]`` of seed ``s`` after chunk ``c``.

    ``returns`` is NaN for a chunk in which a seed finished no episode.
    """

    label: str
    # [C] env steps per seed at the end of each chunk (the mean over seeds: an episodic
    # algorithm's seeds each end a chunk at their own update, less than one apart)
    env_steps: np.ndarray
    returns: np.ndarray  # [S, C]


def solve_threshold(env_name: str, env_params: Sequence[tuple[str, Any]] = ()) -> float | None:
    """The return at which ``env_name`` counts as solved, or None.

    None as well when ``env_params`` changes the episode length, since the threshold assumes
    the default one.
    """
    if any(name == "max_steps_in_episode" for name, _ in env_params):
        return None
    return SOLVE_THRESHOLDS.get(env_name)


def read_curve(metrics_csv: str | os.PathLike, label: str = "") -> Curve:
    """Reads the episode-return curve from a run's ``metrics.csv``."""
    by_chunk: dict[int, dict[int, float]] = {}
    steps: dict[int, list[int]] = {}
    with open(metrics_csv, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:  # a row cut short (a killed run, a full disk) is not a point of the curve
                chunk, seed = int(row["chunk"]), int(row["seed"])
                value, step = float(row["episode_return"]), int(row["env_steps"])
            except (TypeError, ValueError, KeyError):
                continue
            by_chunk.setdefault(chunk, {})[seed] = value
            steps.setdefault(chunk, []).append(step)
    chunks = sorted(by_chunk)
    seeds = sorted({s for values in by_chunk.values() for s in values})
    returns = np.full((len(seeds), len(chunks)), np.nan)
    for c, chunk in enumerate(chunks):
        for s, seed in enumerate(seeds):
            returns[s, c] = by_chunk[chunk].get(seed, np.nan)
    return Curve(label, np.array([round(np.mean(steps[c])) for c in chunks], dtype=np.int64),
                 returns)


def _pyplot():
    import matplotlib  # noqa: PLC0415  (deferred: matplotlib takes a second to import)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def plot_curves(curves: Sequence[Curve], path: str | os.PathLike, *, title: str = "",
                threshold: float | None = None) -> None:
    """Draws every curve's mean +- std over seeds on one axis and saves a PNG to ``path``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    try:
        for curve in curves:
            with warnings.catch_warnings():  # chunks in which no seed finished an episode
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(curve.returns, axis=0)
                std = np.nanstd(curve.returns, axis=0)
            seeds = curve.returns.shape[0]
            label = f"{curve.label} ({seeds} seed{'s' if seeds != 1 else ''})".strip()
            (line,) = ax.plot(curve.env_steps, mean, marker="." if len(mean) < 30 else None,
                              label=label)
            if seeds > 1:
                ax.fill_between(curve.env_steps, mean - std, mean + std, alpha=0.2,
                                color=line.get_color(), linewidth=0)
        if threshold is not None:
            ax.axhline(threshold, color="0.3", linestyle="--", linewidth=1,
                       label=f"solved ({threshold:g})")
        ax.set_xlabel("env steps per seed")
        ax.set_ylabel("episode return (mean ± std over seeds)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
        fig.tight_layout()
        tmp = f"{os.fspath(path)}.tmp.png"
        try:
            fig.savefig(tmp, format="png")
            os.replace(tmp, path)  # a reader never sees half a PNG
        except BaseException:
            with contextlib.suppress(OSError):  # a full disk leaves no half PNG either
                os.remove(tmp)
            raise
    finally:
        plt.close(fig)


def plot_sweep(curves: Sequence[Curve], path: str | os.PathLike, *, title: str = "",
               threshold: float | None = None, heatmap: tuple | None = None) -> None:
    """A sweep's figure: every point's mean curve over seeds (no bands: many points) and,
    with ``heatmap`` ``(x_key, x_values, y_key, y_values, scores [Y, X], what)``, a heatmap
    of the two grid axes beside it. Saves a PNG to ``path``."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2 if heatmap else 1, figsize=(13 if heatmap else 8, 5), dpi=110,
                             squeeze=False)
    try:
        ax = axes[0, 0]
        for curve in curves:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(curve.returns, axis=0)
            ax.plot(curve.env_steps, mean, label=curve.label, linewidth=1.2)
        if threshold is not None:
            ax.axhline(threshold, color="0.3", linestyle="--", linewidth=1,
                       label=f"solved ({threshold:g})")
        ax.set_xlabel("env steps per seed")
        ax.set_ylabel("episode return (mean over seeds)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if len(curves) <= 16:
            ax.legend(loc="best", fontsize="x-small")
        if heatmap:
            x_key, xs, y_key, ys, scores, what = heatmap
            hm = axes[0, 1]
            image = hm.imshow(scores, origin="lower", aspect="auto", cmap="viridis")
            hm.set_xticks(range(len(xs)), xs)
            hm.set_yticks(range(len(ys)), ys)
            hm.set_xlabel(x_key)
            hm.set_ylabel(y_key)
            hm.set_title(what)
            for (r, c), value in np.ndenumerate(scores):
                if np.isfinite(value):
                    hm.text(c, r, f"{value:.0f}", ha="center", va="center", color="w",
                            fontsize="small")
            fig.colorbar(image, ax=hm)
        fig.tight_layout()
        tmp = f"{os.fspath(path)}.tmp.png"
        try:
            fig.savefig(tmp, format="png")
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise
    finally:
        plt.close(fig)
