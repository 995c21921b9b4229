"""Reading a spool directory without changing it: segments, cursor validity, what is pending.

One definition of "does the cursor match the files", used by `Spool` at start (which then
repairs) and by `chikyu-daq spool check|show` (which only reports).

A cursor is valid when it parses as `{"segment": int >= 1, "offset": int >= 0}`, no segment
file lies before its segment (sent segments are deleted before the cursor moves past them), and
its offset is a line start within its segment. Anything else is repaired to the safe side:
resend from the earliest segment (or from the start of the cursor's segment), never skip. The
cursor also carries an index of the unsent segments (`"segments": {"42": [bytes, unsent
lines]}`), so a segment deleted or truncated while the spool was at rest is found and its lines
counted as lost.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CursorCheck",
    "SegmentInfo",
    "SpoolAudit",
    "audit_spool",
    "check_cursor",
    "count_lines",
    "segment_sizes",
]

CURSOR = "cursor.json"
SEGMENTS = "segments"
REJECTED = "rejected"


@dataclass(frozen=True)
class CursorCheck:
    """The cursor to use, and why the stored one was repaired ("" when it was valid)."""

    segment: int
    offset: int
    problem: str = ""
    index: dict[int, tuple[int, int]] = field(default_factory=dict)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _index(doc: Mapping[str, object]) -> dict[int, tuple[int, int]]:
    """The stored segment index, bad entries ignored (it only refines loss accounting)."""
    raw = doc.get("segments")
    out: dict[int, tuple[int, int]] = {}
    if not isinstance(raw, dict):
        return out
    for k, v in raw.items():
        if (
            isinstance(k, str)
            and k.isdigit()
            and isinstance(v, list)
            and len(v) == 2
            and all(_is_int(x) and x >= 0 for x in v)
        ):
            out[int(k)] = (int(v[0]), int(v[1]))
    return out


def check_cursor(
    text: str | None,
    sizes: Mapping[int, int],
    line_start: Callable[[int, int], bool],
) -> CursorCheck:
    """Validate a stored cursor (`text`, None if absent) against the segment files `sizes`."""
    first = min(sizes, default=1)
    if text is None:
        return CursorCheck(first, 0)
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return CursorCheck(first, 0, "is not JSON")
    if not isinstance(doc, dict):
        return CursorCheck(first, 0, "is not a JSON object")
    seg, off = doc.get("segment"), doc.get("offset")
    if not (_is_int(seg) and _is_int(off)):
        return CursorCheck(first, 0, f"has no integer segment and offset ({seg!r}, {off!r})")
    assert isinstance(seg, int) and isinstance(off, int)
    index = _index(doc)
    if seg < 1 or off < 0:
        return CursorCheck(first, 0, f"segment {seg} offset {off} is out of range", index)
    below = sorted(s for s in sizes if s < seg)
    if below:
        return CursorCheck(
            first, 0, f"segment {seg} is past unsent segment files ({below[0]}..)", index
        )
    if seg in sizes and off > sizes[seg]:
        return CursorCheck(
            seg, 0, f"offset {off} is past the end of segment {seg} ({sizes[seg]} bytes)", index
        )
    if seg in sizes and off and not line_start(seg, off):
        return CursorCheck(seg, 0, f"offset {off} is not at a line start in segment {seg}", index)
    return CursorCheck(seg, off, "", index)


def count_lines(path: Path, start: int = 0) -> tuple[int, int]:
    """(complete lines, bytes after the last newline) of `path` from byte `start`."""
    lines = 0
    tail = 0
    with open(path, "rb") as f:
        f.seek(start)
        while chunk := f.read(1 << 20):
            k = chunk.count(b"\n")
            lines += k
            tail = len(chunk) - chunk.rfind(b"\n") - 1 if k else tail + len(chunk)
    return lines, tail


def segment_path(directory: Path, seg: int) -> Path:
    return directory / SEGMENTS / f"{seg:012d}.lp"


def segment_sizes(directory: Path) -> dict[int, int]:
    """Segment number -> size of the segment files present (none if the folder is missing)."""
    out: dict[int, int] = {}
    folder = directory / SEGMENTS
    if not folder.is_dir():
        return out
    for p in folder.glob("*.lp"):
        if p.stem.isdigit():
            try:
                out[int(p.stem)] = p.stat().st_size
            except FileNotFoundError:
                continue
    return out


def is_line_start(directory: Path, seg: int, off: int) -> bool:
    with open(segment_path(directory, seg), "rb") as f:
        f.seek(off - 1)
        return f.read(1) == b"\n"


@dataclass(frozen=True)
class SegmentInfo:
    segment: int
    bytes: int
    pending_lines: int
    pending_bytes: int
    torn_bytes: int
    mtime: float


@dataclass(frozen=True)
class SpoolAudit:
    """What a spool directory holds and what is wrong with it (`problems`, empty if healthy)."""

    directory: Path
    segments: list[SegmentInfo]
    cursor: CursorCheck
    cursor_text: str | None
    lost: dict[int, int]  # segment -> unsent lines gone with a deleted or truncated file
    rejected_batches: int
    rejected_lines: int
    problems: list[str]

    @property
    def pending_lines(self) -> int:
        return sum(s.pending_lines for s in self.segments)

    @property
    def pending_bytes(self) -> int:
        return sum(s.pending_bytes for s in self.segments)

    @property
    def torn_bytes(self) -> int:
        return sum(s.torn_bytes for s in self.segments)

    @property
    def lag_s(self) -> float:
        """Age of the oldest pending segment's last write (a lower bound of the upload lag)."""
        times = [s.mtime for s in self.segments if s.pending_lines]
        return max(0.0, time.time() - min(times)) if times else 0.0


def audit_spool(directory: str | Path) -> SpoolAudit:
    """Read a spool directory (raises OSError only if it cannot be read at all)."""
    d = Path(directory)
    sizes = segment_sizes(d)
    try:
        text: str | None = (d / CURSOR).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = None
    cur = check_cursor(text, sizes, lambda s, o: is_line_start(d, s, o))
    problems = [f"cursor.json {cur.problem}"] if cur.problem else []
    segments: list[SegmentInfo] = []
    counted: dict[int, int] = {}
    for seg in sorted(sizes):
        path = segment_path(d, seg)
        start = cur.offset if seg == cur.segment else 0  # no segment lies before the cursor's
        try:
            lines, torn = count_lines(path, start)
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            continue
        pending = sizes[seg] - start
        counted[seg] = lines
        segments.append(SegmentInfo(seg, sizes[seg], lines, pending, torn, mtime))
        if torn:
            problems.append(f"segment {seg} ends with a torn line of {torn} bytes")
    lost: dict[int, int] = {}
    for seg, (size, unsent) in sorted(cur.index.items()):
        if seg < cur.segment:
            continue
        if seg not in sizes:
            lost[seg] = unsent
            problems.append(f"segment {seg} is missing ({unsent} unsent lines lost)")
        elif sizes[seg] < size:
            lost[seg] = max(0, unsent - counted.get(seg, 0))
            problems.append(
                f"segment {seg} was truncated from {size} to {sizes[seg]} bytes "
                f"({lost[seg]} unsent lines lost)"
            )
    rej_batches = rej_lines = 0
    rej = d / REJECTED
    if rej.is_dir():
        for p in rej.glob("*.lp"):
            rej_batches += 1
            try:
                rej_lines += count_lines(p)[0]
            except FileNotFoundError:
                continue
    if rej_batches:
        problems.append(
            f"{rej_batches} batches ({rej_lines} lines) the server refused in whole or in part,"
            f" kept in {rej}"
        )
    return SpoolAudit(d, segments, cur, text, lost, rej_batches, rej_lines, problems)
