"""Streaming estimate of pressure oscillation: dominant frequency and its share of band power.

The grid signal is block-averaged by ``decim`` into a ring of ``n_fft`` samples (a power of 2).
Every ``hop`` decimated samples, once the ring is full, the window is gap-filled (hold), linearly
detrended, Hann-windowed (periodic) and transformed with an in-kernel radix-2 FFT (numba has no
``np.fft``). The band is ``[f_lo, f_hi]`` Hz; the dominant bin is the band's largest periodogram
bin and its share is the power of that bin and its two neighbours (Hann's main lobe) over the
band's power. Estimates are held between updates. A window with more than ``max_invalid``
missing decimated samples gives NaN. Update points depend on the absolute sample index only,
so blocks of any size give bit-identical results.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit
from numpy.typing import NDArray

# integer state slots
OI_N_GRID = 0  # grid samples seen
OI_N_DEC = 1  # decimated samples pushed
OI_SLOT_CNT = 2  # valid grid samples in the current decimation slot
# float state slots
OF_SLOT_SUM = 0
OF_FREQ = 1
OF_SHARE = 2
OF_AMP = 3


def fft_tables(n_fft: int) -> tuple[NDArray[np.complex128], NDArray[np.int64]]:
    """Twiddles and bit-reversal permutation for :func:`fft_inplace`."""
    if n_fft < 8 or n_fft & (n_fft - 1):
        raise ValueError(f"n_fft must be a power of two >= 8, got {n_fft}")
    bits = n_fft.bit_length() - 1
    idx = np.arange(n_fft)
    rev = np.zeros(n_fft, np.int64)
    for b in range(bits):
        rev |= ((idx >> b) & 1) << (bits - 1 - b)
    tw = np.exp(-2j * np.pi * np.arange(n_fft // 2) / n_fft)
    return tw.astype(np.complex128), rev


@njit(cache=True, nogil=True)
def fft_inplace(
    x: NDArray[np.complex128], tw: NDArray[np.complex128], rev: NDArray[np.int64]
) -> None:
    """Iterative radix-2 decimation-in-time FFT (same sign convention as ``np.fft.fft``)."""
    n = x.shape[0]
    for i in range(n):
        j = rev[i]
        if j > i:
            t = x[i]
            x[i] = x[j]
            x[j] = t
    size = 2
    while size <= n:
        half = size // 2
        step = n // size
        for start in range(0, n, size):
            for k in range(half):
                w = tw[k * step]
                u = x[start + k]
                v = x[start + k + half] * w
                x[start + k] = u + v
                x[start + k + half] = u - v
        size *= 2


@njit(cache=True, nogil=True)
def _estimate(
    ring: NDArray[np.float64],
    head: int,
    dt_s: float,
    f_lo: float,
    f_hi: float,
    max_invalid: int,
    tw: NDArray[np.complex128],
    rev: NDArray[np.int64],
    sf: NDArray[np.float64],
) -> None:
    n = ring.shape[0]
    y = np.empty(n)
    invalid = 0
    first = np.nan
    for i in range(n):
        v = ring[(head + i) % n]
        y[i] = v
        if np.isnan(v):
            invalid += 1
        elif np.isnan(first):
            first = v
    if invalid > max_invalid:
        sf[OF_FREQ] = np.nan
        sf[OF_SHARE] = np.nan
        sf[OF_AMP] = np.nan
        return
    last = first
    for i in range(n):
        if np.isnan(y[i]):
            y[i] = last
        else:
            last = y[i]
    # least-squares line over i = 0..n-1, centred abscissa
    xm = 0.5 * (n - 1)
    ym = 0.0
    for i in range(n):
        ym += y[i]
    ym /= n
    sxy = 0.0
    sxx = 0.0
    for i in range(n):
        sxy += (i - xm) * (y[i] - ym)
        sxx += (i - xm) * (i - xm)
    slope = sxy / sxx
    z = np.empty(n, np.complex128)
    for i in range(n):
        win = 0.5 - 0.5 * np.cos(2.0 * np.pi * i / n)
        z[i] = (y[i] - ym - slope * (i - xm)) * win
    fft_inplace(z, tw, rev)
    df = 1.0 / (n * dt_s)
    k_lo = int(np.ceil(f_lo / df - 1e-9))
    k_hi = min(int(np.floor(f_hi / df + 1e-9)), n // 2)
    k_lo = max(k_lo, 1)
    total = 0.0
    best = -1.0
    kb = k_lo
    for k in range(k_lo, k_hi + 1):
        p = z[k].real * z[k].real + z[k].imag * z[k].imag
        total += p
        if p > best:
            best = p
            kb = k
    peak = 0.0
    for k in range(max(kb - 1, k_lo), min(kb + 1, k_hi) + 1):
        peak += z[k].real * z[k].real + z[k].imag * z[k].imag
    sf[OF_FREQ] = kb * df
    sf[OF_SHARE] = peak / total if total > 0.0 else 0.0
    # A bin-centred sine of amplitude A gives |X| = A n/4 at the peak and A n/8 at each
    # neighbour under a Hann window: lobe power 3 A^2 n^2 / 32.
    sf[OF_AMP] = np.sqrt(2.0 * 2.0 * peak / (n * 0.375 * n))


@njit(cache=True, nogil=True)
def osc_step(
    x: float,
    decim: int,
    hop: int,
    dt_grid_s: float,
    f_lo: float,
    f_hi: float,
    max_invalid: int,
    ring: NDArray[np.float64],
    si: NDArray[np.int64],
    sf: NDArray[np.float64],
    tw: NDArray[np.complex128],
    rev: NDArray[np.int64],
) -> None:
    """Feed one grid sample; the held estimate is in ``sf[OF_FREQ]``, ``sf[OF_SHARE]``."""
    if not np.isnan(x):
        sf[OF_SLOT_SUM] += x
        si[OI_SLOT_CNT] += 1
    si[OI_N_GRID] += 1
    if si[OI_N_GRID] % decim != 0:
        return
    n = ring.shape[0]
    nd = si[OI_N_DEC]
    ring[nd % n] = sf[OF_SLOT_SUM] / si[OI_SLOT_CNT] if si[OI_SLOT_CNT] > 0 else np.nan
    sf[OF_SLOT_SUM] = 0.0
    si[OI_SLOT_CNT] = 0
    nd += 1
    si[OI_N_DEC] = nd
    if nd >= n and (nd - n) % hop == 0:
        _estimate(ring, nd % n, dt_grid_s * decim, f_lo, f_hi, max_invalid, tw, rev, sf)


@njit(cache=True, nogil=True)
def _osc_kernel(
    x: NDArray[np.float64],
    decim: int,
    hop: int,
    dt_grid_s: float,
    f_lo: float,
    f_hi: float,
    max_invalid: int,
    ring: NDArray[np.float64],
    si: NDArray[np.int64],
    sf: NDArray[np.float64],
    tw: NDArray[np.complex128],
    rev: NDArray[np.int64],
    out: NDArray[np.float64],
) -> None:
    for i in range(x.shape[0]):
        osc_step(x[i], decim, hop, dt_grid_s, f_lo, f_hi, max_invalid, ring, si, sf, tw, rev)
        out[0, i] = sf[OF_FREQ]
        out[1, i] = sf[OF_SHARE]
        out[2, i] = sf[OF_AMP]


class OscState(NamedTuple):
    """Ring of decimated samples, counters and held estimate; updated in place."""

    ring: NDArray[np.float64]
    si: NDArray[np.int64]
    sf: NDArray[np.float64]
    tw: NDArray[np.complex128]
    rev: NDArray[np.int64]


def osc_init(n_fft: int) -> OscState:
    tw, rev = fft_tables(n_fft)
    sf = np.zeros(4)
    sf[OF_FREQ:] = np.nan
    return OscState(np.full(n_fft, np.nan), np.zeros(3, np.int64), sf, tw, rev)


def oscillation(
    x: NDArray[np.float64],
    state: OscState,
    *,
    dt_grid_s: float,
    decim: int,
    hop: int,
    f_lo_hz: float = 0.02,
    f_hi_hz: float = 2.0,
    max_invalid_frac: float = 0.1,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Per grid sample: held (dominant frequency Hz, share of band power, amplitude)."""
    if decim < 1 or hop < 1:
        raise ValueError(f"decim and hop must be >= 1, got {decim}, {hop}")
    if f_hi_hz > 0.5 / (dt_grid_s * decim):
        raise ValueError(f"f_hi_hz {f_hi_hz} is above Nyquist of the decimated rate")
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty((3, x.shape[0]))
    n = state.ring.shape[0]
    _osc_kernel(
        x,
        decim,
        hop,
        dt_grid_s,
        f_lo_hz,
        f_hi_hz,
        int(max_invalid_frac * n),
        state.ring,
        state.si,
        state.sf,
        state.tw,
        state.rev,
        out,
    )
    return out[0], out[1], out[2]
