"""The black-box recorder: raw samples, results and events of one run, crash-safe.

Layout and reading: `chikyu_daq.store.reader` (module docstring). How crash safety is kept:

- `write_raw`, `write_results` and `write_event` only buffer in memory (cheap, any thread).
- A flusher thread, every `flush_s` (<= 1 s), appends the buffered rows of each table as one
  Arrow IPC record batch to the open segment's stream file `seg-N.arrows` (opened once per
  segment, its schema written with the first batch): one `write`, then `fdatasync`; the
  directory is fsynced only when the file is created. ~0.1 ms a flush per table, where a
  Parquet part per flush (tmp name, fsync, rename, directory fsync) cost ~2 ms. The reader
  reads a stream up to its last complete batch, so a batch torn by a crash is simply not
  there. Events go to `events.jsonl` with one `write` per event, fsynced by a flush that wrote.
- A failed append (short write, ENOSPC, EIO from fdatasync) cuts the file back to its last
  complete batch (a new file left empty is removed) and the file is never appended to again:
  the Arrow writer has already counted the batch's dictionaries as sent. The rows stay pending
  and the next append starts the segment's next stream file, `seg-N.K.arrows` (as does a
  change of the results' columns, since a stream has one schema). An append that fails on a
  file opened earlier is tried once more at once in a new file (a disk swapped under an open
  descriptor).
- Every `segment_s` the open segment is compacted: its streams are read back, written as one
  `seg-N.parquet` (tmp, fsync, rename) and only then the streams are removed. A crash in
  between leaves both, and the reader prefers the compacted file, so nothing is read twice.

So after `kill -9` or power loss everything older than `flush_s` (plus one write) is on disk and
readable with `open_run`, with no repair step; a new process starts a new run. Runs written
before issue 13 hold `seg-N.parts/` folders of Parquet parts instead of streams; they read as
before.

Storage faults never raise out of the write or flush paths (DESIGN "Degrade, never die"). A full or
read-only disk, an I/O error or a deleted file or folder is counted by errno and logged at a limited
rate (`chikyu_daq.store.durable.Health`, published in `stats()`); what could not be written stays in
memory, up to `max_pending_bytes`, and is written by a later flush. Past that bound (while the disk
fails) new data is dropped and counted (`recorder_dropped_*`), never the pending data. A failed
temporary file is removed (a full disk gets its space back), an event file or folder deleted under
the recorder is created again (the manifest too), rows lost with deleted files are counted
(`recorder_lost_rows`, `recorder_lost_events`; a stream file deleted while open is noticed by its
link count, one `fstat` a flush), and a compaction that fails leaves its streams, which are
readable, and is tried again at the next rotation and at close. So the run directory reads back
with `open_run` after any of these.

Raw rows are grouped by channel within a batch (each channel in time order), so the reader splits
channels by slicing runs. A compacted raw segment goes further: in windows of `RAW_WINDOW_ROWS`
rows (file order) each channel is a row group of its own, in its arrival order, so a replay
decodes only the channels its estimators use (half the samples of a reference recording).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import platform
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from chikyu_daq.store.durable import Counts, Health, fsync_dir, reason_of
from chikyu_daq.store.events import Event, encode
from chikyu_daq.store.reader import RAW_SCHEMA, STREAM_NAME, read_stream
from drivers.sample import SampleBlock

__all__ = ["Recorder"]

log = logging.getLogger(__name__)

#: channel -> its blocks buffered since the last flush
Chunks = dict[str, list[SampleBlock]]
#: Result rows of one write: t_ns and the columns, as given (built into a table per flush).
ResRows = tuple[np.ndarray, dict[str, np.ndarray]]

#: Memory of one buffered raw sample (t_ns, value, quality), for the pending bound.
RAW_SAMPLE_BYTES = 17


#: How raw tables are written; decoding them is most of a replay's cost. A channel's stamps are
#: regular, so `t_ns` delta-packed needs no compression (smaller than zstd'd plain); channel,
#: value and quality dictionary-coded under LZ4 (decoded in 60 % of zstd's time, 8 % larger).
#: Against zstd on every column: a replay decodes it 40 % faster, the recorder writes it 35 %
#: faster. Any Parquet reader reads every encoding: recordings written before read as they did.
RAW_PARQUET: dict[str, Any] = {
    "compression": {"channel": "lz4", "t_ns": "none", "value": "lz4", "quality": "lz4"},
    "use_dictionary": ["channel", "value", "quality"],
    "column_encoding": {"t_ns": "DELTA_BINARY_PACKED"},
}
#: Results segments (wide; their columns follow the config).
RESULTS_PARQUET: dict[str, Any] = {"compression": "zstd"}

#: Rows of a compacted raw segment regrouped by channel at a time (`by_channel`): as many rows
#: as a row group had before, so a replay holds as much of the recording in memory as then.
RAW_WINDOW_ROWS = 1 << 20


def by_channel(table: pa.Table, window: int = RAW_WINDOW_ROWS) -> Iterator[pa.Table]:
    """A raw table's rows in windows of `window` rows (file order), each window's rows one
    channel after another (channel names in order), every channel's rows in their order here:
    each piece becomes a row group of one channel (its `channel` statistics min == max)."""
    for lo in range(0, table.num_rows, window):
        part = table.slice(lo, window)
        chan = part["channel"].combine_chunks()
        if not pa.types.is_dictionary(chan.type):
            chan = pc.dictionary_encode(chan)
        names = chan.dictionary.to_pylist()
        rank = np.argsort(np.argsort(np.array(names, dtype=object), kind="stable"))
        code = rank[chan.indices.to_numpy(zero_copy_only=False)]
        order = np.argsort(code, kind="stable")  # stable: each channel keeps its row order
        counts = np.bincount(code, minlength=len(names))
        grouped = part.take(order)
        start = 0
        for n in counts[counts > 0].tolist():
            yield grouped.slice(start, n)
            start += n


def _write_atomic(
    table: pa.Table,
    path: Path,
    options: Mapping[str, Any],
    groups: Iterable[pa.Table] | None = None,
) -> None:
    """Write a complete Parquet file under its final name, or nothing (no temporary file left:
    a full disk gets its space back); `groups`: its row groups (of `table`'s schema), else
    `table` as it comes. The directory fsync is the caller's."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            if groups is None:
                pq.write_table(table, f, **options)
            else:
                with pq.ParquetWriter(f, table.schema, **options) as w:
                    for g in groups:
                        w.write_table(g)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _utc(t_ns: int) -> str:
    return datetime.fromtimestamp(t_ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("chikyu-daq", "numpy", "pyarrow"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


class _Collect:
    """A sink the Arrow stream writer serialises into, so each append reaches the file as one
    `os.write` whose size is known (a failed append is cut back to the last good size)."""

    closed = False

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: Any) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


class _Stream:
    """The open stream file of a segment: opened once, one record batch appended per flush.

    The Arrow writer remembers which dictionaries it has emitted, so after a failed append the
    file is never appended to again (cut back to its last good size, closed); the next append
    starts a new stream file of the segment."""

    def __init__(self, path: Path, fd: int, schema: pa.Schema) -> None:
        self.path = path
        self.fd = fd
        self.schema = schema
        self.sink = _Collect()
        self.writer = pa.ipc.new_stream(self.sink, schema)
        self.size = 0  # bytes of complete batches, durable
        self.rows = 0
        self.whole = False  # the last append's batch is all in the file (maybe not durable)

    def append(self, table: pa.Table) -> None:
        """Write and fdatasync one batch; raises OSError (the caller gives the file up)."""
        self.writer.write_table(table)
        data = memoryview(self.sink.take())
        done = 0
        self.whole = False
        while done < len(data):
            n = os.write(self.fd, data[done:])
            if n <= 0:
                raise OSError(errno.ENOSPC, f"short write to {self.path.name}")
            done += n
        self.whole = True
        os.fdatasync(self.fd)
        self.size += len(data)
        self.rows += table.num_rows

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = -1


class _Segmented:
    """One table kind (raw or results): the open segment's stream files, compaction on rotation.

    The open segment is `seg-N.arrows` (then `seg-N.K.arrows` after a failed append or a schema
    change): an Arrow IPC stream, opened once, one record batch appended per flush (a write and
    an fdatasync: ~0.1 ms against ~2 ms for a Parquet file and its renames and fsyncs).

    `rows` is a ledger of the rows on disk per segment, so files deleted under the recorder are
    noticed and their rows counted in `lost_rows` instead of vanishing silently; `files` the
    number of its files per segment (stream files, or 1 once compacted), so `stats()` never
    lists the folder.
    """

    def __init__(self, folder: Path, health: Health, options: Mapping[str, Any]) -> None:
        self.folder = folder
        self.health = health
        self.options = options  # how its compacted segments are written
        self.segment = 0
        self.index = 0  # of the open segment's next stream file
        self.stream: _Stream | None = None
        self.rows: dict[int, int] = {}
        self.files: dict[int, int] = {}
        self.uncompacted: list[int] = []
        self.lost_rows = 0

    def stream_path(self, segment: int, index: int) -> Path:
        tail = f".{index}" if index else ""
        return self.folder / f"seg-{segment:06d}{tail}.arrows"

    def streams(self, segment: int) -> list[Path]:
        """A closed segment's stream files, in order (listed once, at compaction)."""
        found = []
        for p in self.folder.glob(f"seg-{segment:06d}*.arrows") if self.folder.is_dir() else ():
            m = STREAM_NAME.match(p.name)
            if m and int(m.group(1)) == segment:
                found.append((int(m.group(2) or 0), p))
        return [p for _, p in sorted(found)]

    def compacted(self, segment: int) -> Path:
        return self.folder / f"seg-{segment:06d}.parquet"

    def _sync_dir(self, path: Path) -> None:
        try:
            fsync_dir(path)
        except OSError as exc:  # the file is written and readable; only its durability is unsure
            self.health.note(f"fsync_{errno.errorcode.get(exc.errno or 0, 'error')}", str(exc))

    def _lost(self, n: int, why: str) -> None:
        self.lost_rows += n
        self.health.note("deleted", f"{n} rows lost: {why}", logging.ERROR)

    def _drop_stream(self) -> None:
        """Give up the open stream file; the next append starts the segment's next one."""
        if self.stream is not None:
            self.stream.close()
            self.stream = None
            self.index += 1

    def check(self) -> None:
        """Notice the folder or the open stream file deleted under us (rows counted)."""
        if not self.rows:
            return
        if not self.folder.is_dir():
            self._lost(sum(self.rows.values()), f"{self.folder} was deleted")
            self.rows.clear()
            self.files.clear()
            self.uncompacted.clear()
            self._drop_stream()
            return
        s = self.stream
        if s is not None and s.rows and os.fstat(s.fd).st_nlink == 0:
            self._lost(s.rows, f"{s.path} was deleted")
            self.rows[self.segment] -= s.rows
            self.files[self.segment] -= 1
            if not self.rows[self.segment]:
                del self.rows[self.segment]
                self.files.pop(self.segment, None)
            self._drop_stream()

    def write_part(self, table: pa.Table) -> None:
        """Append one flush's rows to the open segment; raises OSError with nothing written
        (a torn append is cut back, or left past the last complete batch the reader reads)."""
        if table.num_rows == 0:
            return
        if self.segment == 0:
            self.segment = 1
        while True:
            s = self.stream
            if s is not None and not s.schema.equals(table.schema):
                self._drop_stream()  # results columns changed: a stream has one schema
                s = None
            created = s is None
            if s is None:
                if not self.folder.is_dir():
                    self.folder.mkdir(parents=True, exist_ok=True)
                    self._sync_dir(self.folder.parent)
                s = self.stream = self._open(table.schema)
            try:
                s.append(table)
            except OSError as exc:
                if self._give_back(s):  # a whole batch that stays: written, never twice
                    self.health.note(reason_of(exc), f"{s.path.name}: {exc}", logging.ERROR)
                    break
                if created:
                    raise
                continue  # the open file may be stale (a disk swapped): once more, a new file
            except BaseException:
                self._give_back(s)
                raise
            break
        self.rows[self.segment] = self.rows.get(self.segment, 0) + table.num_rows
        if created:
            self.files[self.segment] = self.files.get(self.segment, 0) + 1
            self._sync_dir(self.folder)

    def _open(self, schema: pa.Schema) -> _Stream:
        """The open segment's next stream file, created (never an existing one reused)."""
        while True:
            path = self.stream_path(self.segment, self.index)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            except FileExistsError:
                self.index += 1
                continue
            return _Stream(path, fd, schema)

    def _give_back(self, s: _Stream) -> bool:
        """After a failed append: the file cut back to its complete batches (a new empty one
        removed, so a full disk gets its space back); never appended to again. True if that
        failed with the batch whole in the file (only its fdatasync failed): the reader reads
        it, so its rows must count as written, not be written again."""
        kept = False
        try:
            if s.size:
                os.ftruncate(s.fd, s.size)
            else:
                s.path.unlink()
        except OSError:  # left as is: the reader stops at the last complete batch
            kept = s.whole
        s.close()
        self.stream = None
        if s.size or kept:
            self.index += 1
        return kept

    def advance(self) -> None:
        """Close the open segment (to be compacted); the next rows start segment N+1."""
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        if self.segment:
            if self.rows.get(self.segment):
                self.uncompacted.append(self.segment)
            self.segment += 1
        self.index = 0

    def compact_pending(self) -> None:
        """Compact closed segments into `seg-N.parquet`; raises OSError, leaving the rest."""
        while self.uncompacted:
            seg = self.uncompacted[0]
            try:
                self._compact(seg)
            except pa.ArrowException as exc:  # a damaged stream: what is readable stays
                self.health.note("unreadable", f"segment {seg} left as streams: {exc}")
            self.uncompacted.pop(0)

    def _compact(self, segment: int) -> None:
        files = self.streams(segment)
        target = self.compacted(segment)
        expected = self.rows.get(segment, 0)
        tables = [t for t in (read_stream(f) for f in files) if t is not None and t.num_rows]
        if tables and not target.exists():
            table = pa.concat_tables(tables, promote_options="permissive")
            groups = None
            if "channel" in table.column_names:
                table = table.unify_dictionaries().combine_chunks()
                groups = by_channel(table)
            if table.num_rows < expected:
                self._lost(expected - table.num_rows, f"streams of {target.name} were deleted")
            self.rows[segment] = table.num_rows
            _write_atomic(table, target, self.options, groups)
        elif not tables and not target.exists() and expected:
            self._lost(expected, f"the streams of segment {segment} were deleted")
            self.rows.pop(segment, None)
        if target.exists():
            self.files[segment] = 1
        else:
            self.files.pop(segment, None)
        for f in files:
            f.unlink(missing_ok=True)
        self._sync_dir(self.folder)


class Recorder:
    """Writes one run to `<root>/<run_id>/` (root is usually `<data_dir>/runs`).

    Thread-safe; `close()` (or the context manager) compacts the last segment and stamps the end
    time into the manifest. A crashed recorder needs nothing: the run is readable as it lies.
    Storage faults are absorbed, counted and retried (module doc); `stats()` shows the health.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        run_id: str | None = None,
        manifest: Mapping[str, Any] | None = None,
        segment_s: float = 600.0,
        flush_s: float = 0.5,
        autoflush: bool = True,
        max_pending_bytes: int = 64 << 20,
    ) -> None:
        if not 0 < flush_s <= 1.0:
            raise ValueError(f"flush_s must be in (0, 1], got {flush_s}")
        if segment_s < flush_s:
            raise ValueError(f"segment_s must be >= flush_s, got {segment_s}")
        if max_pending_bytes <= 0:
            raise ValueError(f"max_pending_bytes must be positive, got {max_pending_bytes}")
        start_ns = time.time_ns()
        self.run_id = run_id or datetime.fromtimestamp(start_ns / 1e9, tz=UTC).strftime(
            "%Y%m%dT%H%M%S.%fZ"
        )
        self.path = Path(root) / self.run_id
        if self.path.exists():
            raise FileExistsError(f"run directory already exists: {self.path}")
        self.segment_s = segment_s
        self.flush_s = flush_s
        self.max_pending_bytes = int(max_pending_bytes)
        self._manifest: dict[str, Any] = {
            "format": 1,
            "run_id": self.run_id,
            "start_ns": start_ns,
            "start_utc": _utc(start_ns),
            "versions": _versions(),
            "config": {},
            **dict(manifest or {}),
        }
        self.health = Health(f"recorder {self.run_id}:", log)
        self._raw = _Segmented(self.path / "raw", self.health, RAW_PARQUET)
        self._results = _Segmented(self.path / "results", self.health, RESULTS_PARQUET)
        self._lock = threading.Lock()  # buffers
        self._io_lock = threading.Lock()  # files
        self._raw_buf: Chunks = {}
        self._raw_n = 0
        self._res_buf: list[ResRows] = []
        self._res_bytes = 0
        self._events: deque[bytes] = deque()
        self._events_bytes = 0
        self._events_fd = -1
        self._events_in_file = 0
        self._events_unsynced = False  # lines written to the fd since its last fsync
        self._manifest_written = False
        self._segment_started = time.monotonic()
        #: published in `stats()` as `recorder_<name>`
        self.counts = Counts(
            "samples flush_errors dropped_samples dropped_rows dropped_events lost_events"
        )
        self._closed = False
        try:
            self._ensure_run()
        except OSError as exc:
            self.health.fail(exc, f"cannot create {self.path}; keeping data in memory")
            self._close_events_fd()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if autoflush:
            self._thread = threading.Thread(
                target=self._flush_loop, name=f"recorder-{self.run_id}", daemon=True
            )
            self._thread.start()

    def _write_manifest(self) -> None:
        tmp = self.path / "manifest.json.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self._manifest, f, indent=2, default=str)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path / "manifest.json")
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        fsync_dir(self.path)

    def _ensure_run(self) -> None:
        """The run directory, its manifest and the open event file, created again if deleted."""
        if not self._manifest_written or not (self.path / "manifest.json").exists():
            if self._manifest_written:
                self.health.note(
                    "deleted",
                    f"{self.path}/manifest.json was deleted; written again",
                    logging.ERROR,
                )
            self.path.mkdir(parents=True, exist_ok=True)
            self._write_manifest()
            self._manifest_written = True
        if self._events_fd >= 0 and os.fstat(self._events_fd).st_nlink == 0:
            self.counts.add("lost_events", self._events_in_file)
            self.health.note(
                "deleted",
                f"events.jsonl was deleted with {self._events_in_file} events; started again",
                logging.ERROR,
            )
            self._close_events_fd()
            self._events_in_file = 0
        if self._events_fd < 0:
            self._events_fd = os.open(
                self.path / "events.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
            )
            fsync_dir(self.path)

    def _close_events_fd(self) -> None:
        """Give up the event file's descriptor (after an error): reopened by path next time."""
        if self._events_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._events_fd)
            self._events_fd = -1

    # -- buffering (any thread) ---------------------------------------------------------------
    def _pending_bytes_locked(self) -> int:
        return self._raw_n * RAW_SAMPLE_BYTES + self._res_bytes + self._events_bytes

    def _over_bound_locked(self, more: int) -> bool:
        """Only data that waits for a failing disk is bounded: while writes succeed, a large
        block (an import, a replay, a slow flusher) is held until the next flush, never dropped."""
        return self.health.degraded and self._pending_bytes_locked() + more > self.max_pending_bytes

    def _overflow(self, what: str) -> None:
        self.health.note(
            "overflow",
            f"{what} dropped: {self.max_pending_bytes} bytes already wait for the disk",
            logging.ERROR,
        )

    def write_raw(self, block: Mapping[str, SampleBlock], *, copy: bool = True) -> None:
        """Buffer raw samples: channel id -> (t_ns int64, value float64, quality uint8).

        Copied, as the caller may reuse its buffers; `copy=False` keeps arrays of those dtypes
        as they are (the live pipeline's blocks are built for each tick and never changed)."""
        arr = np.array if copy else np.asarray
        for name, (t, v, q) in block.items():
            if not (len(t) == len(v) == len(q)):
                raise ValueError(f"channel {name!r}: t, value and quality lengths differ")
        n = sum(len(t) for t, _, _ in block.values())
        with self._lock:
            if self._closed:
                raise RuntimeError("recorder is closed")
            if self._over_bound_locked(n * RAW_SAMPLE_BYTES):
                self.counts.add("dropped_samples", n)
                self._overflow(f"{n} raw samples")
                return
            for name, (t, v, q) in block.items():
                if len(t):  # copied: the caller may reuse its buffers
                    self._raw_buf.setdefault(name, []).append(
                        SampleBlock(arr(t, np.int64), arr(v, np.float64), arr(q, np.uint8))
                    )
            self._raw_n += n

    def write_results(self, t_ns: np.ndarray, columns: Mapping[str, np.ndarray]) -> None:
        """Buffer result rows: `t_ns` plus equally long columns (any numeric or bool dtype).

        Kept as arrays: the Arrow table is built once per flush, not per 50 ms tick (building
        a 50-column table cost ~1 ms, a fifth of the daemon's budget at 20 Hz).
        """
        if "t_ns" in columns:
            raise ValueError("results columns must not include 't_ns'")
        t = np.asarray(t_ns, dtype=np.int64)
        cols: dict[str, np.ndarray] = {}
        nbytes = t.nbytes
        for name, arr in columns.items():
            a = np.asarray(arr)
            if a.shape != t.shape:
                raise ValueError(f"results column {name!r} has {len(a)} rows, t_ns {len(t)}")
            if a.dtype.kind not in "biuf":
                raise TypeError(f"results column {name!r} has dtype {a.dtype}, not numeric")
            cols[name] = a
            nbytes += a.nbytes
        with self._lock:
            if self._closed:
                raise RuntimeError("recorder is closed")
            if self._over_bound_locked(nbytes):
                self.counts.add("dropped_rows", len(t))
                self._overflow(f"{len(t)} result rows")
                return
            self._res_buf.append((t, cols))
            self._res_bytes += nbytes

    def write_event(self, event: Event | Mapping[str, Any]) -> None:
        """Append one event to `events.jsonl`: a typed record (`chikyu_daq.store.events`), or
        a JSON object as is (imported or test events); adds `t_ns` if missing."""
        doc = dict(event) if isinstance(event, Mapping) else encode(event)
        doc.setdefault("t_ns", time.time_ns())
        line = (json.dumps(doc, default=str, ensure_ascii=False) + "\n").encode()
        with self._io_lock:
            with self._lock:
                if self._closed:
                    raise RuntimeError("recorder is closed")
                if self._over_bound_locked(len(line)):
                    self.counts.add("dropped_events", 1)
                    self._overflow("an event")
                    return
                self._events.append(line)
                self._events_bytes += len(line)
            if not self.health.degraded:  # else the next flush retries
                try:
                    self._write_events()
                except OSError as exc:
                    self.health.fail(exc, "event write failed; kept in memory")

    # -- files (flusher thread, or the caller) ------------------------------------------------
    def _raw_table(self, buf: Chunks) -> pa.Table:
        """One part's table, channel by channel. The buffered blocks are already int64, float64
        and uint8 (`write_raw`), so each column is one concatenation (no per-block casts)."""
        names = list(buf)
        chunks = [c for name in names for c in buf[name]]
        t, v, q = (np.concatenate(col) for col in zip(*chunks, strict=True))
        per_chunk = np.repeat(np.arange(len(names), dtype=np.int32), [len(buf[n]) for n in names])
        codes = np.repeat(per_chunk, [len(c[0]) for c in chunks])
        channel = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(names, pa.string()))
        return pa.Table.from_arrays(
            [channel, pa.array(t), pa.array(v), pa.array(q)], schema=RAW_SCHEMA
        )

    @staticmethod
    def _results_table(res: list[ResRows]) -> pa.Table:
        """One table of buffered result rows: runs of writes with the same columns and dtypes
        are concatenated as arrays, runs that differ are joined as tables would have been."""
        tables = []
        i = 0
        while i < len(res):
            key = [(k, a.dtype) for k, a in res[i][1].items()]
            j = i + 1
            while j < len(res) and [(k, a.dtype) for k, a in res[j][1].items()] == key:
                j += 1
            run = res[i:j]
            cols = {"t_ns": pa.array(np.concatenate([r[0] for r in run]))}
            for k, _ in key:
                cols[k] = pa.array(np.concatenate([r[1][k] for r in run]))
            tables.append(pa.table(cols))
            i = j
        return (
            tables[0]
            if len(tables) == 1
            else pa.concat_tables(tables, promote_options="permissive")
        )

    def _write_events(self) -> None:
        """Write pending event lines in order; a short write keeps its remainder pending."""
        if not self._events:
            return
        self._ensure_run()  # an event file deleted under us must not swallow the line
        try:
            while self._events:
                data = self._events[0]
                n = os.write(self._events_fd, data)
                self._events_bytes -= n
                if n < len(data):
                    self._events[0] = data[n:]
                    raise OSError(errno.ENOSPC, "short write to events.jsonl")
                self._events.popleft()
                self._events_in_file += 1
                self._events_unsynced = True
        except OSError:
            self._close_events_fd()
            raise

    def flush(self) -> None:
        """Make everything written so far durable and readable (and rotate when due).

        Never raises for storage faults: they are counted in `stats()` and retried."""
        with self._io_lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        with self._lock:
            raw, self._raw_buf = self._raw_buf, {}
            raw_n, self._raw_n = self._raw_n, 0
            res, self._res_buf = self._res_buf, []
            res_bytes, self._res_bytes = self._res_bytes, 0
        try:
            self._ensure_run()
            self._raw.check()
            self._results.check()
            if raw:
                table = self._raw_table(raw)
                self._raw.write_part(table)
                self.counts.add("samples", table.num_rows)
                raw, raw_n = {}, 0
            if res:
                self._results.write_part(self._results_table(res))
                res, res_bytes = [], 0
            self._write_events()
            if self._events_fd >= 0 and self._events_unsynced:  # most flushes bring no event
                try:
                    os.fsync(self._events_fd)
                except OSError:
                    self._close_events_fd()
                    raise
                self._events_unsynced = False
        except OSError as exc:
            self.counts.add("flush_errors", 1)
            self.health.fail(exc, "flush failed; data kept in memory and retried")
            with self._lock:  # back in front of what came meanwhile, order kept
                for name, chunks in raw.items():
                    self._raw_buf[name] = chunks + self._raw_buf.get(name, [])
                self._raw_n += raw_n
                self._res_buf[:0] = res
                self._res_bytes += res_bytes
            return
        if time.monotonic() - self._segment_started >= self.segment_s:
            self._segment_started = time.monotonic()
            self._raw.advance()
            self._results.advance()
            self._compact()
        with self._lock:
            if self._pending_bytes_locked() == 0:
                self.health.ok()

    def _compact(self) -> None:
        """Compact closed segments; a failure leaves readable parts, retried next time."""
        for seg in (self._raw, self._results):
            try:
                seg.compact_pending()
            except OSError as exc:
                self.health.note(
                    f"compact_{errno.errorcode.get(exc.errno or 0, 'error')}",
                    f"compaction failed, parts kept and retried later: {exc}",
                )

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.flush_s):
            try:
                self.flush()
            except Exception:  # a bug, not a disk fault; the thread must go on
                self.counts.add("flush_errors", 1)
                log.exception("recorder flush failed")

    def close(self) -> None:
        """Flush, compact the open segment and stamp `end_utc` into the manifest.

        What the disk still refuses at close is counted as dropped and logged."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        with self._io_lock:
            if self._closed:
                return
            self._flush_locked()
            self._raw.advance()
            self._results.advance()
            self._compact()
            with self._lock:
                self._closed = True
                left = (self._raw_n, sum(len(r[0]) for r in self._res_buf), len(self._events))
                self.counts.add("dropped_samples", left[0])
                self.counts.add("dropped_rows", left[1])
                self.counts.add("dropped_events", left[2])
            if any(left):
                log.error(
                    "recorder %s closed with %d samples, %d result rows and %d events unwritten",
                    self.run_id,
                    *left,
                )
            self._close_events_fd()
        end_ns = time.time_ns()
        self._manifest.update(end_ns=end_ns, end_utc=_utc(end_ns))
        try:
            self._write_manifest()
        except OSError as exc:
            self.health.fail(exc, "cannot stamp the end time into manifest.json")

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, Any]:
        """Counters and health (`recorder_ok`, `_state`, `_errors_<errno>`, `_last_error`)."""
        files = sum(self._raw.files.copy().values())  # the ledger: listing the folder costs ms
        with self._lock:
            pending = self._pending_bytes_locked()
            pending_samples = self._raw_n
        return {
            **self.counts.as_dict("recorder_"),
            "recorder_files": files,
            "recorder_pending_samples": pending_samples,
            "recorder_pending_bytes": pending,
            "recorder_lost_rows": self._raw.lost_rows + self._results.lost_rows,
            **self.health.as_dict("recorder"),
        }
