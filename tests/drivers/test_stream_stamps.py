"""Stamps of a sentence stream: sentences that arrive in one read stay distinct samples."""

from __future__ import annotations

import time

from drivers.sample import Quality
from drivers.sentence import frame_sentence
from hil.emulators.densitometer import DensitometerEmulator
from tests.drivers.helpers import Collector, arun, reference_cfg, rig_acquiring


def test_sentences_in_one_read_get_distinct_stamps_no_later_than_arrival() -> None:
    """Three sentences in one write over loopback TCP (a daemon whose loop was busy reads what
    queued meanwhile at once): one stamp for all three made InfluxDB keep one point of three
    while the recording kept three (test_daemon's raw-vs-InfluxDB check, seen on uvloop)."""

    async def main() -> None:
        col = Collector()
        async with rig_acquiring(reference_cfg(), col, only=["dt201"]) as (rig, acq):
            emu = rig.emulators["densitometer"]
            assert isinstance(emu, DensitometerEmulator)

            def good() -> list[int]:
                return [s.t_ns for s in col.samples("dt201.density") if s.quality == Quality.GOOD]

            await col.wait_for(lambda: len(good()) >= 1, 5.0)
            n = len(good())
            seq = emu.seq
            emu.send_raw(
                b"".join(
                    frame_sentence(f"PDNS,{(seq + k) % 65536},1050.00,18.4,52113,0000")
                    for k in range(3)
                )
            )
            await col.wait_for(lambda: len(good()) >= n + 3, 5.0)
            after = time.time_ns()
        stamps = good()
        assert len(set(stamps)) == len(stamps), stamps
        assert stamps == sorted(stamps) and stamps[-1] <= after
        assert acq.stats()["devices"]["dt201"]["bad_frames"] == 0

    arun(main(), 30)
