"""Drivers against the emulators over real loopback sockets and pseudo-terminals.

Expected values are the ICD's nominal engineering values (hil.emulators.source.NOMINAL, typed
in from CONVENTIONS.md), compared with the resolution the wire allows (float32, 16-bit counts).
"""

from __future__ import annotations

import asyncio
import math

import pytest

from drivers.sample import Quality
from hil.emulators import NOMINAL, ConstantSource, Rig
from tests.drivers.helpers import Collector, acquiring, arun, reference_cfg, rig_acquiring

#: What quantisation on the wire costs each kind of channel (relative, absolute).
AI_LSB = {"ai20.pt101": 250 / 27648, "ai20.pt201": 25 / 27648, "ai20.tt201": 50 / 27648}


def expected_ok(ch: str, value: float) -> bool:
    want = NOMINAL[ch]
    if ch in AI_LSB:
        return abs(value - want) <= AI_LSB[ch]
    return math.isclose(value, want, rel_tol=2e-7, abs_tol=0.051)


def test_every_reference_channel_decodes_good() -> None:
    cfg = reference_cfg()

    async def main() -> None:
        col = Collector()
        async with rig_acquiring(cfg, col, densitometer_period_s=0.1) as (rig, acq):
            want = set(acq.channels)
            await col.wait_for(
                lambda: (
                    want <= set(col.latest())
                    and all(s.quality == Quality.GOOD for s in col.latest().values())
                ),
                8.0,
            )
            latest = col.latest()
            assert rig.write_requests() == 0 and rig.bytes_to_densitometers() == 0
        for ch, s in latest.items():
            if ch in NOMINAL:
                assert expected_ok(ch, s.value), (ch, s.value, NOMINAL[ch])
        # named status bits of the pump status word 0b11011
        assert [
            latest[f"p101a.{b}"].value for b in ("ready", "running", "fault", "remote", "at_speed")
        ] == [1, 1, 0, 1, 1]
        assert latest["pt301.pressure"].value == pytest.approx(
            101.325 + 1050 * 9.80665 * 5690 / 1000, abs=0.01
        )

    arun(main())


def test_rtu_over_pty_and_densitometer_over_pty() -> None:
    cfg = reference_cfg()

    async def main() -> None:
        col = Collector()
        async with rig_acquiring(
            cfg,
            col,
            only=["pt301", "pt302", "pt303", "dt201"],
            modes={"subsea": "pty", "densitometer": "pty"},
            densitometer_period_s=0.1,
        ) as (rig, _):
            eps = rig.endpoints
            assert eps["subsea"].startswith("/dev/") and eps["densitometer"].startswith("/dev/")
            await col.wait_for(
                lambda: all(
                    len([s for s in col.samples(f"{d}") if s.quality == Quality.GOOD]) >= 3
                    for d in ("pt301.pressure", "pt302.pressure", "pt303.pressure", "dt201.density")
                ),
                8.0,
            )
            assert rig.bytes_to_densitometers() == 0
        assert col.samples("pt302.pressure")[-1].value == pytest.approx(
            NOMINAL["pt302.pressure"], rel=1e-7
        )
        assert col.samples("dt201.density")[-1].value == 1050.0

    arun(main())


def test_dead_rtu_unit_does_not_stall_the_others() -> None:
    cfg = reference_cfg()
    window_s = 2.0

    async def main() -> None:
        col = Collector()
        async with Rig(cfg) as rig:
            rig.set_fault("pt302", "no_reply")
            eps = {"subsea": rig.endpoints["subsea"]}
            async with acquiring(cfg, eps, col, only=["pt301", "pt302", "pt303"]) as acq:
                await col.wait_for(lambda: len(col.samples("pt301.pressure")) >= 2)
                n0 = {d: len(col.samples(f"{d}.pressure")) for d in ("pt301", "pt303")}
                t0 = asyncio.get_running_loop().time()
                await col.wait_for(
                    lambda: len(col.samples("pt303.pressure")) - n0["pt303"] >= int(10 * window_s),
                    window_s + 2.0,
                )
                dt = asyncio.get_running_loop().time() - t0
                stats = acq.stats()["devices"]
        for d in ("pt301", "pt303"):
            got = [s for s in col.samples(f"{d}.pressure")[n0[d] :] if s.quality == Quality.GOOD]
            rate = len(got) / dt
            assert rate >= 9.0, (d, rate)
        dead = col.samples("pt302.pressure")
        assert dead and all(s.quality == Quality.BAD and math.isnan(s.value) for s in dead)
        assert stats["pt302"]["timeouts"] >= 1 and stats["pt302"]["polls_ok"] == 0
        assert stats["pt301"]["polls_failed"] == 0 and stats["pt303"]["polls_failed"] == 0

    arun(main())


def test_exception_status_namur_and_frozen_counter_become_quality() -> None:
    cfg = reference_cfg()

    async def main() -> None:
        col = Collector()
        src = ConstantSource()
        async with Rig(cfg, source=src) as rig:
            rig.set_fault("p101b", "exception", code=4)
            rig.set_fault("ft101", "status_bits", field="diagnostics", bits=0b1)
            rig.set_fault("ai20", "namur_fail", channel="pt201", ma=3.5)
            rig.set_fault("pt303", "frozen_counter")
            src.set("ai20.tt201", 50.0 * (20.3 - 4) / 16)  # beyond range: 20.3 mA
            async with acquiring(
                cfg, rig.endpoints, col, only=["p101b", "ft101", "ai20", "pt303"]
            ) as acq:
                await col.wait_for(
                    lambda: (
                        col.latest().get("pt303.pressure", (0, 0, 0))[2] == Quality.BAD
                        and len(col.samples("p101b.speed")) >= 1
                        and len(col.samples("ai20.pt201")) >= 1
                    ),
                    5.0,
                )
                st = acq.stats()
        latest = col.latest()
        assert latest["p101b.speed"].quality == Quality.BAD and math.isnan(
            latest["p101b.speed"].value
        )
        assert (
            st["devices"]["p101b"]["exceptions"] >= 1
            and st["devices"]["p101b"]["last_exception_code"] == 4
        )
        assert (
            latest["ft101.volume_flow"].quality == Quality.BAD
            and latest["ft101.empty_pipe"].value == 1.0
        )
        assert latest["ft101.conductivity"].quality == Quality.GOOD
        assert latest["ai20.pt201"].quality == Quality.BAD
        assert latest["ai20.tt201"] == (latest["ai20.tt201"].t_ns, 50.0, Quality.UNCERTAIN)
        assert latest["ai20.pt101"].quality == Quality.GOOD
        assert (
            latest["pt303.temperature"].quality == Quality.BAD
            and latest["pt303.status"].quality == Quality.GOOD
        )
        assert st["devices"]["pt303"]["frozen_counter"] >= 1
        assert st["channels"]["p101b.speed"]["bad"] >= 1

    arun(main())


def test_reconnect_after_emulator_restart() -> None:
    cfg = reference_cfg()

    async def main() -> None:
        col = Collector()
        async with rig_acquiring(cfg, col, only=["ft201", "dt201"]) as (rig, acq):
            await col.wait_for(
                lambda: any(s.quality == Quality.GOOD for s in col.samples("dt201.density"))
            )
            await rig.restart("topside")
            await rig.restart("densitometer")
            n = len(col.batches)
            await col.wait_for(
                lambda: (
                    acq.stats()["buses"]["topside"]["connects"] >= 2
                    and acq.stats()["buses"]["densitometer"]["connects"] >= 2
                    and any(
                        b.device == "dt201" and b.samples["dt201.density"].quality == Quality.GOOD
                        for b in col.batches[n:]
                    )
                    and any(
                        b.device == "ft201"
                        and b.samples["ft201.volume_flow"].quality == Quality.GOOD
                        for b in col.batches[n:]
                    )
                ),
                8.0,
            )
        # the outage is visible as BAD samples, not a gap
        assert any(s.quality == Quality.BAD for s in col.samples("ft201.volume_flow"))

    arun(main())


def test_densitometer_faults_counted_and_silence_is_bad() -> None:
    cfg = reference_cfg().model_copy(deep=True)
    bus = cfg.buses["densitometer"].model_copy(update={"silence_timeout_s": 0.4})
    cfg = cfg.model_copy(update={"buses": {**cfg.buses, "densitometer": bus}})

    async def main() -> None:
        col = Collector()
        async with rig_acquiring(cfg, col, only=["dt201"], densitometer_period_s=0.05) as (
            rig,
            acq,
        ):
            await col.wait_for(lambda: len(col.samples("dt201.density")) >= 3)
            rig.set_fault("dt201", "seq_skip", n=5)
            await col.wait_for(lambda: acq.stats()["devices"]["dt201"]["seq_gaps"] >= 1)

            def dev() -> dict:
                return acq.stats()["devices"]["dt201"]

            def good_since(n: int) -> bool:
                return any(b.samples["dt201.density"].quality == 0 for b in col.batches[n:])

            # wrong checksums only: no valid sentence, so silence (a BAD batch) follows
            rig.set_fault("dt201", "bad_checksum")
            await col.wait_for(lambda: dev()["silences"] >= 1 and dev()["bad_frames"] >= 3)
            assert col.batches[-1].samples["dt201.density"].quality == Quality.BAD
            rig.clear_fault("dt201")
            n = len(col.batches)
            await col.wait_for(lambda: good_since(n), 5.0)
            rig.set_fault("dt201", "no_reply")
            await col.wait_for(lambda: dev()["silences"] >= 2, 3.0)
            assert math.isnan(col.batches[-1].samples["dt201.density"].value)
            rig.clear_fault("dt201")
            n = len(col.batches)
            await col.wait_for(lambda: good_since(n), 5.0)
            st = acq.stats()["devices"]["dt201"]
            assert rig.bytes_to_densitometers() == 0
        assert st["lost_sentences"] >= 5

    arun(main())


def test_queue_sink_backpressure_loses_nothing() -> None:
    cfg = reference_cfg()

    async def main() -> None:
        q: asyncio.Queue = asyncio.Queue(maxsize=2)
        async with rig_acquiring(cfg, q, only=["ai20"]) as (_, acq):
            got = []
            for _ in range(3):  # let the queue fill while we do not consume
                await asyncio.sleep(0.1)
            for _ in range(30):
                got.append(await asyncio.wait_for(q.get(), 2.0))
            st = acq.stats()
        assert st["backpressure_waits"] >= 1
        t = [b.samples["ai20.pt101"].t_ns for b in got]
        assert t == sorted(t) and len(set(t)) == len(t)
        # 50 Hz grid: consecutive polls never more than a few periods apart once flowing
        assert st["devices"]["ai20"]["polls_ok"] >= 30

    arun(main())
