"""Grid alignment against a searchsorted oracle, and streaming equals one pass."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsp.align import align, align_init

STEP = 100_000_000  # 10 Hz grid


def samples(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.integers(50_000_000, 1_500_000_000, n)).astype(np.int64)
    v = rng.standard_normal(n).cumsum()
    q = rng.choice(np.array([0, 0, 0, 1, 2], np.uint8), n)
    v[rng.random(n) < 0.05] = np.nan
    return t, v, q


def oracle(t, v, q, grid, method: str, stale: int, lag: int):
    out_v = np.full(grid.size, np.nan)
    out_q = np.full(grid.size, 2, np.uint8)
    for i, T in enumerate(grid):
        e = T - lag
        k = np.searchsorted(t, e, side="right") - 1  # newest sample at or before E
        if k < 0 or e - t[k] > stale or q[k] == 2 or np.isnan(v[k]):
            continue
        out_v[i], out_q[i] = v[k], q[k]
        nxt_ok = k + 1 < t.size and t[k + 1] <= T and q[k + 1] < 2 and not np.isnan(v[k + 1])
        if method == "linear" and nxt_ok:
            w = (e - t[k]) / (t[k + 1] - t[k])
            out_v[i] = v[k] + w * (v[k + 1] - v[k])
            out_q[i] = max(q[k], q[k + 1])
    return out_v, out_q


@pytest.mark.parametrize("method,lag", [("hold", 0), ("linear", 0), ("linear", 700_000_000)])
@pytest.mark.parametrize("stale", [300_000_000, 2_000_000_000])
def test_align_matches_oracle(method: str, lag: int, stale: int) -> None:
    t, v, q = samples(400, 1)
    grid = np.arange(t[0] - 10 * STEP, t[-1] + STEP, STEP, dtype=np.int64)
    out_v, out_q, _ = align(align_init(), t, v, q, grid, method=method, stale_ns=stale, lag_ns=lag)
    o_v, o_q = oracle(t, v, q, grid, method, stale, lag)
    np.testing.assert_allclose(out_v, o_v, rtol=1e-14, equal_nan=True)
    np.testing.assert_array_equal(out_q, o_q)


def test_linear_on_a_ramp_is_exact() -> None:
    t = np.arange(0, 100) * 1_000_000_000
    v = 2.0 * t / 1e9
    grid = np.arange(10, 900) * STEP
    out, q, _ = align(
        align_init(),
        t,
        v,
        np.zeros(100, np.uint8),
        grid,
        method="linear",
        stale_ns=2_000_000_000,
        lag_ns=1_000_000_000,
    )
    np.testing.assert_allclose(out, 2.0 * (grid - 1_000_000_000) / 1e9, rtol=1e-12)
    assert not q.any()


def test_bad_sample_does_not_poison_state() -> None:
    t = np.array([0, 1, 2, 3]) * 1_000_000_000
    v = np.array([1.0, 1e30, np.nan, 4.0])
    q = np.array([0, 2, 0, 0], np.uint8)
    grid = np.array([0, 1, 2, 3]) * 1_000_000_000 + 500_000_000
    out, oq, _ = align(align_init(), t, v, q, grid, stale_ns=10**10)
    np.testing.assert_array_equal(out, [1.0, np.nan, np.nan, 4.0])
    np.testing.assert_array_equal(oq, [0, 2, 2, 0])


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(1, 1000), max_size=6),
    st.sampled_from([("hold", 0), ("linear", 0), ("linear", 900_000_000)]),
)
def test_align_chunk_invariant(cuts: list[int], method_lag: tuple[str, int]) -> None:
    method, lag = method_lag
    t, v, q = samples(300, 5)
    grid = np.arange(t[0], t[-1], STEP, dtype=np.int64)[:1000]
    whole = align(align_init(), t, v, q, grid, method=method, stale_ns=10**9, lag_ns=lag)
    edges = [0, *sorted(cuts), grid.size]
    st_ = align_init()
    parts_v, parts_q = [], []
    given_upto = 0
    for a, b in pairwise(edges):
        if a == b:
            continue
        # hand over exactly the samples that arrived by the last grid point of this block
        upto = int(np.searchsorted(t, grid[b - 1], side="right"))
        sl = slice(given_upto, upto)
        ov, oq, st_ = align(
            st_, t[sl], v[sl], q[sl], grid[a:b], method=method, stale_ns=10**9, lag_ns=lag
        )
        given_upto = upto
        parts_v.append(ov)
        parts_q.append(oq)
    np.testing.assert_array_equal(np.concatenate(parts_v), whole[0])
    np.testing.assert_array_equal(np.concatenate(parts_q), whole[1])


def test_bad_method() -> None:
    with pytest.raises(ValueError, match="method"):
        align(
            align_init(),
            np.zeros(0, np.int64),
            np.zeros(0),
            np.zeros(0, np.uint8),
            np.zeros(0, np.int64),
            method="cubic",
            stale_ns=1,
        )
