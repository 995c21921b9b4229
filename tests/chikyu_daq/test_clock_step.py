"""A backwards step of the clock that stamps samples, in the real pipeline: drivers over TCP
against the emulated hardware, the wall clock stepped by the test (the host's own clock cannot
be stepped by a test, so the pipeline is given `real time + an offset the test moves`)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chikyu_daq.recording import open_run
from tests.iface_servers import live_pipeline, reference

pytestmark = [pytest.mark.servers, pytest.mark.slow]

S = 1_000_000_000
STEP_S = -5.0


async def _until(predicate: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"condition not met within {timeout_s} s")


def test_backwards_clock_step_loses_nothing_and_flags_results(tmp_path: Path) -> None:
    cfg = reference()
    offset = [0]
    seen: dict[str, Any] = {}

    def clock() -> int:
        return time.time_ns() + offset[0]

    async def main() -> None:
        async with live_pipeline(cfg, tmp_path / "data", clock=clock) as live:
            p = live.pipeline
            await _until(lambda: p.processor.points_done >= 30, 60)  # 3 s of grid
            offset[0] = round(STEP_S * S)
            stepped_points = p.processor.points_done
            # 8 s of real time after the step: past the re-covered 5 s
            await _until(lambda: p.processor.points_done >= stepped_points + 80, 40)
            seen["stats"] = p.stats()
            await _until(  # the 1 s clock check has run since
                lambda: p.interfaces.steps is not None and p.interfaces.steps.steps >= 1, 5
            )
            assert p.outputs.recorder is not None
            seen["run_dir"] = p.outputs.recorder.path

    asyncio.run(main())
    st = seen["stats"]
    assert st["late_samples"] == 0  # nothing the step made "old" was dropped
    # one step; a poll straddling it is stamped at its midpoint and may show it as two halves
    assert 1 <= st["clock_rebases"] <= 2
    run = open_run(seen["run_dir"])
    # the step, found in the raw recording (arrival order) of one role channel
    t_raw = run.raw(["ft201.volume_flow"])["ft201.volume_flow"][0]
    back = np.flatnonzero(np.diff(t_raw) < 0)
    assert 1 <= back.size <= 2
    before, after = int(t_raw[back[0]]), int(t_raw[back[-1] + 1])
    assert (after - before) / S == pytest.approx(STEP_S, abs=0.5)
    events = run.events()
    steps = [e for e in events if e["type"] == "clock_step"]
    assert len(steps) == 1 and steps[0]["step_s"] == pytest.approx(STEP_S, abs=0.05)
    rebases = [e for e in events if e["type"] == "clock_rebase"]
    assert len(rebases) == st["clock_rebases"]
    assert sum(e["step_s"] for e in rebases) <= -2.0
    # no channel went stale for the step: no sensor fault raised after it
    faults = [e for e in events if e.get("alarm", "").startswith("SENSOR_FAULT")]
    assert not [e for e in faults if e["kind"] == "raise" and e["t_ns"] >= after], faults

    res = run.results()
    t = res["t_ns"]
    step_ns = round(S / cfg.processing.grid_hz)
    d = np.diff(t)
    jumps = np.flatnonzero(d != step_ns)
    # one grid, unbroken but for the jump(s) back, together the step rounded up to whole seconds
    assert 1 <= jumps.size <= 2 and np.all(d[jumps] < 0)
    assert -7 * S <= int(np.sum(d[jumps] - step_ns)) <= -5 * S
    j = int(jumps[0])
    # every result of the new epoch stamped where the old one already was is flagged, and
    # nothing away from the step is
    flagged = 0
    for i in range(t.shape[0]):
        if i > j and t[i] <= before:
            assert res["clock_step"][i] == 1, i
            assert res["q_cumulative"][i] >= 1 and res["q_yield"][i] >= 1
            flagged += 1
        elif (i <= j and t[i] < before - 2 * S) or (i > j and t[i] > before + 2 * S):
            assert res["clock_step"][i] == 0, i
    assert flagged >= 45  # ≈ 5 s at 10 Hz
    # the yield integral did not run backwards across the step
    cum = res["cum_solids_kg"]
    ok = np.isfinite(cum)
    assert np.all(np.diff(cum[ok]) >= -1e-9)
    # the role channel's newest raw sample is covered by the results: processed, not pending
    assert int(t_raw[-1]) <= int(t[-1]) + 2 * S
