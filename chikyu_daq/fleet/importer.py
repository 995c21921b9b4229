"""Import recordings from other historians into a run directory that replays like any other.

Sources are read in batches and normalised to the recorder's long table (channel, t_ns, value,
quality):

- long-format CSV or Parquet with columns `channel, time, value[, quality]`; `time` is ISO-8601
  (a zone-less time is UTC) or epoch seconds/ms/us/ns (`time_unit="auto"` picks the unit from
  the magnitude of the first valid time), or a Parquet timestamp;
- an InfluxDB query of the measurements a daemon writes (one per device, fields `<name>` and
  `<name>_q`, tags `vessel` and `run`) over a time range, in slices: InfluxDB 1.x `/query`
  (InfluxQL, JSON) or InfluxDB 2.x `/api/v2/query` (Flux, annotated CSV, through
  influxdb-client's query API; the token comes from the config's env/file reference only).

A row that cannot be read is counted under its reason (missing channel, bad time, bad value,
bad quality), with the first few kept as examples; it never stops the import and is never
dropped silently: the counts go into the manifest and `import_report.json`. The manifest also
records the source and the config the run will replay with.
"""

from __future__ import annotations

import csv
import json
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from chikyu_daq.config.checks import channel_ids
from chikyu_daq.config.model import Config, resolve_secret
from chikyu_daq.store.reader import Run
from chikyu_daq.store.writer import Recorder
from drivers.sample import Blocks

__all__ = [
    "ImportReport",
    "SourceError",
    "export_run",
    "import_file",
    "import_influx_v1",
    "import_influx_v2",
]

TimeUnit = Literal["auto", "s", "ms", "us", "ns"]
_SCALE = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
#: A sample stays in the run however bad its quality; only unreadable rows are refused.
MAX_EXAMPLES = 10
COLUMNS = ("channel", "time", "value", "quality")
NORMAL = pa.schema(
    [
        ("channel", pa.string()),
        ("t_ns", pa.int64()),
        ("value", pa.float64()),
        ("quality", pa.uint8()),
    ]
)


class SourceError(Exception):
    """A source that cannot be imported at all (missing column, unreachable server)."""


@dataclass
class ImportReport:
    """What an import read, kept and refused (and why)."""

    source: dict[str, Any]
    rows_read: int = 0
    rows_imported: int = 0
    bad_rows: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    time_unit: str | None = None
    t_first_ns: int | None = None
    t_last_ns: int | None = None

    def refuse(self, reason: str, mask: np.ndarray, rows: np.ndarray, what: pa.Array) -> None:
        n = int(mask.sum())
        if not n:
            return
        self.bad_rows[reason] = self.bad_rows.get(reason, 0) + n
        for i in np.flatnonzero(mask)[: max(0, MAX_EXAMPLES - len(self.examples))]:
            self.examples.append(f"row {int(rows[i])}: {reason}: {what[int(i)].as_py()!r}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rows_read": self.rows_read,
            "rows_imported": self.rows_imported,
            "bad_rows": dict(self.bad_rows),
            "bad_rows_total": sum(self.bad_rows.values()),
            "examples": list(self.examples),
            "time_unit": self.time_unit,
            "t_first_ns": self.t_first_ns,
            "t_last_ns": self.t_last_ns,
        }


# -- time parsing ------------------------------------------------------------------------------
def _unit_of(values: np.ndarray) -> str:
    """Epoch unit from magnitude: ns ~1e18, us ~1e15, ms ~1e12, s ~1e9 (for dates 1973-2286)."""
    m = float(np.median(np.abs(values)))
    return "ns" if m >= 1e17 else "us" if m >= 1e14 else "ms" if m >= 1e11 else "s"


def _epoch_ns(values: np.ndarray, unit: str) -> np.ndarray:
    if values.dtype.kind in "iu":
        return values.astype(np.int64) * _SCALE[unit]
    return np.round(values * _SCALE[unit]).astype(np.int64)


def parse_times(
    col: pa.Array, unit: TimeUnit, report: ImportReport
) -> tuple[np.ndarray, np.ndarray]:
    """`(t_ns, ok)` from a time column: Arrow timestamps, epoch numbers, or strings holding
    either epoch integers (exact), epoch decimals or ISO-8601."""
    n = len(col)
    if pa.types.is_timestamp(col.type):
        ok = col.is_valid().to_numpy(zero_copy_only=False)
        t = pc.cast(col, pa.timestamp("ns", col.type.tz)).cast(pa.int64()).fill_null(0)
        return t.to_numpy(), ok
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        v = col.cast(pa.float64() if pa.types.is_floating(col.type) else pa.int64())
        ok = v.is_valid().to_numpy(zero_copy_only=False)
        arr = v.fill_null(0).to_numpy()
        if arr.dtype.kind == "f":
            ok &= np.isfinite(arr)
            arr = np.where(ok, arr, 0.0)
        return _numeric_times(arr, ok, unit, report)
    s = pc.utf8_trim_whitespace(col.cast(pa.string()))
    t = np.zeros(n, np.int64)
    ok = np.zeros(n, bool)
    is_int = pc.fill_null(pc.match_substring_regex(s, r"^[+-]?\d+$"), False).to_numpy(
        zero_copy_only=False
    )
    is_num = pc.fill_null(
        pc.match_substring_regex(s, r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"), False
    ).to_numpy(zero_copy_only=False)
    if is_num.any():
        if is_int.all():
            nums: np.ndarray = pc.cast(s, pa.int64()).to_numpy()
        else:
            nums = pc.cast(pc.if_else(pa.array(is_num), s, "0"), pa.float64()).to_numpy()
            if is_int.any():  # big integers (epoch ns) must not pass through float64
                exact = pc.cast(pc.if_else(pa.array(is_int), s, "0"), pa.int64()).to_numpy()
                nums = np.where(is_int, exact, nums)
        tn, okn = _numeric_times(nums, is_num, unit, report)
        t = np.where(is_num, tn, t)
        ok |= okn
    iso = ~is_num & s.is_valid().to_numpy(zero_copy_only=False)
    if iso.any():
        import pandas as pd

        text = pd.Series(np.asarray(s.to_pylist(), dtype=object)[iso])
        parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
        report.time_unit = report.time_unit or "iso"
        good = parsed.notna().to_numpy()
        ns = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)
        idx = np.flatnonzero(iso)
        t[idx[good]] = ns[good]
        ok[idx[good]] = True
    return t, ok


def _numeric_times(
    values: np.ndarray, ok: np.ndarray, unit: TimeUnit, report: ImportReport
) -> tuple[np.ndarray, np.ndarray]:
    if unit == "auto":
        if report.time_unit is None and ok.any():
            report.time_unit = _unit_of(values[ok])
        use = report.time_unit or "ns"
    else:
        use = report.time_unit = unit
    return _epoch_ns(np.where(ok, values, 0), use), ok


# -- normalising a batch -----------------------------------------------------------------------
def normalise(
    batch: pa.RecordBatch | pa.Table, first_row: int, unit: TimeUnit, report: ImportReport
) -> pa.Table:
    """A source batch → the recorder's long table; unreadable rows counted and left out."""
    names = batch.schema.names
    missing = [c for c in COLUMNS[:3] if c not in names]
    if missing:
        raise SourceError(f"source has no column {', '.join(missing)} (has {', '.join(names)})")
    n = batch.num_rows
    rows = np.arange(first_row, first_row + n)
    report.rows_read += n
    chan = pc.utf8_trim_whitespace(batch.column("channel").cast(pa.string()))
    bad_chan = ~pc.fill_null(pc.not_equal(chan, ""), False).to_numpy(zero_copy_only=False)
    t_ns, t_ok = parse_times(batch.column("time"), unit, report)
    value, v_ok = _floats(batch.column("value"))
    if "quality" in names:
        quality, q_ok = _quality(batch.column("quality"))
    else:
        quality, q_ok = np.zeros(n, np.uint8), np.ones(n, bool)
    report.refuse("missing channel", bad_chan, rows, batch.column("channel"))
    report.refuse("bad time", ~bad_chan & ~t_ok, rows, batch.column("time"))
    report.refuse("bad value", ~bad_chan & t_ok & ~v_ok, rows, batch.column("value"))
    if "quality" in names:
        report.refuse("bad quality", ~bad_chan & t_ok & v_ok & ~q_ok, rows, batch.column("quality"))
    keep = ~bad_chan & t_ok & v_ok & q_ok
    out = pa.table(
        [pc.filter(chan, pa.array(keep)), t_ns[keep], value[keep], quality[keep]], schema=NORMAL
    )
    report.rows_imported += out.num_rows
    return out


def _floats(col: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Values as float64; `nan`/`NaN` text is a value (a BAD sample may carry it)."""
    if pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
        v = col.cast(pa.float64())
        return v.fill_null(np.nan).to_numpy(), v.is_valid().to_numpy(zero_copy_only=False)
    s = pc.utf8_trim_whitespace(col.cast(pa.string()))
    pattern = r"^[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|nan|NaN|inf|Infinity)$"
    ok = pc.fill_null(pc.match_substring_regex(s, pattern), False).to_numpy(zero_copy_only=False)
    v = pc.cast(pc.if_else(pa.array(ok), s, "nan"), pa.float64()).to_numpy()
    return v, ok


def _quality(col: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """0-255; an empty cell is 0 (GOOD), as if the column were absent."""
    s = pc.fill_null(pc.utf8_trim_whitespace(col.cast(pa.string())), "0")
    s = pc.if_else(pc.equal(s, ""), "0", s)
    ok = pc.fill_null(pc.match_substring_regex(s, r"^\d{1,3}$"), False).to_numpy(
        zero_copy_only=False
    )
    q = pc.cast(pc.if_else(pa.array(ok), s, "0"), pa.int64()).to_numpy()
    ok &= q <= 255
    return np.where(ok, q, 0).astype(np.uint8), ok


# -- sources -----------------------------------------------------------------------------------
def read_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """A CSV (every column read as text, so nothing is coerced behind our back) or Parquet."""
    if path.suffix.lower() in (".parquet", ".pq"):
        yield from pq.ParquetFile(path).iter_batches(batch_size=1 << 20)
        return
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        head = next(csv.reader([f.readline()]), [])
    types = {c: pa.string() for c in head}
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=16 << 20),
        convert_options=pacsv.ConvertOptions(
            column_types=types, strings_can_be_null=True, null_values=[""]
        ),
    )
    yield from reader


def import_file(
    path: Path, cfg: Config, data_dir: Path, *, run_id: str | None = None,
    time_unit: TimeUnit = "auto", events: Path | None = None,
) -> tuple[Path, ImportReport]:  # fmt: skip
    """Long-format CSV/Parquet → `<data_dir>/runs/<run_id>/`; returns the run and the report."""
    report = ImportReport({"kind": path.suffix.lower().lstrip(".") or "csv", "path": str(path)})
    tables = []
    row = 0
    for batch in read_batches(path):
        tables.append(normalise(batch, row, time_unit, report))
        row += batch.num_rows
    return write_run(tables, report, cfg, data_dir, run_id=run_id, events=events), report


def write_run(
    tables: list[pa.Table], report: ImportReport, cfg: Config, data_dir: Path, *,
    run_id: str | None, events: Path | None,
) -> Path:  # fmt: skip
    """Samples sorted per channel by time, as the recorder would have written them."""
    table = pa.concat_tables(tables) if tables else NORMAL.empty_table()
    table = table.sort_by([("t_ns", "ascending")])
    if table.num_rows:
        report.t_first_ns = int(table["t_ns"][0].as_py())
        report.t_last_ns = int(table["t_ns"][-1].as_py())
    manifest = {"config": cfg.model_dump(mode="json"), "import": report.as_dict()}
    rid = run_id or f"import-{cfg.site.vessel}-{_stamp(report.t_first_ns)}"
    rec = Recorder(data_dir / "runs", run_id=rid, manifest=manifest, segment_s=1e9, autoflush=False)
    try:
        for lo in range(0, table.num_rows, 1 << 22):
            rec.write_raw(_blocks(table.slice(lo, 1 << 22)))
            rec.flush()
        if events is not None:
            for line in events.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    rec.write_event(json.loads(line))
    finally:
        rec.close()
    (rec.path / "import_report.json").write_text(
        json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8"
    )
    return rec.path


def _stamp(t_ns: int | None) -> str:
    if t_ns is None:
        return "empty"
    return str(np.datetime64(t_ns, "ns").astype("datetime64[s]")).replace(":", "").replace("-", "")


def _blocks(table: pa.Table) -> Blocks:
    from chikyu_daq.replay.engine import split_channels

    return split_channels(table)


# -- InfluxDB 1.x ------------------------------------------------------------------------------
def _quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _quote_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def influx_v1_query_text(
    measurement: str, fields: list[str], vessel: str, t0: int, t1: int, run: str | None
) -> str:
    cols = ", ".join(_quote_ident(f) for f in fields)
    where = f'"vessel" = {_quote_str(vessel)} AND time >= {t0} AND time < {t1}'
    if run:
        where += f' AND "run" = {_quote_str(run)}'
    return f"SELECT {cols} FROM {_quote_ident(measurement)} WHERE {where}"


def _secret(env: str | None, file: str | None, what: str) -> str | None:
    """The config's secret reference, or a clear error naming where it was looked for."""
    try:
        return resolve_secret(env, file)
    except OSError as err:
        raise SourceError(
            f"no InfluxDB {what}: ${env or '(no env)'} is unset and {file} cannot be read "
            f"({err.strerror})"
        ) from None


def _device_fields(cfg: Config) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ch in channel_ids(cfg):
        dev, _, name = ch.partition(".")
        out.setdefault(dev, []).append(name)
    return out


def influx_v1_rows(
    url: str, db: str, query: str, *, auth: tuple[str, str] | None, timeout_s: float = 60.0
) -> Iterator[dict[str, Any]]:
    """Series objects of a chunked `/query` (newline-delimited JSON), in order."""
    params = {"db": db, "q": query, "epoch": "ns", "chunked": "true", "chunk_size": "20000"}
    req = urllib.request.Request(f"{url.rstrip('/')}/query?{urllib.parse.urlencode(params)}")
    if auth is not None:
        import base64

        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            for line in resp:
                if not line.strip():
                    continue
                doc = json.loads(line)
                for res in doc.get("results", []):
                    if "error" in res:
                        raise SourceError(f"InfluxDB query failed: {res['error']}")
                    yield from res.get("series", [])
    except OSError as err:
        raise SourceError(f"cannot query InfluxDB at {url}: {err}") from None


def import_influx_v1(
    cfg: Config, data_dir: Path, *, t0_ns: int, t1_ns: int, vessel: str | None = None,
    run: str | None = None, url: str | None = None, db: str | None = None,
    run_id: str | None = None, slice_s: float = 3600.0,
) -> tuple[Path, ImportReport]:  # fmt: skip
    """The raw measurements of `vessel` (default: the config's) in `[t0, t1)` → a run.

    Connection from `[outputs.influx]` (url, db, username and password reference) unless given.
    A point whose `<name>` field is missing but `<name>_q` present is a sample with a value the
    line protocol could not carry (NaN): it comes back as NaN with its quality."""
    icfg = cfg.outputs.influx
    url = url or icfg.url
    db = db or icfg.db or icfg.bucket.split("/")[0]
    vessel = vessel or cfg.site.vessel
    password = _secret(icfg.password_env, icfg.password_file, "password")
    auth = (icfg.username, password or "") if icfg.username else None
    report = ImportReport(
        {"kind": "influxdb-v1", "url": url, "db": db, "vessel": vessel, "run": run,
         "from_ns": t0_ns, "to_ns": t1_ns},
    )  # fmt: skip
    report.time_unit = "ns"
    tables: list[pa.Table] = []
    step = int(slice_s * 1e9)
    for dev, names in _device_fields(cfg).items():
        fields = [f for n in names for f in (n, n + "_q")]
        for lo in range(t0_ns, t1_ns, step):
            q = influx_v1_query_text(dev, fields, vessel, lo, min(lo + step, t1_ns), run)
            for series in influx_v1_rows(url, db, q, auth=auth):
                tables.extend(_series_tables(dev, series, report))
    return write_run(tables, report, cfg, data_dir, run_id=run_id, events=None), report


def _series_tables(dev: str, series: Mapping[str, Any], report: ImportReport) -> list[pa.Table]:
    cols = list(series["columns"])
    values = series.get("values") or []
    if not values:
        return []
    data = list(zip(*values, strict=True))
    by = dict(zip(cols, data, strict=True))
    t = np.asarray(by["time"], dtype=np.int64)
    out = []
    for name in cols:
        if name == "time" or name.endswith("_q"):
            continue
        raw_v = by[name]
        raw_q = by.get(name + "_q", (None,) * len(t))
        present = np.array(
            [v is not None or q is not None for v, q in zip(raw_v, raw_q, strict=True)]
        )
        if not present.any():
            continue
        v = np.array([np.nan if x is None else float(x) for x in raw_v], np.float64)[present]
        q_list = [0 if x is None else int(x) for x in raw_q]
        q = np.array(q_list, np.int64)[present]
        ok = (q >= 0) & (q <= 255)
        rows = np.flatnonzero(present)
        report.rows_read += int(present.sum())
        report.refuse("bad quality", ~ok, rows, pa.array(q))
        keep = ok
        n = int(keep.sum())
        out.append(
            pa.table(
                [pa.array([f"{dev}.{name}"] * n, pa.string()), t[present][keep], v[keep],
                 q[keep].astype(np.uint8)],
                schema=NORMAL,
            )
        )  # fmt: skip
        report.rows_imported += n
    return out


# -- InfluxDB 2.x (Flux) -----------------------------------------------------------------------
def _flux_str(value: str) -> str:
    """A Flux string literal: backslash, quote and interpolation escaped."""
    body = value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return f'"{body}"'


def rfc3339_ns(t_ns: int) -> str:
    return str(np.datetime64(t_ns, "ns")) + "Z"


#: The columns the importer reads; the query keeps only these (no tags, `_start`, `_stop`).
FLUX_COLUMNS = ("_measurement", "_field", "_time", "_value")


def flux_query_text(
    bucket: str, measurement: str, vessel: str, t0: int, t1: int, run: str | None
) -> str:
    """One measurement of one vessel (and run) in `[t0, t1)`, as stored (a table per field and
    series): a value and its `_q` quality are paired here, not by a server-side pivot. Only
    `FLUX_COLUMNS` come back: tags and the range bounds would repeat on every row."""
    cond = f"r._measurement == {_flux_str(measurement)} and r.vessel == {_flux_str(vessel)}"
    if run:
        cond += f" and r.run == {_flux_str(run)}"
    keep = ", ".join(_flux_str(c) for c in FLUX_COLUMNS)
    return (
        f"from(bucket: {_flux_str(bucket)})\n"
        f"  |> range(start: {rfc3339_ns(t0)}, stop: {rfc3339_ns(t1)})\n"
        f"  |> filter(fn: (r) => {cond})\n"
        f"  |> keep(columns: [{keep}])"
    )


def flux_csv_tables(lines: Iterable[bytes]) -> Iterator[pa.Table]:
    """The tables of an annotated-CSV response (`#datatype`/`#group`/`#default` rows, a
    header, rows; a blank line or a new annotation starts the next block), every cell as
    text. An error table (`error,reference`) raises."""
    block: list[bytes] = []
    for line in _with_end(lines):
        text = line.rstrip(b"\r\n")
        if text and not (text.startswith(b"#") and block and not block[-1].startswith(b"#")):
            block.append(text)
            continue
        if block:
            yield _flux_block(block)
        block = [text] if text else []


def _with_end(lines: Iterable[bytes]) -> Iterator[bytes]:
    yield from lines
    yield b""


def _flux_block(block: list[bytes]) -> pa.Table:
    rows = [b for b in block if not b.startswith(b"#")]
    if not rows:
        return pa.table({c: pa.array([], pa.string()) for c in FLUX_COLUMNS})
    header = next(csv.reader([rows[0].decode("utf-8", "replace")]))
    if "error" in header:
        cells = next(csv.reader([rows[1].decode("utf-8", "replace")])) if len(rows) > 1 else []
        message = cells[header.index("error")] if len(cells) > header.index("error") else "?"
        raise SourceError(f"InfluxDB query failed: {message}")
    names = [h or f"_annotation{i}" for i, h in enumerate(header)]
    missing = [c for c in ("_field", "_time", "_value") if c not in names]
    if missing:
        raise SourceError(f"Flux response has no column {', '.join(missing)}")
    if len(rows) == 1:
        return pa.table({c: pa.array([], pa.string()) for c in FLUX_COLUMNS})
    wanted = [c for c in FLUX_COLUMNS if c in names]
    table = pacsv.read_csv(
        pa.py_buffer(b"\n".join(rows[1:]) + b"\n"),
        read_options=pacsv.ReadOptions(column_names=names),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()), include_columns=wanted,
            strings_can_be_null=False,
        ),
    )  # fmt: skip
    if "_measurement" not in wanted:
        table = table.append_column("_measurement", pa.array([""] * table.num_rows))
    return table.select(list(FLUX_COLUMNS))


def flux_long_table(tables: list[pa.Table], device: str) -> pa.Table:
    """Flux rows (`_field`, `_time`, `_value` text) → `channel,time,value,quality` text: the
    `<name>_q` field becomes the quality of `<name>` at the same time; a quality without its
    value is a sample whose value the line protocol could not carry (NaN)."""
    if not tables:
        return pa.table({c: pa.array([], pa.string()) for c in COLUMNS})
    t = pa.concat_tables(tables)
    meas = pc.if_else(pc.equal(t["_measurement"], ""), device, t["_measurement"])
    is_q = pc.ends_with(t["_field"], "_q")
    base = pc.if_else(is_q, pc.utf8_slice_codeunits(t["_field"], 0, -2), t["_field"])
    chan = pc.binary_join_element_wise(meas, base, ".")
    both = pa.table({"channel": chan, "time": t["_time"], "v": t["_value"]})
    values = both.filter(pc.invert(is_q)).rename_columns(["channel", "time", "value"])
    quals = both.filter(is_q).rename_columns(["channel", "time", "quality"])
    joined = values.join(quals, keys=["channel", "time"], join_type="full outer")
    value = pc.fill_null(joined["value"], "nan")
    return pa.table(
        {"channel": joined["channel"], "time": joined["time"], "value": value,
         "quality": joined["quality"]}
    )  # fmt: skip


def import_influx_v2(
    cfg: Config, data_dir: Path, *, t0_ns: int, t1_ns: int, vessel: str | None = None,
    run: str | None = None, url: str | None = None, org: str | None = None,
    bucket: str | None = None, run_id: str | None = None, slice_s: float = 3600.0,
) -> tuple[Path, ImportReport]:  # fmt: skip
    """The raw measurements of `vessel` in `[t0, t1)` from InfluxDB 2.x → a run, one Flux
    query per measurement and time slice. Connection from `[outputs.influx]` (url, org, bucket,
    token reference, ca_file) unless given; the token is never logged nor recorded."""
    from influxdb_client import InfluxDBClient
    from influxdb_client.rest import ApiException
    from urllib3.exceptions import HTTPError

    icfg = cfg.outputs.influx
    url = url or icfg.url
    org = org or icfg.org
    bucket = bucket or icfg.bucket
    if not bucket:
        raise SourceError("no bucket: give --bucket or set [outputs.influx] bucket")
    vessel = vessel or cfg.site.vessel
    token = _secret(icfg.token_env, icfg.token_file, "token") or ""
    report = ImportReport(
        {"kind": "influxdb-v2", "url": url, "org": org, "bucket": bucket, "vessel": vessel,
         "run": run, "from_ns": t0_ns, "to_ns": t1_ns, "slice_s": slice_s},
    )  # fmt: skip
    tables: list[pa.Table] = []
    step = int(slice_s * 1e9)
    row = 0
    client = InfluxDBClient(
        url, token=token, org=org, timeout=int(icfg.timeout_s * 1000), ssl_ca_cert=icfg.ca_file
    )
    try:
        api = client.query_api()
        for dev in _device_fields(cfg):
            for lo in range(t0_ns, t1_ns, step):
                q = flux_query_text(bucket, dev, vessel, lo, min(lo + step, t1_ns), run)
                try:
                    resp = api.query_raw(q, org=org)
                    try:
                        long = flux_long_table(list(flux_csv_tables(iter(resp))), dev)
                    finally:
                        resp.release_conn()
                except ApiException as err:
                    raise SourceError(
                        f"InfluxDB query failed: HTTP {err.status} {_api_message(err)}"
                    ) from None
                except (OSError, HTTPError) as err:  # refused, reset, cut off mid-answer
                    raise SourceError(f"cannot query InfluxDB at {url}: {err}") from None
                tables.append(normalise(long, row, "ns", report))
                row += long.num_rows
    finally:
        client.close()
    return write_run(tables, report, cfg, data_dir, run_id=run_id, events=None), report


def _api_message(err: Any) -> str:
    """The server's `message` (InfluxDB answers `{"code": ..., "message": ...}`)."""
    try:
        return str(json.loads(err.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(err.reason or "")


# -- export ------------------------------------------------------------------------------------
def export_run(
    run: Run, out: Path, *, time_format: Literal["iso", "ns"] = "iso",
    t0: int | None = None, t1: int | None = None,
) -> int:  # fmt: skip
    """A run's raw samples as long CSV or Parquet (`channel,time,value,quality`), segment by
    segment; the run's events go next to it as `<out>.events.jsonl`. Returns rows written."""
    from chikyu_daq.store.reader import RAW_SCHEMA, read_segment_file, segment_files

    out.parent.mkdir(parents=True, exist_ok=True)
    parquet = out.suffix.lower() in (".parquet", ".pq")
    rows = 0
    writer: Any = None
    try:
        for f in segment_files(run.path / "raw"):
            table = read_segment_file(f, RAW_SCHEMA)
            if t0 is not None or t1 is not None:
                lo = t0 if t0 is not None else -(2**63)
                hi = t1 if t1 is not None else 2**63 - 1
                tt = table["t_ns"]
                table = table.filter(pc.and_(pc.greater_equal(tt, lo), pc.less(tt, hi)))
            if not table.num_rows:
                continue
            t = table["t_ns"]
            if time_format == "iso":
                ts = pc.cast(pc.cast(t, pa.timestamp("ns", "UTC")), pa.string())
                t = pc.replace_substring(ts, " ", "T")
            chunk = pa.table(
                {
                    "channel": pc.cast(table["channel"], pa.string()),
                    "time": t,
                    "value": table["value"],
                    "quality": table["quality"],
                }
            )
            if writer is None:
                writer = (
                    pq.ParquetWriter(out, chunk.schema, compression="zstd")
                    if parquet
                    else pacsv.CSVWriter(out, chunk.schema)
                )
            writer.write_table(chunk)
            rows += chunk.num_rows
    finally:
        if writer is not None:
            writer.close()
    ev = run.path / "events.jsonl"
    if ev.exists():
        Path(f"{out}.events.jsonl").write_bytes(ev.read_bytes())
    return rows
