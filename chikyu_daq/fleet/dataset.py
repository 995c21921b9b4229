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
from typing import Any
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


#: Fleet summary columns, in order, with their Arrow types (one row per run or sweep case).
SUMMARY_FIELDS: dict[str, pa.DataType] = {
    "vessel": pa.string(),
    "run_id": pa.string(),
    "case": pa.string(),
    "status": pa.string(),
    "error": pa.string(),
    "duration_s": pa.float64(),
    "grid_points": pa.int64(),
    "cum_rey_kg": pa.float64(),
    "u95_cum_rey_kg": pa.float64(),
    "u95_pct": pa.float64(),
    "cum_reo_kg": pa.float64(),
    "gap_s": pa.float64(),
    "alarms_raised": pa.int64(),
    "alarms": pa.string(),
    "late_samples": pa.int64(),
    "rey_error_pct": pa.float64(),
    "truth_in_95": pa.bool_(),
    "wall_s": pa.float64(),
    "speed_x_realtime": pa.float64(),
    "worker": pa.string(),
    "run_dir": pa.string(),
}


def summary_row(
    vessel: str, run_id: str, run_dir: str, summary: Mapping[str, Any], case: str = ""
) -> dict[str, Any]:
    """One fleet-summary row from a replay's summary dict."""
    rey = float(summary.get("cum_rey_kg", math.nan))
    u95 = float(summary.get("u95_cum_rey_kg", math.nan))
    alarms = dict(summary.get("alarms_raised") or {})
    return {
        "vessel": vessel,
        "run_id": run_id,
        "case": case,
        "status": "ok",
        "error": "",
        "duration_s": summary.get("duration_s"),
        "grid_points": summary.get("grid_points"),
        "cum_rey_kg": rey,
        "u95_cum_rey_kg": u95,
        "u95_pct": 100.0 * u95 / rey if rey else math.nan,
        "cum_reo_kg": summary.get("cum_reo_kg"),
        "gap_s": summary.get("gap_s"),
        "alarms_raised": sum(alarms.values()),
        "alarms": json.dumps(alarms, sort_keys=True),
        "late_samples": summary.get("late_samples"),
        "rey_error_pct": summary.get("rey_error_pct"),
        "truth_in_95": summary.get("truth_in_95"),
        "wall_s": summary.get("wall_s"),
        "speed_x_realtime": summary.get("speed_x_realtime"),
        "worker": "",
        "run_dir": run_dir,
    }


def failed_row(
    vessel: str, run_id: str, run_dir: str, error: str, case: str = ""
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(SUMMARY_FIELDS)
    row.update(vessel=vessel, run_id=run_id, run_dir=run_dir, case=case, status="failed")
    row["error"] = error
    return row


def summary_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    rows = list(rows)
    return pa.table({k: pa.array([r.get(k) for r in rows], t) for k, t in SUMMARY_FIELDS.items()})


#: Columns of the readable table: (header, key, format).
READABLE = (
    ("vessel", "vessel", "{}"),
    ("run", "run_id", "{}"),
    ("case", "case", "{}"),
    ("status", "status", "{}"),
    ("hours", "duration_s", "{:.2f}"),
    ("REY kg", "cum_rey_kg", "{:.3f}"),
    ("U95 kg", "u95_cum_rey_kg", "{:.3f}"),
    ("U95 %", "u95_pct", "{:.1f}"),
    ("gap s", "gap_s", "{:.1f}"),
    ("alarms", "alarms_raised", "{}"),
    ("err vs truth %", "rey_error_pct", "{:+.2f}"),
    ("x realtime", "speed_x_realtime", "{:.0f}"),
)


def readable(rows: Sequence[Mapping[str, Any]]) -> str:
    """A fixed-width text table of the summary rows (failed runs show their error)."""
    cols = [c for c in READABLE if c[1] != "case" or any(r.get("case") for r in rows)]
    body = []
    for r in rows:
        cells = []
        for _, key, fmt in cols:
            v = r.get(key)
            if key == "duration_s" and v is not None:
                v = v / 3600.0
            ok = v is not None and not (isinstance(v, float) and math.isnan(v))
            cells.append(fmt.format(v) if ok else "-")
        body.append(cells)
    head = [h for h, _, _ in cols]
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
