"""Map compilation (coalescing rules) and decoding with quality rules, no I/O."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.regmap import CounterState, DevicePlan, ReadRequest, compile_device
from drivers.sample import Batch, Quality
from drivers.spec import REGISTER_COUNT, Device, Field_, RegisterMap, Workarounds
from tests.drivers.helpers import reference_cfg


def spans(plan: object) -> list[tuple[int, int, int]]:
    return [(r.request.function, r.request.address, r.request.count) for r in plan.requests]  # type: ignore[attr-defined]


def test_reference_maps_compile_to_one_request_each() -> None:
    cfg = reference_cfg()
    expected = {
        "p101a": [(3, 0, 10)],
        "ft201": [(4, 0, 10)],
        "ai20": [(4, 0, 3)],
        "pt301": [(4, 0, 6)],
    }
    for dev_id, want in expected.items():
        dev = cfg.devices[dev_id]
        assert spans(compile_device(dev_id, dev, cfg.maps[dev.map])) == want


def _map(*fields: tuple[int, int, str]) -> RegisterMap:
    return RegisterMap(
        fields=[
            Field_(name=f"f{i}", address=a, function=fc, type=t)
            for i, (a, fc, t) in enumerate(fields)
        ]  # type: ignore[arg-type]
    )


def _dev(**w: object) -> Device:
    return Device(bus="b", map="m", unit=1, workarounds=Workarounds(**w))  # type: ignore[arg-type]


def test_hole_fill_function_split_and_limit() -> None:
    m = _map((0, 3, "uint16"), (5, 3, "float32"), (40, 3, "uint16"), (0, 4, "uint16"))
    assert spans(compile_device("d", _dev(hole_fill=10), m)) == [(3, 0, 7), (3, 40, 1), (4, 0, 1)]
    assert spans(compile_device("d", _dev(hole_fill=3), m)) == [
        (3, 0, 1),
        (3, 5, 2),
        (3, 40, 1),
        (4, 0, 1),
    ]
    assert spans(compile_device("d", _dev(hole_fill=50), m)) == [(3, 0, 41), (4, 0, 1)]
    assert spans(compile_device("d", _dev(hole_fill=50, max_registers_per_request=20), m)) == [
        (3, 0, 7),
        (3, 40, 1),
        (4, 0, 1),
    ]
    assert len(compile_device("d", _dev(one_request_per_field=True), m).requests) == 4


def test_125_register_limit() -> None:
    m = _map((0, 3, "uint16"), (120, 3, "float64"), (124, 3, "uint16"), (125, 3, "uint16"))
    assert spans(compile_device("d", _dev(hole_fill=125), m)) == [(3, 0, 125), (3, 125, 1)]


@pytest.mark.parametrize("fc", [1, 2, 5, 6, 15, 16, 22, 23])
def test_only_read_requests_exist(fc: int) -> None:
    with pytest.raises(ValueError, match="not a read"):
        ReadRequest(fc, 0, 1)


def test_unwired_analog_input_rejected() -> None:
    cfg = reference_cfg()
    m = RegisterMap(
        fields=[
            Field_(
                name="spare",
                address=3,
                function=4,
                type="int16",
                analog={"eng_min": 0, "eng_max": 1},
            )
        ]  # type: ignore[arg-type]
    )
    with pytest.raises(ValueError, match="unwired"):
        compile_device("ai20", cfg.devices["ai20"], m)


def test_quartz_quality_rules_and_frozen_counter() -> None:
    cfg = reference_cfg()
    plan = compile_device("pt301", cfg.devices["pt301"], cfg.maps["quartz_transmitter"])
    # pressure 58600.5 float32 ABCD = 0x4764E880, temperature 2.00 degC = 200, status, counter
    regs = [0x4764, 0xE880, 200, 0, 0, 7]
    b = plan.decode([regs], [1_000_000_000])
    assert b.samples["pt301.pressure"].value == 58600.5
    assert b.samples["pt301.temperature"].value == pytest.approx(2.0)
    assert b.samples["pt301.pressure"].quality == Quality.GOOD
    # status bit 2 -> pressure and temperature UNCERTAIN; counter moved
    b = plan.decode([[0x4764, 0xE880, 200, 4, 0, 8]], [1_100_000_000])
    assert b.samples["pt301.pressure"].quality == Quality.UNCERTAIN
    assert b.samples["pt301.temp_comp_out_of_range"].value == 1.0
    # bit 0 -> both BAD
    b = plan.decode([[0x4764, 0xE880, 200, 1, 0, 9]], [1_200_000_000])
    assert b.samples["pt301.pressure"].quality == Quality.BAD
    assert b.samples["pt301.temperature"].quality == Quality.BAD
    # counter stuck at 9 for 0.6 s (> stale_after_s 0.5): BAD, counted
    b = plan.decode([[0x4764, 0xE880, 200, 0, 0, 9]], [1_500_000_000])
    assert b.samples["pt301.pressure"].quality == Quality.GOOD
    b = plan.decode([[0x4764, 0xE880, 200, 0, 0, 9]], [1_800_000_000])
    assert b.samples["pt301.pressure"].quality == Quality.BAD
    assert b.samples["pt301.status"].quality == Quality.GOOD
    assert plan.frozen == 1


def test_flowmeter_diagnostics_and_analog_namur() -> None:
    cfg = reference_cfg()
    fm = compile_device("ft201", cfg.devices["ft201"], cfg.maps["flowmeter"])
    flow = [0x0000, 0x43A5]  # 330.0 float32 CDAB (0x43A50000)
    regs = [*flow, 0, 0, 0, 0, 0, 0, 0b0010, 5200]
    b = fm.decode([regs], [5])
    assert b.samples["ft201.volume_flow"].value == 330.0
    assert b.samples["ft201.volume_flow"].quality == Quality.BAD
    assert b.samples["ft201.coil_fault"].value == 1.0
    assert b.samples["ft201.conductivity"].value == 52000.0
    ai = compile_device("ai20", cfg.devices["ai20"], cfg.maps["analog_inputs"])
    # 12 mA = 13824 counts -> 125 bar; 3.5 mA (-864 counts) -> BAD NaN; 20.3 mA -> UNCERTAIN 25 bar
    b = ai.decode([[13824, 0xFFFF - 864 + 1, 28166]], [5])
    assert b.samples["ai20.pt101"] == (5, 125.0, Quality.GOOD)
    assert math.isnan(b.samples["ai20.pt201"].value)
    assert b.samples["ai20.pt201"].quality == Quality.BAD
    assert b.samples["ai20.tt201"] == (5, 50.0, Quality.UNCERTAIN)


# --- the block decoder (one struct layout per request) against the per-field decoders --------

_TYPES = ["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]
_ORDERS = ["ABCD", "CDAB", "BADC", "DCBA"]


def _per_field(plan: DevicePlan) -> DevicePlan:
    """The same plan decoded field by field through the bound decoders (the reference)."""
    reqs = tuple(dataclasses.replace(p, unpack=None) for p in plan.requests)
    return dataclasses.replace(plan, requests=reqs, _counter=CounterState(), frozen=0)


def _same(a: Batch, b: Batch) -> None:
    assert a.device == b.device and list(a.samples) == list(b.samples)
    for ch, sa in a.samples.items():
        sb = b.samples[ch]
        assert sa.t_ns == sb.t_ns and sa.quality == sb.quality, ch
        assert type(sa.quality) is type(sb.quality) and type(sa.value) is float, ch
        assert sa.value == sb.value or (math.isnan(sa.value) and math.isnan(sb.value)), ch


@st.composite
def _maps(draw: st.DrawFn) -> RegisterMap:
    n = draw(st.integers(1, 8))
    fields, addr = [], {3: 0, 4: 0}
    for i in range(n):
        fc = draw(st.sampled_from([3, 4]))
        t = draw(st.sampled_from(_TYPES))
        addr[fc] += draw(st.integers(0, 3))  # holes
        word_order = draw(st.sampled_from(_ORDERS)) if REGISTER_COUNT[t] > 1 else None
        bits = {0: f"b{i}a", 3: f"b{i}b"} if t in ("uint16", "int32") else {}
        analog = {"eng_min": -5.0, "eng_max": 95.0} if t == "int16" and i % 2 else None
        fields.append(
            Field_(
                name=f"f{i}",
                address=addr[fc],
                function=fc,
                type=t,
                word_order=word_order,
                scale=draw(st.sampled_from([1.0, 0.1, -2.5])),
                offset=draw(st.sampled_from([0.0, 3.0])),
                bits=bits,
                analog=analog,
            )  # type: ignore[arg-type]
        )
        addr[fc] += REGISTER_COUNT[t]
    names = [f.name for f in fields]
    rules = [
        {"source": names[0], "mask": 0x5, "quality": "uncertain", "applies_to": names[1:]},
        {"source": names[-1], "mask": 0x2, "quality": "bad", "applies_to": names[:2]},
    ]
    counter = {"field": names[-1], "stale_after_s": 0.15, "applies_to": names[:1]}
    return RegisterMap(fields=fields, quality_rules=rules, counter=counter)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(m=_maps(), hole_fill=st.integers(0, 4), seed=st.integers(0, 2**32 - 1))
def test_block_decoder_matches_per_field_decoders(
    m: RegisterMap, hole_fill: int, seed: int
) -> None:
    fast = compile_device("d", _dev(hole_fill=hole_fill), m)
    ref = _per_field(fast)
    assert all(p.unpack is not None for p in fast.requests)
    rng = random.Random(seed)
    last: list[list[int]] = []
    for k in range(6):
        replies = [
            [
                rng.randrange(0x10000) if rng.random() < 0.7 else rng.choice([0, 5, 0x8000, 0xFFFF])
                for _ in range(p.request.count)
            ]
            for p in fast.requests
        ]
        if k in (3, 4):  # repeat the previous reply: frozen counter paths
            replies = last
        last = replies
        times = [1_000_000_000 + 100_000_000 * k + i for i in range(len(replies))]
        try:
            want = ref.decode(replies, times)
        except (ValueError, OverflowError) as err:  # a float status source that is NaN or inf
            with pytest.raises(type(err)):
                fast.decode(replies, times)
            continue
        _same(fast.decode(replies, times), want)
    assert fast.frozen == ref.frozen


def test_overlapping_fields_fall_back_to_per_field_decoding() -> None:
    m = RegisterMap(
        fields=[
            Field_(name="whole", address=0, type="uint32", bits={0: "lsb"}),
            Field_(name="high", address=0, type="uint16"),
            Field_(name="low", address=1, type="int16", scale=0.5),
        ]  # type: ignore[arg-type]
    )
    plan = compile_device("d", _dev(), m)
    b = plan.decode([[0x0001, 0xFFFF]], [7])
    assert b.samples["d.whole"] == (7, 131071.0, Quality.GOOD)
    assert b.samples["d.lsb"].value == 1.0
    assert b.samples["d.high"].value == 1.0 and b.samples["d.low"].value == -0.5
    _same(b, _per_field(plan).decode([[0x0001, 0xFFFF]], [7]))


def test_decode_rejects_reply_count_mismatch() -> None:
    cfg = reference_cfg()
    plan = compile_device("p101a", cfg.devices["p101a"], cfg.maps["pump_drive"])
    with pytest.raises(ValueError):
        plan.decode([[0] * 10, [0] * 10], [1, 2])
    with pytest.raises(ValueError):
        plan.decode([[0] * 10], [1, 2])
