"""The results of ``pgjax bench`` as a markdown table and a log-log plot."""

from __future__ import annotations

from pgjax.bench.flops import ModelFlops
from pgjax.bench.machine import format_rate
from pgjax.bench.phases import PHASE_TITLES, PHASES

# Issue 19: pgjax's training at least 1.5x the plain-JAX reference's steps/s.
REFERENCE_TARGET = 1.5


def results_table(results: list[dict], flops: ModelFlops) -> str:
    """A markdown table: steps/s per phase and N, compile seconds, (d)'s FLOP utilisation
    against the matmul timed in the same row."""
    names = [p for p in PHASES if p in results[0]["steps_per_s"]]
    head = "| N | T | U | " + " | ".join(f"{PHASE_TITLES[p]}, steps/s" for p in names)
    rule = "| ---: | ---: | ---: | " + " | ".join("---:" for _ in names)
    matmul = "matmul" in results[0]
    if "train" in names:
        head += " | (d) ms/update | (d) model GFLOP/s"
        rule += " | ---: | ---:"
    if matmul:
        head += " | matmul GFLOP/s" + (" | (d) FLOP util." if "train" in names else "")
        rule += " | ---:" + (" | ---:" if "train" in names else "")
    head += " | compile s (" + ", ".join(p for p in names) + ") | load |"
    rule += " | --- | --- |"
    lines = [head, rule]
    for r in results:
        sps = r["steps_per_s"]
        cells = [str(r["num_envs"]), str(r["num_steps"]), str(r["calls_per_timing"])]
        cells += [format_rate(sps[p]) for p in names]
        if "train" in names:
            # The model's FLOPs per rollout step computed (an episodic algorithm's padded
            # steps are computed too, though they are no env steps).
            model = flops.total * r.get("computed_steps_per_s", sps)["train"]
            ms = r.get("ms_per_update", {}).get("train")
            if ms is None:  # results saved before ms_per_update
                ms = 1e3 * r["env_steps_per_call"] / r["calls_per_timing"] / sps["train"]
            cells += [f"{ms:.1f}", f"{model / 1e9:.1f}"]
        if matmul:
            cells.append(f"{r['matmul']['flops_per_s'] / 1e9:.0f}")
            if "train" in names:
                cells.append(f"{100 * model / r['matmul']['flops_per_s']:.1f}%")
        cells.append(", ".join(f"{r['compile_s'][p]:.1f}" for p in names))
        cells.append(f"{r['load_average'][0][0]}-{r['load_average'][-1][0]}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reference_table(results: list[dict], label: str) -> str:
    """A markdown table of ``pgjax bench --reference``: per N, (d)'s and the reference's
    steps/s, the median of the per-round ratios, their range, the target and the load;
    ``label`` names the algorithm (``"ppo 4 epochs x 4 minibatches"``)."""
    lines = ["| algorithm | N | T | U | pgjax steps/s | reference steps/s | pgjax/reference "
             "(median) | per-round range | >= {:g}x | busy core | load |".format(REFERENCE_TARGET),
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- |"]
    for r in results:
        ratio, sps = r["reference"], r["steps_per_s"]
        lines.append(
            f"| {label} | {r['num_envs']} | {r['num_steps']} | {r['calls_per_timing']} | "
            f"{format_rate(sps['train'])} | {format_rate(sps['reference'])} | "
            f"{ratio['median']:.2f} | {ratio['min']:.2f}-{ratio['max']:.2f} | "
            f"{'met' if ratio['median'] >= REFERENCE_TARGET else 'missed'} | "
            f"{'on' if r.get('busy_core') else 'off'} | "
            f"{r['load_average'][0][0]}-{r['load_average'][-1][0]} |")
    return "\n".join(lines)


def plot(results: list[dict], path: str, title: str) -> None:
    """Log-log plot of env steps/s against N, one line per phase."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ns = [r["num_envs"] for r in results]
    for p in PHASES:
        if p in results[0]["steps_per_s"]:
            ax.plot(ns, [r["steps_per_s"][p] for r in results], marker="o", label=PHASE_TITLES[p])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("parallel environments N")
    ax.set_ylabel("env steps / s")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
