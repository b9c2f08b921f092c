"""Issue 13's "same numbers": the redesign (algorithms as modules, env adapters, injectable
networks) trains exactly as the code before it did.

``tests/same_numbers_short.json`` was recorded with ``tests/same_numbers.py --write-short``
on commit 37fcb2f (before the redesign); each case here runs two updates from the same key
through the public API and must match to float32 rounding (rtol 1e-5: two updates are few
enough that a CPU with other vector units rounds the same to that level). The stronger check,
bit-identical parameters after whole short runs, is ``tests/same_numbers.py --check
tests/same_numbers.json`` on the machine that recorded it (docs in that script).
"""

import json
import pathlib

import numpy as np
import pytest

from same_numbers import CASES, short_fingerprint

RECORDED = json.loads((pathlib.Path(__file__).parent / "same_numbers_short.json").read_text())


@pytest.mark.parametrize("name, preset, overrides", CASES, ids=[c[0] for c in CASES])
def test_two_updates_match_the_numbers_recorded_before_the_redesign(name, preset, overrides):
    got, want = short_fingerprint(preset, overrides), RECORDED[name]
    for key in ("params_sum", "params_abs_sum", "params_sq_sum"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, err_msg=key)
    np.testing.assert_allclose(got["losses"], want["losses"], rtol=1e-4, atol=1e-7)
