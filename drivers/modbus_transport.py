"""The only way the drivers talk Modbus: a lean, read-only client built of pymodbus' own pieces.

pymodbus' PDU classes encode the two reads (FC 3 and 4, from a table that holds only those two,
so no write function code can leave this module); its framers (`FramerSocket` for Modbus TCP,
`FramerRTU` for RTU on a serial line or through a serial device server's socket) frame the
requests and find, check (CRC, unit and transaction id) and decode the responses; its serial
transport opens local ports. Left out is pymodbus' client transaction layer: a lock, a
task-creating `wait_for`, per-request tracing and its own reconnect rules cost more than the
Modbus itself at the installation's ~110 transactions/s (`benchmarks/bench_live.py`). The bus
owner serialises its transactions and re-opens a lost link with backoff, forever.

Per attempt one `call_later` timer; `retries` further attempts after a silent one (TCP keeps the
transaction id, so a late reply to the first still answers). Bytes that arrive with no request
waiting are dropped, and the receive buffer is emptied before each request: a late reply never
answers the next one. A frame that fails its CRC or names another unit or transaction is skipped
(silence: `NoResponse`); one that pymodbus cannot decode is a `BadReply`.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import cast

from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerRTU, FramerSocket
from pymodbus.pdu import DecodePDU, ModbusPDU
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    ReadInputRegistersResponse,
)
from pymodbus.transport.serialtransport import create_serial_connection

from drivers.errors import BadReply, ExceptionReply, LinkDown, NoResponse
from drivers.regmap import ReadRequest
from drivers.spec import ModbusRtuSerialBus, ModbusRtuTcpBus, ModbusTcpBus

ModbusBus = ModbusTcpBus | ModbusRtuTcpBus | ModbusRtuSerialBus

#: pymodbus logs skipped frames at ERROR; the drivers count them instead.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

#: The reads, and nothing else, by function code.
_READS: dict[int, type[ModbusPDU]] = {
    3: ReadHoldingRegistersRequest,
    4: ReadInputRegistersRequest,
}
#: A receive buffer longer than any response (260 bytes) holds no frame worth waiting for.
MAX_BUFFER = 1024


def _unpack_registers(pdu: ReadHoldingRegistersResponse, data: bytes) -> None:
    """pymodbus' register response decode (same registers, same refusal) in one `unpack`
    instead of one per register: a third of the cost of a reply at the installation's sizes."""
    if (byte_count := data[0]) >= len(data):
        raise ModbusIOException(
            f"byte_count {byte_count} > length of packet {len(data)}",
            function_code=pdu.function_code,
        )
    n = byte_count // 2
    pdu.registers = list(struct.unpack(f">{n}H", data[1 : 1 + 2 * n]))


class _HoldingRegisters(ReadHoldingRegistersResponse):
    decode = _unpack_registers


class _InputRegisters(ReadInputRegistersResponse):
    decode = _unpack_registers


def _decoder() -> DecodePDU:
    """pymodbus' response decoder with the two register responses unpacked at once."""
    decoder = DecodePDU(is_server=False)
    decoder.register(_HoldingRegisters)
    decoder.register(_InputRegisters)
    return decoder


class _Silence(Exception):
    """One attempt timed out (internal: retried, then `NoResponse`)."""


def _expire(fut: asyncio.Future[ModbusPDU]) -> None:
    if not fut.done():
        fut.set_exception(_Silence())


class _Link(asyncio.Protocol):
    """One open connection: hands the response to the request waiting for it, if any."""

    def __init__(self, framer: FramerSocket | FramerRTU) -> None:
        self.framer = framer
        self.transport: asyncio.Transport | None = None
        self.made: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buf = b""
        self.waiter: asyncio.Future[ModbusPDU] | None = None
        self.unit = 0
        self.tid = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # no isinstance check: uvloop's transports do not derive from asyncio.Transport
        self.transport = cast(asyncio.Transport, transport)
        if not self.made.done():
            self.made.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        why = LinkDown(f"connection lost: {exc}" if exc else "connection closed")
        if not self.made.done():
            self.made.set_exception(why)
        w = self.waiter
        if w is not None and not w.done():
            w.set_exception(why)

    def data_received(self, data: bytes) -> None:
        w = self.waiter
        if w is None or w.done():
            return  # nobody asked: a late reply, dropped
        buf = self.buf + data if self.buf else data
        try:
            used, pdu = self.framer.handleFrame(buf, self.unit, self.tid)
        except ModbusIOException as err:  # a frame pymodbus cannot decode
            self.buf = b""
            w.set_exception(BadReply(str(err)))
            return
        if pdu is not None:
            self.buf = b""
            w.set_result(pdu)
            return
        buf = buf[used:]
        self.buf = buf if len(buf) <= MAX_BUFFER else b""


class ModbusTransport:
    """One connection of one bus; not safe for concurrent use (its bus owner serialises)."""

    def __init__(self, bus: ModbusBus) -> None:
        self.bus = bus
        self.last_error = ""
        decoder = _decoder()
        self._tcp = isinstance(bus, ModbusTcpBus)
        self._framer = FramerSocket(decoder) if self._tcp else FramerRTU(decoder)
        self._link: _Link | None = None
        self._tid = 0
        #: (unit, request) -> the PDU's bytes (function code + body); RTU: the whole frame
        self._frames: dict[tuple[int, ReadRequest], bytes] = {}

    @property
    def connected(self) -> bool:
        link = self._link
        return link is not None and link.transport is not None

    async def connect(self) -> bool:
        """False on any failure: a port that rejects its settings must not kill the bus task."""
        loop = asyncio.get_running_loop()
        bus, framer = self.bus, self._framer
        link: _Link | None = None

        def factory() -> _Link:
            nonlocal link
            link = _Link(framer)
            return link

        try:
            async with asyncio.timeout(bus.timeout_s):
                if isinstance(bus, ModbusRtuSerialBus):
                    await create_serial_connection(
                        loop,
                        factory,
                        bus.device,
                        baudrate=bus.baudrate,
                        bytesize=bus.bytesize,
                        parity=bus.parity,
                        stopbits=bus.stopbits,
                    )
                else:
                    await loop.create_connection(factory, bus.host, bus.port)
                assert link is not None
                await link.made
        except Exception as err:  # termios.error, SerialException, OSError, timeout...
            self.last_error = f"{type(err).__name__}: {err}"
            if link is not None and link.transport is not None:
                link.transport.close()
            return False
        self._link = link
        return True

    def _frame(self, unit: int, req: ReadRequest, tid: int) -> bytes:
        body = self._frames.get((unit, req))
        if body is None:
            pdu = _READS[req.function](address=req.address, count=req.count, dev_id=unit)
            body = pdu.function_code.to_bytes(1, "big") + pdu.encode()
            if not self._tcp:  # RTU: the whole frame is constant
                body = self._framer.encode(body, unit, 0)
            self._frames[(unit, req)] = body
        # TCP: the MBAP header carries the transaction id, framed per request
        return self._framer.encode(body, unit, tid) if self._tcp else body

    async def read(self, unit: int, req: ReadRequest) -> list[int]:
        """Registers of one read; raises `LinkDown` or a `DeviceError`."""
        link = self._link
        if link is None or link.transport is None:
            raise LinkDown("not connected")
        tid = 0
        if self._tcp:
            tid = self._tid = self._tid % 65000 + 1
        frame = self._frame(unit, req, tid)
        loop = asyncio.get_running_loop()
        timeout = self.bus.timeout_s
        attempts = self.bus.retries + 1
        for _ in range(attempts):
            transport = link.transport
            if transport is None:
                raise LinkDown("connection lost")
            fut: asyncio.Future[ModbusPDU] = loop.create_future()
            link.waiter, link.unit, link.tid, link.buf = fut, unit, tid, b""
            transport.write(frame)
            timer = loop.call_later(timeout, _expire, fut)
            try:
                pdu = await fut
                break
            except _Silence:
                continue
            finally:
                timer.cancel()
                link.waiter = None
        else:
            raise NoResponse(f"unit {unit}: no response in {timeout} s ({attempts} attempts)")
        if pdu.isError():
            raise ExceptionReply(int(pdu.exception_code))
        if pdu.function_code != req.function:
            raise BadReply(f"asked function {req.function}, got {pdu.function_code}")
        regs = list(pdu.registers)
        if len(regs) != req.count:
            raise BadReply(f"asked {req.count} registers, got {len(regs)}")
        return regs

    def close(self) -> None:
        link, self._link = self._link, None
        if link is not None and link.transport is not None:
            link.transport.close()
