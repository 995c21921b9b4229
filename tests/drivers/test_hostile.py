"""Hostile inputs at the drivers' edge (issue 10 items 6 and 8), over real sockets and ptys.

Absurd numbers are put on the wire by the emulators (`override` fault, `send_raw`); each must
come out of the driver as a BAD sample with NaN, counted per field and reason in the
acquisition stats, while every other channel stays GOOD and the stream goes on. Expected
reasons are typed in from the reference config's ranges (span + 10 % margin).
"""

from __future__ import annotations

import math
import time

import pytest

from drivers.regmap import compile_device
from drivers.sample import Quality
from drivers.sentence import SentenceParser, frame_sentence, nmea_checksum
from drivers.spec import Device, RegisterMap
from hil.emulators.densitometer import DensitometerEmulator
from hil.emulators.links import Mode
from tests.drivers.helpers import Collector, arun, reference_cfg, rig_acquiring

GOOD = None
NON_FINITE, OUT_OF_RANGE = "non_finite", "out_of_range"  # reasons, as the stats name them

#: (device, field, engineering value on the wire, reason it is BAD; GOOD: still a reading)
MODBUS_CASES: list[tuple[str, str, float, str | None]] = [
    ("ft201", "volume_flow", math.inf, NON_FINITE),  # float32 CDAB
    ("ft201", "volume_flow", -math.inf, NON_FINITE),
    ("ft201", "volume_flow", math.nan, NON_FINITE),
    ("ft201", "volume_flow", 3e38, OUT_OF_RANGE),
    ("ft201", "volume_flow", -2500.0, OUT_OF_RANGE),  # span +-2000, margin 400
    ("ft201", "volume_flow", 2300.0, GOOD),  # past the span, inside the margin
    ("ft201", "totalizer", 1e308, OUT_OF_RANGE),  # float64
    ("ft201", "totalizer", -math.inf, NON_FINITE),
    ("p101a", "torque", 3276.7, OUT_OF_RANGE),  # int16 max x 0.1
    ("p101a", "torque", -3276.8, OUT_OF_RANGE),  # int16 min x 0.1
    ("p101a", "speed", 32767.0, GOOD),  # no range in the map: only non-finite is screened
    ("p101a", "motor_current", 6553.5, OUT_OF_RANGE),  # uint16 max x 0.1
    ("p101a", "run_hours", 429496729.5, OUT_OF_RANGE),  # uint32 max x 0.1
    ("p101a", "shaft_power", math.inf, NON_FINITE),  # float32 ABCD
    ("pt301", "pressure", 1e6, OUT_OF_RANGE),  # RTU over a pty: 1 GPa on a 70 MPa gauge
    ("pt301", "pressure", math.nan, NON_FINITE),
    ("pt301", "temperature", 327.67, OUT_OF_RANGE),  # int16 max x 0.01
]

#: (density text in a sentence with a valid checksum, reason; GOOD: still a reading)
DENSITY_CASES: list[tuple[str, str | None]] = [
    ("inf", NON_FINITE),
    ("-inf", NON_FINITE),
    ("nan", NON_FINITE),
    ("1e999", NON_FINITE),  # overflows to inf
    ("1e30", OUT_OF_RANGE),
    ("1e308", OUT_OF_RANGE),
    ("-5.00", OUT_OF_RANGE),  # span 800-2500 kg/m3, margin 170
    ("2700.00", OUT_OF_RANGE),
    ("2600.00", GOOD),
]


def _bad_count(acq: object, dev: str, field: str, reason: str) -> int:
    per = acq.stats()["devices"][dev].get("bad_values", {})  # type: ignore[attr-defined]
    return int(per.get(field, {}).get(reason, 0))


async def _next_sample(col: Collector, ch: str, after: int, want: object) -> tuple[float, int]:
    """First sample of `ch` in batches from index `after` on that satisfies `want`."""
    found: list[tuple[float, int]] = []

    def seen() -> bool:
        for b in col.batches[after:]:
            s = b.samples.get(ch)
            if s is not None and want(s):  # type: ignore[operator]
                found.append((s.value, s.quality))
                return True
        return False

    await col.wait_for(seen, 5.0)
    return found[0]


def test_hostile_modbus_values_are_bad_and_counted() -> None:
    cfg = reference_cfg()

    async def main() -> None:
        col = Collector()
        async with rig_acquiring(
            cfg, col, only=["p101a", "ft201", "pt301"], modes={"subsea": "pty"}
        ) as (rig, acq):
            for dev, field, value, why in MODBUS_CASES:
                case = f"{dev}.{field}={value!r}"
                ch = f"{dev}.{field}"
                before = {r: _bad_count(acq, dev, field, r) for r in (NON_FINITE, OUT_OF_RANGE)}
                rig.set_fault(dev, "override", field=field, value=value)
                n0 = len(col.batches)
                if why is None:
                    v, q = await _next_sample(
                        col, ch, n0, lambda s, x=value: math.isclose(s.value, x, rel_tol=1e-6)
                    )
                    assert q == Quality.GOOD, case
                else:
                    v, q = await _next_sample(col, ch, n0, lambda s: s.quality == Quality.BAD)
                    assert math.isnan(v), case
                    assert _bad_count(acq, dev, field, why) > before[why], case
                    other = next(r for r in before if r != why)
                    assert _bad_count(acq, dev, field, other) == before[other], case
                # the device's other channels are still readings
                latest = [b for b in col.batches[n0:] if ch in b.samples][-1].samples
                good = [c for c, s in latest.items() if c != ch and s.quality == Quality.GOOD]
                assert len(good) >= 3, (case, latest)
                rig.clear_fault(dev, "override")
                n1 = len(col.batches)
                await _next_sample(col, ch, n1, lambda s: s.quality == Quality.GOOD)
            health = acq.stats()["devices"]["ft201"]["bad_values"]["volume_flow"]
            assert health[NON_FINITE] >= 3 and health[OUT_OF_RANGE] >= 2

    arun(main(), 90)


def test_float_rule_source_and_bits_never_raise() -> None:
    """A status word read as float that returns inf/NaN trips its rule (fail safe), no raise."""
    from drivers.codec import encode_raw

    rmap = RegisterMap.model_validate(
        {
            "fields": [
                {"name": "flow", "address": 0, "type": "float32"},
                {"name": "state", "address": 2, "type": "float32", "bits": {0: "alarm"}},
            ],
            "quality_rules": [
                {"source": "state", "mask": 1, "quality": "bad", "applies_to": ["flow"]}
            ],
        }
    )
    plan = compile_device("d", Device(bus="b", map="m", unit=1), rmap)
    for state in (math.inf, math.nan, -math.inf):
        regs = encode_raw(50.0, "float32") + encode_raw(state, "float32", "ABCD")
        b = plan.decode([regs], [1])
        assert b.samples["d.flow"].quality == Quality.BAD, state
        assert b.samples["d.alarm"].quality == Quality.BAD, state
    regs = encode_raw(50.0, "float32") + encode_raw(0.0, "float32")
    assert plan.decode([regs], [1]).samples["d.flow"] == (1, 50.0, Quality.GOOD)


def _lower_checksum_line(seq: int) -> bytes:
    """A sentence whose (correct) checksum has a hex letter, written in lowercase."""
    for tenth in range(10):
        body = f"PDNS,{seq},1234.56,18.{tenth},52113,0000"
        cs = f"{nmea_checksum(body.encode()):02X}"
        if cs != cs.lower():
            return f"${body}*{cs.lower()}\r\n".encode()
    raise AssertionError("no checksum with a letter")


def test_hostile_density_values_are_bad_and_counted() -> None:
    cfg = reference_cfg()

    async def main() -> None:
        col = Collector()
        async with rig_acquiring(cfg, col, only=["dt201"], densitometer_period_s=0.05) as (
            rig,
            acq,
        ):
            for text, why in DENSITY_CASES:
                before = {
                    r: _bad_count(acq, "dt201", "density", r) for r in (NON_FINITE, OUT_OF_RANGE)
                }
                rig.set_fault("dt201", "override", field="density", value=text)
                n0 = len(col.batches)
                if why is None:
                    v, q = await _next_sample(
                        col, "dt201.density", n0, lambda s, x=float(text): s.value == x
                    )
                    assert q == Quality.GOOD, text
                else:
                    v, q = await _next_sample(
                        col, "dt201.density", n0, lambda s: s.quality == Quality.BAD
                    )
                    assert math.isnan(v), text
                    assert _bad_count(acq, "dt201", "density", why) > before[why], text
                b = [b for b in col.batches[n0:] if "dt201.density" in b.samples][-1]
                assert b.samples["dt201.temperature"] == (
                    b.samples["dt201.temperature"][0],
                    18.4,
                    Quality.GOOD,
                )
                rig.clear_fault("dt201", "override")
                await _next_sample(
                    col, "dt201.density", len(col.batches), lambda s: s.quality == Quality.GOOD
                )
            st = acq.stats()["devices"]["dt201"]
            assert st["bad_frames"] == 0 and st["lost_sentences"] == 0

    arun(main(), 60)


async def _stream_survives(mode: Mode, flood: int) -> None:
    """Hostile bytes between real sentences: counted, never fatal, nothing lost or invented."""
    cfg = reference_cfg()
    col = Collector()
    async with rig_acquiring(
        cfg, col, only=["dt201"], modes={"densitometer": mode}, densitometer_period_s=0.05
    ) as (rig, acq):
        emu = rig.emulators["densitometer"]
        assert isinstance(emu, DensitometerEmulator)

        def st() -> dict[str, int]:
            return acq.stats()["devices"]["dt201"]

        def good_after(n: int, k: int = 3) -> bool:
            return (
                sum(
                    1
                    for s in col.samples("dt201.density")[n:]
                    if s.quality == Quality.GOOD and s.value == 1050.0
                )
                >= k
            )

        await col.wait_for(lambda: good_after(0), 5.0)
        # 1. a stray (old) sentence between two real ones: a resync, no lost sentences
        emu.send_raw(frame_sentence(f"PDNS,{(emu.seq - 5) % 65536},1050.00,18.4,52113,0000"))
        n = len(col.samples("dt201.density"))
        await col.wait_for(lambda: good_after(n), 5.0)
        assert (st()["lost_sentences"], st()["seq_gaps"], st().get("seq_resyncs")) == (0, 0, 1)
        # 2. a correct checksum in lowercase: the ICD says uppercase, so it is a bad frame
        frames0 = st()["bad_frames"]
        emu.send_raw(_lower_checksum_line(emu.seq))
        n = len(col.samples("dt201.density"))
        await col.wait_for(lambda: good_after(n), 5.0)
        assert st()["bad_frames"] == frames0 + 1
        assert all(s.value != 1234.56 for s in col.samples("dt201.density"))
        # 3. a flood of `$`, then binary junk, overlong and half lines, a 0xFF-filled line
        frames0 = st()["bad_frames"]
        junk = (
            b"$" * flood
            + bytes(range(256))
            + b"$PDNS," + b"9" * 400 + b"\r\n"
            + b"$PDNS,1,1050.00*" * 50
            + b"*\r\n" * 100
            + b"$\xff\xfe*00\r\n"
        )  # fmt: skip
        emu.send_raw(junk)
        n = len(col.samples("dt201.density"))
        await col.wait_for(lambda: good_after(n) and st()["bad_frames"] >= frames0 + flood, 10.0)
        s = st()
        assert s["silences"] == 0 and s["lost_sentences"] == 0 and s.get("seq_resyncs") == 1
        assert acq.stats()["buses"]["densitometer"]["connects"] == 1  # never dropped
        assert rig.bytes_to_densitometers() == 0


def test_hostile_byte_stream_over_tcp() -> None:
    arun(_stream_survives("tcp", 2 * 1024 * 1024), 60)


def test_hostile_byte_stream_over_pty() -> None:
    arun(_stream_survives("pty", 2000), 60)  # a pty buffer holds a few KiB


@pytest.mark.parametrize(
    "stream",
    [b"$" * (2 * 1024 * 1024), (b"$" + b"A" * 150) * (2 * 1024 * 1024 // 151)],
    ids=["dollars", "dollar_then_150"],
)
def test_parser_work_is_linear(stream: bytes) -> None:
    """2 MiB of hostile bytes in one read: old framer rescanned the buffer per `$` (24 s CPU)."""
    p = SentenceParser()
    t0 = time.process_time()
    assert p.feed(stream) == []
    cpu_s = time.process_time() - t0
    assert cpu_s < 1.0, cpu_s  # ~0.04 s here
    # every `$` is a bad frame but the last, which may yet become a sentence
    assert p.bad_frames == stream.count(b"$") - 1 and 0 < p.pending <= 160
    assert p.noise_bytes + p.framed_bytes + p.pending == len(stream)


def test_rejections_are_logged_sparsely(caplog: pytest.LogCaptureFixture) -> None:
    """1st, 10th, 100th... rejection of a field and reason is logged: a stuck fault cannot flood."""
    from drivers.validity import Rejections

    r = Rejections("ft201")
    with caplog.at_level("WARNING", logger="drivers.validity"):
        for _ in range(150):
            r.add("volume_flow", math.inf)
        r.add("volume_flow", 3e38)
    msgs = [m.getMessage() for m in caplog.records]
    assert len(msgs) == 4, msgs
    assert "ft201.volume_flow: inf is BAD (non_finite), 100 so far" in msgs
    assert "out_of_range" in msgs[-1]
    assert r.counts == {"volume_flow": {NON_FINITE: 150, OUT_OF_RANGE: 1}}
