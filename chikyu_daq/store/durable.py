"""Durability primitives shared by the recorder and the spool, and their health bookkeeping.

A storage sink must outlive its disk: a full or read-only filesystem, an I/O error or a file
deleted under it is counted by reason (`ENOSPC`, `EROFS`, `EIO`, `ENOENT`, ... or a named event
such as `deleted_segment`), logged at most once per `log_every_s` per reason with the number of
repeats suppressed in between, and shown as a health state (`ok`/`degraded`, last error,
counters) in the sink's `stats()`. The sink keeps its data in memory and retries; `ok()` marks
the recovery (logged once).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["Counts", "Health", "fsync_dir", "reason_of"]


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` survive power loss (the entry, not just data)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def reason_of(exc: BaseException) -> str:
    """`ENOSPC`, `EROFS`, ... for an OSError with an errno; the exception type otherwise."""
    code = getattr(exc, "errno", None)
    if isinstance(code, int) and code in errno.errorcode:
        return errno.errorcode[code]
    return type(exc).__name__


class Counts:
    """What a storage sink counts (written, dropped, lost, ...), each from 0: declared once,
    by name, and published under those names, so no counter is kept and left unpublished. A
    name not declared is an error, never a new counter. The caller holds its own lock."""

    def __init__(self, names: str) -> None:
        self._n = dict.fromkeys(names.split(), 0)

    def add(self, name: str, n: int = 1) -> None:
        if name not in self._n:
            raise KeyError(f"not a declared counter: {name}")
        self._n[name] += n

    def __getitem__(self, name: str) -> int:
        return self._n[name]

    def as_dict(self, prefix: str = "") -> dict[str, Any]:
        """Every counter, its name prefixed."""
        return {prefix + k: v for k, v in self._n.items()}


class Health:
    """Failure counters of one sink by reason, with rate-limited logging (see module doc)."""

    def __init__(self, name: str, logger: logging.Logger, *, log_every_s: float = 10.0) -> None:
        self.name = name
        self.log = logger
        self.log_every_s = log_every_s
        self.counts: dict[str, int] = {}
        self.last_error = ""
        self.degraded = False
        self.recoveries = 0
        self._last_log: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()  # the flusher and the writer thread both report

    def fail(self, exc: BaseException | str, what: str) -> None:
        """A failed operation (`what`): counted, logged (rate-limited), state degraded."""
        reason = exc if isinstance(exc, str) else reason_of(exc)
        self.degraded = True
        self.note(reason, f"{what}: {exc}", logging.ERROR)

    def note(self, reason: str, message: str, level: int = logging.WARNING) -> None:
        """Count and log (rate-limited) a problem that was dealt with; state unchanged."""
        with self._lock:
            self.counts[reason] = self.counts.get(reason, 0) + 1
            self.last_error = f"{reason}: {message}"
            now = time.monotonic()
            last = self._last_log.get(reason)
            if last is not None and now - last < self.log_every_s:
                self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
                return
            self._last_log[reason] = now
            more = self._suppressed.pop(reason, 0)
        tail = f" ({more} similar suppressed)" if more else ""
        self.log.log(level, "%s %s%s", self.name, message, tail)

    def ok(self) -> None:
        """Everything pending reached disk again: leave the degraded state (logged once)."""
        if self.degraded:
            self.degraded = False
            self.recoveries += 1
            self.log.warning(
                "%s recovered after %d storage errors (last %s)",
                self.name,
                self.errors,
                self.last_error,
            )

    @property
    def errors(self) -> int:
        return sum(self.counts.values())

    def as_dict(self, prefix: str) -> dict[str, Any]:
        """`<prefix>_ok`, `_state`, `_errors`, `_errors_<reason>`, `_recoveries`, `_last_error`."""
        out: dict[str, Any] = {
            f"{prefix}_ok": not self.degraded,
            f"{prefix}_state": "degraded" if self.degraded else "ok",
            f"{prefix}_errors": self.errors,
            f"{prefix}_recoveries": self.recoveries,
            f"{prefix}_last_error": self.last_error,
        }
        with self._lock:
            counts = sorted(self.counts.items())
        for reason, n in counts:
            out[f"{prefix}_errors_{reason.lower()}"] = n
        return out
