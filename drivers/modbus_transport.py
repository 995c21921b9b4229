"""The only way the drivers talk Modbus: a read-only wrapper over pymodbus 3.16 async clients.

`read(unit, request)` takes a `ReadRequest` (FC 3 or 4 by construction) and dispatches through
a table holding only the two read methods, so no write function code can leave this module.
Reconnection is the bus owner's job (exponential backoff, forever), so pymodbus' own reconnect
and its "close after N silent requests" rule are switched off here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType

from drivers.errors import BadReply, ExceptionReply, LinkDown, NoResponse
from drivers.regmap import ReadRequest
from drivers.spec import ModbusRtuSerialBus, ModbusRtuTcpBus, ModbusTcpBus

ModbusBus = ModbusTcpBus | ModbusRtuTcpBus | ModbusRtuSerialBus

#: pymodbus logs every timeout at ERROR; the drivers count them instead.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

_NEVER = 1 << 30


def make_client(bus: ModbusBus) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
    """A pymodbus client for the bus, with reconnect left to the caller."""
    link: dict[str, Any] = {"timeout": bus.timeout_s, "retries": bus.retries, "reconnect_delay": 0}
    client: Any
    if isinstance(bus, ModbusRtuSerialBus):
        client = AsyncModbusSerialClient(
            bus.device,
            framer=FramerType.RTU,
            baudrate=bus.baudrate,
            bytesize=bus.bytesize,
            parity=bus.parity,
            stopbits=bus.stopbits,
            **link,
        )
    else:  # Modbus TCP, or RTU framing through a serial device server's socket
        framer = FramerType.RTU if isinstance(bus, ModbusRtuTcpBus) else FramerType.SOCKET
        client = AsyncModbusTcpClient(bus.host, port=bus.port, framer=framer, **link)
    client.set_max_no_responses(_NEVER)
    return client


class ModbusTransport:
    """One connection of one bus; not safe for concurrent use (its bus owner serialises)."""

    def __init__(self, bus: ModbusBus) -> None:
        self.bus = bus
        self._client = make_client(bus)
        self.last_error = ""
        c: Any = self._client
        self._readers: dict[int, Callable[..., Awaitable[Any]]] = {
            3: c.read_holding_registers,
            4: c.read_input_registers,
        }

    @property
    def connected(self) -> bool:
        return bool(self._client.connected)

    async def connect(self) -> bool:
        """False on any failure: a port that rejects its settings must not kill the bus task."""
        try:
            return bool(await self._client.connect())
        except Exception as err:  # termios.error, SerialException, OSError, ModbusException...
            self.last_error = f"{type(err).__name__}: {err}"
            return False

    async def read(self, unit: int, req: ReadRequest) -> list[int]:
        """Registers of one read; raises `LinkDown` or a `DeviceError`."""
        reader = self._readers[req.function]
        try:
            rr = await reader(req.address, count=req.count, device_id=unit)
        except ConnectionException as err:
            raise LinkDown(str(err)) from None
        except ModbusIOException as err:
            if not self._client.connected:
                raise LinkDown(str(err)) from None
            raise NoResponse(str(err)) from None
        except ModbusException as err:
            raise BadReply(str(err)) from None
        if rr.isError():
            raise ExceptionReply(int(getattr(rr, "exception_code", 0)))
        regs: list[int] = rr.registers  # a fresh list per response, no copy needed
        if len(regs) != req.count:
            raise BadReply(f"asked {req.count} registers, got {len(regs)}")
        return regs

    def close(self) -> None:
        self._client.close()
