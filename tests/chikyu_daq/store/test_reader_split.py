"""Reading a raw row group splits it into channels in file order, whether the recorder's long
runs of one channel are sliced out, finely interleaved rows are sorted or a compacted segment
has a row group per channel (those of channels not asked for are never read); and the counters
a storage sink keeps are the ones it publishes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chikyu_daq.store.durable import Counts
from chikyu_daq.store.reader import RAW_SCHEMA, open_run
from chikyu_daq.store.writer import by_channel


def _layout() -> pa.Table:
    """Row group 1: long runs (a, b, a, c: `a` twice); row group 2: a, b, c interleaved."""
    names = ["a"] * 200 + ["b"] * 200 + ["a"] * 200 + ["c"] * 200 + ["a", "b", "c"] * 100
    rng = np.random.default_rng(3)
    return pa.table(
        {
            "channel": np.array(names, dtype=object),
            "t_ns": np.arange(len(names), dtype=np.int64) * 1000,
            "value": rng.normal(size=len(names)),
            "quality": rng.integers(0, 3, len(names)).astype(np.uint8),
        }
    ).cast(RAW_SCHEMA)


def _write(table: pa.Table, path: Path, per_channel: bool) -> None:
    """As the recorder's parts (rows of 800, channels mixed) or its compacted segments (rows of
    800 regrouped a channel a row group: `by_channel`)."""
    if not per_channel:
        pq.write_table(table, path, row_group_size=800)
        return
    with pq.ParquetWriter(path, table.schema) as w:
        for group in by_channel(table, 800):
            w.write_table(group)


@pytest.mark.parametrize("per_channel", [False, True], ids=["mixed", "by-channel"])
@pytest.mark.parametrize("window", [(0, 10**9), (150_000, 950_000)])
def test_chunks_keep_each_channels_rows_in_file_order(
    tmp_path: Path, window: tuple[int, int], per_channel: bool
) -> None:
    table = _layout()
    (tmp_path / "raw").mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps({"run_id": "r"}), encoding="utf-8")
    _write(table, tmp_path / "raw" / "seg-000001.parquet", per_channel)
    t0, t1 = window
    got: dict[str, list[np.ndarray]] = {"a": [], "c": []}
    for _, blocks in open_run(tmp_path).raw_chunks(["a", "c"], t0, t1, 170_000):
        assert set(blocks) <= {"a", "c"}
        for ch, (t, v, q) in blocks.items():
            got[ch].append(np.stack([t.astype(float), v, q.astype(float)]))
    names = np.array(table["channel"].to_pylist())
    t = table["t_ns"].to_numpy()
    for ch, parts in got.items():
        keep = (names == ch) & (t >= t0) & (t < t1)
        want = np.stack(
            [t[keep].astype(float), table["value"].to_numpy()[keep],
             table["quality"].to_numpy()[keep].astype(float)]
        )  # fmt: skip
        np.testing.assert_array_equal(np.concatenate(parts, axis=1), want)


def test_a_compacted_layout_puts_each_channel_in_row_groups_of_its_own(tmp_path: Path) -> None:
    table = _layout()
    path = tmp_path / "seg.parquet"
    _write(table, path, per_channel=True)
    meta = pq.read_metadata(path)
    names = np.array(table["channel"].to_pylist())
    # windows of 800 rows (a, b, c in each), then the 300 interleaved ones: a, b, c again
    got = [
        (meta.row_group(i).column(0).statistics.min, meta.row_group(i).column(0).statistics.max,
         meta.row_group(i).num_rows)
        for i in range(meta.num_row_groups)
    ]  # fmt: skip
    want = [
        (ch, ch, int((names[lo : lo + 800] == ch).sum()))
        for lo in (0, 800)
        for ch in ("a", "b", "c")
    ]
    assert got == want
    # no row lost or reordered within its channel
    back = pq.read_table(path)
    for ch in ("a", "b", "c"):
        mine = np.array(back["channel"].to_pylist()) == ch
        np.testing.assert_array_equal(
            back["t_ns"].to_numpy()[mine], table["t_ns"].to_numpy()[names == ch]
        )


def test_a_compacted_layout_feeds_the_same_chunks_as_row_groups_of_mixed_channels(
    tmp_path: Path,
) -> None:
    """Windows of as many rows as the row groups had: the same arrays in the same order (what
    the processor is fed first counts across a clock step)."""
    table = _layout()
    got = []
    for per_channel in (False, True):
        root = tmp_path / str(per_channel)
        (root / "raw").mkdir(parents=True)
        (root / "manifest.json").write_text(json.dumps({"run_id": "r"}), encoding="utf-8")
        _write(table, root / "raw" / "seg-000001.parquet", per_channel)
        got.append(list(open_run(root).raw_chunks(["a", "b", "c"], 50_000, 10**9, 170_000)))
    mixed, by_channel_ = got
    assert [hi for hi, _ in mixed] == [hi for hi, _ in by_channel_]
    for (_, a), (_, b) in zip(mixed, by_channel_, strict=True):
        assert list(a) == list(b)
        for ch in a:
            for x, y in zip(a[ch], b[ch], strict=True):
                np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("per_channel", [False, True], ids=["mixed", "by-channel"])
def test_a_clock_step_back_past_a_row_group_keeps_each_channel_in_arrival_order(
    tmp_path: Path, per_channel: bool
) -> None:
    """Stamps 0-90, 200-290, then back to 50-140 (10 rows a group): the third group starts
    before the second, which must still keep it waiting when the first chunk is cut."""
    t = np.concatenate([np.arange(0, 100, 10), np.arange(200, 300, 10), np.arange(50, 150, 10)])
    table = pa.table(
        {
            "channel": np.array(["a"] * t.shape[0], dtype=object),
            "t_ns": t.astype(np.int64),
            "value": np.arange(t.shape[0], dtype=np.float64),
            "quality": np.zeros(t.shape[0], np.uint8),
        }
    ).cast(RAW_SCHEMA)
    (tmp_path / "raw").mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps({"run_id": "r"}), encoding="utf-8")
    path = tmp_path / "raw" / "seg-000001.parquet"
    if per_channel:
        with pq.ParquetWriter(path, table.schema) as w:
            for group in by_channel(table, 10):
                w.write_table(group)
    else:
        pq.write_table(table, path, row_group_size=10)
    chunks = [b["a"][1] for _, b in open_run(tmp_path).raw_chunks(["a"], 0, 300, 100) if b]
    np.testing.assert_array_equal(np.concatenate(chunks), np.arange(t.shape[0]))
    assert [c.shape[0] for c in chunks] == [10, 20]  # the step's far side after the near one


def test_row_groups_of_channels_not_asked_for_are_never_read(tmp_path: Path) -> None:
    """Every byte of channel b's row groups overwritten: a replay of a and c still reads."""
    table = _layout()
    (tmp_path / "raw").mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps({"run_id": "r"}), encoding="utf-8")
    path = tmp_path / "raw" / "seg-000001.parquet"
    _write(table, path, per_channel=True)
    meta = pq.read_metadata(path)
    data = bytearray(path.read_bytes())
    for i in range(meta.num_row_groups):
        rg = meta.row_group(i)
        if rg.column(0).statistics.min == "b":
            for j in range(rg.num_columns):
                col = rg.column(j)
                start = min(o for o in (col.dictionary_page_offset, col.data_page_offset) if o)
                data[start : start + col.total_compressed_size] = (
                    b"\xff" * col.total_compressed_size
                )
    path.write_bytes(bytes(data))
    with pytest.raises((OSError, pa.ArrowException)):
        pq.read_table(path)  # b's row groups are unreadable indeed
    got = {"a": 0, "c": 0}
    for _, blocks in open_run(tmp_path).raw_chunks(["a", "c"], 0, 10**9, 170_000):
        for ch, (t, _, _) in blocks.items():
            got[ch] += t.shape[0]
    names = table["channel"].to_pylist()
    assert got == {"a": names.count("a"), "c": names.count("c")}


def test_counts_are_published_by_name_and_undeclared_names_refused() -> None:
    c = Counts("dropped lost")
    c.add("dropped", 3)
    c.add("lost")
    assert c.as_dict("x_") == {"x_dropped": 3, "x_lost": 1}
    with pytest.raises(KeyError, match="droped"):
        c.add("droped")
