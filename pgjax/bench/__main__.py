"""``python -m pgjax.bench``: the same as ``pgjax bench``."""

import sys

from pgjax.bench.cli import main

sys.exit(main())
