"""The ``pgjax`` command.

So far: ``pgjax --version`` and ``pgjax envs`` (the supported environments and
their spaces). Training from the command line (``pgjax train``) is not built
yet; until it is, train from Python with :func:`pgjax.make_train` (README,
"Train from your own JAX code").
"""

from __future__ import annotations

import argparse
import sys

import pgjax  # first: its XLA CPU workaround must precede any computation


def _envs() -> int:
    import gymnax

    from pgjax.envs import make_env

    width = max(len(name) for name in gymnax.registered_envs)
    for name in gymnax.registered_envs:
        try:
            spec = make_env(name).spec
        except Exception as error:  # noqa: BLE001  (list what cannot be built, with why)
            print(f"{name:<{width}}  not supported: {error}")
            continue
        space = spec.action_space
        action = (f"Discrete({space.n})" if spec.discrete
                  else f"Box(shape={space.shape}, low={space.low}, high={space.high})")
        print(f"{name:<{width}}  obs {spec.obs_shape}  action {action}  "
              f"max_steps {spec.max_steps_in_episode}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pgjax", description="High-throughput policy-gradient RL in JAX.",
        epilog="Training from the command line is not built yet: use pgjax.make_train from Python.")
    parser.add_argument("--version", action="version", version=f"pgjax {pgjax.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("envs", help="list the gymnax environments with their observation and action spaces")
    args = parser.parse_args(argv)
    if args.command == "envs":
        return _envs()
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
