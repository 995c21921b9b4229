"""Reading a raw row group splits it into channels in file order, whether the recorder's long
runs of one channel are sliced out or finely interleaved rows are sorted; and the counters a
storage sink keeps are the ones it publishes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chikyu_daq.store.durable import Counts
from chikyu_daq.store.reader import RAW_SCHEMA, open_run


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


@pytest.mark.parametrize("window", [(0, 10**9), (150_000, 950_000)])
def test_chunks_keep_each_channels_rows_in_file_order(
    tmp_path: Path, window: tuple[int, int]
) -> None:
    table = _layout()
    (tmp_path / "raw").mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps({"run_id": "r"}), encoding="utf-8")
    pq.write_table(table, tmp_path / "raw" / "seg-000001.parquet", row_group_size=800)
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


def test_counts_are_published_by_name_and_undeclared_names_refused() -> None:
    c = Counts("dropped lost")
    c.add("dropped", 3)
    c.add("lost")
    assert c.as_dict("x_") == {"x_dropped": 3, "x_lost": 1}
    with pytest.raises(KeyError, match="droped"):
        c.add("droped")
