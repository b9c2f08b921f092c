"""The pgjax command's surface: --version, envs, --help against the README, and every bad
input refused on one line with exit code 2, writing nothing (run in-process: each fails
before anything compiles)."""

import argparse
import importlib.machinery
import pathlib
import subprocess
import sys
import types

import pgjax  # noqa: F401  (first: its XLA CPU workaround must precede gymnax)
import pytest

from pgjax import cli
from pgjax.config import save_config
from pgjax.host import cache, checks, config_io, programs, rundir

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
TINY = ["--set", "training.num_envs=4", "--set", "training.total_env_steps=3968",
        "--set", "training.num_chunks=4", "--set", "training.eval_episodes=4"]


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
    assert "obs Discrete(16)" in lines["FrozenLake-misc"]  # a state index, one-hot encoded
    families = lines["env"]  # "env families: gymnax (26 envs), gymnax-api, ...": the installed
    assert families.startswith("env families: gymnax (") and "gymnax-api" in families
    for family in ("brax", "xminigrid"):  # each either installed or named with its extra
        assert family in families or f"{family} (pip install 'pgjax[{family}]')" in lines.get(
            "not", "")


# ------------------------------------------------------------------ help and README
def _subparsers(parser):
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for command in ("train", "eval", "render", "compare", "envs", "bench"):
        assert command in text
    for command in ("train", "eval", "render", "compare", "envs"):
        with pytest.raises(SystemExit) as exit_:
            cli.main([command, "--help"])
        assert exit_.value.code == 0
        assert f"usage: pgjax {command}" in capsys.readouterr().out


def test_readme_documents_every_command_and_option():
    section = README.read_text().split("## Command line", 1)[1].split("\n## ", 1)[0]
    parser = cli.build_parser()
    for option in ("--version", "--cache-dir", "--no-cache"):
        assert option in section, option
    for name, sub in _subparsers(parser).items():
        assert f"pgjax {name}" in section, name
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert option in section, f"pgjax {name} {option}"
    for name in rundir.RUN_FILES:
        assert name in section, name


# ------------------------------------------------------------------ compilation cache
def test_cache_dir_resolution(monkeypatch, tmp_path):
    for name in ("PGJAX_CACHE_DIR", "PGJAX_NO_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    args = argparse.Namespace(cache_dir=None, no_cache=False)
    assert cache.cache_dir(args) == pathlib.Path.home() / ".cache" / "pgjax" / "jax"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_dir(args) == tmp_path / "pgjax" / "jax"
    monkeypatch.setenv("PGJAX_CACHE_DIR", str(tmp_path / "env"))
    assert cache.cache_dir(args) == tmp_path / "env"
    assert cache.cache_dir(argparse.Namespace(cache_dir=str(tmp_path / "flag"))) == tmp_path / "flag"
    assert cache.cache_dir(argparse.Namespace(cache_dir="x", no_cache=True)) is None
    monkeypatch.setenv("PGJAX_NO_CACHE", "1")
    assert cache.cache_dir(args) is None


# ------------------------------------------------------------------ bad input: exit 2
@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text("algorithm:\n  name: a2c\n  gamma: [0.9\n")
    (tmp_path / "typo.yaml").write_text("algorithm:\n  gama: 0.9\n")
    (tmp_path / "unreadable.yaml").mkdir()
    (tmp_path / "existing").mkdir()
    (tmp_path / "existing" / "notes.txt").write_text("mine")
    for name, overrides in (("run", []), ("reacher", ["env.name=Reacher-misc"])):
        (tmp_path / name).mkdir()
        config = config_io.read_config(config_io.resolve_config_path(None), overrides, None)
        save_config(config, tmp_path / name / "config.yaml")
    return tmp_path


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


BAD = [  # (argv, part of the one-line message)
    (["train", "--set", "algorithm.gama=0.9"], "algorithm.gama: unknown key; did you mean "
                                               "algorithm.gamma?"),
    (["train", "typo.yaml"], "typo.yaml: algorithm.gama: unknown key; did you mean"),
    (["train", "--set", "algorithm.n_steps=abc"], "algorithm.n_steps='abc': expected int, got str"),
    (["train", "--set", "algorithm.gamma=1.5"], "algorithm.gamma=1.5: must be in (0, 1]"),
    (["train", "--set", "optimizer.actor_lr=0"], "optimizer.actor_lr=0.0: must be > 0"),
    (["train", "--set", "training.num_envs=0"], "training.num_envs=0: must be >= 1"),
    (["train", "--set", "algorithm.n_steps=0"], "algorithm.n_steps=0: must be >= 1"),
    (["train", "--set", "algorithm.name=ppo", "--set", "algorithm.minibatches=3"],
     "algorithm.minibatches=3: must divide training.num_envs * algorithm.n_steps = 128"),
    (["train", "--set", "training.total_env_steps=100"],
     "training.total_env_steps=100: must cover one update"),
    (["train", "--set", "network.cnn=true"], "network.cnn=True: needs image observations"),
    (["train", "--set", "env.name=Pendulum-v1", "--set", "network.cnn=true"],
     "Pendulum-v1 has obs_shape (3,)"),
    (["train", "--set", "env.name=CartPol-v1"],
     "env.name: unknown environment 'CartPol-v1'; did you mean 'CartPole-v1' or "),
    (["train", "--set", "env.params.gravityy=1.0"], "unknown parameter(s) 'gravityy'"),
    (["train", "bad.yaml"], "bad.yaml:4: invalid YAML"),
    (["train", "missing.yaml"], "missing.yaml: cannot read config file"),
    (["train", "unreadable.yaml"], "unreadable.yaml: cannot read config file"),
    (["train", "--out", "existing"], "--out existing: the directory exists and is not empty; "
                                     "pass --force"),
    (["train", "--resume", "run", "--set", "algorithm.gamma=0.9"],
     "--resume run: the requested config differs from the run's in algorithm.gamma "
     "(0.99 -> 0.9)"),
    (["train", "--resume", "run", "--seeds", "3"], "training.num_seeds (1 -> 3)"),
    (["train", "--resume", "existing"], "--resume existing: not a pgjax run directory"),
    (["train", "--resume", "run", "--out", "elsewhere"], "--resume continues RUN_DIR in place"),
    (["eval", "run"], "run: no checkpoint yet"),
    (["eval", "nowhere"], "nowhere: not a pgjax run directory (no config.yaml)"),
    (["render", "reacher", "--out", "x.gif"], "gymnax's visualiser cannot draw Reacher-misc"),
    (["render", "run", "--out", "x.gif", "--seed-index", "1"],
     "--seed-index 1: the run has 1 seed(s)"),
    (["compare", "run/config.yaml", "typo.yaml"], "typo.yaml: algorithm.gama: unknown key"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exits_2_with_one_line(cwd, capsys, argv, message):
    before = _files(cwd)
    assert cli.main(["--no-cache", *argv]) == 2
    out = capsys.readouterr()
    assert out.err.count("\n") == 1 and out.err.startswith(f"pgjax {argv[0]}: error: "), out.err
    assert message in out.err, out.err
    assert _files(cwd) == before


def test_resume_refuses_a_checkpoint_that_dropped_updates(cwd, capsys):
    """A checkpoint from before uneven chunks (no "updates" in its progress): the default
    config's 3,906 updates ran as 20 chunks of 195, where they now run as 196 and 195."""
    import jax  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from pgjax.config import config_to_dict, load_config  # noqa: PLC0415

    config = load_config(cwd / "run" / "config.yaml")
    trainer = checks.build_trainer(config)
    assert not trainer.derived.even
    state = jax.tree.map(lambda a: jax.random.wrap_key_data(np.zeros(
        jax.eval_shape(jax.random.key_data, a).shape, np.uint32)) if rundir._is_key(a)
        else np.zeros(a.shape, a.dtype), programs.abstract_state(trainer, 1))
    checkpoints = rundir.Checkpoints(cwd / "run" / "checkpoints")
    checkpoints.save(1, state, {"chunk": 1, "elapsed_s": 0.0, "config": config_to_dict(config)},
                     0.0)
    checkpoints.close()
    before = _files(cwd)
    assert cli.main(["--no-cache", "train", "--resume", "run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoint chunk_1 was written by a pgjax that split" in err
    assert "all 3,906, in 20 chunks of 195-196" in err, err
    assert _files(cwd) == before


def test_render_of_classic_control_needs_no_pygame(cwd, capsys, monkeypatch):
    # CartPole passes render's env check without pygame and stops at the missing checkpoint
    # (tests/test_render.py draws every renderable env).
    monkeypatch.setitem(sys.modules, "pygame", None)  # `import pygame` fails
    assert cli.main(["--no-cache", "render", "run", "--out", "x.gif"]) == 2
    assert "run: no checkpoint yet" in capsys.readouterr().err


def test_memory_over_the_limit_is_refused(cwd, capsys, monkeypatch):
    memory = pytest.importorskip("pgjax.memory")
    monkeypatch.setattr(memory, "available_memory", lambda: 1024)
    before = _files(cwd)
    assert cli.main(["--no-cache", "train", *TINY, "--out", "new"]) == 2
    err = capsys.readouterr().err
    assert "estimated memory" in err and "over the 1.0 KiB available" in err, err
    assert _files(cwd) == before


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--seeds", "0"])
    assert exit_.value.code == 2
    assert "--seeds: '0' is not a positive integer" in capsys.readouterr().err


# ------------------------------------------------------------------ bench delegation
def test_bench_delegates_to_pgjax_bench(monkeypatch):
    calls = []
    fake = types.ModuleType("pgjax.bench")
    fake.__spec__ = importlib.machinery.ModuleSpec("pgjax.bench", None)
    fake.add_arguments = lambda parser: parser.add_argument("--quick", action="store_true")
    fake.run = lambda args: calls.append(args.quick) or 0
    monkeypatch.setitem(sys.modules, "pgjax.bench", fake)
    monkeypatch.setattr(pgjax, "bench", fake, raising=False)
    assert cli.main(["--no-cache", "bench", "--quick"]) == 0
    assert calls == [True]


def test_bench_missing_is_reported(monkeypatch, capsys):
    monkeypatch.setattr("importlib.util.find_spec",
                        lambda name, *a: None if name == "pgjax.bench" else
                        importlib.machinery.ModuleSpec(name, None))
    assert cli.main(["--no-cache", "bench"]) == 2
    assert capsys.readouterr().err.strip() == "pgjax bench is not available"

