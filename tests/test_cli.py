"""The pgjax command as built so far: --version and envs."""

import subprocess
import sys

import pgjax


def _pgjax(*args):
    return subprocess.run([sys.executable, "-m", "pgjax.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_version():
    out = _pgjax("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"pgjax {pgjax.__version__}"


def test_envs_lists_spaces():
    out = _pgjax("envs")
    assert out.returncode == 0, out.stderr[-2000:]
    lines = {line.split()[0]: line for line in out.stdout.splitlines()}
    assert "Discrete(2)" in lines["CartPole-v1"] and "obs (4,)" in lines["CartPole-v1"]
    assert "Box(shape=(1,), low=-2.0, high=2.0)" in lines["Pendulum-v1"]
    assert "obs (10, 10, 4)" in lines["Breakout-MinAtar"]
