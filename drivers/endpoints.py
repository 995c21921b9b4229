"""Point a config's buses elsewhere (emulators on loopback) without touching the config file.

Endpoint strings: `"host:port"` for Modbus TCP and RTU-over-TCP buses, a device path for a
serial RTU bus (an RTU-over-TCP bus given a path becomes a serial bus with the same timing),
and a pyserial URL or path for an ASCII stream. A `(host, port)` tuple is accepted too.
A `/dev/pts/` endpoint (an emulator's pseudo-terminal) gets parity N: Linux ptys cannot
carry parity settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drivers.spec import AsciiStreamBus, ModbusRtuSerialBus, ModbusRtuTcpBus, ModbusTcpBus

Endpoint = str | tuple[str, int]

#: Linux pseudo-terminals reject parity (tcsetattr EINVAL), so emulated lines run without it.
PTY_PREFIX = "/dev/pts/"


def _host_port(ep: Endpoint) -> tuple[str, int] | None:
    if isinstance(ep, tuple):
        return ep[0], int(ep[1])
    if ep.startswith("socket://"):
        ep = ep.removeprefix("socket://")
    host, sep, port = ep.rpartition(":")
    if sep and port.isdigit() and "/" not in ep:
        return host, int(port)
    return None


def override_bus(bus: Any, ep: Endpoint) -> Any:
    hp = _host_port(ep)
    if isinstance(bus, AsciiStreamBus):
        url = f"socket://{hp[0]}:{hp[1]}" if hp else str(ep)
        update: dict[str, Any] = {"url": url}
        if url.startswith(PTY_PREFIX):
            update["parity"] = "N"
        return bus.model_copy(update=update)
    if isinstance(bus, ModbusTcpBus):
        if hp is None:
            raise ValueError(f"Modbus TCP bus needs host:port, got {ep!r}")
        return bus.model_copy(update={"host": hp[0], "port": hp[1]})
    if isinstance(bus, ModbusRtuTcpBus | ModbusRtuSerialBus):
        timing = {
            k: getattr(bus, k)
            for k in ("timeout_s", "retries", "reconnect_min_s", "reconnect_max_s")
        }
        if hp is not None:
            return ModbusRtuTcpBus(transport="modbus_rtu_tcp", host=hp[0], port=hp[1], **timing)
        line = {}
        if isinstance(bus, ModbusRtuSerialBus):
            line = {k: getattr(bus, k) for k in ("baudrate", "bytesize", "parity", "stopbits")}
        if str(ep).startswith(PTY_PREFIX):
            line["parity"] = "N"
        return ModbusRtuSerialBus(transport="modbus_rtu_serial", device=str(ep), **line, **timing)
    raise TypeError(f"unknown bus type {type(bus).__name__}")


def override_buses(buses: Mapping[str, Any], endpoints: Mapping[str, Endpoint]) -> dict[str, Any]:
    """A copy of `buses` with the named ones re-pointed; unknown names are a `KeyError`."""
    unknown = set(endpoints) - set(buses)
    if unknown:
        raise KeyError(f"no such bus(es): {sorted(unknown)}")
    return {
        name: override_bus(bus, endpoints[name]) if name in endpoints else bus
        for name, bus in buses.items()
    }
