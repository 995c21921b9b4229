"""A disk spool of line-protocol lines: every line reaches disk before anyone tries to send it.

Layout of a spool directory:

    segments/000000000042.lp   append-only lines, rotated at `segment_bytes`
    cursor.json                {"segment": 42, "offset": 81920, "segments": {...}}: everything
                               before segment/offset was sent; "segments" indexes the unsent ones
    rejected/<time>-<seg>-<offset>.lp + .reason   batches a server refused for good

Crash safety. `append` writes whole `\\n`-terminated blocks with one `os.write`, so a process killed
with `kill -9` leaves them in the page cache and on disk; `fsync` is batched (`fsync_interval_s`,
at most 1 s, so power loss costs at most that). The cursor is replaced atomically (tmp, fsync,
rename, directory fsync) only after the server accepted a batch, so after any crash the uploader
resumes at the cursor and at worst sends a batch twice, which InfluxDB's series+timestamp
overwrite makes harmless. Each process opens a fresh segment, so a torn tail left by power loss
stays isolated: an unterminated last line of an old segment is skipped and counted (`torn_bytes`).
A sent segment is deleted before the cursor moves past it.

Quota and overflow. Segment files are counted against `quota_bytes`. When an append would exceed
it, the `overflow` policy decides, and every line it costs is counted in `dropped_lines`:
`drop_oldest` deletes the oldest whole segments (unsent lines included), `drop_newest` refuses the
new block. One block larger than the whole quota is always dropped.

Storage faults and recovery (DESIGN "Degrade, never die"). No method raises for a full or
read-only disk, an I/O error or a deleted file: the fault is counted by errno and logged at a
limited rate (`chikyu_daq.store.durable.Health`, in `stats()`). Lines that cannot be written wait in
memory (up to `max_pending_bytes`, past it the overflow policy applies there too, counted) and
are written, in order, by a later `append`, `sync_if_due` or `close` (at most every `retry_s`).
A failed write is cut back off the segment (no torn line) and the next write starts a new
segment, so a rotation that fails leaves nothing half-done. A segment deleted or truncated while
running (or, through the cursor's index, at rest) has its unsent lines counted in `lost_lines`
and logged; the cursor is checked against the files at start and repaired to the safe side,
resend rather than skip (`chikyu_daq.sinks.influx.spool_audit`, counted in `cursor_repairs`).

Thread safety: `append` may run on another thread than the uploader; state is under one lock.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from chikyu_daq.sinks.influx.spool_audit import CURSOR, REJECTED, SEGMENTS, audit_spool, count_lines
from chikyu_daq.store.durable import Counts, Health, fsync_dir

__all__ = ["Overflow", "Spool", "SpoolRange", "SpoolStats"]

log = logging.getLogger(__name__)

Overflow = Literal["drop_oldest", "drop_newest"]


@dataclass(frozen=True)
class SpoolRange:
    """Lines `[start, end)` of one segment, read for sending; `data` ends with `\\n`."""

    segment: int
    start: int
    end: int
    data: bytes
    lines: int

    def split(self) -> tuple[SpoolRange, SpoolRange]:
        """Two halves at a line boundary (for a 413); raises ValueError for a single line."""
        if self.lines < 2:
            raise ValueError("a single line cannot be split")
        nl = -1
        for _ in range(self.lines // 2):
            nl = self.data.index(b"\n", nl + 1)
        cut = nl + 1
        first = SpoolRange(
            self.segment, self.start, self.start + cut, self.data[:cut], self.lines // 2
        )
        second = SpoolRange(
            self.segment, self.start + cut, self.end, self.data[cut:], self.lines - self.lines // 2
        )
        return first, second


@dataclass(frozen=True)
class SpoolStats:
    spool_bytes: int
    pending_bytes: int  # unsent, on disk and in memory
    segments: int
    lines_appended: int
    dropped_lines: int
    rejected_lines: int
    torn_bytes: int
    lag_s: float
    memory_bytes: int = 0  # waiting in memory for the disk
    lost_lines: int = 0  # unsent lines of segments deleted or truncated under the spool
    cursor_repairs: int = 0
    health: dict[str, Any] = field(default_factory=dict)


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
        max_pending_bytes: int | None = None,
        retry_s: float = 1.0,
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
        self.max_pending_bytes = max_pending_bytes or min(self.quota_bytes, 64 << 20)
        self.retry_s = retry_s
        self._seg_dir = self.directory / SEGMENTS
        self._rej_dir = self.directory / REJECTED
        self._lock = threading.Lock()
        self.health = Health(f"spool {self.directory}:", log)
        #: published in `SpoolStats` under these names
        self.counts = Counts(
            "lines_appended dropped_lines rejected_lines torn_bytes lost_lines cursor_repairs"
        )
        self._closed = False
        self._fd: int | None = None
        self._mem: deque[tuple[bytes, int]] = deque()  # blocks waiting for the disk
        self._mem_bytes = 0
        self._next_retry = 0.0
        self._cursor_dirty = False
        self._last_sync = time.monotonic()
        self._dirty = False
        #: (segment, end offset, wall time of the append) for the lag metric.
        self._appends: deque[tuple[int, int, float]] = deque(maxlen=100_000)
        self._sizes: dict[int, int] = {}
        self._unsent: dict[int, int] = {}  # unsent complete lines per segment
        try:
            self._seg_dir.mkdir(parents=True, exist_ok=True)
            self._rej_dir.mkdir(parents=True, exist_ok=True)
            audit = audit_spool(self.directory)
        except OSError as exc:  # unreadable spool: start empty, keep what comes in memory
            self.health.fail(exc, "cannot read the spool directory")
            self._cursor_seg, self._cursor_off = 1, 0
            self._active = 1
            return
        for info in audit.segments:
            self._sizes[info.segment] = info.bytes
            self._unsent[info.segment] = info.pending_lines
            self._appends.append((info.segment, info.bytes, info.mtime))
        cur = audit.cursor
        self._cursor_seg, self._cursor_off = cur.segment, cur.offset
        if cur.problem:
            self.counts.add("cursor_repairs", 1)
            self._cursor_dirty = True
            self.health.note(
                "cursor",
                f"cursor.json {cur.problem}: repaired to segment {cur.segment} offset "
                f"{cur.offset} (unsent lines are sent again rather than skipped)",
                logging.ERROR,
            )
        for seg, lost in audit.lost.items():
            self.counts.add("lost_lines", lost)
            self.health.note(
                "deleted_segment",
                f"segment {seg} was deleted or truncated at rest: {lost} unsent lines lost",
                logging.ERROR,
            )
            self._cursor_dirty = True
        # Never the cursor's own number: its offset may point into a segment that is gone.
        self._active = max([*self._sizes, self._cursor_seg]) + 1
        with self._lock:
            try:
                self._open_active()
                if self._cursor_dirty:
                    self._store_cursor()
            except OSError as exc:
                self._fail(exc, "cannot open a segment; lines kept in memory")

    # -- files ------------------------------------------------------------------------------
    def _path(self, seg: int) -> Path:
        return self._seg_dir / f"{seg:012d}.lp"

    def _fail(self, exc: OSError, what: str) -> None:
        self.health.fail(exc, what)
        self._next_retry = time.monotonic() + self.retry_s

    def _open_active(self) -> None:
        """Open segment `_active` for appending (the segments folder made again if deleted)."""
        try:
            fd = os.open(self._path(self._active), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except FileNotFoundError:
            self.health.note("deleted", f"{self._seg_dir} was missing; created again")
            self._seg_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path(self._active), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._fd = fd
        self._sizes[self._active] = os.fstat(fd).st_size
        self._unsent.setdefault(self._active, 0)
        try:
            fsync_dir(self._seg_dir)
        except OSError as exc:
            self.health.note(f"fsync_{errno.errorcode.get(exc.errno or 0, 'error')}", str(exc))

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _abandon_active(self) -> None:
        """After a failed write: cut the segment back to its last whole line, close it and let
        the next write open a new segment (so a half-done write or rotation leaves nothing)."""
        seg = self._active
        if self._fd is not None:
            good = self._sizes.get(seg, 0)
            try:
                os.ftruncate(self._fd, good)
            except OSError:  # the torn tail stays; next_range skips and counts it
                with contextlib.suppress(OSError):
                    self._sizes[seg] = max(good, os.fstat(self._fd).st_size)
            self._close_fd()
        if self._sizes.get(seg, 1) == 0:
            self._delete_segment(seg)
        self._active = max([*self._sizes, seg]) + 1

    def _delete_segment(self, seg: int) -> None:
        with contextlib.suppress(OSError):
            self._path(seg).unlink()
        self._sizes.pop(seg, None)
        self._unsent.pop(seg, None)

    def _vanished(self, seg: int, why: str) -> None:
        """A segment deleted under the spool: its unsent lines are lost (counted, logged)."""
        lost = self._unsent.get(seg, 0)
        self.counts.add("lost_lines", lost)
        self.health.note(
            "deleted_segment", f"segment {seg} {why}: {lost} unsent lines lost", logging.ERROR
        )
        if seg == self._active:
            self._close_fd()
            self._active = max([*self._sizes, seg]) + 1
        self._sizes.pop(seg, None)
        self._unsent.pop(seg, None)
        if seg == self._cursor_seg:
            later = [s for s in self._sizes if s > seg]
            self._cursor_seg, self._cursor_off = (min(later) if later else seg + 1), 0
        self._store_cursor_soft()

    def _check_active(self) -> None:
        """The open segment deleted by someone (writes would go nowhere): counted, replaced."""
        if self._fd is not None and os.fstat(self._fd).st_nlink == 0:
            self._vanished(self._active, "was deleted while open")

    def _store_cursor(self) -> None:
        tmp = self.directory / (CURSOR + ".tmp")
        index = {
            str(seg): [size, self._unsent.get(seg, 0)]
            for seg, size in sorted(self._sizes.items())
            if seg >= self._cursor_seg
        }
        doc = {"segment": self._cursor_seg, "offset": self._cursor_off, "segments": index}
        data = json.dumps(doc).encode()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except FileNotFoundError:  # the spool directory was deleted
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, "short write of cursor.json")
            os.fsync(fd)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        os.close(fd)
        os.replace(tmp, self.directory / CURSOR)
        self._cursor_dirty = False
        try:
            fsync_dir(self.directory)
        except OSError as exc:
            self.health.note(f"fsync_{errno.errorcode.get(exc.errno or 0, 'error')}", str(exc))

    def _store_cursor_soft(self) -> None:
        """Store the cursor; if the disk refuses, it stays in memory and is retried."""
        try:
            self._store_cursor()
        except OSError as exc:
            self._cursor_dirty = True
            self._fail(exc, "cannot store cursor.json; retried")

    # -- writing ----------------------------------------------------------------------------
    def append(self, lines: bytes, *, sync: bool = True) -> bool:
        """Store `\\n`-terminated lines; False if the overflow policy dropped them (counted).

        `sync=False`: never fsync here (an event-loop caller must not wait on the disk); the
        next `append` or `sync_if_due` (the uploader's, every turn) does it within the interval.
        Never raises for storage faults: lines the disk refuses wait in memory (module doc)."""
        if not lines:
            return True
        if not lines.endswith(b"\n"):
            raise ValueError("spooled data must end with a newline")
        n = lines.count(b"\n")
        with self._lock:
            if self._closed:
                raise RuntimeError("spool is closed")
            self._retry_locked()
            if not self._mem and self._fd is not None:
                try:
                    ok = self._write_locked(lines, n)
                except OSError as exc:
                    self._fail(exc, "append failed; lines kept in memory")
                else:
                    if ok:
                        self.counts.add("lines_appended", n)
                        if sync:
                            self._sync_if_due_locked()
                    return ok
            return self._keep_locked(lines, n)

    def _keep_locked(self, lines: bytes, n: int) -> bool:
        """Hold a block in memory for a later write; the overflow policy bounds the memory."""
        if len(lines) > self.max_pending_bytes or (
            self.overflow == "drop_newest" and self._mem_bytes + len(lines) > self.max_pending_bytes
        ):
            self.counts.add("dropped_lines", n)
            self.health.note("overflow", f"memory full while the disk fails: {n} lines dropped")
            return False
        while self._mem and self._mem_bytes + len(lines) > self.max_pending_bytes:
            old, k = self._mem.popleft()
            self._mem_bytes -= len(old)
            self.counts.add("dropped_lines", k)
            self.health.note("overflow", f"memory full while the disk fails: {k} lines dropped")
        self._mem.append((lines, n))
        self._mem_bytes += len(lines)
        self.counts.add("lines_appended", n)
        return True

    def _write_locked(self, lines: bytes, n: int) -> bool:
        """One block to the active segment; False if the quota policy dropped it (counted)."""
        if self._fd is None:
            self._open_active()
        self._check_active()
        if self._fd is None:
            self._open_active()
        if not self._make_room(len(lines)):
            self.counts.add("dropped_lines", n)
            return False
        if self._sizes[self._active] >= self.segment_bytes:
            self._rotate()
        assert self._fd is not None
        try:
            written = os.write(self._fd, lines)
            if written != len(lines):
                raise OSError(errno.ENOSPC, f"short write ({written} of {len(lines)} bytes)")
        except OSError:
            self._abandon_active()
            raise
        self._sizes[self._active] += len(lines)
        self._unsent[self._active] = self._unsent.get(self._active, 0) + n
        self._appends.append((self._active, self._sizes[self._active], time.time()))
        self._dirty = True
        return True

    def _retry_locked(self, force: bool = False) -> None:
        """Write what waits in memory, reopen a segment, store a pending cursor (if due)."""
        if not (self._mem or self._fd is None or self._cursor_dirty):
            if self.health.degraded:
                self.health.ok()
            return
        now = time.monotonic()
        if not force and now < self._next_retry:
            return
        self._next_retry = now + self.retry_s
        try:
            while self._mem:
                data, n = self._mem[0]
                self._write_locked(data, n)  # a block the quota drops is counted there
                self._mem.popleft()
                self._mem_bytes -= len(data)
            if self._fd is None:
                self._open_active()
            if self._cursor_dirty:
                self._store_cursor()
        except OSError as exc:
            self._fail(exc, "retry failed; lines kept in memory")
            return
        self.health.ok()

    def _rotate(self) -> None:
        """Start a new segment; the old one is closed only once the new one is open."""
        old_fd, old = self._fd, self._active
        self._active = max([*self._sizes, old]) + 1
        try:
            self._open_active()
        except OSError:
            self._active = old
            raise
        if old_fd is not None:
            try:
                os.fsync(old_fd)
            except OSError as exc:
                self.health.note(errno.errorcode.get(exc.errno or 0, "EIO"), f"fsync: {exc}")
            with contextlib.suppress(OSError):
                os.close(old_fd)
        self._store_cursor_soft()  # the index now lists the closed segment

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
            if oldest >= self._cursor_seg:
                lost = self._unsent.get(oldest, 0)
                self.counts.add("dropped_lines", lost)
                log.warning("spool over quota: dropped segment %d (%d unsent lines)", oldest, lost)
            total -= self._sizes[oldest]
            self._delete_segment(oldest)
            if oldest >= self._cursor_seg:
                self._cursor_seg, self._cursor_off = min(self._sizes), 0
                self._store_cursor_soft()
        return True

    def retry_now(self) -> bool:
        """Try to write what waits in memory now; True if that left lines to send."""
        with self._lock:
            if not self._mem or self._closed:
                return False
            self._retry_locked(force=True)
            return not self._mem

    def sync(self) -> None:
        """fsync the active segment now."""
        with self._lock:
            self._retry_locked(force=True)
            if self._dirty and not self._closed:
                self._fsync_locked()
            self._last_sync = time.monotonic()

    def sync_if_due(self) -> None:
        """fsync if `fsync_interval_s` passed since the last one, retry what waits in memory and
        notice a deleted open segment; call at least that often."""
        with self._lock:
            if self._closed:
                return
            try:
                self._check_active()
            except OSError as exc:
                self._fail(exc, "cannot check the open segment")
            self._retry_locked()
            self._sync_if_due_locked()

    def _sync_if_due_locked(self) -> None:
        now = time.monotonic()
        if self._dirty and now - self._last_sync >= self.fsync_interval_s and not self._closed:
            self._fsync_locked()
            self._last_sync = now

    def _fsync_locked(self) -> None:
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)
            self._dirty = False
        except OSError as exc:  # the kernel may have lost the data: start a new segment
            self._abandon_active()
            self._fail(exc, "fsync failed")

    # -- reading ----------------------------------------------------------------------------
    def next_range(self, max_lines: int = 5000, max_bytes: int = 1_000_000) -> SpoolRange | None:
        """The oldest unsent lines, at most `max_lines` and `max_bytes` (unless one line is
        longer), or None when everything was sent (or the disk cannot be read now)."""
        with self._lock:
            for _ in range(len(self._sizes) + 1000):  # each pass retires a segment or returns
                seg, off = self._cursor_seg, self._cursor_off
                size = self._sizes.get(seg)
                if size is None:
                    later = [s for s in self._sizes if s > seg]
                    if not later:
                        return None
                    self._cursor_seg, self._cursor_off = min(later), 0
                    continue
                if off >= size:
                    if seg == self._active and self._fd is not None:
                        return None
                    self._finish_segment(seg)
                    continue
                try:
                    data = self._read(seg, off, size, max_bytes)
                except FileNotFoundError:
                    self._vanished(seg, "was deleted before it was sent")
                    continue
                except OSError as exc:
                    self._fail(exc, f"cannot read segment {seg}")
                    return None
                if data is None:  # truncated under us: accounted, look again
                    continue
                end = data.rfind(b"\n")
                if end < 0:
                    if seg == self._active and self._fd is not None:
                        return None
                    self.counts.add("torn_bytes", len(data))
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
                return SpoolRange(seg, off, off + len(data), data, n)
            return None

    def _read(self, seg: int, off: int, size: int, max_bytes: int) -> bytes | None:
        """Bytes from `off`, or None after accounting for a segment someone truncated."""
        with open(self._path(seg), "rb") as f:
            actual = os.fstat(f.fileno()).st_size
            if actual < size:
                left = count_lines(self._path(seg), off)[0] if off < actual else 0
                lost = max(0, self._unsent.get(seg, 0) - left)
                self.counts.add("lost_lines", lost)
                self.health.note(
                    "deleted_segment",
                    f"segment {seg} was truncated from {size} to {actual} bytes: "
                    f"{lost} unsent lines lost",
                    logging.ERROR,
                )
                self._sizes[seg], self._unsent[seg] = actual, left
                if off > actual:
                    self._cursor_off = actual
                return None
            f.seek(off)
            data = f.read(max_bytes)
            while b"\n" not in data:  # one line longer than max_bytes
                more = f.read(max_bytes)
                if not more:
                    break
                data += more
            return data

    def _finish_segment(self, seg: int) -> None:
        """A fully sent, inactive segment: delete the file, then move the cursor past it."""
        later = [s for s in self._sizes if s > seg]
        self._delete_segment(seg)
        self._cursor_seg, self._cursor_off = (min(later) if later else seg + 1), 0
        self._store_cursor_soft()

    def commit(self, batch: SpoolRange) -> None:
        """The server accepted `batch` (2xx): never send it again."""
        with self._lock:
            if (batch.segment, batch.end) <= (self._cursor_seg, self._cursor_off):
                return  # dropped by the overflow policy meanwhile, or already committed
            if batch.segment not in self._sizes:
                return  # deleted meanwhile (counted as lost then)
            self._cursor_seg, self._cursor_off = batch.segment, batch.end
            self._unsent[batch.segment] = max(0, self._unsent.get(batch.segment, 0) - batch.lines)
            while self._appends and self._appends[0][:2] <= (batch.segment, batch.end):
                self._appends.popleft()
            active = batch.segment == self._active and self._fd is not None
            if not active and batch.end >= self._sizes.get(batch.segment, 0):
                self._finish_segment(batch.segment)
            else:
                self._store_cursor_soft()

    def reject(self, batch: SpoolRange, reason: str) -> Path | None:
        """Keep a batch the server refused for good, with its reason, and move past it.

        None if the disk refused to keep it: then it stays unsent and is tried again."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        base = self._rej_dir / f"{stamp}-{batch.segment:012d}-{batch.start:012d}"
        try:
            self._rej_dir.mkdir(parents=True, exist_ok=True)
            base.with_suffix(".lp").write_bytes(batch.data)
            base.with_suffix(".reason").write_text(reason + "\n", encoding="utf-8")
            fsync_dir(self._rej_dir)
        except OSError as exc:
            for suffix in (".lp", ".reason"):
                with contextlib.suppress(OSError):
                    base.with_suffix(suffix).unlink()
            with self._lock:
                self._fail(exc, "cannot keep a rejected batch; it stays in the spool")
            return None
        with self._lock:
            self.counts.add("rejected_lines", batch.lines)
        self.commit(batch)
        return base.with_suffix(".lp")

    def rejected(self) -> list[tuple[Path, str]]:
        """Rejected batch files with their reasons, oldest first."""
        out = []
        for p in sorted(self._rej_dir.glob("*.lp")) if self._rej_dir.is_dir() else []:
            r = p.with_suffix(".reason")
            out.append((p, r.read_text(encoding="utf-8").strip() if r.exists() else ""))
        return out

    # -- state ------------------------------------------------------------------------------
    def empty(self) -> bool:
        """True when every appended line was sent (or rejected, or dropped, or lost)."""
        with self._lock:
            return self._pending_locked() == 0

    def _pending_locked(self) -> int:
        on_disk = sum(
            size - (self._cursor_off if seg == self._cursor_seg else 0)
            for seg, size in self._sizes.items()
            if seg >= self._cursor_seg
        )
        return on_disk + self._mem_bytes

    def stats(self) -> SpoolStats:
        with self._lock:
            lag = 0.0
            if self._pending_locked() and self._appends:
                lag = max(0.0, time.time() - self._appends[0][2])
            return SpoolStats(
                spool_bytes=sum(self._sizes.values()),
                pending_bytes=self._pending_locked(),
                segments=len(self._sizes),
                lag_s=lag,
                memory_bytes=self._mem_bytes,
                health=self.health.as_dict("spool"),
                **self.counts.as_dict(),
            )

    def close(self) -> None:
        """Write what waits in memory if the disk allows, fsync and close the active segment;
        the spool is resumed by opening it again. Lines the disk still refuses are dropped
        (counted, logged)."""
        with self._lock:
            if self._closed:
                return
            self._retry_locked(force=True)
            if self._mem:
                lost = sum(k for _, k in self._mem)
                self.counts.add("dropped_lines", lost)
                log.error("spool closed with %d lines the disk refused; dropped", lost)
                self._mem.clear()
                self._mem_bytes = 0
            if self._fd is not None:
                try:
                    os.fsync(self._fd)
                except OSError as exc:
                    self.health.fail(exc, "fsync at close failed")
                self._close_fd()
            self._closed = True
            if self._sizes.get(self._active) == 0:
                self._delete_segment(self._active)
            self._store_cursor_soft()
