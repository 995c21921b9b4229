"""Compile a device's register map into read requests, and decode replies into samples.

Telegraf's shape: the map is data; `compile_device` groups fields into as few requests as the
device allows (per function code, <= max registers, holes up to `hole_fill` bridged) and binds
one decoder per field once. At read time `DevicePlan.decode` only slices and calls decoders,
then applies the map's quality rules (status bits, frozen counter) to the device's channels.
Only function codes 3 and 4 exist here: `ReadRequest` refuses anything else, so no code path
built from a plan can carry a Modbus write.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from drivers.codec import counts_to_ma, ma_to_eng, raw_decoder
from drivers.sample import Batch, Quality, Sample
from drivers.spec import READ_FUNCTIONS, Device, Field_, RegisterMap

MAX_REGISTERS = 125


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One Modbus read (FC 3 or 4); construction with any other code raises."""

    function: int
    address: int
    count: int

    def __post_init__(self) -> None:
        if self.function not in READ_FUNCTIONS:
            raise ValueError(f"function code {self.function} is not a read (only 3, 4)")
        if not 1 <= self.count <= MAX_REGISTERS or not 0 <= self.address <= 0xFFFF:
            raise ValueError(f"bad read address={self.address} count={self.count}")


FieldDecoder = Callable[[Sequence[int], int], tuple[float, float, Quality]]


@dataclass(frozen=True, slots=True)
class BoundField:
    """A field bound to its request: where its words start and how to turn them into a value."""

    name: str
    offset: int
    decode: FieldDecoder  # -> (engineering value, raw integer-ish value, quality)
    bits: tuple[tuple[int, str], ...]


def _field_decoder(f: Field_) -> FieldDecoder:
    raw = raw_decoder(f.type, f.word_order or "ABCD")
    scale, offset = f.scale, f.offset
    if f.analog is not None:
        a = f.analog

        def dec_analog(regs: Sequence[int], off: int) -> tuple[float, float, Quality]:
            counts = raw(regs, off)
            eng, q = ma_to_eng(
                counts_to_ma(counts, a.counts_at_4ma, a.counts_at_20ma), a.eng_min, a.eng_max
            )
            return eng * scale + offset, counts, q

        return dec_analog

    def dec(regs: Sequence[int], off: int) -> tuple[float, float, Quality]:
        r = raw(regs, off)
        return r * scale + offset, r, Quality.GOOD

    return dec


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    request: ReadRequest
    fields: tuple[BoundField, ...]


def group_fields(
    fields: Sequence[Field_], max_registers: int, hole_fill: int, one_per_field: bool
) -> list[list[Field_]]:
    """Coalesce fields per function code into contiguous spans (Telegraf's optimisation)."""
    groups: list[list[Field_]] = []
    for fc in sorted({f.function for f in fields}):
        current: list[Field_] = []
        start = end = 0
        for f in sorted((f for f in fields if f.function == fc), key=lambda f: f.address):
            f_end = f.address + f.registers
            if (
                current
                and not one_per_field
                and f.address - end <= hole_fill
                and f_end - start <= max_registers
            ):
                current.append(f)
                end = max(end, f_end)
                continue
            if current:
                groups.append(current)
            current, start, end = [f], f.address, f_end
        if current:
            groups.append(current)
    return groups


@dataclass
class CounterState:
    value: float = math.nan
    changed_ns: int = 0


@dataclass
class DevicePlan:
    """Everything needed to poll one device: unit, requests, decoders, quality semantics."""

    device_id: str
    unit: int
    period_s: float
    requests: tuple[PlannedRequest, ...]
    channels: tuple[str, ...]
    # (source field, mask, quality, target fields)
    rules: tuple[tuple[str, int, Quality, tuple[str, ...]], ...]
    counter: tuple[str, int, tuple[str, ...]] | None  # (field, stale_after_ns, targets)
    _counter: CounterState = field(default_factory=CounterState)
    frozen: int = 0

    def decode(self, replies: Sequence[Sequence[int]], t_ns: Sequence[int]) -> Batch:
        """Turn one reply per planned request (with its midpoint time) into a batch."""
        dev = self.device_id
        values: dict[str, tuple[int, float, float, Quality]] = {}
        for preq, regs, t in zip(self.requests, replies, t_ns, strict=True):
            for bf in preq.fields:
                eng, raw, q = bf.decode(regs, bf.offset)
                values[bf.name] = (t, eng, raw, q)
        quality = {name: v[3] for name, v in values.items()}
        for source, mask, q, targets in self.rules:
            if int(values[source][2]) & mask:
                for tgt in targets:
                    quality[tgt] = max(quality[tgt], q)
        if self.counter is not None:
            cname, stale_ns, targets = self.counter
            t, cval = values[cname][0], values[cname][2]
            st = self._counter
            if cval != st.value or st.changed_ns == 0:
                st.value, st.changed_ns = cval, t
            elif t - st.changed_ns > stale_ns:
                self.frozen += 1
                for tgt in targets:
                    quality[tgt] = Quality.BAD
        out: dict[str, Sample] = {}
        for preq in self.requests:
            for bf in preq.fields:
                t, eng, raw, _ = values[bf.name]
                q = quality[bf.name]
                out[f"{dev}.{bf.name}"] = Sample(t, eng, q)
                for bit, bname in bf.bits:
                    out[f"{dev}.{bname}"] = Sample(t, float((int(raw) >> bit) & 1), q)
        return Batch(dev, out)


_QUALITY = {"uncertain": Quality.UNCERTAIN, "bad": Quality.BAD}


def compile_device(
    device_id: str, device: Device, regmap: RegisterMap, *, default_hz: float = 1.0
) -> DevicePlan:
    """Validate and compile once at start-up; a bad map raises `ValueError` naming the field."""
    w = device.workarounds
    names = {f.name for f in regmap.fields}
    for f in regmap.fields:
        if f.analog is not None and f.address in device.unwired:
            raise ValueError(f"{device_id}.{f.name}: register {f.address} is an unwired input")
    planned = []
    for group in group_fields(
        regmap.fields, w.max_registers_per_request, w.hole_fill, w.one_request_per_field
    ):
        start = group[0].address
        count = max(f.address + f.registers for f in group) - start
        bound = tuple(
            BoundField(f.name, f.address - start, _field_decoder(f), tuple(sorted(f.bits.items())))
            for f in group
        )
        planned.append(PlannedRequest(ReadRequest(group[0].function, start, count), bound))
    rules = []
    for r in regmap.quality_rules:
        for n in (r.source, *r.applies_to):
            if n not in names:
                raise ValueError(f"{device_id}: quality rule names unknown field {n!r}")
        rules.append((r.source, r.mask, _QUALITY[r.quality], tuple(r.applies_to)))
    counter = None
    if regmap.counter is not None:
        c = regmap.counter
        counter = (c.field, int(c.stale_after_s * 1e9), tuple(c.applies_to))
    channels = []
    for preq in planned:
        for bf in preq.fields:
            channels.append(f"{device_id}.{bf.name}")
            channels.extend(f"{device_id}.{b}" for _, b in bf.bits)
    return DevicePlan(
        device_id=device_id,
        unit=device.unit if device.unit is not None else 1,
        period_s=1.0 / (device.poll_hz or default_hz),
        requests=tuple(planned),
        channels=tuple(channels),
        rules=tuple(rules),
        counter=counter,
    )
