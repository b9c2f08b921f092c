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


@pytest.fixture
def check_missing_family():
    """``check_missing_family(family, env_name)``: with the family's library hidden
    (``hide_package``), ``make_env(env_name)`` fails with one line naming the family and its
    extra, ``env_names()`` lists none of its envs, and ``pgjax envs``' closing lines name it
    as not installed."""
    from pgjax.envs import env_names, make_env  # noqa: PLC0415
    from pgjax.host.commands import family_lines  # noqa: PLC0415  (the end of `pgjax envs`)

    def check(family: str, env_name: str) -> None:
        with pytest.raises(ValueError) as error:
            make_env(env_name)
        message = str(error.value)
        assert "\n" not in message
        assert message.startswith(f"env {env_name!r}: the {family} env family needs its "
                                  "library, which is not installed (ModuleNotFoundError")
        assert message.endswith(f"install it with: pip install 'pgjax[{family}]'")
        assert not [row for row in env_names() if row[0] == family]  # lists nothing
        lines = family_lines(env_names())
        assert family not in lines[0]
        assert f"{family} (pip install 'pgjax[{family}]')" in lines[1]

    return check
