"""A non-editable install works outside the repository: build the wheel, install it into a
folder of its own, and train from an empty directory with the presets it carries.

The wheel is built without build isolation (offline: the test extra brings setuptools), and
installed with ``--target`` and no dependencies, which come from the running environment.
"""

import ast
import importlib.metadata
import os
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _setuptools_ok() -> bool:
    try:
        major = int(importlib.metadata.version("setuptools").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return False
    return major >= 77  # pyproject.toml's build-system requirement


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(wheel, site folder, empty working folder) after building and installing pgjax."""
    if not _setuptools_ok():
        pytest.skip("needs setuptools>=77 to build the wheel offline (pip install -e '.[test]')")
    tmp = tmp_path_factory.mktemp("install")
    # Build from a copy: a build in the checkout would leave build/ and *.egg-info there, and a
    # stale build/ could put deleted files into the wheel.
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "pgjax", src / "pgjax", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"),
                    str(src)], check=True, cwd=tmp, timeout=300)
    (wheel,) = (tmp / "dist").glob("pgjax-*.whl")
    site = tmp / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
                   check=True, cwd=tmp, timeout=300)
    work = tmp / "work"
    work.mkdir()
    return wheel, site, work


def _run(args, site, work, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)


def test_wheel_carries_the_presets_and_the_type_marker(installed):
    wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    presets = {p.name for p in (ROOT / "pgjax" / "presets").glob("*.yaml")}
    assert presets and {f"pgjax/presets/{p}" for p in presets} <= names
    assert "pgjax/py.typed" in names and "pgjax/bench/__main__.py" in names


def test_installed_package_finds_its_presets_from_an_empty_directory(installed):
    _, site, work = installed
    code = ("import pgjax, pgjax.presets as p; print(pgjax.__file__); "
            "print(pgjax.load_config('cartpole_a2c').algorithm.name, len(p.preset_names()))")
    proc = _run([sys.executable, "-c", code], site, work)
    assert proc.returncode == 0, proc.stderr[-2000:]
    where, loaded = proc.stdout.split("\n")[:2]
    # The installed copy, not the checkout (the test environment may hold an editable install).
    assert pathlib.Path(where).resolve().is_relative_to(site.resolve())
    assert loaded == f"a2c {len(list((ROOT / 'pgjax' / 'presets').glob('*.yaml')))}"


@pytest.mark.parametrize("preset", [None, "cartpole_ppo"])
def test_pgjax_train_runs_from_an_empty_directory(installed, preset):
    _, site, work = installed
    out = work / f"run-{preset or 'default'}"
    command = [sys.executable, str(site / "bin" / "pgjax"), "--no-cache", "train",
               *([preset] if preset else []), "--set", "training.total_env_steps=20000",
               "--out", out.name]
    proc = _run(command, site, work)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (out / "summary.json").is_file() and (out / "metrics.csv").is_file()
    expected = "ppo" if preset else "a2c"
    assert f"algorithm:\n  name: {expected}" in (out / "config.yaml").read_text()
    assert not (work / "configs").exists()  # nothing but the run directories was needed


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_direct_import_is_a_declared_dependency(installed):
    wheel, _, _ = installed
    with zipfile.ZipFile(wheel) as z:
        metadata = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA")))
    requires = [line.split(":", 1)[1].strip() for line in metadata.decode().splitlines()
                if line.startswith("Requires-Dist:")]
    declared = {_normalise(re.split(r"[ ;<>=!~\[(]", r)[0]) for r in requires
                if "extra ==" not in r}
    # The trackers' packages (pgjax[tensorboard], ...), imported only inside functions
    extras = {_normalise(re.split(r"[ ;<>=!~\[(]", r)[0]) for r in requires
              if "extra ==" in r and "extra == \"test\"" not in r}
    imported, top_level = set(), set()
    for path in (ROOT / "pgjax").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = {node.module.split(".")[0]}
            else:
                continue
            imported |= names
            if node in tree.body:
                top_level |= names
    third_party = sorted(imported - set(sys.stdlib_module_names) - {"pgjax", "__future__"})
    distributions = importlib.metadata.packages_distributions()

    def dists(module):
        return {_normalise(d) for d in distributions.get(module, [module])}

    missing = [m for m in third_party if not dists(m) & (declared | extras)]
    assert not missing, f"imported by pgjax/ but not in pyproject.toml's dependencies: {missing}"
    optional = [m for m in top_level if m in third_party and not dists(m) & declared]
    assert not optional, f"an extra's package imported at the top of a module: {optional}"
