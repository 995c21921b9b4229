"""systemd's notify protocol (READY, WATCHDOG, STATUS, STOPPING) without a dependency.

A no-op when `NOTIFY_SOCKET` is unset, so the daemon runs the same under a terminal.
"""

from __future__ import annotations

import contextlib
import os
import socket


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        addr = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        if addr.startswith("@"):
            addr = "\0" + addr[1:]  # abstract namespace socket
        self._addr = addr
        self._sock: socket.socket | None = None
        if addr:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, **fields: str | int) -> None:
        """Send `KEY=value` lines; losing one (full socket buffer) is harmless."""
        if self._sock is None:
            return
        msg = "\n".join(f"{k.upper()}={v}" for k, v in fields.items())
        with contextlib.suppress(OSError):
            self._sock.sendto(msg.encode(), self._addr)

    def ready(self, status: str) -> None:
        self.notify(ready=1, status=status, mainpid=os.getpid())

    def watchdog(self) -> None:
        self.notify(watchdog=1)

    def status(self, text: str) -> None:
        self.notify(status=text)

    def stopping(self) -> None:
        self.notify(stopping=1)

    def reloading(self) -> None:
        self.notify(reloading=1)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s() -> float | None:
    """Half the interval systemd expects pings at, or None when no watchdog is set up."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6
