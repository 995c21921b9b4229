"""Compile a device's register map into read requests, and decode replies into samples.

Telegraf's shape: the map is data; `compile_device` groups fields into as few requests as the
device allows (per function code, <= max registers, holes up to `hole_fill` bridged) and binds
the decoding once: each request gets one precompiled `struct` layout for its whole register
block (word reversal as a register permutation, byte swaps as a little-endian pack), so a reply
becomes the raw number of every field by one pack and one unpack. At read time
`DevicePlan.decode` only scales, applies the map's quality rules (status bits, frozen counter;
nothing is copied while no rule fires) and builds the samples.
Only function codes 3 and 4 exist here: `ReadRequest` refuses anything else, so no code path
built from a plan can carry a Modbus write.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from operator import itemgetter
from typing import Any

from drivers.codec import TYPE_CODES, WORD_ORDERS, RawDecoder, counts_to_ma, ma_to_eng, raw_decoder
from drivers.sample import Batch, Quality, Sample
from drivers.spec import READ_FUNCTIONS, Device, Field_, RegisterMap
from drivers.spec_checks import check_device
from drivers.validity import FINITE, Rejections, as_bits, bounds

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
AnalogFn = Callable[[float], tuple[float, Quality]]


@dataclass(frozen=True, slots=True)
class BoundField:
    """A field bound to its request: where its words start and how to turn them into a value."""

    name: str
    offset: int
    decode: FieldDecoder  # -> (engineering value, raw integer-ish value, quality)
    bits: tuple[tuple[int, str], ...]
    #: what `decode` does after the raw number (used with `PlannedRequest.unpack`):
    #: value = raw * scale + add, or analog(raw) -> (value, NAMUR quality) first
    scale: float = 1.0
    add: float = 0.0
    analog: AnalogFn | None = None
    #: (lo, hi) the engineering value must lie in, else BAD (`drivers.validity`)
    bounds: tuple[float, float] = FINITE


def _analog_fn(f: Field_) -> AnalogFn | None:
    """Counts -> (engineering value before scale/offset, NAMUR quality), bound once."""
    a = f.analog
    if a is None:
        return None
    c4, c20, lo, hi = a.counts_at_4ma, a.counts_at_20ma, a.eng_min, a.eng_max
    return lambda counts: ma_to_eng(counts_to_ma(counts, c4, c20), lo, hi)


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


#: `(registers of one reply) -> raw number of every field of the request, in field order`.
Unpacker = Callable[[Sequence[int]], tuple[float, ...]]


def _per_field_unpacker(fields: Sequence[Field_], start: int) -> Unpacker:
    """Field by field through `codec.raw_decoder`: any layout, overlapping fields included."""
    decs: tuple[tuple[RawDecoder, int], ...] = tuple(
        (raw_decoder(f.type, f.word_order or "ABCD"), f.address - start) for f in fields
    )

    def unpack(regs: Sequence[int]) -> tuple[float, ...]:
        return tuple([dec(regs, off) for dec, off in decs])

    return unpack


def block_unpacker(fields: Sequence[Field_], start: int, count: int) -> Unpacker:
    """One pack + one unpack per reply for the whole block (same numbers as `raw_decoder`).

    Reversed word orders (CDAB, DCBA) become a register permutation applied before packing;
    byte-swapped orders (BADC, DCBA) are read from a second, little-endian packing of the block.
    Overlapping fields or a `count` other than the type's width fall back to per-field decoding.
    """
    spans = []
    for i, f in enumerate(fields):
        code, n = TYPE_CODES[f.type]
        reverse, swap = WORD_ORDERS[f.word_order or "ABCD"]
        if f.registers != n:
            return _per_field_unpacker(fields, start)
        spans.append((f.address - start, n, code, reverse, swap, i))
    spans.sort()
    for (a_off, a_n, *_), (b_off, *_) in pairwise(spans):
        if a_off + a_n > b_off:
            return _per_field_unpacker(fields, start)
    perm = list(range(count))
    for off, n, _, reverse, _, _ in spans:
        if reverse:
            perm[off : off + n] = perm[off : off + n][::-1]
    layers: list[tuple[Callable[..., bytes], Callable[[bytes], tuple[Any, ...]]]] = []
    order: list[int] = []
    for swapped in (False, True):
        fmt, pos = [">"], 0
        for off, n, code, _, swap, i in spans:
            if swap is swapped:
                fmt.append(f"{2 * (off - pos)}x{code}" if off > pos else code)
                pos = off + n
                order.append(i)
        if len(fmt) > 1:
            pack = struct.Struct(("<" if swapped else ">") + f"{count}H").pack
            layers.append((pack, struct.Struct("".join(fmt)).unpack_from))
    #: int64/uint64 raws become floats (53-bit mantissa) exactly as `raw_decoder` gives them
    wide = any(f.type in ("int64", "uint64") for f in fields)
    permute = itemgetter(*perm) if perm != sorted(perm) else None
    reorder = (
        itemgetter(*[order.index(i) for i in range(len(fields))])
        if order != sorted(order)
        else None
    )
    if len(layers) == 1 and permute is None and reorder is None and not wide:
        pack, unpack_from = layers[0]
        return lambda regs: unpack_from(pack(*regs))

    def unpack(regs: Sequence[int]) -> tuple[float, ...]:
        if permute is not None:
            regs = permute(regs)
        out: tuple[Any, ...] = ()
        for pack, unpack_from in layers:
            out += unpack_from(pack(*regs))
        if reorder is not None:
            out = reorder(out)
        return tuple(map(float, out)) if wide else out

    return unpack


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    request: ReadRequest
    fields: tuple[BoundField, ...]
    #: raw numbers of `fields` from one reply; `None`: decode field by field
    unpack: Unpacker | None = None


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


_tuple_new = tuple.__new__
_BIT = (0.0, 1.0)
_GOOD = Quality.GOOD
_BAD = Quality.BAD

#: (field index, reply index, channel, scale, add, analog, ((bit, channel), ...), lo, hi, name)
_FieldOut = tuple[
    int, int, str, float, float, AnalogFn | None, tuple[tuple[int, str], ...], float, float, str
]
_NAN = math.nan
_MAXF = FINITE[1]


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
    # Bound at construction from the above: the hot path only indexes.
    _fast: bool = field(init=False, repr=False, compare=False, default=False)
    _unpackers: tuple[Unpacker, ...] = field(init=False, repr=False, compare=False, default=())
    _outs: tuple[_FieldOut, ...] = field(init=False, repr=False, compare=False, default=())
    _good: tuple[Quality, ...] = field(init=False, repr=False, compare=False, default=())
    _rule_ix: tuple[tuple[int, int, Quality, tuple[int, ...]], ...] = field(
        init=False, repr=False, compare=False, default=()
    )
    #: (field index, reply index, stale_after_ns, target field indices)
    _counter_ix: tuple[int, int, int, tuple[int, ...]] | None = field(
        init=False, repr=False, compare=False, default=None
    )
    #: values screened out as BAD, per field and reason (shared with the device's stats)
    rejections: Rejections = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.rejections = Rejections(self.device_id)
        self._fast = all(p.unpack is not None for p in self.requests)
        if not self._fast:
            return
        self._unpackers = tuple(p.unpack for p in self.requests if p.unpack is not None)
        dev = self.device_id
        index: dict[str, int] = {}
        outs: list[_FieldOut] = []
        for ri, preq in enumerate(self.requests):
            for bf in preq.fields:
                g = len(outs)
                index[bf.name] = g
                bits = tuple((bit, f"{dev}.{bname}") for bit, bname in bf.bits)
                lo, hi = bf.bounds
                outs.append(
                    (g, ri, f"{dev}.{bf.name}", bf.scale, bf.add, bf.analog, bits, lo, hi, bf.name)
                )
        self._outs = tuple(outs)
        self._good = (_GOOD,) * len(outs)
        self._rule_ix = tuple(
            (index[src], mask, q, tuple(index[t] for t in targets))
            for src, mask, q, targets in self.rules
        )
        if self.counter is not None:
            cname, stale_ns, targets = self.counter
            g = index[cname]
            self._counter_ix = (g, outs[g][1], stale_ns, tuple(index[t] for t in targets))

    def decode(self, replies: Sequence[Sequence[int]], t_ns: Sequence[int]) -> Batch:
        """Turn one reply per planned request (with its midpoint time) into a batch."""
        if not self._fast:
            return self._decode_per_field(replies, t_ns)
        if len(t_ns) != len(replies):
            raise ValueError(f"{len(replies)} replies but {len(t_ns)} times")
        raw: tuple[float, ...] = ()
        for unpack, regs in zip(self._unpackers, replies, strict=True):
            raw += unpack(regs)
        # Degradations per field (max with each field's own quality below); shared until one fires
        deg: Sequence[Quality] = self._good
        for g, mask, q, targets in self._rule_ix:
            if as_bits(raw[g]) & mask:
                worse = deg if isinstance(deg, list) else list(deg)
                for tg in targets:
                    if q > worse[tg]:
                        worse[tg] = q
                deg = worse
        if self._counter_ix is not None:
            g, ri, stale_ns, targets = self._counter_ix
            t, cval = t_ns[ri], raw[g]
            st = self._counter
            if cval != st.value or st.changed_ns == 0:
                st.value, st.changed_ns = cval, t
            elif t - st.changed_ns > stale_ns:
                self.frozen += 1
                worse = list(deg)
                for tg in targets:
                    worse[tg] = _BAD
                deg = worse
        new, bit01 = _tuple_new, _BIT
        out: dict[str, Sample] = {}
        for g, ri, ch, scale, add, analog, bits, lo, hi, name in self._outs:
            r, t, q = raw[g], t_ns[ri], deg[g]
            if analog is None:
                v = r * scale + add
            else:
                eng, own = analog(r)
                if own >= q:
                    q = own
                v = eng * scale + add
            if not lo <= v <= hi:
                if q != _BAD or v == v:  # NaN on a BAD sample is already "no reading"
                    self.rejections.add(name, v)
                v, q = _NAN, _BAD
            out[ch] = new(Sample, (t, v, q))
            if bits:
                if -_MAXF <= r <= _MAXF:
                    ir = int(r)
                    for bit, bch in bits:
                        out[bch] = new(Sample, (t, bit01[(ir >> bit) & 1], q))
                else:
                    for _, bch in bits:
                        out[bch] = new(Sample, (t, _NAN, _BAD))
        return Batch(self.device_id, out)

    def _decode_per_field(self, replies: Sequence[Sequence[int]], t_ns: Sequence[int]) -> Batch:
        """Through each field's bound decoder (plans built by hand, without `unpack`)."""
        dev = self.device_id
        values: dict[str, tuple[int, float, float, Quality]] = {}
        for preq, regs, t in zip(self.requests, replies, t_ns, strict=True):
            for bf in preq.fields:
                eng, raw, q = bf.decode(regs, bf.offset)
                values[bf.name] = (t, eng, raw, q)
        quality = {name: v[3] for name, v in values.items()}
        for source, mask, q, targets in self.rules:
            if as_bits(values[source][2]) & mask:
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
                lo, hi = bf.bounds
                if not lo <= eng <= hi:
                    if q != Quality.BAD or eng == eng:
                        self.rejections.add(bf.name, eng)
                    eng, q = math.nan, Quality.BAD
                out[f"{dev}.{bf.name}"] = Sample(t, eng, q)
                finite = -_MAXF <= raw <= _MAXF
                for bit, bname in bf.bits:
                    out[f"{dev}.{bname}"] = (
                        Sample(t, float((int(raw) >> bit) & 1), q)
                        if finite
                        else Sample(t, math.nan, Quality.BAD)
                    )
        return Batch(dev, out)


_QUALITY = {"uncertain": Quality.UNCERTAIN, "bad": Quality.BAD}


def compile_device(
    device_id: str, device: Device, regmap: RegisterMap, *, default_hz: float = 1.0
) -> DevicePlan:
    """Validate and compile once at start-up; a bad map raises `ValueError` naming the field."""
    check_device(device_id, device, regmap)
    w = device.workarounds
    planned = []
    for group in group_fields(
        regmap.fields, w.max_registers_per_request, w.hole_fill, w.one_request_per_field
    ):
        start = group[0].address
        count = max(f.address + f.registers for f in group) - start
        bound = tuple(
            BoundField(
                f.name,
                f.address - start,
                _field_decoder(f),
                tuple(sorted(f.bits.items())),
                float(f.scale),
                float(f.offset),
                _analog_fn(f),
                bounds(f.range),
            )
            for f in group
        )
        request = ReadRequest(group[0].function, start, count)
        planned.append(PlannedRequest(request, bound, block_unpacker(group, start, count)))
    rules = [
        (r.source, r.mask, _QUALITY[r.quality], tuple(r.applies_to)) for r in regmap.quality_rules
    ]
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
