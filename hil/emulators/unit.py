"""One emulated Modbus unit: a register image encoded from config maps and a value source.

Encoding uses the drivers' codec in reverse, so the config is the single source of truth;
tests check the ICD's encodings independently. The image is rebuilt per request from the
source at the request's wall time, so a plant model drives what the master reads.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from drivers.codec import encode_raw, eng_to_ma, ma_to_counts
from drivers.spec import Device, Field_, RegisterMap
from hil.emulators.source import ValueSource
from hil.faults import FaultSet

#: Modbus exception codes the emulators answer with.
ILLEGAL_FUNCTION = 1
ILLEGAL_ADDRESS = 2
ILLEGAL_VALUE = 3

#: Function codes that would change a device; logged so tests can prove none was ever sent.
WRITE_FUNCTIONS = frozenset({5, 6, 15, 16, 22, 23})


@dataclass(frozen=True)
class UnitProfile:
    """What the ICD says about a device model beyond its register map."""

    #: Registers that exist (0..extent-1); reads beyond raise exception 2.
    extent: int | None = None
    #: Internal measurement rate that drives the map's counter field.
    counter_hz: float = 10.0
    #: Loop current an unwired analog input reads.
    unwired_ma: float = 0.0


#: ICD facts per map name of the reference installation.
PROFILES: dict[str, UnitProfile] = {
    "pump_drive": UnitProfile(extent=100),
    "analog_inputs": UnitProfile(extent=8, unwired_ma=0.0),
}


@dataclass
class FcLog:
    """Every function code received, per (unit, fc): the read-only promise, made checkable."""

    counts: Counter[tuple[int, int]] = field(default_factory=Counter)

    def record(self, unit: int, fc: int) -> None:
        self.counts[(unit, fc)] += 1
        GLOBAL_FC_LOG[fc] += 1

    def writes(self) -> int:
        return sum(n for (_, fc), n in self.counts.items() if fc in WRITE_FUNCTIONS)


#: Process-wide function-code counts across every emulator ever started (for test sessions).
GLOBAL_FC_LOG: Counter[int] = Counter()


class EmulatedUnit:
    """Answers reads for one device; `faults` is consulted by the transport that owns it."""

    def __init__(
        self,
        device_id: str,
        device: Device,
        regmap: RegisterMap,
        source: ValueSource,
        *,
        profile: UnitProfile | None = None,
        clock_s: Callable[[], float] = time.time,
    ) -> None:
        self.device_id = device_id
        self.unit = device.unit if device.unit is not None else 1
        self.fields = list(regmap.fields)
        self.functions = {f.function for f in regmap.fields}
        self.profile = profile or UnitProfile()
        mapped_end = max(f.address + f.registers for f in regmap.fields)
        self.extent = max(
            self.profile.extent or mapped_end, mapped_end, *(u + 1 for u in device.unwired)
        )
        self.unwired = list(device.unwired)
        self.counter_field = regmap.counter.field if regmap.counter else None
        self.source = source
        self.clock_s = clock_s
        self.faults = FaultSet()
        self._frozen_counter: int | None = None

    def _raw_for(self, f: Field_, values: Mapping[str, float], t_s: float) -> list[int]:
        ch = f"{self.device_id}.{f.name}"
        wo = f.word_order or "ABCD"
        if f.name == self.counter_field and ch not in values:
            count = int(t_s * self.profile.counter_hz) & 0xFFFFFFFF
            if "frozen_counter" in self.faults:
                if self._frozen_counter is None:
                    self._frozen_counter = count
                count = self._frozen_counter
            else:
                self._frozen_counter = None
            return encode_raw(count, f.type, wo)
        ov = self.faults.get("override")
        if ov is not None and ov["field"] in (f.name, ch):
            return encode_raw((float(ov["value"]) - f.offset) / f.scale, f.type, wo)
        v = values.get(ch, math.nan)
        if f.analog is not None:
            a = f.analog
            nf = self.faults.get("namur_fail")
            if nf is not None and nf["channel"] in (f.name, ch):
                ma = float(nf["ma"])
            elif math.isnan(v):
                ma = 0.0
            else:
                ma = eng_to_ma((v - f.offset) / f.scale, a.eng_min, a.eng_max)
            return encode_raw(ma_to_counts(ma, a.counts_at_4ma, a.counts_at_20ma), f.type, wo)
        raw = 0.0 if math.isnan(v) else (v - f.offset) / f.scale
        sb = self.faults.get("status_bits")
        if sb is not None and sb["field"] == f.name:
            raw = float(int(raw) | int(sb["bits"]))
        return encode_raw(raw, f.type, wo)

    def image(self, fc: int) -> list[int]:
        """The whole register space of one function code, as the device shows it now."""
        t_s = self.clock_s()
        regs = [0] * self.extent
        if self.unwired:
            counts = encode_raw(ma_to_counts(self.profile.unwired_ma), "int16")[0]
            for addr in self.unwired:
                regs[addr] = counts
        values = self.source.values(t_s)
        for f in self.fields:
            if f.function == fc:
                regs[f.address : f.address + f.registers] = self._raw_for(f, values, t_s)
        return regs

    def read(self, fc: int, address: int, count: int) -> list[int] | int:
        """Registers, or a Modbus exception code."""
        if fc not in (3, 4) or fc not in self.functions:
            return ILLEGAL_FUNCTION
        if not 1 <= count <= 125:
            return ILLEGAL_VALUE
        if address + count > self.extent:
            return ILLEGAL_ADDRESS
        exc = self.faults.get("exception")
        if exc is not None:
            return int(exc["code"])
        return self.image(fc)[address : address + count]


def read_request_len(buf: bytes | bytearray) -> int | None:
    """RTU request length from its function code (None: need more bytes; 0: unknown code)."""
    if len(buf) < 2:
        return None
    fc = buf[1]
    if fc in (1, 2, 3, 4, 5, 6):
        return 8
    if fc in (15, 16):
        return None if len(buf) < 7 else 9 + buf[6]
    if fc == 22:
        return 10
    if fc == 23:
        return None if len(buf) < 11 else 13 + buf[10]
    return 0


def crc16(data: bytes | bytearray) -> bytes:
    """Modbus RTU CRC, low byte first as on the wire."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


def response_pdu(unit: EmulatedUnit | None, fc: int, pdu: bytes) -> bytes | None:
    """PDU answering `pdu` (function code first); None for a unit that is not there."""
    if unit is None:
        return None
    if fc not in (3, 4) or len(pdu) < 5:
        result: list[int] | int = ILLEGAL_FUNCTION if fc not in (3, 4) else ILLEGAL_VALUE
    else:
        address = int.from_bytes(pdu[1:3], "big")
        count = int.from_bytes(pdu[3:5], "big")
        result = unit.read(fc, address, count)
    if isinstance(result, int):
        return bytes((fc | 0x80, result))
    body = b"".join(r.to_bytes(2, "big") for r in result)
    return bytes((fc, len(body))) + body
