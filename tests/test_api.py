"""The public API: every name in __all__ resolves and is documented."""

import subprocess
import sys

import pgjax


def test_every_public_name_resolves_and_has_a_docstring():
    for name in pgjax.__all__:
        obj = getattr(pgjax, name)
        assert obj.__doc__, f"pgjax.{name} has no docstring"


def test_import_pgjax_does_not_import_gymnax_or_flax():
    code = "import sys, pgjax; print('gymnax' in sys.modules, 'flax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
