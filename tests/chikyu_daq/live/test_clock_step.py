"""A backwards step of the clock that stamps samples, in the real pipeline: drivers over TCP
against the emulated hardware, the wall clock stepped by the test (the host's own clock cannot
be stepped by a test, so the pipeline is given `real time + an offset the test moves`)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from chikyu_daq.replay.engine import ReplayOptions, replay
from chikyu_daq.store.reader import Run, open_run
from tests.iface_servers import live_pipeline, reference

pytestmark = [pytest.mark.servers, pytest.mark.slow]

S = 1_000_000_000
STEP_S = -5.0
ROLE_CHANNELS = 11


async def _until(predicate: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"condition not met within {timeout_s} s")


def _stepped_run(tmp_path: Path, step_s: float) -> tuple[dict[str, Any], Run]:
    """The pipeline for 3 s, the stamping clock stepped by `step_s`, then 8 s more."""
    cfg = reference()
    offset = [0]
    seen: dict[str, Any] = {}

    def clock() -> int:
        return time.time_ns() + offset[0]

    async def main() -> None:
        async with live_pipeline(cfg, tmp_path / "data", clock=clock) as live:
            p = live.pipeline
            await _until(lambda: p.processor.points_done >= 30, 60)  # 3 s of grid
            offset[0] = round(step_s * S)
            stepped_points = p.processor.points_done
            await _until(lambda: p.processor.points_done >= stepped_points + 80, 40)
            seen["stats"] = p.stats()
            await _until(  # the 1 s clock check has run since
                lambda: p.interfaces.steps is not None and p.interfaces.steps.steps >= 1, 5
            )
            assert p.outputs.recorder is not None
            seen["run_dir"] = p.outputs.recorder.path

    asyncio.run(main())
    return seen["stats"], open_run(seen["run_dir"])


def _faults_after(events: list[dict[str, Any]], t_ns: int) -> list[dict[str, Any]]:
    faults = [e for e in events if e.get("alarm", "").startswith("SENSOR_FAULT")]
    return [e for e in faults if e["kind"] == "raise" and e["t_ns"] >= t_ns]


def test_backwards_clock_step_loses_nothing_and_flags_results(tmp_path: Path) -> None:
    st, run = _stepped_run(tmp_path, STEP_S)
    cfg = reference()
    # nothing the step made "old" was dropped; at most the one poll per channel that
    # straddled the step (stamped inside it) is not processed
    assert st["late_samples"] <= ROLE_CHANNELS
    assert st["clock_rebases"] == 1
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
    # measured on the channel that showed it: the step plus that channel's sample interval
    # (the densitometer's 0.5 s), so up to about half a second short of the step
    assert len(rebases) == 1 and STEP_S - 0.1 < rebases[0]["step_s"] < STEP_S + 0.5 + 0.2
    # no channel went stale for the step: no sensor fault raised after it
    assert not _faults_after(events, after)

    res = run.results()
    t = res["t_ns"]
    step_ns = round(S / cfg.processing.grid_hz)
    d = np.diff(t)
    jumps = np.flatnonzero(d != step_ns)
    # one grid, unbroken but for the jump back: the step rounded up to whole seconds
    assert jumps.size == 1 and -7 * S <= int(d[jumps[0]] - step_ns) <= -5 * S
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
    # a replay of the recording (in arrival order within its hour-long chunks) re-bases alike;
    # its bridge may differ by a few grid steps (the newest sample before the step it sees
    # is the first channel's, not all channels')
    summary = replay(run.path, ReplayOptions(out_dir=tmp_path / "replay", report=False))
    assert summary["late_samples"] <= ROLE_CHANNELS
    rep = pq.read_table(tmp_path / "replay" / "results.parquet")
    assert int(pc.sum(rep["clock_step"]).as_py()) >= 45
    assert np.count_nonzero(np.diff(rep["t_ns"].to_numpy()) != step_ns) == 1
    per_step = float(np.max(np.diff(cum[ok])))
    assert abs(summary["cum_solids_kg"] - float(cum[ok][-1])) <= 6 * per_step


def test_forward_clock_step_bridged_flagged_and_no_stale_channels(tmp_path: Path) -> None:
    st, run = _stepped_run(tmp_path, -STEP_S)
    assert st["late_samples"] <= ROLE_CHANNELS and st["clock_rebases"] == 1
    t_raw = run.raw(["ft201.volume_flow"])["ft201.volume_flow"][0]
    d_raw = np.diff(t_raw)
    k = int(np.argmax(d_raw))
    assert d_raw[k] / S == pytest.approx(-STEP_S, abs=0.5)
    after = int(t_raw[k + 1])
    events = run.events()
    steps = [e for e in events if e["type"] == "clock_step"]
    assert len(steps) == 1 and steps[0]["step_s"] == pytest.approx(-STEP_S, abs=0.05)
    assert len([e for e in events if e["type"] == "clock_rebase"]) == 1
    # no channel went stale across the jump: no sensor fault for the 5 s nobody measured
    assert not _faults_after(events, after - 6 * S)
    res = run.results()
    t = res["t_ns"]
    step_ns = round(S / reference().processing.grid_hz)
    d = np.diff(t)
    jumps = np.flatnonzero(d != step_ns)
    assert jumps.size == 1 and 3.9 * S <= d[jumps[0]] <= 5.1 * S
    j = int(jumps[0])
    flagged = np.flatnonzero(res["clock_step"] == 1)
    # the bridge: at most one publish period plus a grid step of points, just before the jump
    assert 1 <= flagged.size <= 11 and flagged.max() <= j and flagged.min() >= j - 11
    assert np.all(res["q_yield"][flagged] >= 1)
    # the jump is not a data gap: the gap total is the same on both sides of it
    gap = res["gap_s"]
    assert gap[-1] == gap[j]
