"""The machine the benchmarks run on: prints the header every benchmark prints first.

The code is :mod:`pgjax.bench.machine` (installed with the package, so ``pgjax bench`` has it
too); the scripts in ``benchmarks/`` import it from :mod:`pgjax.bench`.

Usage (from the repository root):
  .venv/bin/python benchmarks/machine.py          # the header
  .venv/bin/python benchmarks/machine.py --json   # every field, as JSON
"""

import argparse
import json
import sys

import pgjax  # noqa: F401  (first: its XLA CPU workaround must precede any computation)
from pgjax.bench import header, machine_info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print every field as JSON")
    args = parser.parse_args(argv)
    machine = machine_info()
    print(json.dumps(machine, indent=2) if args.json else
          header("machine", machine, "benchmarks/machine.py"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
