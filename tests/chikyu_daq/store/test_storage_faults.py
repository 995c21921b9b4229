"""Storage faults against the recorder and the spool: a really full tmpfs, a read-only mount,
an ext4 disk the kernel turns read-only, files and folders deleted while running.

Each fault must leave the writer alive (no exception out of write/flush/append/commit), counted by
errno in `stats()`, data kept in memory and written once the disk is back, and the run directory
and the spool readable afterwards with every sample exactly once.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from chikyu_daq.sinks.influx.spool import Spool
from chikyu_daq.store.reader import open_run
from chikyu_daq.store.writer import Recorder
from tests.chikyu_daq.fsfaults import Ext4, fill, read_only, tmpfs
from tests.chikyu_daq.spooling import drain
from tests.chikyu_daq.spooling import lines as spooled
from tests.servers import wait_until

T0 = 1_700_000_000_000_000_000
Block = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]


def block(k: int, n: int = 2000) -> Block:
    t = T0 + (k * n + np.arange(n, dtype=np.int64)) * 1_000_000
    v = np.random.default_rng(k).normal(330.0, 5.0, n)  # incompressible: fills the disk
    return {"ft201.volume_flow": (t, v, np.zeros(n, np.uint8))}


def joined(blocks: list[Block]) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.concatenate([b["ft201.volume_flow"][0] for b in blocks]),
        np.concatenate([b["ft201.volume_flow"][1] for b in blocks]),
    )


def lines(a: int, b: int) -> bytes:
    """Long lines: a few thousand fill the small disks here."""
    return spooled(a, b, pad=60)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "fs", "3m") as mnt:
        yield mnt


# -- full disk ---------------------------------------------------------------------------------
def test_recorder_on_full_disk_keeps_data_and_recovers(
    small_fs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder(small_fs / "runs", run_id="r", autoflush=False, flush_s=0.5)
    before = [block(0)]
    rec.write_raw(before[0])
    rec.flush()
    assert rec.stats()["recorder_ok"] is True
    filler = fill(small_fs)
    during = [block(k) for k in range(1, 4)]
    with caplog.at_level(logging.ERROR, logger="chikyu_daq.store.writer"):
        for b in during:
            rec.write_raw(b)
            rec.write_results(b["ft201.volume_flow"][0][:3], {"y": np.ones(3)})
            rec.write_event({"kind": "alarm", "k": int(b["ft201.volume_flow"][0][0])})
            rec.flush()  # raised OSError ENOSPC before
    st = rec.stats()
    assert st["recorder_ok"] is False and st["recorder_state"] == "degraded"
    assert st["recorder_errors_enospc"] >= 3 and "ENOSPC" in st["recorder_last_error"]
    assert st["recorder_pending_samples"] == sum(len(b["ft201.volume_flow"][0]) for b in during)
    enospc_logs = [r for r in caplog.records if "No space left" in r.getMessage()]
    assert len(enospc_logs) == 1  # rate-limited: one line per reason per 10 s
    assert not list((small_fs / "runs").rglob("*.tmp"))  # a failed write gives its space back
    filler.unlink()
    rec.flush()
    st = rec.stats()
    assert st["recorder_ok"] is True and st["recorder_pending_bytes"] == 0
    assert st["recorder_recoveries"] == 1
    rec.close()
    run = open_run(small_fs / "runs" / "r")
    t, v = run.raw()["ft201.volume_flow"][:2]
    want_t, want_v = joined(before + during)
    np.testing.assert_array_equal(t, want_t)  # every sample, once, in order
    np.testing.assert_array_equal(v, want_v)
    assert len(run.results()["t_ns"]) == 9
    assert [e["k"] for e in run.events()] == [int(b["ft201.volume_flow"][0][0]) for b in during]
    assert run.manifest.get("end_utc")


def test_recorder_closed_on_full_disk_is_readable(small_fs: Path) -> None:
    rec = Recorder(small_fs / "runs", run_id="r", autoflush=False, flush_s=0.5)
    rec.write_raw(block(0))
    rec.flush()
    fill(small_fs)
    rec.write_raw(block(1))
    rec.close()  # compaction and the end stamp fail: raised OSError before
    st = rec.stats()
    assert st["recorder_dropped_samples"] == len(block(1)["ft201.volume_flow"][0])
    v = open_run(small_fs / "runs" / "r").raw()["ft201.volume_flow"][1]
    np.testing.assert_array_equal(v, block(0)["ft201.volume_flow"][1])


def test_recorder_memory_bound_drops_newest_counted(small_fs: Path) -> None:
    per_block = 2000 * 17
    rec = Recorder(
        small_fs / "runs", run_id="r", autoflush=False, flush_s=0.5, max_pending_bytes=3 * per_block
    )
    filler = fill(small_fs)
    blocks = [block(k) for k in range(5)]
    for b in blocks:
        rec.write_raw(b)
        rec.flush()
    st = rec.stats()
    assert st["recorder_pending_samples"] == 3 * 2000 and st["recorder_dropped_samples"] == 2 * 2000
    assert st["recorder_errors_overflow"] == 2
    filler.unlink()
    rec.close()
    v = open_run(small_fs / "runs" / "r").raw()["ft201.volume_flow"][1]
    np.testing.assert_array_equal(v, joined(blocks[:3])[1])  # the oldest kept, never dropped


def test_spool_on_full_disk_keeps_lines_in_memory_and_recovers(small_fs: Path) -> None:
    s = Spool(small_fs / "spool", 64 << 20, segment_bytes=32 << 10, retry_s=0.01)
    blocks = [lines(100 * k, 100 * k + 100) for k in range(40)]
    for b in blocks[:10]:
        assert s.append(b)
    filler = fill(small_fs)
    for b in blocks[10:]:
        assert s.append(b)  # raised OSError ENOSPC before
    st = s.stats()
    assert st.health["spool_ok"] is False and st.health["spool_errors_enospc"] >= 1
    assert st.memory_bytes > 0
    batch = s.next_range(500, 1 << 20)
    assert batch is not None
    s.commit(batch)  # the cursor store fails too: kept in memory
    filler.unlink()

    def recovered() -> bool:
        s.sync_if_due()
        return s.stats().memory_bytes == 0 and s.stats().health["spool_ok"] is True

    wait_until(recovered, 5.0)
    assert batch.data + drain(s, 500) == b"".join(blocks)  # every line once, in order
    s.close()
    reopened = Spool(small_fs / "spool", 64 << 20)
    assert reopened.stats().cursor_repairs == 0 and drain(reopened, 500) == b""


# -- read-only ---------------------------------------------------------------------------------
def test_spool_rotation_on_read_only_mount_recovers(tmp_path: Path) -> None:
    d = tmp_path / "spool"
    s = Spool(d, 64 << 20, segment_bytes=4096, retry_s=0.01)
    blocks = [lines(10 * k, 10 * k + 10) for k in range(30)]
    for b in blocks[:3]:
        s.append(b)
    with read_only(d):
        for b in blocks[3:20]:  # the rotation's new segment gets EROFS
            assert s.append(b)  # raised OSError, then KeyError on every append, before
        st = s.stats()
        assert st.health["spool_errors_erofs"] >= 1 and st.health["spool_ok"] is False
        first = s.next_range(5, 1 << 20)
        assert first is not None
        s.commit(first)  # cursor.json cannot be replaced: kept, retried
    for b in blocks[20:]:
        assert s.append(b)
    assert first.data + drain(s, 500) == b"".join(blocks)
    assert s.stats().health["spool_ok"] is True
    s.close()


def test_recorder_on_read_only_mount_recovers(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    rec = Recorder(root, run_id="r", autoflush=False, flush_s=0.5)
    blocks = [block(k, 100) for k in range(4)]
    rec.write_raw(blocks[0])
    rec.flush()
    with read_only(root):
        rec.write_raw(blocks[1])
        rec.write_results(blocks[1]["ft201.volume_flow"][0][:3], {"y": np.ones(3)})
        rec.write_event({"kind": "reload"})
        rec.flush()  # raised OSError EROFS before (a new file: the results' stream)
        assert rec.stats()["recorder_errors_erofs"] >= 1
        rec.write_raw(blocks[2])
        rec.flush()
    rec.write_raw(blocks[3])
    rec.close()
    run = open_run(root / "r")
    np.testing.assert_array_equal(run.raw()["ft201.volume_flow"][1], joined(blocks)[1])
    assert len(run.results()["y"]) == 3
    assert [e["kind"] for e in run.events()] == ["reload"]


def test_ext4_turned_read_only_under_open_files_then_disk_replaced(tmp_path: Path) -> None:
    disk = Ext4(tmp_path / "disk.img", tmp_path / "disk")
    try:
        rec = Recorder(disk.mnt / "runs", run_id="r", autoflush=False, flush_s=0.5)
        spool = Spool(disk.mnt / "spool", 8 << 20, segment_bytes=16 << 10, retry_s=0.01)
        blocks = [block(k, 200) for k in range(3)]
        text = [lines(50 * k, 50 * k + 50) for k in range(6)]
        rec.write_raw(blocks[0])
        rec.write_event({"kind": "before"})
        rec.flush()
        spool.append(text[0])
        spool.sync()
        disk.break_()  # the kernel remounts read-only: even open descriptors get EROFS
        rec.write_raw(blocks[1])
        rec.write_event({"kind": "during"})
        rec.flush()
        for t in text[1:4]:
            assert spool.append(t)
        spool.sync_if_due()
        assert rec.stats()["recorder_errors_erofs"] >= 1
        assert spool.stats().health["spool_errors_erofs"] >= 1
        disk.replace_disk()
        rec.write_raw(blocks[2])
        rec.flush()
        for t in text[4:]:
            assert spool.append(t)
        assert rec.stats()["recorder_ok"] is True
        assert spool.stats().health["spool_ok"] is True
        rec.close()
        run = open_run(disk.mnt / "runs" / "r")
        np.testing.assert_array_equal(run.raw()["ft201.volume_flow"][1], joined(blocks)[1])
        assert [e["kind"] for e in run.events()] == ["before", "during"]
        assert drain(spool, 500) == b"".join(text)
        spool.close()
    finally:
        disk.close()


# -- deleted while running -----------------------------------------------------------------------
def test_recorder_run_directory_deleted_while_running(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    rec = Recorder(root, run_id="r", autoflush=False, flush_s=0.5)
    rec.write_raw(block(0, 100))
    rec.write_event({"kind": "lost"})
    rec.flush()
    shutil.rmtree(root / "r")
    rec.write_raw(block(1, 100))
    rec.write_event({"kind": "kept"})
    rec.flush()  # raised FileNotFoundError before
    st = rec.stats()
    assert st["recorder_lost_rows"] == 100 and st["recorder_lost_events"] == 1
    assert st["recorder_errors_deleted"] >= 1
    rec.close()
    run = open_run(root / "r")  # manifest written again
    np.testing.assert_array_equal(
        run.raw()["ft201.volume_flow"][1], block(1, 100)["ft201.volume_flow"][1]
    )
    assert [e["kind"] for e in run.events()] == ["kept"]


def test_recorder_event_file_deleted_while_open(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, run_id="r", autoflush=False, flush_s=0.5)
    rec.write_event({"kind": "a"})
    (tmp_path / "r" / "events.jsonl").unlink()
    rec.flush()
    rec.write_event({"kind": "b"})  # went to the deleted inode before: silently lost
    rec.close()
    assert [e["kind"] for e in open_run(tmp_path / "r").events()] == ["b"]
    assert rec.stats()["recorder_lost_events"] == 1


def test_spool_segments_deleted_while_running_are_counted(tmp_path: Path) -> None:
    d = tmp_path / "spool"
    s = Spool(d, 64 << 20, segment_bytes=2000, retry_s=0.01)
    blocks = [lines(10 * k, 10 * k + 10) for k in range(20)]
    for b in blocks:
        s.append(b)
    segs = sorted((d / "segments").glob("*.lp"))
    assert len(segs) >= 4
    victim = segs[1]
    lost = victim.read_bytes()
    victim.unlink()
    got = drain(s, 500)  # raised FileNotFoundError before
    assert got == b"".join(blocks).replace(lost, b"")
    assert s.stats().lost_lines == lost.count(b"\n")
    # The open segment deleted: noticed, its unsent lines counted, new lines go to a new one.
    s.append(lines(500, 510))
    active = sorted((d / "segments").glob("*.lp"))[-1]
    active.unlink()
    s.append(lines(510, 520))
    assert s.stats().lost_lines == lost.count(b"\n") + 10
    # The whole spool directory deleted, with the open segment's 10 unsent lines.
    shutil.rmtree(d)
    s.append(lines(520, 530))
    assert drain(s, 500) == lines(520, 530)
    assert s.stats().lost_lines == lost.count(b"\n") + 20
    s.close()
    assert Spool(d, 64 << 20).stats().cursor_repairs == 0


def test_spool_segment_deleted_at_rest_is_counted(tmp_path: Path) -> None:
    d = tmp_path / "spool"
    s = Spool(d, 64 << 20, segment_bytes=2000)
    for k in range(20):
        s.append(lines(10 * k, 10 * k + 10))
    s.close()
    segs = sorted((d / "segments").glob("*.lp"))
    lost = segs[2].read_bytes()
    segs[2].unlink()
    truncated = segs[3].read_bytes()
    segs[3].write_bytes(truncated[:100])  # cut mid-line: 1 whole line left, and a torn tail
    s2 = Spool(d, 64 << 20)
    kept_lines = truncated[:100].count(b"\n")
    assert s2.stats().lost_lines == lost.count(b"\n") + truncated.count(b"\n") - kept_lines
    got = drain(s2, 500)
    assert got == lines(0, 200).replace(lost, b"").replace(
        truncated, truncated[: truncated.rfind(b"\n", 0, 100) + 1]
    )


# -- what a disk fault leaves behind -------------------------------------------------------------
def test_reader_skips_files_a_disk_fault_left_unreadable(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, run_id="r", autoflush=False, flush_s=0.5)
    blocks = [block(k, 50) for k in range(3)]
    for b in blocks:
        rec.write_raw(b)
        rec.write_results(b["ft201.volume_flow"][0][:2], {"y": np.ones(2)})
        rec.flush()
    rec.write_event({"kind": "a"})
    rec.flush()
    stream = tmp_path / "r" / "raw" / "seg-000001.arrows"
    saved = stream.read_bytes()
    rec.close()
    # A crash between compaction and removing the stream, and the compacted file lost its data;
    # the stream's last batch never reached the disk whole.
    stream.write_bytes(saved[:-10])
    compacted = tmp_path / "r" / "raw" / "seg-000001.parquet"
    compacted.write_bytes(compacted.read_bytes()[:10])
    results = next((tmp_path / "r" / "results").glob("*.parquet"))
    results.write_bytes(b"\0" * 100)
    with open(tmp_path / "r" / "events.jsonl", "ab") as f:
        f.write(b"\0\0\0\0\n\xff\xfe\n")
    run = open_run(tmp_path / "r")  # raised ArrowInvalid before
    kept = [blocks[0], blocks[1]]
    np.testing.assert_array_equal(run.raw()["ft201.volume_flow"][1], joined(kept)[1])
    assert run.time_range() == (int(joined(kept)[0][0]), int(joined(kept)[0][-1]))
    assert run.results_table().num_rows == 0
    assert [e["kind"] for e in run.events()] == ["a"]


def test_eio_from_fsync_is_absorbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EIO has no real source on this machine (no device-mapper; a loop device over a full
    filesystem reports ENOSPC), so it is injected at the os boundary: `os.fsync` and
    `os.fdatasync` fail as a dying disk's writeback would, for a while, then work again."""
    real_fsync, real_fdatasync = os.fsync, os.fdatasync

    def dying(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    rec = Recorder(tmp_path / "runs", run_id="r", autoflush=False, flush_s=0.5)
    spool = Spool(tmp_path / "spool", 1 << 20, retry_s=0.01)
    blocks = [block(k, 100) for k in range(3)]
    rec.write_raw(blocks[0])
    rec.flush()
    spool.append(lines(0, 10))
    monkeypatch.setattr(os, "fsync", dying)
    monkeypatch.setattr(os, "fdatasync", dying)
    rec.write_raw(blocks[1])
    rec.flush()  # raised OSError EIO before
    spool.append(lines(10, 20))
    spool.sync()  # raised OSError EIO before
    assert rec.stats()["recorder_errors_eio"] >= 1 and rec.stats()["recorder_ok"] is False
    assert spool.stats().health["spool_errors_eio"] >= 1
    assert not list((tmp_path / "runs").rglob("*.tmp"))
    monkeypatch.setattr(os, "fsync", real_fsync)
    monkeypatch.setattr(os, "fdatasync", real_fdatasync)
    rec.write_raw(blocks[2])
    spool.append(lines(20, 30))
    rec.close()
    np.testing.assert_array_equal(
        open_run(tmp_path / "runs" / "r").raw()["ft201.volume_flow"][1], joined(blocks)[1]
    )
    assert drain(spool, 500) == lines(0, 30)  # the lines written before the failed fsync are kept
    spool.close()


def test_start_on_a_read_only_disk_then_it_comes_back(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "runs").mkdir(parents=True)
    (data / "spool").mkdir()
    with read_only(data):
        rec = Recorder(data / "runs", run_id="r", autoflush=False, flush_s=0.5)  # raised before
        spool = Spool(data / "spool", 1 << 20, retry_s=0.01)  # raised before
        rec.write_raw(block(0, 100))
        rec.write_event({"kind": "start"})
        rec.flush()
        assert spool.append(lines(0, 10))
        assert rec.stats()["recorder_errors_erofs"] >= 1 and rec.stats()["recorder_ok"] is False
        assert spool.stats().health["spool_errors_erofs"] >= 1
    rec.write_raw(block(1, 100))
    rec.close()
    run = open_run(data / "runs" / "r")
    np.testing.assert_array_equal(
        run.raw()["ft201.volume_flow"][1], joined([block(0, 100), block(1, 100)])[1]
    )
    assert [e["kind"] for e in run.events()] == ["start"]
    assert drain(spool, 500) == lines(0, 10)
    spool.close()


def test_a_damaged_stream_does_not_stop_close(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, run_id="r", autoflush=False, flush_s=0.5)
    for k in range(2):
        rec.write_raw(block(k, 50))
        rec.flush()
    stream = tmp_path / "r" / "raw" / "seg-000001.arrows"
    os.truncate(stream, stream.stat().st_size - 10)  # the second batch torn under the recorder
    rec.close()
    assert rec.stats()["recorder_lost_rows"] == 50
    v = open_run(tmp_path / "r").raw()["ft201.volume_flow"][1]
    np.testing.assert_array_equal(v, block(0, 50)["ft201.volume_flow"][1])
