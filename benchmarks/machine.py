"""The machine a benchmark ran on, for the header of every results table.

One home: :mod:`pgjax.bench` (installed with the package, so ``pgjax bench`` has it too);
the scripts in ``benchmarks/`` import it from here.
"""

from pgjax.bench import load_average, machine_info

__all__ = ["load_average", "machine_info"]
