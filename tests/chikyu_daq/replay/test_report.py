"""The report reads a results file a row group at a time and plots the same points as a
whole-file read would, and names only fields of the one output-field table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chikyu_daq.replay import report
from chikyu_daq.store.events import AlarmEdge
from dsp.fields import FIELD_BY_NAME


def test_streamed_decimation_keeps_the_whole_file_points(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n = report.MAX_POINTS * 37 + 17  # a step of 37 that no batch or row group size divides
    cols: dict[str, np.ndarray] = {"t_ns": np.arange(n, dtype=np.int64) * 100_000_000}
    cols.update({c: rng.standard_normal(n) for c in report.COLUMNS[1:]})
    path = tmp_path / "results.parquet"
    pq.write_table(pa.table({**cols, "other": np.zeros(n)}), path, row_group_size=997)
    got = report._read_decimated(path)
    assert set(got) == set(report.COLUMNS)
    step = n // report.MAX_POINTS
    for c in report.COLUMNS:
        np.testing.assert_array_equal(got[c], cols[c][::step])


def test_panels_name_fields_of_the_table() -> None:
    for panel in report.PANELS:
        for tr in panel.traces:
            assert tr.field in FIELD_BY_NAME and (tr.band is None or tr.band in FIELD_BY_NAME)


@pytest.mark.parametrize("source", ["file", "columns"])  # replay's, and the demo's
def test_report_renders(tmp_path: Path, source: str) -> None:
    n = 3000
    cols: dict[str, np.ndarray] = {"t_ns": np.arange(n, dtype=np.int64) * 100_000_000}
    cols.update({c: np.linspace(0.0, 1.0, n) for c in report.COLUMNS[1:]})
    path = tmp_path / "results.parquet"
    pq.write_table(pa.table(cols), path)
    events = [
        AlarmEdge(10**10, "LOW_VELOCITY", "raise"),
        AlarmEdge(2 * 10**10, "LOW_VELOCITY", "clear"),
    ]
    results = path if source == "file" else cols
    png = report.write_report(results, events, tmp_path / "r.png", title="t", truth=None)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
