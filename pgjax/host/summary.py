"""The end of a run: curve.png, summary.json and the closing lines, as a host-loop callback."""

from __future__ import annotations

import numpy as np

from pgjax.host.callbacks import Callback, RunContext, RunEnd
from pgjax.host.distributed import say
from pgjax.host.rundir import write_json


class Summary(Callback):
    """Draws curve.png from metrics.csv, adds the final returns to ``end.summary``, writes it
    as summary.json (process 0 only) and prints what happened.

    ``end.summary`` gains ``final_train_return_mean``/``_std`` (the last chunk's rows of
    metrics.csv, over seeds) and, for a complete run with ``training.eval_episodes`` > 0, the
    final evaluation: ``eval_return_*`` (greedy) and ``eval_sampled_return_*``.
    """

    def on_end(self, ctx: RunContext, end: RunEnd) -> None:
        from pgjax import plot  # noqa: PLC0415

        config, derived, directory = ctx.config, ctx.derived, ctx.directory
        seeds, summary = ctx.seeds, end.summary
        metrics_csv = directory / "metrics.csv"
        curve = plot.read_curve(metrics_csv, label=config.algorithm.name) \
            if ctx.primary and metrics_csv.exists() else None
        if curve is not None and curve.returns.size:
            last = curve.returns[:, -1]
            finite = np.isfinite(last).any()
            summary["final_train_return_mean"] = float(np.nanmean(last)) if finite else None
            summary["final_train_return_std"] = float(np.nanstd(last)) if finite else None
            threshold = plot.solve_threshold(config.env.name, config.env.params)
            plot.plot_curves([curve], directory / "curve.png", threshold=threshold,
                             title=f"{config.env.name}, {config.algorithm.name}")
        lines = [f"{end.status}: {config.env.name} {config.algorithm.name}, {seeds} {ctx.unit}(s), "
                 f"{summary['env_steps_per_seed']:,}/{derived.env_steps:,} env steps per "
                 f"{ctx.unit}"]
        if end.evaluation is not None:
            greedy, sampled = end.evaluation
            summary.update(eval_return_mean=float(greedy.mean()),
                           eval_return_std=float(greedy.std()), eval_returns=greedy.tolist(),
                           eval_sampled_return_mean=float(sampled.mean()),
                           eval_sampled_return_std=float(sampled.std()),
                           eval_sampled_returns=sampled.tolist(),
                           eval_episodes=config.training.eval_episodes)
            lines.append(f"final evaluation: greedy {greedy.mean():.1f} ± {greedy.std():.1f}, "
                         f"sampled {sampled.mean():.1f} ± {sampled.std():.1f} over {seeds} "
                         f"{ctx.unit}(s) ({config.training.eval_episodes} episodes each)")
        rate, compile_s = summary["steps_per_s"], ctx.programs.compile_s
        lines.append(f"wall time {end.wall_s:.1f} s, compile {compile_s:.1f} s"
                     + (f", {rate:,.0f} env steps/s (all seeds)" if rate else ""))
        lines.append(f"run directory: {directory}")
        if ctx.primary:
            write_json(directory / "summary.json", summary)
        for line in lines:
            say(line)
