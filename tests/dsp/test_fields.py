"""The one output-field table against what the kernel really produces."""

from __future__ import annotations

import numpy as np

from dsp import OUTPUT_FIELDS, QUALITY_FIELDS, ROLES, Block, init_state, process_block
from dsp.fields import FIELD_BY_NAME, FIELDS, STABILITY_FIELDS, YIELD_FIELDS
from dsp.quality import BAD, GOOD, UNCERTAIN
from tests.dsp.dsp_synth import chain_defaults


def kernel_columns() -> dict[str, np.ndarray]:
    p = chain_defaults(osc_n_fft=64, max_transit_s=10.0, compare_window_s=2.0)
    n = 8
    t = np.arange(n, dtype=np.int64) * 100_000_000
    block = Block(t, {r: np.ones(n) for r in ROLES}, {r: np.zeros(n, np.uint8) for r in ROLES})
    result, _ = process_block(p, init_state(p), block)
    cols = result.as_dict()
    cols.pop("t_ns")
    return cols


def test_table_has_one_row_per_kernel_column_with_its_dtype() -> None:
    cols = kernel_columns()
    assert [f.name for f in FIELDS] == list(cols)  # same names, same order, nothing extra
    assert len(FIELD_BY_NAME) == len(FIELDS)
    for f in FIELDS:
        assert cols[f.name].dtype == np.dtype(f.dtype), f.name


def test_quality_codes_are_the_kernel_quality_rows_and_nothing_else() -> None:
    assert tuple(f.name for f in FIELDS if f.quality) == QUALITY_FIELDS
    cols = kernel_columns()
    for name in QUALITY_FIELDS:
        assert set(np.unique(cols[name])) <= {GOOD, UNCERTAIN, BAD}
    # named like a quality code, but a flow (issue 11: `int()` by prefix truncated and crashed)
    for flow in ("q_return_m3_h", "q_injection_m3_h"):
        assert FIELD_BY_NAME[flow].dtype == "float64" and not FIELD_BY_NAME[flow].quality
        assert flow in OUTPUT_FIELDS


def test_groups_each_carry_their_quality_and_every_group_member_has_a_unit_or_is_a_code() -> None:
    assert "q_yield" in YIELD_FIELDS and "q_cumulative" in YIELD_FIELDS
    assert "q_stability" in STABILITY_FIELDS
    assert not set(YIELD_FIELDS) & set(STABILITY_FIELDS)
    for name in YIELD_FIELDS + STABILITY_FIELDS:
        f = FIELD_BY_NAME[name]
        assert (f.unit == "") == f.quality, name
