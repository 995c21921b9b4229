"""Hampel and rolling mean/variance against plain NumPy / pandas oracles."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsp.filters import hampel, hampel_init, meanvar_init, rolling_mean_var


def hampel_oracle(x: np.ndarray, w: int, n_sigma: float, floor: float, min_count: int):
    out = x.copy()
    rep = np.zeros(x.size, bool)
    for i in range(x.size):
        if np.isnan(x[i]):
            continue
        win = x[max(0, i - w + 1) : i + 1]
        win = win[~np.isnan(win)]
        if win.size < min_count:
            continue
        med = np.median(win)
        mad = np.median(np.abs(win - med))
        if abs(x[i] - med) > n_sigma * max(1.4826 * mad, floor):
            out[i] = med
            rep[i] = True
    return out, rep


def noisy(n: int, nan_frac: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) + 10 * np.sin(np.arange(n) / 50)
    x[rng.random(n) < 0.03] += rng.choice([-30.0, 30.0], size=1)  # spikes
    x[rng.random(n) < nan_frac] = np.nan
    return x


@pytest.mark.parametrize("w", [3, 8, 31])
@pytest.mark.parametrize("nan_frac", [0.0, 0.2, 0.7])
def test_hampel_matches_oracle(w: int, nan_frac: float) -> None:
    x = noisy(1500, nan_frac, w)
    for floor in (0.0, 0.5):
        out, rep = hampel(x, hampel_init(w), n_sigma=3.0, floor=floor, min_count=2)
        o_out, o_rep = hampel_oracle(x, w, 3.0, floor, 2)
        np.testing.assert_array_equal(rep, o_rep)
        np.testing.assert_allclose(out, o_out, rtol=1e-14, equal_nan=True)


def test_hampel_removes_held_spike_and_keeps_steps() -> None:
    # 1 Hz sensor held on a 10 Hz grid: one bad reading is 10 identical grid samples
    x = np.repeat(1050.0 + np.arange(60) * 0.0, 10)
    x[200:210] = 1400.0
    x[400:] += 20.0  # genuine step
    out, rep = hampel(x, hampel_init(31), n_sigma=4.0, floor=3.0, min_count=16)
    assert rep[200:210].all() and np.all(out[200:210] == 1050.0)
    assert np.all(out[420:] == 1070.0)  # step passes after half a window


@pytest.mark.parametrize("w", [2, 10, 100])
@pytest.mark.parametrize("nan_frac", [0.0, 0.3])
def test_rolling_mean_var_matches_pandas(w: int, nan_frac: float) -> None:
    x = noisy(3000, nan_frac, 7 + w)
    m, v = rolling_mean_var(x, meanvar_init(w), min_count=2)
    s = pd.Series(x).rolling(w, min_periods=2)
    np.testing.assert_allclose(m, s.mean().to_numpy(), rtol=1e-10, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(v, s.var().to_numpy(), rtol=1e-8, atol=1e-12, equal_nan=True)


def test_rolling_variance_is_stable_at_large_offset() -> None:
    rng = np.random.default_rng(3)
    x = 1e9 + rng.standard_normal(20_000)
    w = 500
    _, v = rolling_mean_var(x, meanvar_init(w), min_count=w)
    # two-pass oracle on the same windows (exact up to rounding of the centred data)
    ref = np.array([np.var(x[i - w + 1 : i + 1], ddof=1) for i in range(w - 1, x.size, 97)])
    np.testing.assert_allclose(v[w - 1 :: 97], ref, rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 2000), max_size=6), st.integers(2, 40))
def test_filters_chunk_invariant(cuts: list[int], w: int) -> None:
    x = noisy(2000, 0.2, 11)
    edges = [0, *sorted(cuts), x.size]
    h1 = hampel(x, hampel_init(w), n_sigma=3.0, floor=0.1, min_count=2)[0]
    m1, v1 = rolling_mean_var(x, meanvar_init(w))
    hs, ms = hampel_init(w), meanvar_init(w)
    h2, m2, v2 = [], [], []
    for a, b in pairwise(edges):
        h2.append(hampel(x[a:b], hs, n_sigma=3.0, floor=0.1, min_count=2)[0])
        mm, vv = rolling_mean_var(x[a:b], ms)
        m2.append(mm)
        v2.append(vv)
    np.testing.assert_array_equal(np.concatenate(h2), h1)
    np.testing.assert_array_equal(np.concatenate(m2), m1)
    np.testing.assert_array_equal(np.concatenate(v2), v1)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="window"):
        hampel_init(0)
    with pytest.raises(ValueError, match="min_count"):
        rolling_mean_var(np.zeros(3), meanvar_init(4), min_count=5)
    # one window type serves both filters: each refuses the other's rows
    with pytest.raises(ValueError, match="hampel_init"):
        hampel(np.zeros(3), meanvar_init(4))
    with pytest.raises(ValueError, match="meanvar_init"):
        rolling_mean_var(np.zeros(3), hampel_init(4))
