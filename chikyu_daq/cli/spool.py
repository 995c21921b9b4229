"""`chikyu-daq spool check DIR` and `spool show DIR`: inspect an InfluxDB spool without changing it.

Both read the directory only (`chikyu_daq.sinks.influx.spool_audit`), so they are safe on the spool
of a running daemon. `check` exits 0 when healthy and 1 when it found problems (cursor that does not
match the files, missing or truncated segments, torn lines, batches the server refused); 2 when
DIR is not a spool. A refused batch is kept whole in `rejected/`, though InfluxDB 1.x may have
written some of its lines (a "partial write"): its lines are the ones to look at, not all lost.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from chikyu_daq.sinks.influx.spool_audit import SEGMENTS, SpoolAudit, audit_spool

__all__ = ["spool_check", "spool_show"]

DirArgument = Annotated[Path, typer.Argument(help="Spool directory (holds segments/).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _audit_or_exit(directory: Path) -> SpoolAudit:
    if not (directory / SEGMENTS).is_dir():
        print(f"error: not a spool directory (no {SEGMENTS}/): {directory}")
        raise SystemExit(2)
    try:
        return audit_spool(directory)
    except OSError as exc:
        print(f"error: cannot read {directory}: {exc}")
        raise SystemExit(2) from None


def _summary(a: SpoolAudit) -> dict[str, Any]:
    cur = a.cursor
    return {
        "directory": str(a.directory),
        "healthy": not a.problems,
        "problems": a.problems,
        "cursor_valid": not cur.problem,
        "cursor": {"segment": cur.segment, "offset": cur.offset},
        "cursor_stored": a.cursor_text,
        "segments": len(a.segments),
        "spool_bytes": sum(s.bytes for s in a.segments),
        "pending_lines": a.pending_lines,
        "pending_bytes": a.pending_bytes,
        "lag_s": round(a.lag_s, 3),
        "torn_bytes": a.torn_bytes,
        "lost_lines": sum(a.lost.values()),
        "rejected_batches": a.rejected_batches,
        "rejected_lines": a.rejected_lines,
    }


def _print_summary(s: dict[str, Any]) -> None:
    cur = s["cursor"]
    valid = "valid" if s["cursor_valid"] else "INVALID (would be repaired: resend, not skip)"
    print(f"spool       {s['directory']}")
    print(f"cursor      segment {cur['segment']} offset {cur['offset']}  {valid}")
    print(f"pending     {s['pending_lines']} lines, {s['pending_bytes']} bytes")
    print(f"lag         {s['lag_s']:.1f} s")
    print(f"segments    {s['segments']} ({s['spool_bytes']} bytes)")
    print(f"torn        {s['torn_bytes']} bytes")
    print(f"lost        {s['lost_lines']} lines (segments deleted or truncated)")
    print(
        f"refused     {s['rejected_batches']} batches, {s['rejected_lines']} lines, kept in"
        " rejected/ (refused in whole or in part: some lines may be in the database)"
    )
    for p in s["problems"]:
        print(f"problem: {p}")
    print("healthy" if s["healthy"] else f"{len(s['problems'])} problem(s) found")


def spool_check(directory: DirArgument, as_json: JsonOption = False) -> None:
    """Check a spool: pending lines, lag, torn bytes, batches the server refused, cursor.

    Exit 0 healthy, 1 problems found, 2 not a spool."""
    s = _summary(_audit_or_exit(directory))
    if as_json:
        print(json.dumps(s, indent=2))
    else:
        _print_summary(s)
    raise SystemExit(0 if s["healthy"] else 1)


def spool_show(directory: DirArgument, as_json: JsonOption = False) -> None:
    """Show a spool: the check summary and one row per segment."""
    a = _audit_or_exit(directory)
    s = _summary(a)
    rows: list[dict[str, Any]] = [
        {
            "segment": seg.segment,
            "bytes": seg.bytes,
            "pending_lines": seg.pending_lines,
            "pending_bytes": seg.pending_bytes,
            "torn_bytes": seg.torn_bytes,
            "mtime_utc": datetime.fromtimestamp(seg.mtime, tz=UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "lost_lines": a.lost.get(seg.segment, 0),
        }
        for seg in a.segments
    ]
    for seg, lost in sorted(a.lost.items()):
        if not any(r["segment"] == seg for r in rows):
            rows.append({"segment": seg, "bytes": 0, "missing": True, "lost_lines": lost})
    if as_json:
        print(json.dumps({**s, "segment_table": rows}, indent=2))
        return
    _print_summary(s)
    from rich.console import Console
    from rich.table import Table

    table = Table("segment", "bytes", "pending lines", "pending bytes", "torn", "last write (UTC)")
    for r in sorted(rows, key=lambda r: r["segment"]):
        if r.get("missing"):
            table.add_row(str(r["segment"]), "MISSING", f"{r['lost_lines']} lost", "", "", "")
            continue
        table.add_row(
            str(r["segment"]),
            str(r["bytes"]),
            str(r["pending_lines"]),
            str(r["pending_bytes"]),
            str(r["torn_bytes"]),
            r["mtime_utc"],
        )
    Console(width=120).print(table)
