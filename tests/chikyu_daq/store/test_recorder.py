"""Recorder and reader: round trip, rotation, time ranges, and a run cut short by kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from chikyu_daq.store.reader import list_runs, open_run
from chikyu_daq.store.writer import Recorder

REPO = Path(__file__).resolve().parents[3]
T0 = 1_700_000_000_000_000_000


def block(k: int, n: int = 10) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    t = T0 + (k * n + np.arange(n, dtype=np.int64)) * 100_000_000
    return {
        "ft201.volume_flow": (t, 330.0 + np.arange(n) + k * n, np.zeros(n, np.uint8)),
        "dt201.density": (t[::2], np.full(len(t[::2]), np.nan), np.full(len(t[::2]), 2, np.uint8)),
    }


def test_round_trip_with_rotation_and_ranges(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "runs", run_id="r1", manifest={"config": {"a": 1}}, segment_s=0.3,
                   flush_s=0.1, autoflush=False)  # fmt: skip
    for k in range(20):
        rec.write_raw(block(k))
        rec.write_results(
            T0 + np.array([k * 10**9]), {"rey_kg": np.array([float(k)]), "ok": np.array([True])}
        )
        rec.write_event({"kind": "alarm", "name": "SLUGGING", "t_ns": T0 + k})
        rec.flush()
        if k % 7 == 6:
            time.sleep(0.31)  # let a segment age past segment_s: exercises compaction
            rec.flush()
    rec.close()
    assert any(p.suffix == ".parquet" for p in (tmp_path / "runs/r1/raw").iterdir())
    run = open_run(tmp_path / "runs" / "r1")
    assert run.manifest["config"] == {"a": 1} and "end_utc" in run.manifest
    raw = run.raw()
    t, v, q = raw["ft201.volume_flow"]
    assert np.array_equal(t, T0 + np.arange(200) * 100_000_000)
    assert np.array_equal(v, 330.0 + np.arange(200))
    assert q.dtype == np.uint8 and not q.any()
    td, vd, qd = raw["dt201.density"]
    assert len(td) == 100 and np.isnan(vd).all() and (qd == 2).all()
    sub = run.raw(["ft201.volume_flow"], t0=T0 + 50 * 100_000_000, t1=T0 + 60 * 100_000_000)
    assert list(sub) == ["ft201.volume_flow"] and len(sub["ft201.volume_flow"][0]) == 10
    res = run.results()
    assert np.array_equal(res["rey_kg"], np.arange(20.0))
    assert [e["t_ns"] for e in run.events()] == [T0 + k for k in range(20)]
    df = run.to_pandas("raw")
    assert len(df) == 300
    assert [r.run_id for r in list_runs(tmp_path)] == ["r1"]


CHILD = r"""
import sys, time
import numpy as np
from chikyu_daq.store.writer import Recorder
rec = Recorder(sys.argv[1], run_id="crash", manifest={"config": {}}, segment_s=1.0, flush_s=0.2)
T0 = 1_700_000_000_000_000_000
k = 0
while True:  # killed by the parent
    t = T0 + np.arange(k * 50, (k + 1) * 50, dtype=np.int64)
    rec.write_raw({"pt301.pressure": (t, (t - T0).astype(float), np.zeros(50, np.uint8))})
    rec.write_event({"kind": "tick", "k": k, "t_ns": int(t[-1])})
    print(k, time.monotonic(), flush=True)
    k += 1
    time.sleep(0.01)
"""


def test_run_killed_with_sigkill_is_readable_up_to_one_second_before(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "runs")], stdout=subprocess.PIPE, env=env,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    written: list[tuple[int, float]] = []
    for line in proc.stdout:  # bounded: we stop reading after ~2.5 s of child output
        k, at = line.split()
        written.append((int(k), float(at)))
        if written[-1][1] - written[0][1] > 2.5:
            break
    proc.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    proc.wait(10)
    run = open_run(tmp_path / "runs" / "crash")
    old_enough = [k for k, at in written if killed_at - at > 1.0]
    assert old_enough, "the child must have run for more than a second"
    t, v, _ = run.raw()["pt301.pressure"]
    n_expected = (max(old_enough) + 1) * 50
    assert np.array_equal(v, (t - T0).astype(float))
    assert len(t) >= n_expected
    assert np.array_equal(t[:n_expected], T0 + np.arange(n_expected))
    assert np.array_equal(np.diff(t), np.ones(len(t) - 1, dtype=np.int64))  # no duplicates
    ticks = [e["k"] for e in run.events()]
    assert ticks[: max(old_enough) + 1] == list(range(max(old_enough) + 1))
    assert "end_utc" not in run.manifest


def test_rejects_mismatched_lengths_and_bad_flush(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="flush_s"):
        Recorder(tmp_path, flush_s=2.0)
    rec = Recorder(tmp_path, run_id="x", autoflush=False)
    with pytest.raises(ValueError, match="lengths"):
        rec.write_raw({"a.b": (np.arange(2), np.zeros(3), np.zeros(2, np.uint8))})
    rec.close()
    assert json.loads((tmp_path / "x" / "manifest.json").read_text())["run_id"] == "x"


def test_a_block_larger_than_the_pending_bound_is_kept_while_the_disk_works(
    tmp_path: Path,
) -> None:
    """The pending bound is for data waiting on a failing disk; an import or a slow flusher that
    hands over a large block on a healthy disk must lose nothing."""
    rec = Recorder(tmp_path / "runs", run_id="big", manifest={}, autoflush=False,
                   max_pending_bytes=1 << 16)  # fmt: skip
    n = 20_000  # 20,000 samples x 17 B is ~5x the bound
    t = T0 + np.arange(n, dtype=np.int64) * 1_000_000
    rec.write_raw({"ft201.volume_flow": (t, np.arange(n, dtype=np.float64), np.zeros(n, np.uint8))})
    rec.write_results(t, {"rey_kg": np.arange(n, dtype=np.float64)})
    rec.close()
    assert rec.stats()["recorder_dropped_samples"] == 0
    run = open_run(tmp_path / "runs" / "big")
    assert len(run.raw()["ft201.volume_flow"][0]) == n
    assert len(run.results()["rey_kg"]) == n


def test_results_stream_then_compressed_segment_read_back_the_same(tmp_path: Path) -> None:
    """The open segment is an Arrow stream (cheap to append to); the compacted segment has
    zstd; the rows read back the same from both."""
    import pyarrow.parquet as pq

    rec = Recorder(tmp_path / "runs", run_id="r", autoflush=False)
    t = T0 + np.arange(10, dtype=np.int64) * 100_000_000
    cols = {"rey_kg_h": np.linspace(0.0, 1.0, 10), "q_yield": np.zeros(10, np.uint8)}
    rec.write_results(t, cols)
    rec.flush()
    assert [p.name for p in (rec.path / "results").iterdir()] == ["seg-000001.arrows"]
    before = open_run(rec.path).results_table()
    rec.close()
    (seg,) = (rec.path / "results").iterdir()
    assert pq.ParquetFile(seg).metadata.row_group(0).column(1).compression == "ZSTD"
    after = open_run(rec.path).results_table()
    assert before.equals(after)
    assert after.column("rey_kg_h").to_pylist() == cols["rey_kg_h"].tolist()


def test_file_count_is_kept_without_listing_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`stats()` runs once a second for the health record: late in a segment of a long run the
    raw folder holds over a thousand files, so it counts them from its own ledger, and the
    count agrees with what a reader finds through streams, a deleted stream and compaction."""
    import pathlib

    from chikyu_daq.store.reader import segment_files

    rec = Recorder(tmp_path / "runs", run_id="r1", manifest={}, segment_s=600.0, autoflush=False)
    raw = tmp_path / "runs" / "r1" / "raw"

    def files() -> int:
        def refuse(*_a: object, **_k: object) -> None:
            raise AssertionError("stats() listed a folder")

        with monkeypatch.context() as m:
            m.setattr(pathlib.Path, "iterdir", refuse)
            m.setattr(pathlib.Path, "glob", refuse)
            n = rec.stats()["recorder_files"]
        assert n == len(segment_files(raw))
        return int(n)

    for k in range(3):
        rec.write_raw(block(k))
        rec.flush()
    assert files() == 1
    (raw / "seg-000001.arrows").unlink()  # deleted under the recorder
    rec.flush()
    assert files() == 0
    assert rec.stats()["recorder_lost_rows"] == sum(
        len(t) for k in range(3) for t, _, _ in block(k).values()
    )
    for k in range(3, 5):
        rec.write_raw(block(k))
        rec.flush()
    assert files() == 1
    rec.close()  # the open segment compacted into one file
    assert files() == 1


def test_a_compacted_raw_segment_has_a_row_group_per_channel(tmp_path: Path) -> None:
    """Parts interleave the channels flush by flush; the compacted segment holds each channel
    in a row group of its own (so a replay decodes only the channels it uses), in its order."""
    import pyarrow.parquet as pq

    rec = Recorder(tmp_path / "runs", run_id="r", autoflush=False)
    for k in range(5):
        rec.write_raw(block(k))
        rec.flush()
    rec.close()
    (seg,) = (rec.path / "raw").glob("seg-*.parquet")
    meta = pq.read_metadata(seg)
    stats = [meta.row_group(i).column(0).statistics for i in range(meta.num_row_groups)]
    assert [(s.min, s.max) for s in stats] == [
        (c, c) for c in ("dt201.density", "ft201.volume_flow")
    ]
    raw = open_run(rec.path).raw()
    want = [block(k) for k in range(5)]
    for ch in ("dt201.density", "ft201.volume_flow"):
        for i in range(3):
            np.testing.assert_array_equal(raw[ch][i], np.concatenate([b[ch][i] for b in want]))


def test_the_event_file_is_fsynced_only_by_flushes_that_wrote_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event is durable at the flush after it; a flush that wrote no event line costs no
    fsync of `events.jsonl` (most flushes: two a second, events a few an hour)."""
    rec = Recorder(tmp_path / "runs", run_id="r", autoflush=False)
    events_syncs: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")) == "events.jsonl":
            events_syncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    rec.write_event({"kind": "alarm", "name": "SLUGGING", "t_ns": T0})
    rec.flush()
    assert len(events_syncs) == 1  # the event's flush syncs it
    for k in range(5):
        rec.write_raw(block(k))
        rec.flush()
    assert len(events_syncs) == 1  # raw-only flushes leave the event file alone
    rec.write_event({"kind": "alarm", "name": "SLUGGING", "t_ns": T0 + 1})
    rec.flush()
    assert len(events_syncs) == 2
    rec.close()
    stamps = [json.loads(line)["t_ns"] for line in (tmp_path / "runs/r/events.jsonl").open()]
    assert stamps == [T0, T0 + 1]
