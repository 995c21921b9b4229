"""Reading a recorded run (the black box written by `chikyu_daq.store.writer`).

A run directory holds:

    manifest.json                   run id, start, config snapshot, versions (written atomically)
    raw/seg-000001.parquet          a closed segment: long table channel, t_ns, value, quality
                                    (a row group per channel per 1 Mi rows, since issue 13)
    raw/seg-000002.arrows           the open (or crashed) segment: an Arrow IPC stream, one
                                    record batch per flush (then seg-000002.1.arrows, ... after
                                    a failed append or new results columns)
    raw/seg-000002.parts/*.parquet  the same in runs written before issue 13: a Parquet file
                                    per flush
    results/...                     the same layout, wide tables: t_ns + one column per result
    events.jsonl                    alarms, assays, reloads; one JSON object per line with t_ns

Every Parquet file is either complete or absent (written to a temporary name, fsynced, renamed)
and a stream file is read up to its last complete batch, so a run cut short by `kill -9` or power
loss is read as it is, with no repair step: a segment is its compacted file if that exists, else
its parts or streams; a stream's torn tail (a batch cut by the crash) and a torn last line of
`events.jsonl` are ignored (the tail debug-logged, never an error).
A file a disk fault left unreadable (empty, no footer, garbage) is skipped with a warning, and a
compacted segment that cannot be read falls back to its parts or streams when they are still
there, so one bad file never makes the whole run unreadable. `segment_files` lists Parquet and
stream files alike; `read_segment_file` reads either.

Reading is vectorised (pyarrow datasets, numpy gathers, no Python object per row), so a 24 h
recording of ~40 million raw samples loads in seconds; `Run.raw_chunks` streams it instead (each
row group decoded once, memory bounded by a chunk and a row group) for replay.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from numpy.typing import NDArray

from chikyu_daq.store.events import Event, decode
from drivers.sample import Blocks, SampleBlock

__all__ = [
    "RAW_SCHEMA",
    "Run",
    "RunError",
    "list_runs",
    "open_run",
    "read_segment_file",
    "read_stream",
    "segment_files",
    "split_channels",
]

RAW_SCHEMA = pa.schema(
    [
        ("channel", pa.dictionary(pa.int32(), pa.string())),
        ("t_ns", pa.int64()),
        ("value", pa.float64()),
        ("quality", pa.uint8()),
    ]
)

log = logging.getLogger(__name__)

_SEG = re.compile(r"^seg-(\d+)(\.parquet|\.parts)$")
#: An open (or crashed) segment's stream file: `seg-N.arrows`, then `seg-N.K.arrows`.
STREAM_NAME = re.compile(r"^seg-(\d+)(?:\.(\d+))?\.arrows$")


class RunError(Exception):
    """A path that is not a readable run."""


def _readable(path: Path) -> bool:
    """A complete Parquet file (footer and schema readable), or a stream file with a schema."""
    return _file_row_groups(path) is not None


def is_stream(path: Path) -> bool:
    """An Arrow IPC stream file of an open (or crashed) segment, not Parquet."""
    return path.suffix == ".arrows"


def _stream_batches(path: Path) -> tuple[pa.Schema, list[pa.RecordBatch]] | None:
    """A stream file's schema and complete batches; None if not even its schema is there.

    A torn tail (a crash or a failed write mid-append) ends the file quietly: it is debug
    logged, never an error, as the writer makes every batch before it durable first. A file
    that cannot be opened raises OSError (gone: compacted meanwhile; the caller lists again)."""
    with pa.OSFile(str(path)) as f:  # read, not mapped: the writer may cut a torn tail off
        data = f.read_buffer()
    try:
        reader = pa.ipc.open_stream(data)
    except (OSError, pa.ArrowException):
        log.debug("stream file without a complete schema: %s", path)
        return None
    batches: list[pa.RecordBatch] = []
    while True:
        try:
            batches.append(reader.read_next_batch())
        except StopIteration:
            break
        except (OSError, pa.ArrowException) as exc:
            log.debug("torn tail of %s after %d batches ignored: %s", path, len(batches), exc)
            break
    return reader.schema, batches


def read_stream(path: Path) -> pa.Table | None:
    """A stream file's complete batches as a table (one chunk per batch), None if it has no
    schema (`_stream_batches`)."""
    got = _stream_batches(path)
    if got is None:
        return None
    schema, batches = got
    return pa.Table.from_batches(batches, schema=schema)


def read_segment_file(path: Path, schema: pa.Schema | None = None) -> pa.Table:
    """One file of `segment_files`, Parquet or stream, as a table (an empty stream: empty)."""
    if not is_stream(path):
        return pq.read_table(path, schema=schema)
    table = read_stream(path)
    if table is None:
        return (schema or pa.schema([])).empty_table()
    return table if schema is None else table.cast(schema)


def segment_files(folder: Path, *, check: bool = False) -> list[Path]:
    """Files of `folder` in time order: compacted segments (Parquet) win over their parts
    (Parquet, before issue 13) or stream files (`is_stream`; `read_segment_file` reads both).

    With `check`, unreadable files are left out (logged) and an unreadable compacted segment
    gives way to its parts or streams."""
    if not folder.is_dir():
        return []
    segs: dict[int, dict[str, Path]] = {}
    streams: dict[int, list[tuple[int, Path]]] = {}
    for p in folder.iterdir():
        m = _SEG.match(p.name)
        if m:
            segs.setdefault(int(m.group(1)), {})[m.group(2)] = p
            continue
        m = STREAM_NAME.match(p.name)
        if m:
            segs.setdefault(int(m.group(1)), {})
            streams.setdefault(int(m.group(1)), []).append((int(m.group(2) or 0), p))
    files: list[Path] = []
    for seg, kinds in sorted(segs.items()):
        compacted = kinds.get(".parquet")
        if compacted is not None and (not check or _readable(compacted)):
            files.append(compacted)
            continue
        if compacted is not None:
            log.warning("skipped an unreadable recording file: %s (its parts used)", compacted)
        if ".parts" in kinds:
            for f in sorted(kinds[".parts"].glob("*.parquet")):
                if not check or _readable(f):
                    files.append(f)
                else:
                    log.warning("skipped an unreadable recording file: %s", f)
        for _, f in sorted(streams.get(seg, [])):
            if not check or _readable(f):
                files.append(f)
    return files


def _read(folder: Path, read: Any) -> Any:
    """`read(files)`; if a file is unreadable, again with only the readable ones."""
    try:
        return read(segment_files(folder))
    except (OSError, pa.ArrowException):
        return read(segment_files(folder, check=True))


def _time_filter(t0: int | None, t1: int | None) -> Any:
    expr = None
    if t0 is not None:
        expr = pc.field("t_ns") >= t0
    if t1 is not None:
        e = pc.field("t_ns") < t1
        expr = e if expr is None else expr & e
    return expr


def _tables(
    files: list[Path],
    schema: pa.Schema | None,
    expr: Any = None,
    columns: list[str] | None = None,
) -> list[pa.Table]:
    """`files` read in order, filtered by `expr`: runs of Parquet files as one dataset each
    (`schema`: theirs, else one dataset per file), stream files one by one."""
    out: list[pa.Table] = []
    run: list[Path] = []

    def parquet() -> None:
        if not run:
            return
        groups = [run] if schema is not None else [[f] for f in run]
        for group in groups:
            dataset = ds.dataset([str(f) for f in group], schema=schema, format="parquet")
            out.append(dataset.to_table(filter=expr, columns=columns))
        run.clear()

    for f in files:
        if not is_stream(f):
            run.append(f)
            continue
        parquet()
        table = read_stream(f)
        if table is None:
            continue
        if schema is not None:
            table = table.cast(schema)
        if expr is not None:
            table = table.filter(expr)
        out.append(table if columns is None else table.select(columns))
    parquet()
    return out


def split_channels(table: pa.Table) -> Blocks:
    """Long (channel, t_ns, value, quality) table → arrays per channel, time order kept."""
    if table.num_rows == 0:
        return {}
    chan = table["channel"].combine_chunks()
    if not pa.types.is_dictionary(chan.type):
        chan = pc.dictionary_encode(chan)
    names = [str(n) for n in chan.dictionary.to_pylist()]
    rows = _Rows(
        np.asarray(chan.indices.to_numpy(zero_copy_only=False), np.int64),
        table["t_ns"].to_numpy(),
        table["value"].to_numpy(),
        table["quality"].to_numpy(),
    )
    return rows.split(names)


_NO_MIN = np.iinfo(np.int64).min
_NO_MAX = np.iinfo(np.int64).max
#: Mean run length (rows of one channel in a row) below which `_Rows.split` sorts instead.
_RUN_MIN = 64


def _run_starts(code: NDArray[np.integer[Any]]) -> NDArray[np.intp] | None:
    """Where each run of equal codes starts, or None if runs are short (then sort instead)."""
    edges = np.flatnonzero(code[1:] != code[:-1]) + 1
    if edges.size * _RUN_MIN > code.shape[0]:
        return None
    return np.concatenate([np.zeros(1, np.intp), edges])


class _Rows(NamedTuple):
    """Raw samples as columns, `code` indexing a list of channel names (past its end: not
    wanted, left in place rather than copied out)."""

    code: NDArray[np.integer[Any]]
    t: NDArray[np.int64]
    v: NDArray[np.float64]
    q: NDArray[np.uint8]

    def split(self, names: list[str]) -> Blocks:
        """Per channel name, rows in their order here. The recorder writes each flush sorted
        by channel, so rows come in long runs of one channel: those are sliced out (a copy
        only where a channel has several runs); rows interleaved finer get a stable sort."""
        if self.code.shape[0] == 0:
            return {}
        starts = _run_starts(self.code)
        if starts is None:
            return self._split_sorted(names)
        return self.split_runs(names, starts, self.code[starts])

    def split_runs(
        self, names: list[str], starts: NDArray[np.intp], run_code: NDArray[np.integer[Any]]
    ) -> Blocks:
        """`split` given the runs: where each starts and its code."""
        ends = np.append(starts[1:], self.t.shape[0])
        out: Blocks = {}
        for code, name in enumerate(names):
            runs = np.flatnonzero(run_code == code)
            sls = [slice(int(starts[r]), int(ends[r])) for r in runs]
            if len(sls) == 1:
                out[name] = SampleBlock(self.t[sls[0]], self.v[sls[0]], self.q[sls[0]])
            elif sls:
                out[name] = SampleBlock(
                    np.concatenate([self.t[sl] for sl in sls]),
                    np.concatenate([self.v[sl] for sl in sls]),
                    np.concatenate([self.q[sl] for sl in sls]),
                )
        return out

    def _split_sorted(self, names: list[str]) -> Blocks:
        """`split` by a stable sort of the codes (radix for int16)."""
        order = np.argsort(self.code, kind="stable")
        counts = np.bincount(self.code, minlength=len(names) + 1)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        out: Blocks = {}
        for code, name in enumerate(names):
            if bounds[code] < bounds[code + 1]:
                idx = order[bounds[code] : bounds[code + 1]]
                out[name] = SampleBlock(self.t[idx], self.v[idx], self.q[idx])
        return out


class _Waiting:
    """One row group's rows per channel (file order), handed out as their chunk comes up."""

    def __init__(self, rows: Blocks) -> None:
        self.rows = rows
        # time-ordered per channel (as the recorder writes): a chunk is a prefix, no copy
        self.ordered = {name: bool(np.all(t[1:] >= t[:-1])) for name, (t, _, _) in rows.items()}

    def take_before(self, hi: int, held_back: set[str]) -> Blocks:
        """Rows with `t_ns < hi` up to a channel's first row at or past `hi` (arrival order:
        after a backwards clock step, rows re-covering earlier stamps wait their turn rather
        than jump ahead of the old epoch's), removed from those waiting. Channels in
        `held_back` (still waiting in an earlier row group) wait whole; those that keep rows
        waiting are added to it."""
        out: Blocks = {}
        for name, (t, v, q) in list(self.rows.items()):
            if name in held_back:
                continue
            if self.ordered[name]:
                n = int(np.searchsorted(t, hi))
            else:
                past = np.flatnonzero(t >= hi)
                n = int(past[0]) if past.size else t.shape[0]
            now, later = SampleBlock(t[:n], v[:n], q[:n]), SampleBlock(t[n:], v[n:], q[n:])
            if now[0].shape[0]:
                out[name] = now
            if later[0].shape[0]:
                self.rows[name] = later
                held_back.add(name)
            else:
                del self.rows[name]
        return out


def _concat(parts: list[SampleBlock]) -> SampleBlock:
    if len(parts) == 1:
        return parts[0]
    t, v, q = zip(*parts, strict=True)
    return SampleBlock(np.concatenate(t), np.concatenate(v), np.concatenate(q))


@dataclass(frozen=True)
class _RowGroup:
    """One row group of a raw file and its `t_ns` range (the widest range without statistics);
    `channel`: its only channel, where its statistics say so (a compacted segment's)."""

    file: Path
    index: int
    t_min: int
    t_max: int
    channel: str | None = None

    def read(
        self, pf: pq.ParquetFile | _StreamFile, channels: list[str], t0: int, t1: int
    ) -> Blocks:
        """Its rows (of `pf`, its file opened) of `channels` with `t0 <= t_ns < t1`, per
        channel in file order. Runs of one channel are found on the dictionary indices as
        stored (no per-row code built); a row group of one channel is read without them."""
        if self.channel is not None:
            return self._read_one(pf, t0, t1)
        table = pf.read_row_group(self.index, columns=list(RAW_SCHEMA.names), use_threads=False)
        index = {name: i for i, name in enumerate(channels)}
        skip = len(channels)
        parts = []
        for chunk in table["channel"].chunks:
            if not pa.types.is_dictionary(chunk.type):
                chunk = pc.dictionary_encode(chunk)
            names = chunk.dictionary.to_pylist()
            lut = np.array([index.get(str(n), skip) for n in names] or [skip], np.int16)
            parts.append((lut, chunk.indices.to_numpy(zero_copy_only=False)))
        rows = _Rows(
            np.empty(0, np.int16),
            np.asarray(table["t_ns"].to_numpy(), np.int64),
            np.asarray(table["value"].to_numpy(), np.float64),
            np.asarray(table["quality"].to_numpy(), np.uint8),
        )
        inside = t0 <= self.t_min and self.t_max < t1
        if inside and len(parts) == 1 and rows.t.shape[0]:
            lut, idx = parts[0]
            starts = _run_starts(idx)
            if starts is not None:
                return rows.split_runs(channels, starts, lut[idx[starts]])
        code = np.concatenate([lut[idx] for lut, idx in parts]) if parts else rows.code
        if not inside:
            code[(rows.t < t0) | (rows.t >= t1)] = skip
        return rows._replace(code=code).split(channels)

    def _read_one(self, pf: pq.ParquetFile | _StreamFile, t0: int, t1: int) -> Blocks:
        """`read` of a row group of one channel: its columns but `channel`, as stored."""
        table = pf.read_row_group(self.index, columns=_ONE_CHANNEL, use_threads=False)
        t, v, q = (table[c].to_numpy() for c in _ONE_CHANNEL)
        if not (t0 <= self.t_min and self.t_max < t1):
            keep = (t >= t0) & (t < t1)
            t, v, q = t[keep], v[keep], q[keep]
        if not t.shape[0]:
            return {}
        assert self.channel is not None
        return {self.channel: SampleBlock(t, v, q)}


#: Columns read of a row group of one channel (`_RowGroup._read_one`).
_ONE_CHANNEL = ["t_ns", "value", "quality"]


def _only_channel(rg: pq.RowGroupMetaData, col: int) -> str | None:
    """The row group's one channel, where the `channel` column's exact statistics say so."""
    if col < 0:
        return None
    st = rg.column(col).statistics
    if st is None or not st.has_min_max or st.null_count:
        return None
    exact = getattr(st, "is_min_value_exact", True) and getattr(st, "is_max_value_exact", True)
    return str(st.min) if exact and st.min == st.max else None


def _row_groups(folder: Path) -> list[_RowGroup]:
    """Non-empty row groups of the readable raw files, in file order."""
    return [g for f in segment_files(folder, check=True) for g in _file_row_groups(f) or ()]


def _file_row_groups(path: Path) -> tuple[_RowGroup, ...] | None:
    """`path`'s non-empty row groups, None if unreadable; parsed once per version of the file
    (a recording file is written whole under its final name, never changed in place)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return _parse_row_groups(path, st.st_mtime_ns, st.st_size, st.st_ino)


@functools.lru_cache(maxsize=1024)
def _parse_row_groups(
    path: Path, mtime_ns: int, size: int, ino: int
) -> tuple[_RowGroup, ...] | None:
    """`_file_row_groups` of one version of a file (the arguments after `path` name it)."""
    if is_stream(path):
        try:
            return _stream_row_groups(path)
        except OSError:
            return None
    try:
        meta = pq.read_metadata(path)
        arrow = meta.schema.to_arrow_schema()
    except (OSError, pa.ArrowException):
        return None
    col, chan = arrow.get_field_index("t_ns"), arrow.get_field_index("channel")
    out = []
    for i in range(meta.num_row_groups):
        rg = meta.row_group(i)
        if rg.num_rows == 0:
            continue
        st = rg.column(col).statistics if col >= 0 else None
        if st is not None and st.has_min_max:
            out.append(_RowGroup(path, i, int(st.min), int(st.max), _only_channel(rg, chan)))
        else:
            out.append(_RowGroup(path, i, _NO_MIN, _NO_MAX, _only_channel(rg, chan)))
    return tuple(out)


def _stream_row_groups(path: Path) -> tuple[_RowGroup, ...] | None:
    """A stream file's non-empty batches as row groups (of mixed channels), with their range."""
    got = _stream_batches(path)
    if got is None:
        return None
    schema, batches = got
    col = schema.get_field_index("t_ns")
    out = []
    for i, b in enumerate(batches):
        if b.num_rows == 0:
            continue
        if col < 0:
            out.append(_RowGroup(path, i, _NO_MIN, _NO_MAX))
            continue
        mm = pc.min_max(b.column(col))
        out.append(_RowGroup(path, i, int(mm["min"].as_py()), int(mm["max"].as_py())))
    return tuple(out)


class _StreamFile:
    """A stream file opened for `raw_chunks`: its batches read as a ParquetFile's row groups."""

    def __init__(self, path: Path) -> None:
        got = _stream_batches(path)
        self.batches = got[1] if got is not None else []

    def read_row_group(self, i: int, columns: list[str], use_threads: bool = False) -> pa.Table:
        return pa.Table.from_batches([self.batches[i]]).select(columns)


def _open_file(path: Path) -> pq.ParquetFile | _StreamFile:
    return _StreamFile(path) if is_stream(path) else pq.ParquetFile(path)


@dataclass(frozen=True)
class Run:
    """One run directory; cheap to create, reads on demand."""

    path: Path
    manifest: dict[str, Any]

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id", self.path.name))

    def raw_table(
        self,
        channels: list[str] | None = None,
        t0: int | None = None,
        t1: int | None = None,
    ) -> pa.Table:
        """Raw samples in long format (channel, t_ns, value, quality), `t0 <= t_ns < t1`."""

        def read(files: list[Path]) -> pa.Table:
            if not files:
                return RAW_SCHEMA.empty_table()
            if not any(is_stream(f) for f in files):  # closed segments: as before streams
                dataset = ds.dataset([str(f) for f in files], schema=RAW_SCHEMA, format="parquet")
                return dataset.to_table(filter=_time_filter(t0, t1)).unify_dictionaries()
            tables = _tables(files, RAW_SCHEMA, _time_filter(t0, t1))
            return pa.concat_tables(tables).unify_dictionaries()

        table = _read(self.path / "raw", read)
        if channels is not None:
            table = table.filter(
                pc.is_in(pc.cast(table["channel"], pa.string()), pa.array(channels))
            )
        return table

    def raw(
        self,
        channels: list[str] | None = None,
        t0: int | None = None,
        t1: int | None = None,
    ) -> Blocks:
        """Raw samples per channel id: `(t_ns int64, value float64, quality uint8)`."""
        table = self.raw_table(None, t0, t1)
        out = split_channels(table)
        if channels is None:
            return out
        wanted = set(channels)
        return {name: arrays for name, arrays in out.items() if name in wanted}

    def raw_chunks(
        self, channels: list[str], t0: int, t1: int, chunk_ns: int
    ) -> Iterator[tuple[int, Blocks]]:
        """`channels` in chunks of recording time `[lo, hi)` from `t0` to `t1`: `(hi, arrays)`.

        Streams: each Parquet row group is decoded once, when the first chunk it may hold
        samples of comes up (its `t_ns` statistics), and only its rows not yet due stay in
        memory, so memory is bounded by a chunk plus a row group, not by the run's length. A
        row group of one channel not asked for (a compacted segment's) is never read.
        Within a chunk, rows keep file order (row groups of a compacted segment may overlap in
        time: its parts are sorted by channel), and a channel's chunk is a prefix of its rows in
        file (arrival) order, so a backwards clock step's two sides never mix."""
        if len(channels) >= 2**15:
            raise ValueError(f"too many channels to replay at once: {len(channels)}")
        groups = _row_groups(self.path / "raw")
        wanted = set(channels)
        pending = sorted(
            (
                i
                for i, g in enumerate(groups)
                if g.t_max >= t0 and g.t_min < t1 and (g.channel is None or g.channel in wanted)
            ),
            key=lambda i: groups[i].t_min,
        )
        held: dict[int, _Waiting] = {}  # by file-order position
        opened: dict[Path, pq.ParquetFile | _StreamFile] = {}
        todo = set(pending)
        # pending positions in file order by channel (None: row groups of mixed channels)
        by_channel: dict[str | None, deque[int]] = {}
        for i in sorted(todo):
            by_channel.setdefault(groups[i].channel, deque()).append(i)

        def before(keys: list[str | None], i: int) -> list[int]:
            """Pending positions of `keys` before `i`, taken off their queues."""
            out = []
            for key in keys:
                queue = by_channel.get(key, deque())
                while queue and queue[0] < i:
                    out.append(queue.popleft())
            return out

        def load(i: int) -> None:
            """Row group `i`, and first every pending one before it in the file that may hold
            its channels (a later one may start earlier after a backwards clock step): only
            held rows keep a channel's later rows waiting."""
            ch = groups[i].channel
            earlier = before(list(by_channel) if ch is None else [ch, None], i)
            mixed = [j for j in earlier if groups[j].channel is None]
            if ch is not None and mixed:  # those may hold every channel
                earlier += before(list(by_channel), max(mixed))
            for j in [*sorted(j for j in earlier if j in todo), i]:
                todo.discard(j)
                g = groups[j]
                if g.file not in opened:
                    opened.clear()  # row groups come file by file
                    opened[g.file] = _open_file(g.file)
                held[j] = _Waiting(g.read(opened[g.file], channels, t0, t1))

        k = 0
        for lo in range(t0, t1, chunk_ns):
            hi = min(lo + chunk_ns, t1)
            while k < len(pending) and groups[pending[k]].t_min < hi:
                if pending[k] in todo:
                    load(pending[k])
                k += 1
            due: dict[str, list[SampleBlock]] = {}
            held_back: set[str] = set()
            for pos in sorted(held):
                for name, arrays in held[pos].take_before(hi, held_back).items():
                    due.setdefault(name, []).append(arrays)
                if not held[pos].rows:
                    del held[pos]
            yield hi, {name: _concat(parts) for name, parts in due.items()}

    def results_table(self, t0: int | None = None, t1: int | None = None) -> pa.Table:
        """Results in wide format (t_ns + one column per result), `t0 <= t_ns < t1`."""

        def read(files: list[Path]) -> pa.Table:
            if not files:
                return pa.table({"t_ns": pa.array([], pa.int64())})
            tables = _tables(files, None, _time_filter(t0, t1))
            if not tables:
                return pa.table({"t_ns": pa.array([], pa.int64())})
            return pa.concat_tables(tables, promote_options="permissive")

        return _read(self.path / "results", read)

    def results(self, t0: int | None = None, t1: int | None = None) -> dict[str, np.ndarray]:
        """Results as numpy columns (missing values NaN for floats)."""
        table = self.results_table(t0, t1)
        return {name: table[name].to_numpy() for name in table.column_names}

    def events(self) -> list[dict[str, Any]]:
        """Events in file order; a torn last line (crash mid-write) is skipped."""
        path = self.path / "events.jsonl"
        if not path.exists():
            return []
        out = []
        for line in path.read_bytes().split(b"\n"):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def records(self) -> list[Event]:
        """`events()` as typed records (`chikyu_daq.store.events`), old shapes included."""
        return [decode(d) for d in self.events()]

    def to_pandas(
        self,
        which: Literal["raw", "results"] = "results",
        t0: int | None = None,
        t1: int | None = None,
    ) -> Any:
        """A pandas DataFrame of raw (long) or results (wide) samples."""
        table = self.raw_table(None, t0, t1) if which == "raw" else self.results_table(t0, t1)
        return table.to_pandas()

    def time_range(self) -> tuple[int, int] | None:
        """(first, last) raw sample time in ns, from Parquet statistics where possible."""
        pieces = _row_groups(self.path / "raw")
        if pieces and all(p.t_min > _NO_MIN and p.t_max < _NO_MAX for p in pieces):
            return min(p.t_min for p in pieces), max(p.t_max for p in pieces)

        def read(files: list[Path]) -> pa.Table:
            tables = _tables(files, RAW_SCHEMA, columns=["t_ns"])
            return (
                pa.concat_tables(tables) if tables else pa.table({"t_ns": pa.array([], pa.int64())})
            )

        t = _read(self.path / "raw", read)["t_ns"]
        if len(t) == 0:
            return None
        mm = pc.min_max(t)
        return int(mm["min"].as_py()), int(mm["max"].as_py())

    def size_bytes(self) -> int:
        """Size on disk; files the recorder renames or removes meanwhile are not an error."""
        total = 0
        for p in self.path.rglob("*"):
            try:
                if p.is_file():
                    total += p.stat().st_size
            except OSError:
                continue
        return total

    def summary(self) -> dict[str, Any]:
        """Counts for `runs show`: samples, channels, results, events, time range, size."""
        raw = self.raw_table()
        size = self.size_bytes()
        rng = self.time_range()
        chans = (
            pc.value_counts(pc.cast(raw["channel"], pa.string())).to_pylist()
            if raw.num_rows
            else []
        )
        return {
            "run_id": self.run_id,
            "path": str(self.path),
            "start_utc": self.manifest.get("start_utc"),
            "end_utc": self.manifest.get("end_utc"),
            "raw_samples": raw.num_rows,
            "channels": {c["values"]: c["counts"] for c in chans},
            "results_rows": self.results_table().num_rows,
            "events": len(self.events()),
            "t_first_ns": rng[0] if rng else None,
            "t_last_ns": rng[1] if rng else None,
            "bytes": size,
            "closed": "end_utc" in self.manifest,
        }


def open_run(path: str | Path) -> Run:
    """Open a run directory (complete, still being written, or cut short by a crash)."""
    p = Path(path)
    try:
        manifest = json.loads((p / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"not a run directory (no manifest.json): {p}") from None
    except ValueError as exc:
        raise RunError(f"unreadable manifest.json in {p}: {exc}") from None
    return Run(p, manifest)


def list_runs(data_dir: str | Path) -> list[Run]:
    """Runs under `<data_dir>/runs/`, oldest first."""
    root = Path(data_dir) / "runs"
    if not root.is_dir():
        return []
    runs = []
    for p in sorted(root.iterdir()):
        if (p / "manifest.json").exists():
            try:
                runs.append(open_run(p))
            except RunError:
                continue
    return runs
