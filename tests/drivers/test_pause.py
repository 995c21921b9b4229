"""A device's pause between requests is a minimum, on either event loop."""

from __future__ import annotations

from itertools import pairwise

from drivers.sample import Quality
from tests.drivers.helpers import Collector, arun, reference_cfg, rig_acquiring

PAUSE_S = 0.003


def test_pause_between_requests_is_at_least_the_configured_time() -> None:
    """p101a read one field per request with 3 ms between them: every request of a poll starts
    at least 3 ms after the one before it ended, so the midpoints that stamp its fields are at
    least 3 ms apart. uvloop's `sleep(0.003)` ends after 2-3 ms (whole milliseconds counted
    from a cached clock): most gaps were short before the pause checked the clock."""
    cfg = reference_cfg()
    dev = cfg.devices["p101a"]
    quirks = dev.workarounds.model_copy(
        update={"one_request_per_field": True, "pause_between_requests_s": PAUSE_S}
    )
    devices = {**cfg.devices, "p101a": dev.model_copy(update={"workarounds": quirks})}
    cfg = cfg.model_copy(update={"devices": devices})

    async def main() -> Collector:
        col = Collector()
        async with rig_acquiring(cfg, col, only=["p101a"]):
            await col.wait_for(lambda: len(col.batches) >= 12, 10.0)
        return col

    col = arun(main(), 30)
    gaps = []
    for b in col.batches:
        if all(s.quality == Quality.GOOD for s in b.samples.values()):
            stamps = sorted({s.t_ns for s in b.samples.values()})
            assert len(stamps) >= 3, stamps  # one request per field: several per poll
            gaps += [(y - x) / 1e9 for x, y in pairwise(stamps)]
    assert len(gaps) >= 20, gaps
    assert min(gaps) >= PAUSE_S, sorted(gaps)[:5]
