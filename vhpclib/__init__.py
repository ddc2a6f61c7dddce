"""vHPC: measure what virtualization costs an HPC cluster, reproducibly."""

import sys as _sys

__version__ = "0.1.0"


def _interrupted_while_starting(signum: int, frame: object) -> None:
    """Ctrl-C before the CLI's ``main`` runs (Python still compiling and importing): one line, no traceback."""
    import os

    os.write(2, b"vhpc: error: interrupted\n")
    os._exit(130)


def _starting_the_program() -> bool:
    """Whether this import starts the ``vhpc`` program (console script or ``python -m vhpclib.cli``)."""
    argv = getattr(_sys, "orig_argv", [])
    if _sys.argv and _sys.argv[0].rsplit("/", 1)[-1] == "vhpc":
        return True
    return "-m" in argv and argv[argv.index("-m") + 1:argv.index("-m") + 2] == ["vhpclib.cli"]


if _starting_the_program():  # the CLI's main() puts Python's own handler back once it runs
    import _signal  # the builtin C module: importing `signal` runs Python code a Ctrl-C could land in

    try:
        _signal.signal(_signal.SIGINT, _interrupted_while_starting)
    except ValueError:  # not the main thread: nothing to protect
        pass
