"""What every executor is: one host a command runs on, and the result it returns.

Below both executors (``remote.LocalExecutor``, ``ssh.SshExecutor``), so neither imports the
other's module; ``remote`` re-exports these names, where callers have always found them.
"""

from __future__ import annotations

import io
import shlex
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from . import lifetime
from .exceptions import RemoteError

HostKeyPolicy = str  # "strict" | "accept-new" | "insecure"

#: Seconds a killed command gets to end before its output is given up on.
KILL_WAIT_S = lifetime.GRACE_S + 5.0

def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class CommandResult:
    host: str
    command: str
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float
    started_utc: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def exports(env: Mapping[str, str] | None) -> str:
    """``export`` lines for a script read from standard input (never a command line)."""
    return "".join(f"export {name}={shlex.quote(str(value))}\n" for name, value in (env or {}).items())


def with_env(command: str, env: Mapping[str, str] | None) -> str:
    """A script setting ``env`` then running ``command``; executors send it on stdin, never in argv."""
    if not env:
        return command
    return exports(env) + command


def _guarded(script: str) -> str:
    """The script ``bash -s`` reads: parsed whole before it runs, so the command cannot eat the rest of it."""
    return "{\n" + script + "\n} </dev/null\n"


def _timed_out(stderr: str, timeout: float | None) -> str:
    return stderr + f"\nvhpc: timed out after {timeout} s"


class Executor(ABC):
    """One host a command can run on."""

    name: str
    is_local: bool

    def run(self, command: str, *, env: Mapping[str, str] | None = None, timeout: float | None = None,
            warn: bool = False) -> CommandResult:
        """Run a shell command; raise ``RemoteError`` on non-zero exit unless ``warn``.

        A command past ``timeout`` is killed with its process group and returns exit code 124.
        """
        started = utc_now()
        t0 = time.perf_counter()
        exit_code, out, err = self._run(with_env(command, env), timeout)
        result = CommandResult(self.name, command, exit_code, out, err, time.perf_counter() - t0, started)
        if not warn and exit_code != 0:
            raise RemoteError("command failed: " + command[:200], host=self.name, command=command,
                              exit_code=exit_code, stdout=out, stderr=err)
        return result

    @abstractmethod
    def _run(self, script: str, timeout: float | None) -> tuple[int, str, str]:
        """Run a script (variables as ``export`` lines in it: it travels on stdin, never in argv)."""

    @abstractmethod
    def put(self, local: str | Path | IO, remote: str) -> None: ...

    @abstractmethod
    def get(self, remote: str, local: str | Path) -> None: ...

    @abstractmethod
    def kill_job(self, tag: str, sid: int | None = None) -> list[int]:
        """Kill what is left of a job on this host (its session if ``sid``, and every process tagged ``tag``)."""

    def put_text(self, text: str, remote: str) -> None:
        self.put(io.StringIO(text), remote)

    def close(self) -> None:  # noqa: B027 - nothing to release unless a subclass holds a connection
        pass

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
