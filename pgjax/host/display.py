"""The progress display: a live rich bar on a terminal, a plain line per chunk otherwise."""

from __future__ import annotations

import math
import sys
import time

from pgjax.host import distributed
from pgjax.host.callbacks import Callback, ChunkInfo, RunContext, RunEnd
from pgjax.host.distributed import say


def _fmt_time(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _fmt_rate(x: float) -> str:
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k" if x >= 1e3 else f"{x:.0f}"


class Display:
    """Progress between chunks: a live rich bar on a terminal, a plain line per chunk otherwise.

    The bar's second line keeps elapsed time and ETA ticking while a chunk runs.
    """

    def __init__(self, label: str, total_steps: int, chunks: int, done_steps: int,
                 elapsed: float):
        self.label, self.total, self.chunks = label, total_steps, chunks
        self._steps, self._chunk, self._rate, self._return = done_steps, 0, None, math.nan
        self._elapsed, self._eta, self._since = elapsed, None, time.perf_counter()
        self._bar = None
        if sys.stdout.isatty() and distributed.is_primary():
            from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn  # noqa
            from rich.progress import TextColumn  # noqa: PLC0415
            from rich.text import Text  # noqa: PLC0415

            display = self

            class _Progress(Progress):
                def get_renderables(self):
                    yield self.make_tasks_table(self.tasks)
                    yield Text(display.stats(live=True))

            self._bar = _Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                  BarColumn(bar_width=30), TaskProgressColumn(),
                                  TextColumn("{task.fields[chunk]}"))
            self._task = self._bar.add_task(label, total=total_steps, completed=done_steps,
                                            chunk="")
            self._bar.start()

    def stats(self, live: bool = False) -> str:
        now = time.perf_counter() - self._since if live else 0.0
        elapsed = self._elapsed + now
        eta = "-" if self._eta is None else _fmt_time(self._eta - now)
        rate = "-" if self._rate is None else _fmt_rate(self._rate)
        ret = "-" if not math.isfinite(self._return) else f"{self._return:.1f}"
        return (f"{self._steps:,}/{self.total:,} env steps  {rate} steps/s  return {ret}  "
                f"elapsed {_fmt_time(elapsed)}  ETA {eta}")

    def print(self, message: str) -> None:
        if self._bar is not None:
            self._bar.console.print(message, highlight=False, markup=False, soft_wrap=True)
        else:
            say(message)

    def update(self, *, chunk: int, steps: int, rate: float, mean_return: float,
               elapsed: float, eta: float) -> None:
        self._chunk, self._steps, self._rate, self._return = chunk, steps, rate, mean_return
        self._elapsed, self._eta, self._since = elapsed, eta, time.perf_counter()
        if self._bar is not None:
            self._bar.update(self._task, completed=steps, chunk=f"chunk {chunk}/{self.chunks}")
        else:
            say(f"{self.label} chunk {chunk}/{self.chunks} | {self.stats()}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None



class ProgressDisplay(Callback):
    """The :class:`Display` of a run, as a host-loop callback: drawn from ``on_start``,
    updated after every finite chunk, closed when the run stops. While the bar is live,
    ``ctx.say`` prints above it."""

    def __init__(self):
        self.display: Display | None = None

    def on_start(self, ctx: RunContext) -> None:
        d = ctx.derived
        self.display = Display(ctx.label, d.env_steps, d.num_chunks,
                               (d.chunk_target(ctx.start_chunk) if d.episodic
                                else d.updates_after(ctx.start_chunk) * d.steps_per_update),
                               ctx.start_elapsed_s)
        ctx.printer = self.display.print

    def on_chunk(self, ctx: RunContext, info: ChunkInfo) -> None:
        if info.problem is None:
            self.display.update(chunk=info.chunk, steps=info.env_steps, rate=info.rate,
                                mean_return=info.mean_return, elapsed=info.wall_s,
                                eta=info.eta_s)

    def on_end(self, ctx: RunContext, end: RunEnd) -> None:
        self._close(ctx)

    def on_error(self, ctx: RunContext, error: BaseException) -> None:
        self._close(ctx)

    def _close(self, ctx: RunContext) -> None:
        if self.display is not None:
            self.display.close()
            ctx.printer = say


def steps_text(steps) -> str:
    """Env steps per seed (``[S]``) for people: one number, or the range when seeds differ
    (an episodic algorithm's seeds each stop at the update that reaches the target)."""
    low, high = int(min(steps)), int(max(steps))
    return f"{low:,} env steps" if low == high else f"{low:,}-{high:,} env steps"

