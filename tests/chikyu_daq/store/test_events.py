"""The typed `events.jsonl` records: one shape written live and in replay, read back the same,
and recordings made before the types still read."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from pathlib import Path

import pytest

from chikyu_daq.store.events import (
    AlarmEdge,
    AssayEvent,
    ClockRebase,
    ClockStep,
    Event,
    OtherEvent,
    Reload,
    Transition,
    decode,
    encode,
)
from chikyu_daq.store.reader import list_runs, open_run
from chikyu_daq.store.writer import Recorder
from dsp.alarms import AlarmEvent
from tests.iface_servers import live_pipeline, reference

T0 = 1_700_000_000_000_000_000

ONE_OF_EACH: list[Event] = [
    AlarmEdge(T0, "SLUGGING", "raise", 0.7),
    AlarmEdge(T0 + 1, "SLUGGING", "clear"),
    Transition(
        T0 + 2,
        "SLUGGING",
        "ack",
        "active_unacked",
        "active_acked",
        "high",
        active=True,
        acked=True,
        shelved=False,
        operator="sato",
        reason="seen",
    ),
    AssayEvent(T0 + 3, 2150.0, 80.0, "KM-1", "2026-02-01T03:12:00.000Z", 78.0),
    AssayEvent(T0 + 4, 1800.0, 90.0),  # a synthetic run's: no lab fields
    ClockStep(T0 + 5, -2.5),
    ClockRebase(T0 + 6, "*", 3.0, T0, -3.0),
    Reload(T0 + 7, status="closing run"),
    Reload(T0 + 8, previous_run="r0", processor_kept=True),
]


@pytest.mark.parametrize("ev", ONE_OF_EACH, ids=lambda e: type(e).__name__)
def test_each_record_reads_back_from_its_json_line(ev: Event) -> None:
    assert decode(json.loads(json.dumps(encode(ev)))) == ev


def test_the_recorder_writes_what_the_replay_writes_and_reads_the_records_back(
    tmp_path: Path,
) -> None:
    """Live (the recorder) and replay (`json.dumps(encode(...))`) lines are the same bytes."""
    rec = Recorder(tmp_path, run_id="r", manifest={}, autoflush=False)
    dsp_edge = AlarmEvent(T0, "PUMP_SURGE", "raise", math.nan)
    for ev in [AlarmEdge.of(dsp_edge), *ONE_OF_EACH]:
        rec.write_event(ev)
    rec.close()
    lines = (tmp_path / "r" / "events.jsonl").read_text().splitlines()
    assert lines[0] == json.dumps(encode(AlarmEdge.of(dsp_edge)))
    assert json.loads(lines[0])["value"] is None  # NaN is no JSON
    want = [AlarmEdge(T0, "PUMP_SURGE", "raise"), *ONE_OF_EACH]
    assert open_run(tmp_path / "r").records() == want


def test_old_recordings_still_read() -> None:
    """Shapes written before the types: an edge with only `name`, a live assay marked
    `kind: "assay"` (with or without `type`), a reload without `t_ns`-typed fields."""
    edge = decode({"type": "alarm", "name": "SLUGGING", "kind": "raise", "t_ns": T0, "value": 1})
    assert edge == AlarmEdge(T0, "SLUGGING", "raise", 1.0)
    old_assay = {
        "kind": "assay", "t_ns": T0, "sample_id": "KM-1", "rey_ppm": 2150.0, "u_rey_ppm": 80.0,
        "sampled_at": "2026-02-01T03:12:00Z", "dy_ppm": None,
    }  # fmt: skip
    want = AssayEvent(T0, 2150.0, 80.0, "KM-1", "2026-02-01T03:12:00Z")
    assert decode(old_assay) == want
    assert decode({"type": "assay", **old_assay}) == want


@pytest.mark.parametrize(
    "doc",
    [
        {"kind": "alarm", "name": "SLUGGING", "t_ns": T0},  # no type: a test's or a tool's
        {"type": "operator_note", "t_ns": T0, "text": "pump 2 serviced"},  # a type not known
        {"type": "alarm", "alarm": "SLUGGING", "kind": "sideways", "t_ns": T0},  # not an edge
        {"type": "clock_step", "t_ns": T0},  # a field missing
    ],
)
def test_what_is_not_a_known_record_is_kept_as_it_is(doc: dict[str, object]) -> None:
    ev = decode(doc)
    assert isinstance(ev, OtherEvent) and encode(ev) == doc and ev.t_ns == T0


def test_a_live_assay_is_recorded_as_the_replay_reads_it(tmp_path: Path) -> None:
    """The real pipeline on emulated hardware: a lab result goes through the worker thread to
    `events.jsonl` and comes back from the recording as the same typed record the replay
    gives its processor."""
    t_assay = time.time_ns() - 60 * 10**9
    assay = AssayEvent(t_assay, 2100.0, 90.0, "KM-7")

    async def main() -> None:
        async with live_pipeline(reference(), tmp_path / "data") as live:
            live.pipeline.inject_assay(t_assay, 2100.0, 90.0, "KM-7")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # the worker's next tick records it
                runs = list_runs(tmp_path / "data")
                if runs and any(isinstance(e, AssayEvent) for e in runs[0].records()):
                    break
                await asyncio.sleep(0.1)

    asyncio.run(main())
    (run,) = list_runs(tmp_path / "data")
    (rec,) = [e for e in run.records() if isinstance(e, AssayEvent)]
    # and where it was applied: a minute after its sample, at the first grid point not computed
    assert rec == dataclasses.replace(assay, applied_ns=rec.applied_ns)
    assert rec.applied_ns is not None and rec.applied_ns > t_assay + 50 * 10**9
    assert rec.applied_ns % 100_000_000 == 0  # the reference config's 10 Hz grid
