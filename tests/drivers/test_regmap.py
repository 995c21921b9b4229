"""Map compilation (coalescing rules) and decoding with quality rules, no I/O."""

from __future__ import annotations

import math

import pytest

from drivers.regmap import ReadRequest, compile_device
from drivers.sample import Quality
from drivers.spec import Device, Field_, RegisterMap, Workarounds
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
