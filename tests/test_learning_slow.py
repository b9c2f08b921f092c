"""Long learning runs (``make test-slow``): the shipped configs reach their targets.

Each test trains a row of the learning table (``benchmarks/learning.py``, one
home for the rows, targets and budgets) with 2 seeds in one vmapped program and
checks the mean final greedy return against the row's target. Minutes each on
a 2-core CPU; the Breakout-MinAtar rows (10M env steps) are left to
``benchmarks/learning.py`` itself.
"""

import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("learning", ROOT / "benchmarks" / "learning.py")
learning = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(learning)

ROWS = [row for row in learning.ROWS if "MinAtar" not in row.env]


@pytest.mark.slow
@pytest.mark.parametrize("row", ROWS, ids=[pathlib.Path(r.config).stem for r in ROWS])
def test_shipped_config_reaches_its_target(row):
    result = learning.run_row(row, seeds=2, overrides=[])
    assert "final_mean" in result, result["status"]
    assert result["final_mean"] >= row.target, result
