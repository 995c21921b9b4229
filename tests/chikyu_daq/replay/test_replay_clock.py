"""Replay across a step of the recording's clock: how the recording is cut into chunks of
recording time changes nothing (a backwards step's two sides never mix in a chunk), a forward
step in the first chunk is re-based as later ones are, and the summary counts the re-bases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chikyu_daq.config.model import load_config
from chikyu_daq.replay.engine import ReplayOptions, replay
from chikyu_daq.store.events import ClockRebase, decode
from chikyu_daq.store.reader import RAW_SCHEMA
from tests.chikyu_daq.live.test_processor import T0, synth
from tests.chikyu_daq.live.test_processor_clock import stepped

REPO = Path(__file__).resolve().parents[3]
S = 1_000_000_000
FLUSH_S = 10  # one recorder flush (by arrival): a row group, its rows sorted by channel


def _stepped_run(root: Path, step_s: float, *, seen: bool = True) -> Path:
    """A 60 s recording whose stamping clock stepped by `step_s` 30 s in, written as the
    recorder writes it: in arrival order, a row group per flush; with the `clock_step` event
    the daemon's (wall − monotonic) check records (`seen`)."""
    cfg = load_config(REPO / "config" / "reference.toml")
    data, arrival = stepped(step_s), synth(60.0)
    (root / "raw").mkdir(parents=True)
    (root / "manifest.json").write_text(
        json.dumps({"run_id": root.name, "config": cfg.model_dump(mode="json")}),
        encoding="utf-8",
    )
    groups = []
    for lo in range(T0, T0 + 60 * S, FLUSH_S * S):
        cols: dict[str, list[np.ndarray]] = {"channel": [], "t_ns": [], "value": [], "quality": []}
        for ch in sorted(data):
            m = (arrival[ch][0] >= lo) & (arrival[ch][0] < lo + FLUSH_S * S)
            cols["channel"].append(np.full(int(m.sum()), ch, dtype=object))
            for name, x in zip(("t_ns", "value", "quality"), data[ch], strict=True):
                cols[name].append(x[m])
        groups.append(pa.table({k: np.concatenate(v) for k, v in cols.items()}).cast(RAW_SCHEMA))
    with pq.ParquetWriter(root / "raw" / "seg-000001.parquet", RAW_SCHEMA) as w:
        for g in groups:
            w.write_table(g)
    if seen:
        step = {"type": "clock_step", "t_ns": T0 + round((30 + step_s) * S), "step_s": step_s}
        (root / "events.jsonl").write_text(json.dumps(step) + "\n", encoding="utf-8")
    return root


def _replayed(run: Path, out: Path, chunk_s: float) -> tuple[dict[str, Any], pa.Table, list[str]]:
    summary = replay(run, ReplayOptions(out_dir=out, report=False, chunk_s=chunk_s))
    events = (out / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return summary, pq.read_table(out / "results.parquet"), [_chunk_free(e) for e in events]


def _chunk_free(line: str) -> str:
    """An event line without what depends on where a chunk ended: a forward step's size and
    start are measured from the newest sample read before it (one more chunk, a later one)."""
    ev = json.loads(line)
    if ev.get("type") == "clock_rebase" and ev["step_s"] > 0:
        del ev["step_s"], ev["from_ns"]
    return json.dumps(ev)


@pytest.mark.parametrize("step_s", [-5.0, 5.0])
def test_chunking_across_a_clock_step_changes_nothing(tmp_path: Path, step_s: float) -> None:
    run = _stepped_run(tmp_path / "run", step_s)
    whole, res, events = _replayed(run, tmp_path / "whole", 3600.0)
    assert whole["clock_rebases"] == 1
    # at most the AI-20 poll that straddled the step (one sample per AI-20 channel)
    assert whole["late_samples"] <= sum(ch.startswith("ai20.") for ch in synth(1.0))
    # chunk edges inside the re-covered (or skipped) stamps: 27.5, 30 - 1.7, ...
    for chunk_s in (27.5, 1.7):
        s, r, e = _replayed(run, tmp_path / f"c{chunk_s}", chunk_s)
        assert s["clock_rebases"] == 1
        assert s["late_samples"] == whole["late_samples"]
        assert s["raw_samples_processed"] == whole["raw_samples_processed"]
        assert r.column_names == res.column_names
        for name in res.column_names:  # bit for bit, NaN where NaN
            np.testing.assert_array_equal(r[name].to_numpy(), res[name].to_numpy(), name)
        assert e == events, chunk_s


def test_a_forward_step_in_the_first_chunk_is_rebased(tmp_path: Path) -> None:
    run = _stepped_run(tmp_path / "run", 5.0)
    s, res, _ = _replayed(run, tmp_path / "out", 3600.0)
    assert s["clock_rebases"] == 1
    t = res["t_ns"].to_numpy()
    step_ns = S // 10
    jumps = np.flatnonzero(np.diff(t) != step_ns)
    # the grid bridges the skipped 5 s in one jump, flagged just before it
    assert jumps.size == 1 and 3.9 * S <= np.diff(t)[jumps[0]] <= 5.1 * S
    assert 1 <= int(np.sum(res["clock_step"].to_numpy())) <= 11
    # no channel went stale for the 5 s nobody measured
    faults = [json.loads(x) for x in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    assert not [e for e in faults if e.get("alarm", "").startswith("SENSOR_FAULT")]
    # the re-base is recorded as live records it: one typed `clock_rebase` event
    rebases = [decode(e) for e in faults if e.get("type") == "clock_rebase"]
    assert len(rebases) == 1 and isinstance(rebases[0], ClockRebase)
    assert rebases[0].step_s == pytest.approx(5.0, abs=0.5)


def test_a_forward_jump_the_clock_did_not_make_is_replayed_as_stamped(tmp_path: Path) -> None:
    """The same recording without the daemon's `clock_step` event: every poll 5 s late alike
    (a stalled loop, a paused host) is a gap in the data, not a step to re-base."""
    run = _stepped_run(tmp_path / "run", 5.0, seen=False)
    summary, res, _ = _replayed(run, tmp_path / "out", 3600.0)
    assert summary["clock_rebases"] == 0
    assert int(np.sum(res["clock_step"].to_numpy())) == 0
    assert float(np.nanmax(res["gap_s"].to_numpy())) > 0.0
