"""The ``cflearn`` command line: one module per command (``cflearn/cli/<command>.py``).

A command module names itself (``NAME``, ``SUMMARY``, ``ORDER`` in the help), adds its arguments
(``add_parser(sub)``) and runs (``run(args) -> exit code``); it may also set ``start(args, argv)`` as a
default, to hand the work to other processes (``fit --nproc``). Adding a command is adding a module.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from ._common import cflearn_warnings, cli_words, shown, terminated, version

__all__ = ["main", "commands"]


def commands() -> list[ModuleType]:
    """The command modules of this package (every module whose name has no leading underscore), in
    their ``ORDER``."""
    found = [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)
             if not m.name.startswith("_")]
    return sorted(found, key=lambda module: (module.ORDER, module.NAME))


def _parser() -> argparse.ArgumentParser:
    found = commands()
    width = max(len(c.NAME) for c in found) + 1
    description = ("Collaborative filtering on top of fastai: train a recommender from a ratings table.\n\ncommands:\n"
                   + "".join(f"  {c.NAME:<{width}} {c.SUMMARY}\n" for c in found))
    parser = argparse.ArgumentParser(prog="cflearn", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"cflearn {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in found:
        command.add_parser(sub).set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 cflearn error, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    from .._errors import CflearnError

    with cflearn_warnings(), terminated() as stopped:
        try:
            start = getattr(args, "start", None)  # a command that may hand the work to other processes
            if start is not None:
                code = start(args, argv)
                if code is not None:
                    return code
            from ..train._launch import torchrun_env, watch_launcher

            if torchrun_env() is not None:
                watch_launcher()
            return int(args.run(args))
        except CflearnError as e:
            print(f"cflearn: error: {shown(cli_words(str(e)))}", file=sys.stderr)
            return 1
        except (MemoryError, RuntimeError) as e:
            if not isinstance(e, MemoryError) and "allocate" not in str(e) and "out of memory" not in str(e):
                raise
            from .._errors import first_line

            print(f"cflearn: error: out of memory ({shown(first_line(e))[:200]}); use a machine with more memory, "
                  "or fewer ratings", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            from ..runs._runs import COMMITTED

            done = f"the run was already written to {shown(COMMITTED[-1])}" if COMMITTED else (
                "nothing was written (an earlier run in --out is untouched)")
            print(f"cflearn: interrupted; {done}", file=sys.stderr)
            return 143 if stopped else 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
