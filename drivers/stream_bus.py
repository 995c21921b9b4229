"""Owner of a device-paced ASCII stream (the densitometer): listen, parse, never send.

The connection is opened through pyserial-asyncio-fast (a device path) or as plain TCP (a serial
device server's `socket://host:port`), with a protocol that only receives: it keeps no reference
to the transport's write side, so no byte can reach the instrument. No valid sentence for
`silence_timeout_s` marks the device BAD and reconnects, with exponential backoff, forever.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Coroutine
from typing import Any

import serial_asyncio_fast

from drivers.bus_owner import BusOwner, Wiring
from drivers.sample import Batch, bad_batch
from drivers.sentence import SentenceDecoder, SentenceParser
from drivers.spec import AsciiStreamBus
from drivers.stats import DeviceStats


class _Listener(asyncio.Protocol):
    """Receive-only protocol: bytes -> sentences -> batches on a queue, timestamped at arrival."""

    def __init__(self, owner: StreamBusOwner) -> None:
        self.owner = owner
        self.lost = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.owner.on_bytes(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class StreamBusOwner(BusOwner):
    def __init__(
        self,
        wiring: Wiring,
        bus: AsciiStreamBus,
        decoder: SentenceDecoder,
        device_stats: DeviceStats,
    ) -> None:
        super().__init__(wiring, bus)
        self.bus = bus
        self.decoder = decoder
        self.parser = SentenceParser()
        self.dstats = device_stats
        self._batches: asyncio.Queue[Batch] = asyncio.Queue(maxsize=1000)
        self.overflow = 0

    def on_bytes(self, data: bytes) -> None:
        """Sentences that arrive in one read are stamped 1 ns apart, the last at the arrival:
        one stamp for two samples of a channel would be one point in InfluxDB (same series and
        time overwrite) and two in the recording."""
        t = self.clock_ns()
        sentences = self.parser.feed(data)
        t -= len(sentences) - 1
        for k, s in enumerate(sentences):
            batch = self.decoder.decode(s, t + k)
            if batch is None:
                continue
            try:
                self._batches.put_nowait(batch)
            except asyncio.QueueFull:
                self.overflow += 1
        d = self.dstats
        d.bad_frames = self.parser.bad_frames + self.decoder.bad_frames
        d.seq_gaps = self.decoder.seq_gaps
        d.lost_sentences = self.decoder.lost_sentences
        d.seq_resyncs = self.decoder.seq_resyncs

    async def _open(self) -> tuple[asyncio.BaseTransport, _Listener]:
        b = self.bus
        loop = asyncio.get_running_loop()
        url = urllib.parse.urlsplit(b.url)
        opening: Coroutine[Any, Any, tuple[asyncio.BaseTransport, asyncio.BaseProtocol]]
        if url.scheme == "socket":
            # a serial device server: a plain TCP connection (pyserial-asyncio-fast's socket://
            # path sets attributes on the loop's transport, which uvloop's refuses)
            if not url.hostname or not url.port:
                raise ValueError(f"{b.url}: a socket:// URL needs host:port")
            opening = loop.create_connection(lambda: _Listener(self), url.hostname, url.port)
        else:
            opening = serial_asyncio_fast.create_serial_connection(
                loop,
                lambda: _Listener(self),
                b.url,
                baudrate=b.baudrate,
                bytesize=b.bytesize,
                parity=b.parity,
                stopbits=b.stopbits,
            )
        transport, proto = await asyncio.wait_for(opening, timeout=max(b.silence_timeout_s, 1.0))
        assert isinstance(proto, _Listener)
        return transport, proto

    async def run(self) -> None:
        dev = self.decoder.device_id
        while True:
            try:
                transport, proto = await self._open()
            except Exception:  # any open failure (termios, OSError, bad URL) means retry later
                self.stats.connect_failures += 1
                self.dstats.state = "link_down"
                await self.emit(bad_batch(dev, self.decoder.channels, self.clock_ns()))
                await self.before_reconnect()
                continue
            self.stats.connected = True
            self.stats.connects += 1
            self.decoder.reset_sequence()
            try:
                got_any = await self._listen(proto)
            finally:
                self.stats.connected = False
                transport.close()
            self.stats.link_errors += 1
            await self.emit(bad_batch(dev, self.decoder.channels, self.clock_ns()))
            if got_any:
                self.link_works()
            await self.before_reconnect()

    async def _listen(self, proto: _Listener) -> bool:
        """Forward batches until silence or link loss; True if anything valid arrived."""
        got_any = False
        me = asyncio.current_task()
        while True:
            if me is not None and me.cancelling():
                raise asyncio.CancelledError
            get = asyncio.ensure_future(self._batches.get())
            done, _ = await asyncio.wait(
                {get, proto.lost},
                timeout=self.bus.silence_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if get not in done:
                get.cancel()
                await asyncio.gather(get, return_exceptions=True)  # our own cancel still raises
                if not done:
                    self.dstats.silences += 1
                    self.dstats.state = "silent"
                return got_any
            got_any = True
            self.dstats.polls_ok += 1
            self.dstats.state = "ok"
            await self.emit(get.result())
