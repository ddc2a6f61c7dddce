"""A small synchronous client of the QEMU Machine Protocol (QMP) over its unix socket.

QMP (QEMU's ``docs/interop/qmp-spec``): the server greets with ``{"QMP": ...}``,
the client enters command mode with ``qmp_capabilities``, then every
``{"execute": ..., "id": ...}`` gets one ``{"return": ...}`` or ``{"error":
...}`` carrying the same id; asynchronous ``{"event": ...}`` messages may come
in between and are kept in ``events``.
"""

from __future__ import annotations

import itertools
import json
import socket
import time
from pathlib import Path
from typing import Any

from ..exceptions import VmError


class QmpClient:
    """One QMP session; use as a context manager."""

    def __init__(self, path: str | Path, timeout: float = 10.0) -> None:
        self.path = str(path)
        self.timeout = timeout
        self.events: list[dict] = []
        self.greeting: dict = {}
        self._ids = itertools.count(1)
        self._sock: socket.socket | None = None
        self._reader = None

    def connect(self, wait: float = 0.0) -> "QmpClient":
        """Connect (retrying for ``wait`` seconds while the socket is not there yet) and negotiate."""
        deadline = time.monotonic() + wait
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.path)
                break
            except OSError as exc:
                sock.close()
                if time.monotonic() >= deadline:
                    raise VmError(f"cannot connect to QMP socket: {exc.strerror or exc}", file=self.path) from None
                time.sleep(0.1)
        self._sock = sock
        self._reader = sock.makefile("rb")
        greeting = self._read()
        if "QMP" not in greeting:
            self.close()
            raise VmError(f"not a QMP greeting: {str(greeting)[:100]}", file=self.path)
        self.greeting = greeting["QMP"]
        self.execute("qmp_capabilities")
        return self

    def _read(self) -> dict:
        assert self._reader is not None
        try:
            line = self._reader.readline()
        except OSError as exc:
            raise VmError(f"QMP read failed: {exc}", file=self.path) from None
        if not line:
            raise VmError("QMP connection closed by QEMU", file=self.path)
        try:
            message = json.loads(line)
        except ValueError:
            raise VmError(f"QMP sent something that is not JSON: {line[:100]!r}", file=self.path) from None
        if not isinstance(message, dict):
            raise VmError(f"QMP sent a non-object: {line[:100]!r}", file=self.path)
        return message

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run one command and return its ``return`` value; ``VmError`` with QEMU's description on error."""
        if self._sock is None:
            raise VmError("QMP client is not connected", file=self.path)
        ident = next(self._ids)
        request: dict[str, Any] = {"execute": command, "id": ident}
        if arguments:
            request["arguments"] = arguments
        try:
            self._sock.sendall(json.dumps(request).encode() + b"\r\n")
        except OSError as exc:
            raise VmError(f"QMP {command}: send failed: {exc}", file=self.path) from None
        while True:
            message = self._read()
            if "event" in message:
                self.events.append(message)
                continue
            if message.get("id") != ident:
                continue
            if "error" in message:
                error = message["error"]
                raise VmError(f"QMP {command}: {error.get('class')}: {error.get('desc')}", file=self.path)
            return message.get("return")

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "QmpClient":
        return self if self._sock is not None else self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()
