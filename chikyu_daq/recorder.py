"""The black-box recorder: raw samples, results and events of one run, crash-safe.

Layout and reading: `chikyu_daq.recording` (module docstring). How crash safety is kept:

- `write_raw`, `write_results` and `write_event` only buffer in memory (cheap, any thread).
- A flusher thread, every `flush_s` (<= 1 s), writes the buffered rows as one small Parquet
  file per table into the open segment's `.parts/` folder: temporary name, fsync, rename,
  directory fsync. A Parquet file is unreadable until its footer is written; renaming only
  finished files means every file a reader sees is complete. Events go to `events.jsonl`
  with one `write` per event and are fsynced with each flush.
- Every `segment_s` the open segment is compacted: its parts are read back, written as one
  `seg-N.parquet` (tmp, fsync, rename) and only then the parts folder is removed. A crash in
  between leaves both, and the reader prefers the compacted file, so nothing is read twice.

So after `kill -9` or power loss everything older than `flush_s` (plus one write) is on disk and
readable with `open_run`, with no repair step; a new process starts a new run.

Raw rows are grouped by channel within a part (each channel in time order), so the reader splits
channels with one stable argsort.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from chikyu_daq.durable import fsync_dir
from chikyu_daq.recording import RAW_SCHEMA, segment_files

__all__ = ["Recorder"]

log = logging.getLogger(__name__)

Block = Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]


def _write_atomic(table: pa.Table, path: Path) -> None:
    """Write a complete Parquet file under its final name, or nothing."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        pq.write_table(table, f, compression="zstd")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _utc(t_ns: int) -> str:
    return datetime.fromtimestamp(t_ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("chikyu-daq", "numpy", "pyarrow"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


class _Segmented:
    """One table kind (raw or results): parts of the open segment, compaction on rotation."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.segment = 0
        self.part = 0
        self.rows = 0

    def parts_dir(self) -> Path:
        return self.folder / f"seg-{self.segment:06d}.parts"

    def write_part(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if self.segment == 0:
            self.segment = 1
        d = self.parts_dir()
        if not d.exists():
            d.mkdir()
            fsync_dir(self.folder)
        self.part += 1
        _write_atomic(table, d / f"{self.part:06d}.parquet")
        self.rows += table.num_rows

    def rotate(self) -> None:
        """Compact the open segment into `seg-N.parquet`; the next rows start segment N+1."""
        d = self.parts_dir()
        if self.segment and d.exists():
            files = sorted(d.glob("*.parquet"))
            if files:
                tables = [pq.read_table(f) for f in files]
                table = pa.concat_tables(tables, promote_options="permissive")
                if "channel" in table.column_names:
                    table = table.unify_dictionaries().combine_chunks()
                _write_atomic(table, self.folder / f"seg-{self.segment:06d}.parquet")
            shutil.rmtree(d)
            fsync_dir(self.folder)
        if self.segment:
            self.segment += 1
        self.part = 0


class Recorder:
    """Writes one run to `<root>/<run_id>/` (root is usually `<data_dir>/runs`).

    Thread-safe; `close()` (or the context manager) compacts the last segment and stamps the end
    time into the manifest. A crashed recorder needs nothing: the run is readable as it lies.
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
    ) -> None:
        if not 0 < flush_s <= 1.0:
            raise ValueError(f"flush_s must be in (0, 1], got {flush_s}")
        if segment_s < flush_s:
            raise ValueError(f"segment_s must be >= flush_s, got {segment_s}")
        start_ns = time.time_ns()
        self.run_id = run_id or datetime.fromtimestamp(start_ns / 1e9, tz=UTC).strftime(
            "%Y%m%dT%H%M%S.%fZ"
        )
        self.path = Path(root) / self.run_id
        self.path.mkdir(parents=True, exist_ok=False)
        self.segment_s = segment_s
        self.flush_s = flush_s
        self._manifest: dict[str, Any] = {
            "format": 1,
            "run_id": self.run_id,
            "start_ns": start_ns,
            "start_utc": _utc(start_ns),
            "versions": _versions(),
            "config": {},
            **dict(manifest or {}),
        }
        self._write_manifest()
        self._raw = _Segmented(self.path / "raw")
        self._results = _Segmented(self.path / "results")
        self._events_fd = os.open(
            self.path / "events.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
        )
        fsync_dir(self.path)
        self._lock = threading.Lock()  # buffers
        self._io_lock = threading.Lock()  # files
        self._raw_buf: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        self._res_buf: list[pa.Table] = []
        self._segment_started = time.monotonic()
        self.samples_written = 0
        self.flush_errors = 0
        self._closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if autoflush:
            self._thread = threading.Thread(
                target=self._flush_loop, name=f"recorder-{self.run_id}", daemon=True
            )
            self._thread.start()

    def _write_manifest(self) -> None:
        tmp = self.path / "manifest.json.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self._manifest, f, indent=2, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path / "manifest.json")
        fsync_dir(self.path)

    # -- buffering (any thread) ---------------------------------------------------------------
    def write_raw(self, block: Block) -> None:
        """Buffer raw samples: channel id -> (t_ns int64, value float64, quality uint8)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("recorder is closed")
            for name, (t, v, q) in block.items():
                if not (len(t) == len(v) == len(q)):
                    raise ValueError(f"channel {name!r}: t, value and quality lengths differ")
                if len(t):  # copied: the caller may reuse its buffers
                    self._raw_buf.setdefault(name, []).append(
                        (np.array(t, np.int64), np.array(v, np.float64), np.array(q, np.uint8))
                    )

    def write_results(self, t_ns: np.ndarray, columns: Mapping[str, np.ndarray]) -> None:
        """Buffer result rows: `t_ns` plus equally long columns (any numeric or bool dtype)."""
        if "t_ns" in columns:
            raise ValueError("results columns must not include 't_ns'")
        cols = {"t_ns": pa.array(np.asarray(t_ns, dtype=np.int64))}
        for name, arr in columns.items():
            if len(arr) != len(t_ns):
                raise ValueError(f"results column {name!r} has {len(arr)} rows, t_ns {len(t_ns)}")
            cols[name] = pa.array(np.asarray(arr))
        table = pa.table(cols)
        with self._lock:
            if self._closed:
                raise RuntimeError("recorder is closed")
            self._res_buf.append(table)

    def write_event(self, event: Mapping[str, Any]) -> None:
        """Append one event (alarm, assay, reload) to `events.jsonl`; adds `t_ns` if missing."""
        doc = dict(event)
        doc.setdefault("t_ns", time.time_ns())
        line = (json.dumps(doc, default=str, ensure_ascii=False) + "\n").encode()
        with self._io_lock:
            if self._closed:
                raise RuntimeError("recorder is closed")
            os.write(self._events_fd, line)

    # -- files (flusher thread, or the caller) ------------------------------------------------
    def _raw_table(
        self, buf: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]
    ) -> pa.Table:
        names = list(buf)
        ts: list[np.ndarray] = []
        vs: list[np.ndarray] = []
        qs: list[np.ndarray] = []
        counts: list[int] = []
        for name in names:
            chunks = buf[name]
            ts.extend(np.asarray(c[0], dtype=np.int64) for c in chunks)
            vs.extend(np.asarray(c[1], dtype=np.float64) for c in chunks)
            qs.extend(np.asarray(c[2], dtype=np.uint8) for c in chunks)
            counts.append(sum(len(c[0]) for c in chunks))
        codes = np.repeat(np.arange(len(names), dtype=np.int32), counts)
        channel = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(names, pa.string()))
        return pa.Table.from_arrays(
            [channel, pa.array(np.concatenate(ts)), pa.array(np.concatenate(vs)),
             pa.array(np.concatenate(qs))],
            schema=RAW_SCHEMA,
        )  # fmt: skip

    def flush(self) -> None:
        """Make everything written so far durable and readable (and rotate when due)."""
        with self._io_lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        with self._lock:
            raw, self._raw_buf = self._raw_buf, {}
            res, self._res_buf = self._res_buf, []
        if raw:
            table = self._raw_table(raw)
            self._raw.write_part(table)
            self.samples_written += table.num_rows
        if res:
            self._results.write_part(pa.concat_tables(res, promote_options="permissive"))
        os.fsync(self._events_fd)
        if time.monotonic() - self._segment_started >= self.segment_s:
            self._raw.rotate()
            self._results.rotate()
            self._segment_started = time.monotonic()

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.flush_s):
            try:
                self.flush()
            except Exception:  # a full disk must not kill the thread; counted and logged
                self.flush_errors += 1
                log.exception("recorder flush failed")

    def close(self) -> None:
        """Flush, compact the open segment and stamp `end_utc` into the manifest."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        with self._io_lock:
            if self._closed:
                return
            self._flush_locked()
            self._raw.rotate()
            self._results.rotate()
            with self._lock:
                self._closed = True
            os.close(self._events_fd)
        end_ns = time.time_ns()
        self._manifest.update(end_ns=end_ns, end_utc=_utc(end_ns))
        self._write_manifest()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        return {
            "recorder_samples": self.samples_written,
            "recorder_flush_errors": self.flush_errors,
            "recorder_files": len(segment_files(self.path / "raw")),
        }
