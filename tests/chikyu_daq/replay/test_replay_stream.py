"""Replay streams the recording: chunked reading and computing changes neither the samples
read nor the results, bit for bit, however the chunks fall across files and row groups."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chikyu_daq.config.model import load_config
from chikyu_daq.replay.engine import ReplayOptions, replay
from chikyu_daq.store.reader import RAW_SCHEMA, open_run
from tests.chikyu_daq.live.test_processor import T0, synth

REPO = Path(__file__).resolve().parents[3]
PART_S = 20  # one recorder flush: its rows sorted by channel, so row groups overlap in time


def _part(data: Mapping[str, tuple[np.ndarray, ...]], lo: int, hi: int) -> pa.Table:
    cols: dict[str, list[np.ndarray]] = {"channel": [], "t_ns": [], "value": [], "quality": []}
    for ch in sorted(data):
        t, v, q = data[ch]
        m = (t >= lo) & (t < hi)
        cols["channel"].append(np.full(int(m.sum()), ch, dtype=object))
        for name, x in (("t_ns", t), ("value", v), ("quality", q)):
            cols[name].append(x[m])
    return pa.table({k: np.concatenate(v) for k, v in cols.items()}).cast(RAW_SCHEMA)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run as a crash leaves it: a compacted segment of small row groups (cut across the
    parts) and an open segment of part files; plus a channel no role reads."""
    cfg = load_config(REPO / "config" / "reference.toml")
    data = dict(synth(150.0, seed=5))
    n = 300
    data["unused.channel"] = (
        T0 + np.arange(n, dtype=np.int64) * 500_000_000,
        np.ones(n),
        np.zeros(n, np.uint8),
    )
    root = tmp_path_factory.mktemp("stream") / "r"
    (root / "raw" / "seg-000002.parts").mkdir(parents=True)
    (root / "manifest.json").write_text(
        json.dumps({"run_id": "r", "config": cfg.model_dump(mode="json")}), encoding="utf-8"
    )
    edges = [T0 + k * PART_S * 10**9 for k in range(9)]
    parts = [_part(data, lo, hi) for lo, hi in itertools.pairwise(edges)]
    pq.write_table(
        pa.concat_tables(parts[:5]), root / "raw" / "seg-000001.parquet", row_group_size=3001
    )
    for i, part in enumerate(parts[5:]):
        pq.write_table(part, root / "raw" / "seg-000002.parts" / f"{i:06d}.parquet")
    return root


@pytest.mark.parametrize("chunk_s", [1.3, 17.0, 1e4])
def test_chunks_hold_every_sample_once_in_order(run_dir: Path, chunk_s: float) -> None:
    run = open_run(run_dir)
    whole = run.raw()
    channels = sorted(c for c in whole if c != "unused.channel")
    t0, t1 = T0 + 3 * 10**9, T0 + 140 * 10**9
    chunk_ns = int(chunk_s * 1e9)
    got: dict[str, list[np.ndarray]] = {c: [] for c in channels}
    lo = t0
    for hi, blocks in run.raw_chunks(channels, t0, t1, chunk_ns):
        assert hi == min(lo + chunk_ns, t1)
        assert set(blocks) <= set(channels)
        for ch, (t, _, _) in blocks.items():
            assert lo <= t.min() and t.max() < hi
            got[ch].append(t)
        lo = hi
    assert lo == t1
    for ch in channels:
        t = whole[ch][0]
        np.testing.assert_array_equal(np.concatenate(got[ch]), t[(t >= t0) & (t < t1)])


def test_tiny_chunks_replay_bit_identical_to_one_chunk(run_dir: Path, tmp_path: Path) -> None:
    out = {}
    for name, chunk_s in (("one", 1e6), ("tiny", 2.3)):
        summary = replay(run_dir, ReplayOptions(tmp_path / name, report=False, chunk_s=chunk_s))
        out[name] = (summary, pq.read_table(tmp_path / name / "results.parquet"))
    (one, a), (tiny, b) = out["one"], out["tiny"]
    assert a.num_rows > 1000 and a.schema == b.schema
    for col in a.column_names:  # bytes, so NaN payloads and signed zeros count too
        x, y = a[col].to_numpy(), b[col].to_numpy()
        assert x.tobytes() == y.tobytes(), col
    events = [(tmp_path / n / "events.jsonl").read_text(encoding="utf-8") for n in out]
    assert events[0] == events[1]
    saved = [json.loads((tmp_path / n / "summary.json").read_text(encoding="utf-8")) for n in out]
    for s in saved:  # the only keys that may differ
        del s["wall_s"], s["speed_x_realtime"]
    assert saved[0] == saved[1]
    assert one["grid_points"] == tiny["grid_points"] == a.num_rows
