"""Test-session setup.

pgjax is imported first so its XLA CPU workaround (see pgjax/__init__.py) is in
XLA_FLAGS before anything starts the XLA backend: importing gymnax does, and
test modules import gymnax-based helpers before pgjax.
"""

import sys

import pgjax  # noqa: F401  (must come before any import that runs a computation)
import pytest

# Scripts that tests run in subprocesses (with their own XLA_FLAGS), not test modules.
collect_ignore = ["sharding_check.py"]


# The command-running test modules (test_run, test_reliability): one compilation cache and
# one working directory per module, shared by its tests.
@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("jax-cache")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("work")



@pytest.fixture
def hide_package(monkeypatch):
    """``hide_package(name)`` makes ``import name`` (and its submodules) raise ImportError for
    one test, as where an optional extra is not installed: its loaded modules are dropped and
    the name set to None in ``sys.modules``."""
    def hide(package: str) -> None:
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            monkeypatch.delitem(sys.modules, name)
        monkeypatch.setitem(sys.modules, package, None)

    return hide
