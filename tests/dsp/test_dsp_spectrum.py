"""Streaming oscillation estimate against numpy.fft on the same windows."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dsp.spectrum import osc_init, oscillation

DT = 0.1
DECIM = 2
N_FFT = 512
HOP = 25


def signal(n: int, f_hz: float, amp: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) * DT
    x = 60 + 0.001 * t + amp * np.sin(2 * np.pi * f_hz * t + 0.3) + 0.05 * rng.standard_normal(n)
    return x


def oracle(x: np.ndarray, f_lo: float = 0.02, f_hi: float = 2.0):
    """Independent batch computation at each update point: (index, freq, share)."""
    dec = x[: x.size // DECIM * DECIM].reshape(-1, DECIM).mean(axis=1)
    res = []
    for nd in range(N_FFT, dec.size + 1, HOP):
        y = dec[nd - N_FFT : nd]
        i = np.arange(N_FFT)
        y = y - np.polyval(np.polyfit(i, y, 1), i)
        w = 0.5 - 0.5 * np.cos(2 * np.pi * i / N_FFT)
        pw = np.abs(np.fft.rfft(y * w)) ** 2
        f = np.fft.rfftfreq(N_FFT, DT * DECIM)
        band = np.flatnonzero((f >= f_lo - 1e-12) & (f <= f_hi + 1e-12))
        k = band[np.argmax(pw[band])]
        lobe = [j for j in (k - 1, k, k + 1) if j in band]
        res.append((nd * DECIM - 1, f[k], pw[lobe].sum() / pw[band].sum()))
    return res


def test_sine_found_within_one_bin_and_matches_numpy() -> None:
    f0 = 0.137
    x = signal(6000, f0, 0.5, 1)
    freq, share, amp = oscillation(x, osc_init(N_FFT), dt_grid_s=DT, decim=DECIM, hop=HOP)
    df = 1 / (N_FFT * DT * DECIM)
    ref = oracle(x)
    assert len(ref) > 10
    for i, f, s in ref:
        assert abs(freq[i] - f0) <= df
        assert freq[i] == f
        np.testing.assert_allclose(share[i], s, rtol=1e-9)
        assert share[i] > 0.9
        assert abs(amp[i] - 0.5) < 0.1
    assert np.isnan(freq[: N_FFT * DECIM - 1]).all()


def test_white_noise_has_small_share() -> None:
    x = 60 + np.random.default_rng(2).standard_normal(4000)
    _, share, _ = oscillation(x, osc_init(N_FFT), dt_grid_s=DT, decim=DECIM, hop=HOP)
    assert np.nanmax(share) < 0.1


def test_gaps_tolerated_up_to_limit() -> None:
    x = signal(3000, 0.25, 0.5, 3)
    x[1500:1520] = np.nan  # 10 decimated samples < 10 % of 512
    freq, _, _ = oscillation(x, osc_init(N_FFT), dt_grid_s=DT, decim=DECIM, hop=HOP)
    assert abs(freq[-1] - 0.25) <= 1 / (N_FFT * DT * DECIM)
    x[1000:1200] = np.nan  # 100 decimated samples: too many
    freq, _, _ = oscillation(x, osc_init(N_FFT), dt_grid_s=DT, decim=DECIM, hop=HOP)
    assert np.isnan(freq[1600])


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(0, 3000), max_size=5))
def test_spectrum_chunk_invariant(cuts: list[int]) -> None:
    x = signal(3000, 0.4, 0.3, 4)
    x[700:705] = np.nan
    whole = oscillation(x, osc_init(N_FFT), dt_grid_s=DT, decim=DECIM, hop=HOP)
    s = osc_init(N_FFT)
    edges = [0, *sorted(cuts), x.size]
    parts = [oscillation(x[a:b], s, dt_grid_s=DT, decim=DECIM, hop=HOP) for a, b in pairwise(edges)]
    for k in range(3):
        np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), whole[k])
