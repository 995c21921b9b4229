"""A disk spool of line-protocol lines: every line reaches disk before anyone tries to send it.

Layout of a spool directory:

    segments/000000000042.lp   append-only lines, rotated at `segment_bytes`
    cursor.json                {"segment": 42, "offset": 81920}: everything before it was sent
    rejected/<time>-<seg>-<offset>.lp + .reason   batches a server refused for good

Crash safety. `append` writes whole `\\n`-terminated blocks with one `os.write`, so a process killed
with `kill -9` leaves them in the page cache and on disk; `fsync` is batched (`fsync_interval_s`,
at most 1 s, so power loss costs at most that). The cursor is replaced atomically (tmp, fsync,
rename, directory fsync) only after the server accepted a batch, so after any crash the uploader
resumes at the cursor and at worst sends a batch twice, which InfluxDB's series+timestamp
overwrite makes harmless. Each process opens a fresh segment, so a torn tail left by power loss
stays isolated: an unterminated last line of an old segment is skipped and counted (`torn_bytes`).

Quota and overflow. Segment files are counted against `quota_bytes`. When an append would exceed
it, the `overflow` policy decides, and every line it costs is counted in `dropped_lines`:
`drop_oldest` deletes the oldest whole segments (unsent lines included), `drop_newest` refuses the
new block. One block larger than the whole quota is always dropped.

Thread safety: `append` may run on another thread than the uploader; state is under one lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from chikyu_daq.durable import fsync_dir

__all__ = ["Batch", "Overflow", "Spool", "SpoolStats"]

log = logging.getLogger(__name__)

Overflow = Literal["drop_oldest", "drop_newest"]


@dataclass(frozen=True)
class Batch:
    """Lines `[start, end)` of one segment, read for sending; `data` ends with `\\n`."""

    segment: int
    start: int
    end: int
    data: bytes
    lines: int

    def split(self) -> tuple[Batch, Batch]:
        """Two halves at a line boundary (for a 413); raises ValueError for a single line."""
        if self.lines < 2:
            raise ValueError("a single line cannot be split")
        nl = -1
        for _ in range(self.lines // 2):
            nl = self.data.index(b"\n", nl + 1)
        cut = nl + 1
        first = Batch(self.segment, self.start, self.start + cut, self.data[:cut], self.lines // 2)
        second = Batch(
            self.segment, self.start + cut, self.end, self.data[cut:], self.lines - self.lines // 2
        )
        return first, second


@dataclass(frozen=True)
class SpoolStats:
    spool_bytes: int
    pending_bytes: int
    segments: int
    lines_appended: int
    dropped_lines: int
    rejected_lines: int
    torn_bytes: int
    lag_s: float


class Spool:
    """Append-only segment files plus an atomically committed send cursor (see module doc)."""

    def __init__(
        self,
        directory: str | Path,
        quota_bytes: int,
        overflow: Overflow = "drop_oldest",
        *,
        fsync_interval_s: float = 0.5,
        segment_bytes: int | None = None,
    ) -> None:
        if overflow not in ("drop_oldest", "drop_newest"):
            raise ValueError(f"overflow must be drop_oldest or drop_newest, got {overflow!r}")
        if not 0 < fsync_interval_s <= 1.0:
            raise ValueError(f"fsync_interval_s must be in (0, 1], got {fsync_interval_s}")
        if quota_bytes <= 0:
            raise ValueError(f"quota_bytes must be positive, got {quota_bytes}")
        self.directory = Path(directory)
        self.quota_bytes = int(quota_bytes)
        self.overflow: Overflow = overflow
        self.fsync_interval_s = fsync_interval_s
        self.segment_bytes = segment_bytes or max(64 * 1024, min(16 << 20, self.quota_bytes // 8))
        self._seg_dir = self.directory / "segments"
        self._rej_dir = self.directory / "rejected"
        self._seg_dir.mkdir(parents=True, exist_ok=True)
        self._rej_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._sizes: dict[int, int] = {}
        for p in sorted(self._seg_dir.glob("*.lp")):
            with contextlib.suppress(ValueError):
                self._sizes[int(p.stem)] = p.stat().st_size
        self._cursor_seg, self._cursor_off = self._load_cursor()
        # Segments wholly before the cursor were sent; a crash may have left them behind.
        for seg in [s for s in self._sizes if s < self._cursor_seg]:
            self._delete_segment(seg)
        #: (segment, end offset, wall time of the append) for the lag metric.
        self._appends: deque[tuple[int, int, float]] = deque(maxlen=100_000)
        for seg in sorted(self._sizes):
            mtime = (self._seg_dir / f"{seg:012d}.lp").stat().st_mtime
            self._appends.append((seg, self._sizes[seg], mtime))
        self._active = max(self._sizes, default=max(self._cursor_seg, 0)) + 1
        self._fd = self._open_segment(self._active)
        self._last_sync = time.monotonic()
        self._dirty = False
        self.lines_appended = 0
        self.dropped_lines = 0
        self.rejected_lines = 0
        self.torn_bytes = 0
        self._closed = False

    # -- files ------------------------------------------------------------------------------
    def _path(self, seg: int) -> Path:
        return self._seg_dir / f"{seg:012d}.lp"

    def _open_segment(self, seg: int) -> int:
        fd = os.open(self._path(seg), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._sizes[seg] = os.fstat(fd).st_size
        fsync_dir(self._seg_dir)
        return fd

    def _delete_segment(self, seg: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(seg).unlink()
        self._sizes.pop(seg, None)

    def _load_cursor(self) -> tuple[int, int]:
        try:
            doc = json.loads((self.directory / "cursor.json").read_text())
            return int(doc["segment"]), int(doc["offset"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return (min(self._sizes, default=0), 0)

    def _store_cursor(self) -> None:
        tmp = self.directory / "cursor.json.tmp"
        data = json.dumps({"segment": self._cursor_seg, "offset": self._cursor_off}).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.directory / "cursor.json")
        fsync_dir(self.directory)

    # -- writing ----------------------------------------------------------------------------
    def append(self, lines: bytes) -> bool:
        """Store `\\n`-terminated lines; False if the overflow policy dropped them (counted)."""
        if not lines:
            return True
        if not lines.endswith(b"\n"):
            raise ValueError("spooled data must end with a newline")
        n = lines.count(b"\n")
        with self._lock:
            if self._closed:
                raise RuntimeError("spool is closed")
            if not self._make_room(len(lines)):
                self.dropped_lines += n
                return False
            if self._sizes[self._active] >= self.segment_bytes:
                self._rotate()
            os.write(self._fd, lines)
            self._sizes[self._active] += len(lines)
            self._appends.append((self._active, self._sizes[self._active], time.time()))
            self.lines_appended += n
            self._dirty = True
            self._sync_if_due_locked()
        return True

    def _rotate(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)
        self._active += 1
        self._fd = self._open_segment(self._active)

    def _make_room(self, nbytes: int) -> bool:
        if nbytes > self.quota_bytes:
            log.error("spool: a block of %d bytes exceeds the whole quota; dropped", nbytes)
            return False
        total = sum(self._sizes.values())
        if total + nbytes <= self.quota_bytes:
            return True
        if self.overflow == "drop_newest":
            return False
        if len(self._sizes) == 1:
            self._rotate()
        while total + nbytes > self.quota_bytes:
            oldest = min(self._sizes)
            if oldest == self._active:
                return False
            start = self._cursor_off if oldest == self._cursor_seg else 0
            if oldest >= self._cursor_seg:
                lost = self._count_lines(oldest, start)
                self.dropped_lines += lost
                log.warning("spool over quota: dropped segment %d (%d unsent lines)", oldest, lost)
            total -= self._sizes[oldest]
            self._delete_segment(oldest)
            if oldest >= self._cursor_seg:
                self._cursor_seg, self._cursor_off = min(self._sizes), 0
                self._store_cursor()
        return True

    def _count_lines(self, seg: int, start: int) -> int:
        try:
            with open(self._path(seg), "rb") as f:
                f.seek(start)
                return f.read().count(b"\n")
        except FileNotFoundError:
            return 0

    def sync(self) -> None:
        """fsync the active segment now."""
        with self._lock:
            if self._dirty and not self._closed:
                os.fsync(self._fd)
                self._dirty = False
            self._last_sync = time.monotonic()

    def sync_if_due(self) -> None:
        """fsync if `fsync_interval_s` passed since the last one; call at least that often."""
        with self._lock:
            self._sync_if_due_locked()

    def _sync_if_due_locked(self) -> None:
        now = time.monotonic()
        if self._dirty and now - self._last_sync >= self.fsync_interval_s and not self._closed:
            os.fsync(self._fd)
            self._dirty = False
            self._last_sync = now

    # -- reading ----------------------------------------------------------------------------
    def next_batch(self, max_lines: int = 5000, max_bytes: int = 1_000_000) -> Batch | None:
        """The oldest unsent lines, at most `max_lines` and `max_bytes` (unless one line is
        longer), or None when everything was sent."""
        with self._lock:
            while True:
                seg, off = self._cursor_seg, self._cursor_off
                size = self._sizes.get(seg)
                if size is None:
                    later = [s for s in self._sizes if s > seg]
                    if not later:
                        return None
                    self._cursor_seg, self._cursor_off = min(later), 0
                    continue
                if off >= size:
                    if seg == self._active:
                        return None
                    self._finish_segment(seg)
                    continue
                with open(self._path(seg), "rb") as f:
                    f.seek(off)
                    data = f.read(max_bytes)
                    while b"\n" not in data:  # one line longer than max_bytes
                        more = f.read(max_bytes)
                        if not more:
                            break
                        data += more
                end = data.rfind(b"\n")
                if end < 0:
                    if seg == self._active:
                        return None
                    self.torn_bytes += len(data)
                    log.warning(
                        "spool: skipped a torn line of %d bytes in segment %d", len(data), seg
                    )
                    self._finish_segment(seg)
                    continue
                data = data[: end + 1]
                n = data.count(b"\n")
                if n > max_lines:
                    idx = -1
                    for _ in range(max_lines):
                        idx = data.index(b"\n", idx + 1)
                    data, n = data[: idx + 1], max_lines
                return Batch(seg, off, off + len(data), data, n)

    def _finish_segment(self, seg: int) -> None:
        """A fully sent, inactive segment: move the cursor past it and delete the file."""
        later = [s for s in self._sizes if s > seg]
        self._cursor_seg, self._cursor_off = (min(later) if later else seg + 1), 0
        self._store_cursor()
        self._delete_segment(seg)

    def commit(self, batch: Batch) -> None:
        """The server accepted `batch` (2xx): never send it again."""
        with self._lock:
            if (batch.segment, batch.end) <= (self._cursor_seg, self._cursor_off):
                return  # dropped by the overflow policy meanwhile, or already committed
            self._cursor_seg, self._cursor_off = batch.segment, batch.end
            self._store_cursor()
            while self._appends and self._appends[0][:2] <= (batch.segment, batch.end):
                self._appends.popleft()
            if batch.segment != self._active and batch.end >= self._sizes.get(batch.segment, 0):
                self._finish_segment(batch.segment)

    def reject(self, batch: Batch, reason: str) -> Path:
        """Keep a batch the server refused for good, with its reason, and move past it."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        base = self._rej_dir / f"{stamp}-{batch.segment:012d}-{batch.start:012d}"
        base.with_suffix(".lp").write_bytes(batch.data)
        base.with_suffix(".reason").write_text(reason + "\n", encoding="utf-8")
        fsync_dir(self._rej_dir)
        with self._lock:
            self.rejected_lines += batch.lines
        self.commit(batch)
        return base.with_suffix(".lp")

    def rejected(self) -> list[tuple[Path, str]]:
        """Rejected batch files with their reasons, oldest first."""
        out = []
        for p in sorted(self._rej_dir.glob("*.lp")):
            r = p.with_suffix(".reason")
            out.append((p, r.read_text(encoding="utf-8").strip() if r.exists() else ""))
        return out

    # -- state ------------------------------------------------------------------------------
    def empty(self) -> bool:
        """True when every appended line was sent (or rejected, or dropped)."""
        with self._lock:
            return self._pending_locked() == 0

    def _pending_locked(self) -> int:
        return sum(
            size - (self._cursor_off if seg == self._cursor_seg else 0)
            for seg, size in self._sizes.items()
            if seg >= self._cursor_seg
        )

    def stats(self) -> SpoolStats:
        with self._lock:
            lag = 0.0
            if self._pending_locked() and self._appends:
                lag = max(0.0, time.time() - self._appends[0][2])
            return SpoolStats(
                spool_bytes=sum(self._sizes.values()),
                pending_bytes=self._pending_locked(),
                segments=len(self._sizes),
                lines_appended=self.lines_appended,
                dropped_lines=self.dropped_lines,
                rejected_lines=self.rejected_lines,
                torn_bytes=self.torn_bytes,
                lag_s=lag,
            )

    def close(self) -> None:
        """fsync and close the active segment; the spool is resumed by opening it again."""
        with self._lock:
            if self._closed:
                return
            os.fsync(self._fd)
            os.close(self._fd)
            self._closed = True
            if self._sizes.get(self._active) == 0:
                self._delete_segment(self._active)
