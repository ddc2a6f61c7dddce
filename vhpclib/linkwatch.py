"""Every host of a job is watched while it runs, not only the one it was launched from.

The launch host's connection notices its own dead link (``ssh.ChannelPump``).
A link to another host of the job dies silently: Hydra's ranks there stop
answering and the job hangs until its timeout. ``watch_links`` keeps one SSH
connection open to each other host during the job (its transport sends
keepalives and gives up after ``ssh.DEAD_LINK_S`` without an answer) and
looks at them every ``CHECK_S``; the first that is gone ends the job through
``on_dead(host, why)``: within about 30 s of the cut.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

#: Seconds between looks at the other hosts' connections.
CHECK_S = 2.0


@contextmanager
def watch_links(executors: Sequence[Any], on_dead: Callable[[str, str], None]) -> Iterator[None]:
    """Watch the SSH executors among ``executors`` for the block; ``on_dead`` is called at most once."""
    remote = [e for e in executors if not getattr(e, "is_local", True) and hasattr(e, "connected")]
    if not remote:
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(target=_watch, args=(remote, on_dead, stop), name="vhpc-linkwatch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=CHECK_S * 2)


def _watch(executors: Sequence[Any], on_dead: Callable[[str, str], None], stop: threading.Event) -> None:
    from .exceptions import HostUnreachable

    for executor in executors:  # a connection to watch (fingerprinting usually left one open)
        try:
            executor.open()
        except HostUnreachable as exc:
            on_dead(executor.name, f"cannot connect ({exc.message})")
            return
    while not stop.wait(CHECK_S):
        for executor in executors:
            transport = executor.connection.transport
            alive = transport is not None and transport.is_active()
            if alive:
                try:
                    transport.send_ignore()  # traffic, so an unanswered link times out (TCP_USER_TIMEOUT)
                except Exception:  # noqa: BLE001 - a transport dying under us: seen as dead below
                    alive = False
            if not alive:
                from .ssh import DEAD_LINK_S

                on_dead(executor.name, f"its SSH connection died (no answer for {DEAD_LINK_S} s)")
                return
