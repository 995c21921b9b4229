"""Spool: lines survive reopening, the cursor moves only on commit, overflow is counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from chikyu_daq.sinks.influx.spool import Spool
from tests.chikyu_daq.spooling import drain, lines


def test_batches_in_order_and_resume_after_reopen(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20, segment_bytes=200)
    for k in range(10):
        s.append(lines(10 * k, 10 * k + 10))
    b = s.next_range(5, 1 << 20)
    assert b is not None and b.lines == 5
    s.commit(b)
    b2 = s.next_range(5, 1 << 20)  # read but never committed: must come again
    assert b2 is not None
    # A crash: the object is dropped without close().
    s2 = Spool(tmp_path, 1 << 20, segment_bytes=200)
    assert drain(s2) == lines(5, 100)
    assert s2.empty()
    s2.close()
    assert list((tmp_path / "segments").glob("*.lp")) == []


def test_batch_byte_limit_and_split(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20)
    s.append(lines(0, 100))
    b = s.next_range(5000, 100)
    assert b is not None and len(b.data) <= 100 and b.data.endswith(b"\n")
    first, second = b.split()
    assert first.data + second.data == b.data
    assert first.lines + second.lines == b.lines
    assert (first.end, second.start) == (second.start, first.end)


def test_torn_tail_of_old_segment_is_skipped_and_counted(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20)
    s.append(lines(0, 3))
    s.close()
    seg = sorted((tmp_path / "segments").glob("*.lp"))[-1]
    with open(seg, "ab") as f:
        f.write(b"m v=99i 9")  # power loss in the middle of a line
    s2 = Spool(tmp_path, 1 << 20)
    s2.append(lines(3, 5))
    assert drain(s2) == lines(0, 5)
    assert s2.stats().torn_bytes == len(b"m v=99i 9")


def test_drop_oldest_counts_lost_lines(tmp_path: Path) -> None:
    block = lines(0, 10)
    s = Spool(tmp_path, 10 * len(block), "drop_oldest", segment_bytes=2 * len(block))
    for _ in range(30):
        assert s.append(block)
    st = s.stats()
    assert st.spool_bytes <= 10 * len(block)
    assert st.dropped_lines > 0
    got = drain(s, 5000).count(b"\n")
    assert got + st.dropped_lines == 300


def test_drop_newest_refuses_and_counts(tmp_path: Path) -> None:
    block = lines(0, 10)
    s = Spool(tmp_path, 3 * len(block), "drop_newest")
    results = [s.append(block) for _ in range(5)]
    assert results == [True, True, True, False, False]
    assert s.stats().dropped_lines == 20
    assert drain(s, 5000) == block * 3


def test_rejects_unterminated_and_bad_options(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20)
    with pytest.raises(ValueError, match="newline"):
        s.append(b"m v=1")
    with pytest.raises(ValueError, match="overflow"):
        Spool(tmp_path / "x", 100, "drop_all")  # type: ignore[arg-type]


def test_append_without_sync_leaves_the_due_fsync_to_the_next_sync_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event loop appends with `sync=False` (it must not wait on the disk): the fsync that
    is due is not done there, but by the next `sync_if_due` (the uploader's turn)."""
    import os
    import time

    import chikyu_daq.sinks.influx.spool as spool_mod

    s = Spool(tmp_path, 1 << 20, fsync_interval_s=0.001)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(spool_mod.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    s.append(lines(0, 2))  # the first append of a segment may sync at once
    synced.clear()
    time.sleep(0.01)  # past the interval: the next append owes an fsync
    s.append(lines(2, 4), sync=False)
    assert synced == []
    s.sync_if_due()
    assert len(synced) == 1
    time.sleep(0.01)
    s.append(lines(4, 6))  # a worker thread's append still syncs when due
    assert len(synced) >= 2
    s.close()
