"""Modbus emulators: the topside TCP gateway and the subsea RTU bus (TCP or pty).

Both answer only the units they were given, log every function code received, and apply the
addressed unit's faults on the wire (exception, silence, late reply, corrupted, truncated or
wrongly checksummed frames). Requests are served strictly in order per link, as a gateway or a
half-duplex serial line would.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable

from hil.emulators.links import Link, LinkServer, Mode
from hil.emulators.unit import EmulatedUnit, FcLog, crc16, read_request_len, response_pdu

GATEWAY_TARGET_FAILED = 0x0B


class _ModbusEmulator(LinkServer):
    def __init__(self, units: Iterable[EmulatedUnit], *, mode: Mode, host: str, port: int) -> None:
        super().__init__(mode=mode, host=host, port=port)
        self.units = {u.unit: u for u in units}
        self.by_device = {u.device_id: u for u in self.units.values()}
        self.fc_log = FcLog()
        self._rng = random.Random(0x5EA)

    def set_fault(self, device_id: str, kind: str, **params: object) -> None:
        unit = self.by_device[device_id]
        unit.faults.set(kind, **params)
        if kind == "disconnect":
            unit.faults.clear("disconnect")
            self.disconnect(float(params.get("down_s", 0.0)))  # type: ignore[arg-type]

    def clear_fault(self, device_id: str, kind: str | None = None) -> None:
        self.by_device[device_id].faults.clear(kind)

    def _send(self, link: Link, unit: EmulatedUnit | None, frame: bytes, crc_len: int) -> None:
        """Apply the unit's wire faults, then write now or later."""
        if unit is not None:
            f = unit.faults
            if "no_reply" in f:
                return
            if "garbled" in f:
                head = 7 if crc_len == 0 else 1
                frame = frame[:head] + self._rng.randbytes(len(frame) - head)
            if "truncated" in f:
                frame = frame[: max(1, len(frame) // 2)]
            if "bad_checksum" in f and crc_len:
                frame = frame[:-2] + bytes(b ^ 0xFF for b in frame[-2:])
            late = f.get("late_reply")
            if late is not None:
                asyncio.get_running_loop().call_later(float(late["delay_s"]), link.write, frame)
                return
        link.write(frame)


class ModbusGatewayEmulator(_ModbusEmulator):
    """Modbus TCP gateway on loopback; unknown units get exception 0x0B like a real gateway."""

    def __init__(
        self, units: Iterable[EmulatedUnit], *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(units, mode="tcp", host=host, port=port)

    def on_data(self, link: Link, data: bytes) -> None:
        buf = link.buf
        buf += data
        while len(buf) >= 8:
            length = int.from_bytes(buf[4:6], "big")
            if buf[2:4] != b"\x00\x00" or not 2 <= length <= 254:
                buf.clear()  # not Modbus TCP: a real gateway would drop the connection
                link.close()
                return
            if len(buf) < 6 + length:
                return
            tid, unit_id, pdu = bytes(buf[0:2]), buf[6], bytes(buf[7 : 6 + length])
            del buf[: 6 + length]
            fc = pdu[0]
            self.fc_log.record(unit_id, fc)
            unit = self.units.get(unit_id)
            reply = (
                response_pdu(unit, fc, pdu) if unit else bytes((fc | 0x80, GATEWAY_TARGET_FAILED))
            )
            assert reply is not None
            frame = (
                tid + b"\x00\x00" + (len(reply) + 1).to_bytes(2, "big") + bytes((unit_id,)) + reply
            )
            self._send(link, unit, frame, 0)


class RtuBusEmulator(_ModbusEmulator):
    """A multidrop RTU line: frames found by function-code length and CRC, resync byte by byte."""

    def __init__(
        self,
        units: Iterable[EmulatedUnit],
        *,
        mode: Mode = "tcp",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(units, mode=mode, host=host, port=port)
        self.crc_errors = 0

    def on_data(self, link: Link, data: bytes) -> None:
        buf = link.buf
        buf += data
        while True:
            n = read_request_len(buf)
            if n is None or len(buf) < (n or 1):
                return
            if n == 0 or crc16(buf[: n - 2]) != bytes(buf[n - 2 : n]):
                self.crc_errors += n != 0
                del buf[:1]
                continue
            unit_id, pdu = buf[0], bytes(buf[1 : n - 2])
            del buf[:n]
            self.fc_log.record(unit_id, pdu[0])
            unit = self.units.get(unit_id)
            reply = response_pdu(unit, pdu[0], pdu)
            if reply is None:
                continue  # nobody at that address: silence, as on a real line
            adu = bytes((unit_id,)) + reply
            self._send(link, unit, adu + crc16(adu), 2)
