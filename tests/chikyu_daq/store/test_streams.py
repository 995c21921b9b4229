"""The open segment as Arrow stream files: torn tails, failed appends, and the old `.parts`
layout (recordings made before issue 13) read the same as the new one."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chikyu_daq.store.reader import (
    RAW_SCHEMA,
    open_run,
    read_segment_file,
    read_stream,
    segment_files,
)
from chikyu_daq.store.writer import Recorder

T0 = 1_700_000_000_000_000_000
Block = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]


def block(k: int, n: int = 40) -> Block:
    t = T0 + (k * n + np.arange(n, dtype=np.int64)) * 10_000_000
    return {
        "ft201.volume_flow": (t, 330.0 + np.arange(n) + k * n, np.zeros(n, np.uint8)),
        "dt201.density": (t[::4], np.full(len(t[::4]), 1.5 + k), np.full(len(t[::4]), 2, np.uint8)),
    }


def joined(blocks: list[Block], ch: str) -> tuple[np.ndarray, ...]:
    return tuple(np.concatenate([b[ch][i] for b in blocks]) for i in range(3))


def assert_raw(run_dir: Path, blocks: list[Block]) -> None:
    raw = open_run(run_dir).raw()
    assert sorted(raw) == ["dt201.density", "ft201.volume_flow"]
    for ch in raw:
        for got, want in zip(raw[ch], joined(blocks, ch), strict=True):
            np.testing.assert_array_equal(got, want)  # every row once, in order


def crashed_run(tmp_path: Path, blocks: list[Block]) -> Path:
    """A run left as a crash leaves it: flushed, never closed."""
    rec = Recorder(tmp_path / "runs", run_id="r", autoflush=False)
    for k, b in enumerate(blocks):
        rec.write_raw(b)
        t = b["ft201.volume_flow"][0][:2]
        rec.write_results(t, {"rey_kg_h": np.array([k, k + 0.5]), "ok": np.array([True, False])})
        rec.flush()
    return rec.path


def test_a_torn_tail_reads_back_every_complete_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocks = [block(k) for k in range(3)]
    run_dir = crashed_run(tmp_path, blocks)
    stream = run_dir / "raw" / "seg-000001.arrows"
    whole = stream.read_bytes()
    with caplog.at_level(logging.DEBUG, logger="chikyu_daq.store.reader"):
        for cut in (1, 7, 100):  # power lost mid-append: the last batch only partly on disk
            stream.write_bytes(whole[:-cut])
            assert_raw(run_dir, blocks[:2])
            run = open_run(run_dir)
            assert run.time_range() == (int(blocks[0]["ft201.volume_flow"][0][0]),
                                        int(blocks[1]["ft201.volume_flow"][0][-1]))  # fmt: skip
            chunks = list(run.raw_chunks(["ft201.volume_flow"], T0, T0 + 10**10, 10**8))
            t = np.concatenate([c["ft201.volume_flow"][0] for _, c in chunks if c])
            np.testing.assert_array_equal(t, joined(blocks[:2], "ft201.volume_flow")[0])
        stream.write_bytes(whole + b"\xff\xff\xff\xff\x10")  # garbage after the last batch
        assert_raw(run_dir, blocks)
        stream.write_bytes(whole[:5])  # not even the schema: an empty segment, not an error
        assert open_run(run_dir).raw() == {}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r for r in caplog.records if "torn tail" in r.getMessage()]
    assert len(open_run(run_dir).results()["t_ns"]) == 6


def test_a_failed_append_then_a_good_one_reads_back_every_row_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short write (the disk fills mid-batch) and an fdatasync that fails after a whole
    batch was written: the file is cut back to its complete batches and the rows retried."""
    real_write, real_fdatasync = os.write, os.fdatasync
    rec = Recorder(tmp_path / "runs", run_id="r", autoflush=False)
    raw = rec.path / "raw"
    blocks = [block(k) for k in range(6)]
    rec.write_raw(blocks[0])
    rec.flush()
    size = (raw / "seg-000001.arrows").stat().st_size

    def short(fd: int, data: bytes) -> int:
        if len(data) > 100:  # a batch, not an event line
            real_write(fd, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    def eio(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as m:
        m.setattr(os, "write", short)
        rec.write_raw(blocks[1])
        rec.flush()
    assert rec.stats()["recorder_ok"] is False
    assert (raw / "seg-000001.arrows").stat().st_size == size  # cut back to complete batches
    rec.write_raw(blocks[2])
    rec.flush()  # blocks 1 and 2, in a new stream file: the first is never appended to again
    size = (raw / "seg-000001.1.arrows").stat().st_size
    with monkeypatch.context() as m:
        m.setattr(os, "fdatasync", eio)
        rec.write_raw(blocks[3])
        rec.flush()
    assert (raw / "seg-000001.1.arrows").stat().st_size == size
    assert os.write is real_write and os.fdatasync is real_fdatasync
    for b in blocks[4:]:
        rec.write_raw(b)
        rec.flush()
    st = rec.stats()
    assert st["recorder_ok"] is True and st["recorder_pending_samples"] == 0
    assert st["recorder_files"] == len(segment_files(raw)) == 3
    assert st["recorder_errors_enospc"] == 1 and st["recorder_errors_eio"] == 1
    assert st["recorder_lost_rows"] == 0
    assert_raw(rec.path, blocks)
    rec.close()
    assert_raw(rec.path, blocks)
    assert [p.name for p in raw.iterdir()] == ["seg-000001.parquet"]


def test_a_new_stream_that_fails_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk: the empty stream file a failed first append leaves is removed (no clutter,
    no space held), and the rows are written once the disk is back."""
    real_write = os.write

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    rec = Recorder(tmp_path / "runs", run_id="r", autoflush=False)
    blocks = [block(k) for k in range(3)]
    with monkeypatch.context() as m:
        m.setattr(os, "write", full)
        for b in blocks[:2]:
            rec.write_raw(b)
            rec.flush()
        assert not list((rec.path / "raw").iterdir())
    assert os.write is real_write
    rec.write_raw(blocks[2])
    rec.flush()
    assert [p.name for p in (rec.path / "raw").iterdir()] == ["seg-000001.arrows"]
    assert_raw(rec.path, blocks)


def test_results_columns_changing_mid_segment_start_a_new_stream(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "runs", run_id="r", autoflush=False)
    t = T0 + np.arange(4, dtype=np.int64)
    rec.write_results(t[:2], {"a": np.ones(2)})
    rec.flush()
    rec.write_results(t[2:], {"a": np.ones(2), "b": np.zeros(2, np.uint8)})
    rec.flush()
    names = sorted(p.name for p in (rec.path / "results").iterdir())
    assert names == ["seg-000001.1.arrows", "seg-000001.arrows"]
    before = open_run(rec.path).results_table()
    assert before.column("b").to_pylist() == [None, None, 0, 0]
    rec.close()
    assert open_run(rec.path).results_table().equals(before)


def to_parts_layout(src: Path, dst: Path) -> None:
    """The same run as the recorder wrote it before issue 13: each flush a Parquet part in
    `seg-N.parts/` (and one part left empty by a disk fault, which readers skip)."""
    shutil.copytree(src, dst)
    for stream in sorted(dst.glob("*/seg-*.arrows")):
        parts = stream.with_name(stream.name.split(".")[0] + ".parts")
        parts.mkdir(exist_ok=True)
        table = read_stream(stream)
        assert table is not None
        for i, batch in enumerate(table.to_batches()):
            pq.write_table(table.from_batches([batch]), parts / f"{i + 1:06d}.parquet")
        (parts / f"{table.num_rows + 100:06d}.parquet").write_bytes(b"")
        stream.unlink()


def test_the_parts_layout_of_old_recordings_reads_the_same(tmp_path: Path) -> None:
    blocks = [block(k) for k in range(5)]
    new = crashed_run(tmp_path, blocks)
    old = tmp_path / "old" / "r"
    to_parts_layout(new, old)
    assert (old / "raw" / "seg-000001.parts").is_dir()
    assert not list(old.rglob("*.arrows"))
    a, b = open_run(new), open_run(old)
    assert a.raw_table().equals(b.raw_table())
    assert a.results_table().equals(b.results_table())
    assert a.time_range() == b.time_range()
    chans = ["dt201.density", "ft201.volume_flow"]
    ca = list(a.raw_chunks(chans, T0, T0 + 10**10, 3 * 10**8))
    cb = list(b.raw_chunks(chans, T0, T0 + 10**10, 3 * 10**8))
    assert [hi for hi, _ in ca] == [hi for hi, _ in cb]
    for (_, x), (_, y) in zip(ca, cb, strict=True):
        assert x.keys() == y.keys()
        for ch in x:
            for u, v in zip(x[ch], y[ch], strict=True):
                np.testing.assert_array_equal(u, v)
    assert_raw(old, blocks)
    exported = [  # what export reads, file by file, in either layout
        pa.concat_tables(
            read_segment_file(f, RAW_SCHEMA) for f in segment_files(d / "raw", check=True)
        )
        for d in (new, old)
    ]
    assert exported[0].equals(exported[1]) and exported[0].num_rows == a.raw_table().num_rows
    manifest = json.loads((old / "manifest.json").read_text())
    assert manifest["run_id"] == "r"


def test_the_compacted_segment_wins_over_a_stream_left_by_a_crash(tmp_path: Path) -> None:
    """A crash between compaction and removing the stream: nothing is read twice."""
    blocks = [block(k) for k in range(3)]
    run_dir = crashed_run(tmp_path, blocks)
    saved = (run_dir / "raw" / "seg-000001.arrows").read_bytes()
    rec = Recorder(tmp_path / "runs2", run_id="r", autoflush=False)
    for b in blocks:
        rec.write_raw(b)
        rec.flush()
    rec.close()
    (rec.path / "raw" / "seg-000001.arrows").write_bytes(saved)
    assert_raw(rec.path, blocks)
    assert [p.name for p in segment_files(rec.path / "raw")] == ["seg-000001.parquet"]


def test_a_batch_that_cannot_be_cut_off_is_not_written_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fdatasync fails after the whole batch was written and the file cannot be cut back: the
    reader will read that batch, so its rows count as written (the error counted) and the
    next flush goes to a new stream file."""

    def eio(*_a: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    rec = Recorder(tmp_path / "runs", run_id="r", autoflush=False)
    blocks = [block(k) for k in range(3)]
    rec.write_raw(blocks[0])
    rec.flush()
    with monkeypatch.context() as m:
        m.setattr(os, "fdatasync", eio)
        m.setattr(os, "ftruncate", eio)
        rec.write_raw(blocks[1])
        rec.flush()
    assert rec.stats()["recorder_errors_eio"] == 1 and rec.stats()["recorder_pending_samples"] == 0
    rec.write_raw(blocks[2])
    rec.flush()
    assert rec.stats()["recorder_files"] == len(segment_files(rec.path / "raw")) == 2
    assert_raw(rec.path, blocks)
    rec.close()
    assert_raw(rec.path, blocks)
