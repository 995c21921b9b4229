"""The fleet summary's readable table and Parquet types, from hand-written rows."""

from __future__ import annotations

import math

import pyarrow as pa

from chikyu_daq.fleet.dataset import failed_row, readable, summary_row, summary_table


def test_readable_table_shows_hours_dashes_and_failures() -> None:
    ok = summary_row(
        "chikyu",
        "r1",
        "/runs/r1",
        {"duration_s": 5400.0, "cum_rey_kg": 2.0, "u95_cum_rey_kg": 0.1, "gap_s": math.nan},
    )
    text = readable([ok, failed_row("v2", "r2", "/runs/r2", "no such run")])
    lines = text.splitlines()
    assert lines[0].split("  ")[0:2] == ["vessel", "run"]  # no case column: no row has one
    assert "case" not in lines[0] and lines[0].split()[3] == "hours"
    # 5400 s is 1.50 h; U95 % is 0.1/2; a NaN gap and a missing speed show as "-"
    want = ["chikyu", "r1", "ok", "1.50", "2.000", "0.100", "5.0", "-", "0", "-", "-"]
    assert lines[1].split() == want
    assert lines[2].split() == ["v2", "r2", "failed", *["-"] * 8]
    assert lines[3] == "FAILED v2/r2 : no such run"
    with_case = readable([failed_row("v", "r", "/r", "x", case="c7")])
    assert with_case.splitlines()[0].split()[2] == "case"


def test_summary_table_types() -> None:
    t = summary_table([summary_row("v", "r", "/r", {"grid_points": 10, "truth_in_95": True})])
    assert t.schema.field("grid_points").type == pa.int64()
    assert t.schema.field("truth_in_95").type == pa.bool_()
    assert t.schema.field("duration_s").type == pa.float64()
    assert t.column("alarms").to_pylist() == ["{}"]
