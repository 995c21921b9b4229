"""The fleet results dataset: Parquet partitioned `vessel=/run=/day=` (hive layout).

One run's results are written by that run's task alone (its own `vessel=V/run=R/` folder), so
tasks never contend for a file and a retried task simply rewrites its folder. Partition values
are percent-encoded where needed, which pyarrow, DuckDB and polars decode. Days are UTC dates
of the grid point.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DAY_NS = 86_400 * 10**9
RESULTS = "results"


def _seg(value: str) -> str:
    return quote(value, safe="-_.+:")


def run_partition(root: Path, vessel: str, run_id: str) -> Path:
    """Folder that holds every day of one run's results."""
    return root / RESULTS / f"vessel={_seg(vessel)}" / f"run={_seg(run_id)}"


def write_partitions(results_file: Path, root: Path, vessel: str, run_id: str) -> int:
    """Split one replay's `results.parquet` into day partitions; streams row groups, so memory
    stays at one hour of results. Returns rows written."""
    folder = run_partition(root, vessel, run_id)
    if folder.exists():
        shutil.rmtree(folder)  # a retried or repeated task replaces, never appends
    writers: dict[int, pq.ParquetWriter] = {}
    rows = 0
    try:
        src = pq.ParquetFile(results_file)
        for batch in src.iter_batches(batch_size=65_536):
            day = batch.column("t_ns").to_numpy() // DAY_NS
            for d in np.unique(day):
                part = batch.filter(pa.array(day == d))
                w = writers.get(int(d))
                if w is None:
                    date = np.datetime64(int(d), "D").astype(str)
                    (folder / f"day={date}").mkdir(parents=True, exist_ok=True)
                    w = pq.ParquetWriter(
                        folder / f"day={date}" / "part-0.parquet",
                        src.schema_arrow,
                        compression="zstd",
                    )
                    writers[int(d)] = w
                w.write_batch(part)
                rows += part.num_rows
    finally:
        for w in writers.values():
            w.close()
    return rows


class Column(NamedTuple):
    """One fleet-summary column: its Arrow type and how the readable table shows it."""

    type: pa.DataType
    #: Header in the readable table; "" leaves the column out of it.
    header: str = ""
    fmt: str = "{}"
    #: The readable table shows value / per (seconds as hours).
    per: float | None = None


STR, F64, I64 = pa.string(), pa.float64(), pa.int64()
#: Fleet summary columns, in order (one row per run or sweep case).
SUMMARY: dict[str, Column] = {
    "vessel": Column(STR, "vessel"),
    "run_id": Column(STR, "run"),
    "case": Column(STR, "case"),
    "status": Column(STR, "status"),
    "error": Column(STR),
    "duration_s": Column(F64, "hours", "{:.2f}", 3600.0),
    "grid_points": Column(I64),
    "cum_rey_kg": Column(F64, "REY kg", "{:.3f}"),
    "u95_cum_rey_kg": Column(F64, "U95 kg", "{:.3f}"),
    "u95_pct": Column(F64, "U95 %", "{:.1f}"),
    "cum_reo_kg": Column(F64),
    "gap_s": Column(F64, "gap s", "{:.1f}"),
    "alarms_raised": Column(I64, "alarms"),
    "alarms": Column(STR),
    "late_samples": Column(I64),
    "rey_error_pct": Column(F64, "err vs truth %", "{:+.2f}"),
    "truth_in_95": Column(pa.bool_()),
    "wall_s": Column(F64),
    "speed_x_realtime": Column(F64, "x realtime", "{:.0f}"),
    "worker": Column(STR),
    "run_dir": Column(STR),
}


def summary_row(
    vessel: str, run_id: str, run_dir: str, summary: Mapping[str, Any], case: str = ""
) -> dict[str, Any]:
    """One fleet-summary row from a replay's summary dict (its keys are the columns' names)."""
    rey = float(summary.get("cum_rey_kg", math.nan))
    u95 = float(summary.get("u95_cum_rey_kg", math.nan))
    alarms = dict(summary.get("alarms_raised") or {})
    row = {k: summary.get(k) for k in SUMMARY}
    row.update(
        vessel=vessel,
        run_id=run_id,
        case=case,
        status="ok",
        error="",
        cum_rey_kg=rey,
        u95_cum_rey_kg=u95,
        u95_pct=100.0 * u95 / rey if rey else math.nan,
        alarms_raised=sum(alarms.values()),
        alarms=json.dumps(alarms, sort_keys=True),
        worker="",
        run_dir=run_dir,
    )
    return row


def failed_row(
    vessel: str, run_id: str, run_dir: str, error: str, case: str = ""
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(SUMMARY)
    row.update(vessel=vessel, run_id=run_id, run_dir=run_dir, case=case, status="failed")
    row["error"] = error
    return row


def summary_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    rows = list(rows)
    return pa.table({k: pa.array([r.get(k) for r in rows], c.type) for k, c in SUMMARY.items()})


def readable(rows: Sequence[Mapping[str, Any]]) -> str:
    """A fixed-width text table of the summary rows (failed runs show their error)."""
    cols = [
        (key, c)
        for key, c in SUMMARY.items()
        if c.header and (key != "case" or any(r.get("case") for r in rows))
    ]
    body = []
    for r in rows:
        cells = []
        for key, c in cols:
            v = r.get(key)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                cells.append("-")
            else:
                cells.append(c.fmt.format(v / c.per if c.per else v))
        body.append(cells)
    head = [c.header for _, c in cols]
    width = [
        max(len(h), *(len(c[i]) for c in body)) if body else len(h) for i, h in enumerate(head)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, width, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cells, width, strict=True)) for cells in body]
    for r in rows:
        if r.get("status") == "failed":
            lines.append(f"FAILED {r['vessel']}/{r['run_id']} {r.get('case') or ''}: {r['error']}")
    return "\n".join(lines) + "\n"


def write_summary(
    root: Path, rows: Sequence[Mapping[str, Any]], name: str = "fleet_summary"
) -> str:
    """`<name>.parquet` and `<name>.txt` under `root`; returns the readable table."""
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(summary_table(rows), root / f"{name}.parquet")
    text = readable(rows)
    (root / f"{name}.txt").write_text(text, encoding="utf-8")
    return text
