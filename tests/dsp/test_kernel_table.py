"""Each small numba kernel beside its NumPy/pandas reference, one table (numbagg's habit).

A row: the kernel on a shared input, the reference on the same input, and how close they must
be. Adding a kernel means adding a row; the chain itself is checked end to end elsewhere
(test_dsp_chain.py, tests/test_golden_replays.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pytest

from dsp import kernel as K
from dsp.alarms import AlarmSpec, alarm_init, hysteresis_alarm
from dsp.align import align, align_init
from dsp.filters import hampel, hampel_init, meanvar_init, rolling_mean_var
from dsp.spectrum import fft_inplace, fft_tables, osc_init, oscillation
from tests.dsp.test_dsp_align import STEP, samples
from tests.dsp.test_dsp_align import oracle as align_oracle
from tests.dsp.test_dsp_filters import hampel_oracle, noisy
from tests.dsp.test_dsp_spectrum import DECIM, DT, HOP, N_FFT, signal
from tests.dsp.test_dsp_spectrum import oracle as osc_oracle

Arrays = tuple[Any, ...]


class Row(NamedTuple):
    kernel: Callable[[], Arrays]
    reference: Callable[[], Arrays]
    rtol: float  # 0: exactly equal (NaN where NaN)


def _hampel(w: int) -> Row:
    x = noisy(1500, 0.2, w)
    return Row(
        lambda: hampel(x, hampel_init(w), n_sigma=3.0, floor=0.5, min_count=2),
        lambda: hampel_oracle(x, w, 3.0, 0.5, 2),
        1e-14,
    )


def _meanvar(w: int) -> Row:
    x = noisy(3000, 0.3, 7 + w)
    s = pd.Series(x).rolling(w, min_periods=2)
    return Row(
        lambda: rolling_mean_var(x, meanvar_init(w), min_count=2),
        lambda: (s.mean().to_numpy(), s.var().to_numpy()),
        1e-8,
    )


def _align(method: str, lag: int) -> Row:
    t, v, q = samples(400, 1)
    grid = np.arange(t[0] - 10 * STEP, t[-1] + STEP, STEP, dtype=np.int64)
    stale = 2_000_000_000
    return Row(
        lambda: align(align_init(), t, v, q, grid, method=method, stale_ns=stale, lag_ns=lag)[:2],
        lambda: align_oracle(t, v, q, grid, method, stale, lag),
        1e-14,
    )


def _oscillation() -> Row:
    x = signal(6000, 0.137, 0.5, 1)

    def kernel() -> Arrays:
        freq, share, _ = oscillation(x, osc_init(N_FFT), dt_grid_s=DT, decim=DECIM, hop=HOP)
        ref = osc_oracle(x)
        idx = [i for i, _, _ in ref]
        return freq[idx], share[idx]

    def reference() -> Arrays:
        ref = osc_oracle(x)
        return np.array([f for _, f, _ in ref]), np.array([s for _, _, s in ref])

    return Row(kernel, reference, 1e-9)


def _fft() -> Row:
    rng = np.random.default_rng(3)
    x = rng.standard_normal(256) + 1j * rng.standard_normal(256)

    def kernel() -> Arrays:
        y = x.copy()
        fft_inplace(y, *fft_tables(256))
        return (y,)

    return Row(kernel, lambda: (np.fft.fft(x),), 1e-12)


def _alarm_reference(t: Any, v: Any, spec: AlarmSpec) -> Any:
    """Hysteresis with minimum durations, one sample at a time in plain Python."""
    high = spec.raise_ > spec.clear
    active, since, out = 0, None, []
    for ti, x in zip(t.tolist(), v.tolist(), strict=True):
        if np.isnan(x):
            since = None
        else:
            level = spec.clear if active else spec.raise_
            cond = (
                (x <= level if active else x >= level)
                if high
                else (x >= level if active else x <= level)
            )
            if not cond:
                since = None
            else:
                since = ti if since is None else since
                if ti - since >= spec.min_duration_s * 1e9:
                    active, since = 1 - active, None
        out.append(active)
    return np.array(out, np.uint8)


def _alarm(spec: AlarmSpec) -> Row:
    rng = np.random.default_rng(5)
    t = np.arange(3000, dtype=np.int64) * 100_000_000
    v = np.sin(np.arange(3000) / 200.0) + 0.3 * rng.standard_normal(3000)
    v[rng.random(3000) < 0.02] = np.nan
    return Row(
        lambda: (hysteresis_alarm("A", t, v, spec, alarm_init())[0],),
        lambda: (_alarm_reference(t, v, spec),),
        0.0,
    )


def _slopes(gaps: bool) -> Row:
    """Two rows' slopes at once: one with gaps (or none) beside one without."""
    rng = np.random.default_rng(9)
    w = 120
    ring = np.stack((0.01 * np.arange(w), -0.02 * np.arange(w))) + rng.standard_normal((2, w))
    if gaps:
        ring[0, rng.random(w) < 0.1] = np.nan
    head = 37  # the ring's oldest entry: time order starts there

    def reference() -> Arrays:
        fits = []
        for y in np.roll(ring, -head, axis=1):
            j = np.flatnonzero(~np.isnan(y))
            fits.append(np.polyfit(j, y[j], 1)[0])
        return (np.array(fits),)

    return Row(
        lambda: (np.array(K._slopes(ring, 0, 1, head, w // 2, K._sxx(w))),),
        reference,
        1e-9,
    )


def _zero() -> Row:
    """Mean, standard error and sd of a stretch that wraps the ring and ends inside a batch."""
    rng = np.random.default_rng(11)
    w, n, bl = 120, 97, 6
    ring = 0.3 + 0.5 * rng.standard_normal(w)
    head = 77

    def reference() -> Arrays:
        x = np.roll(ring, -head)[:n]
        nb = n // bl
        batches = x[: nb * bl].reshape(nb, bl).mean(axis=1)
        vb = np.sum((batches - x.mean()) ** 2) / (nb - 1)  # about the stretch's mean
        se = max(np.sqrt(vb / nb), x.std(ddof=1) / np.sqrt(n))
        return np.array([x.mean(), se, x.std(ddof=1)])

    return Row(
        lambda: np.array(K._batch_stats(ring, head, n, bl, n // bl)),
        lambda: reference(),
        1e-12,
    )


TABLE: dict[str, Callable[[], Row]] = {
    "hampel-w3": lambda: _hampel(3),
    "hampel-w31": lambda: _hampel(31),
    "rolling-mean-var-w10": lambda: _meanvar(10),
    "rolling-mean-var-w100": lambda: _meanvar(100),
    "align-hold": lambda: _align("hold", 0),
    "align-linear-lag": lambda: _align("linear", 700_000_000),
    "oscillation": _oscillation,
    "fft": _fft,
    "alarm-high": lambda: _alarm(AlarmSpec(0.8, 0.2, 5.0)),
    "alarm-low": lambda: _alarm(AlarmSpec(-0.8, -0.2, 0.0)),
    "lane-slope-gaps": lambda: _slopes(True),
    "lane-slope-full": lambda: _slopes(False),
    "seawater-zero": _zero,
}


@pytest.mark.parametrize("name", sorted(TABLE))
def test_kernel_matches_reference(name: str) -> None:
    row = TABLE[name]()
    got, want = row.kernel(), row.reference()
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        if row.rtol == 0.0 or np.asarray(w).dtype.kind in "biu":
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=row.rtol, atol=1e-12, equal_nan=True)
