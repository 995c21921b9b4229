"""Byte links the emulators serve over: a loopback TCP listener or a pseudo-terminal.

Both look the same to an emulator: `on_data(link, bytes)` in, `link.write(bytes)` out, so the
RTU bus and the densitometer run unchanged over a serial device server or a local serial port.
The pty side keeps its own slave fd open, so a master closing the port never turns into EIO.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import tty
from typing import Literal, cast

Mode = Literal["tcp", "pty"]


class Link:
    """One connected peer; `write` never blocks (a full pty buffer drops, like a UART would)."""

    def __init__(self, server: LinkServer) -> None:
        self.server = server
        self.buf = bytearray()
        self.rx_bytes = 0

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _TcpLink(Link, asyncio.Protocol):
    transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's: no subclass
        if time.monotonic() < self.server.refuse_until:
            transport.abort()
            return
        self.server.links.add(self)
        self.server.on_connect(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.links.discard(self)

    def data_received(self, data: bytes) -> None:
        self.rx_bytes += len(data)
        self.server.rx_bytes += len(data)
        self.server.on_data(self, data)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class _PtyLink(Link):
    def __init__(self, server: LinkServer, master_fd: int) -> None:
        super().__init__(server)
        self.fd = master_fd

    def write(self, data: bytes) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self.fd, data)

    def close(self) -> None:
        """A serial line cannot hang up; drop what is buffered instead."""
        self.buf.clear()


class LinkServer:
    """Base for emulators that serve a byte stream; subclasses implement `on_data`."""

    def __init__(self, *, mode: Mode = "tcp", host: str = "127.0.0.1", port: int = 0) -> None:
        if mode not in ("tcp", "pty"):
            raise ValueError(f"mode must be 'tcp' or 'pty', not {mode!r}")
        self.mode = mode
        self.host = host
        self.port = port
        self.links: set[Link] = set()
        self.refuse_until = 0.0
        self.rx_bytes = 0
        self._server: asyncio.Server | None = None
        self._fds: tuple[int, int] | None = None
        self.device_path = ""

    @property
    def endpoint(self) -> tuple[str, int] | str:
        """(host, port) for TCP, the slave device path for a pty."""
        return self.device_path if self.mode == "pty" else (self.host, self.port)

    def on_connect(self, link: Link) -> None:
        """Hook for subclasses."""

    def on_data(self, link: Link, data: bytes) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.mode == "tcp":
            self._server = await loop.create_server(lambda: _TcpLink(self), self.host, self.port)
            self.port = self._server.sockets[0].getsockname()[1]
            return
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._fds = (master, slave)
        self.device_path = os.ttyname(slave)
        link = _PtyLink(self, master)
        self.links.add(link)

        def readable() -> None:
            try:
                data = os.read(master, 4096)
            except (BlockingIOError, OSError):
                return
            link.rx_bytes += len(data)
            self.rx_bytes += len(data)
            self.on_data(link, data)

        loop.add_reader(master, readable)

    def disconnect(self, down_s: float = 0.0) -> None:
        """Drop every connection now and refuse new ones for `down_s` (TCP only)."""
        self.refuse_until = time.monotonic() + down_s
        for link in list(self.links):
            link.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for link in list(self.links):
                link.close()
            await self._server.wait_closed()
            self._server = None
        if self._fds is not None:
            asyncio.get_running_loop().remove_reader(self._fds[0])
            for fd in self._fds:
                os.close(fd)
            self._fds = None
        self.links.clear()

    async def __aenter__(self) -> LinkServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
