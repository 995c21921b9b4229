"""The daemon's control socket: a unix socket in the data directory, one JSON object per line.

    server = await serve_control(path, handle)      # in the daemon; handle(doc) -> reply
    reply = request(path, {"action": "list"})       # from `chikyu-daq alarms ...`

Only local users with write access to the data directory can connect (the socket is created
mode 0660). A line that is not JSON gets a rejection, never a dropped connection; a line over
`MAX_LINE` bytes closes that connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024
Handler = Callable[[Any], dict[str, Any]]


class ControlServer:
    def __init__(self, path: Path, handle: Handler) -> None:
        self.path = path
        self.handle = handle
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_socket():
            if _alive(self.path):  # asyncio would replace it: refuse, that daemon keeps it
                log.error(
                    "control socket %s is served by another process; not replacing it", self.path
                )
                return
            self.path.unlink()  # left by a daemon that was killed
        try:
            self._server = await asyncio.start_unix_server(
                self._client, path=str(self.path), limit=MAX_LINE
            )
        except OSError as exc:  # e.g. another daemon owns it: commands degrade, acquisition runs
            log.error("control socket %s unavailable: %s", self.path, exc)
            return
        os.chmod(self.path, 0o660)
        log.info("control socket on %s", self.path)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    doc = json.loads(line)
                except ValueError as exc:
                    reply: dict[str, Any] = {"accepted": False, "reason": f"not JSON: {exc}"}
                else:
                    reply = self.handle(doc)
                writer.write(json.dumps(reply, default=str).encode() + b"\n")
                await writer.drain()
        except (ValueError, ConnectionError) as exc:  # over-long line, client gone
            log.warning("control socket client dropped: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _alive(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


class ControlError(Exception):
    """No daemon answered on the control socket."""


def request(path: Path, doc: dict[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
    """One command to a running daemon, its reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        try:
            s.connect(str(path))
        except OSError as exc:
            raise ControlError(f"no daemon on {path}: {exc.strerror or exc}") from None
        s.sendall(json.dumps(doc).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise ControlError(f"daemon on {path} closed the connection")
            buf += chunk
    return dict(json.loads(buf))
