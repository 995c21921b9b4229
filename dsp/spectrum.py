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

from .filters import wrap
from .unmanaged import borrow

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
    """Twiddles and bit-reversal permutation for a complex :func:`fft_inplace` of ``n_fft``."""
    if n_fft < 4 or n_fft & (n_fft - 1):
        raise ValueError(f"n_fft must be a power of two >= 4, got {n_fft}")
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


class OscState(NamedTuple):
    """Ring of decimated samples, counters and held estimate (updated in place); constant
    tables (``tab``, ``rev``, ``win``) and work buffers (``y``, ``z``)."""

    ring: NDArray[np.float64]
    si: NDArray[np.int64]
    sf: NDArray[np.float64]
    tab: NDArray[np.complex128]
    rev: NDArray[np.int64]
    win: NDArray[np.float64]
    y: NDArray[np.float64]
    z: NDArray[np.complex128]


class OscParams(NamedTuple):
    """The spectrum's settings in grid terms (scalars: free to pass to every call)."""

    decim: int
    hop: int  # decimated samples between updates
    dt_grid_s: float
    f_lo: float
    f_hi: float
    max_invalid: int  # decimated samples missing from a window beyond which it gives NaN


@njit(cache=True, nogil=True)
def _estimate(s: OscState, head: int, op: OscParams) -> None:
    """Periodogram of the ring (oldest sample at ``head``); writes the held estimate in ``sf``.

    The real FFT of length n is one complex FFT of length n/2 over (even + i odd) samples,
    untangled per band bin: ``tab[:n//4]`` are the half-size twiddles, ``tab[n//4:]`` the
    full-size ones ``exp(-2 pi i k / n)`` for k < n/2.
    """
    ring, sf, tab, rev, win, y, z = s.ring, s.sf, s.tab, s.rev, s.win, s.y, s.z
    dt_s = op.dt_grid_s * op.decim
    f_lo, f_hi, max_invalid = op.f_lo, op.f_hi, op.max_invalid
    n = ring.shape[0]
    m = n // 2
    invalid = 0
    first = np.nan
    for i in range(n):
        v = ring[wrap(head + i, n)]
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
    for k in range(m):
        i0 = 2 * k
        i1 = i0 + 1
        re = (y[i0] - ym - slope * (i0 - xm)) * win[i0]
        im = (y[i1] - ym - slope * (i1 - xm)) * win[i1]
        z[k] = complex(re, im)
    fft_inplace(z, tab[: m // 2], rev)
    df = 1.0 / (n * dt_s)
    k_lo = max(int(np.ceil(f_lo / df - 1e-9)), 1)
    k_hi = min(int(np.floor(f_hi / df + 1e-9)), m - 1)
    total = 0.0
    best = -1.0
    kb = k_lo
    p_prev = 0.0
    p_best_lo = 0.0
    p_best_hi = 0.0
    p_after = False
    for k in range(k_lo, k_hi + 1):
        a = z[k]
        b = np.conj(z[m - k])
        xk = 0.5 * (a + b) - 0.5j * tab[m // 2 + k] * (a - b)
        p = xk.real * xk.real + xk.imag * xk.imag
        total += p
        if p_after:
            p_best_hi = p
            p_after = False
        if p > best:
            best = p
            kb = k
            p_best_lo = p_prev if k > k_lo else 0.0
            p_best_hi = 0.0
            p_after = True
        p_prev = p
    peak = best + p_best_lo + p_best_hi  # the bin and its neighbours: Hann's main lobe
    sf[OF_FREQ] = kb * df
    sf[OF_SHARE] = peak / total if total > 0.0 else 0.0
    # A bin-centred sine of amplitude A gives |X| = A n/4 at the peak and A n/8 at each
    # neighbour under a Hann window: lobe power 3 A^2 n^2 / 32.
    sf[OF_AMP] = np.sqrt(32.0 * peak / (3.0 * n * n))


@njit(cache=True, nogil=True, inline="always")
def osc_step(x: float, op: OscParams, s: OscState) -> None:
    """Feed one grid sample; the held estimate is in ``sf[OF_FREQ]``, ``sf[OF_SHARE]``."""
    ring, si, sf = s.ring, s.si, s.sf
    decim, hop = op.decim, op.hop
    if not np.isnan(x):
        sf[OF_SLOT_SUM] += x
        si[OI_SLOT_CNT] += 1
    si[OI_N_GRID] += 1
    # a slot ends at every decim-th grid sample; N_DEC = N_GRID // decim, so no division
    if si[OI_N_GRID] != (si[OI_N_DEC] + 1) * decim:
        return
    n = ring.shape[0]
    nd = si[OI_N_DEC]
    ring[nd % n] = sf[OF_SLOT_SUM] / si[OI_SLOT_CNT] if si[OI_SLOT_CNT] > 0 else np.nan
    sf[OF_SLOT_SUM] = 0.0
    si[OI_SLOT_CNT] = 0
    nd += 1
    si[OI_N_DEC] = nd
    if nd >= n and (nd - n) % hop == 0:
        _estimate(s, nd % n, op)


@njit(cache=True, nogil=True)
def _osc_kernel(
    x: NDArray[np.float64], op: OscParams, s: OscState, out: NDArray[np.float64]
) -> None:
    # borrowed (dsp.unmanaged): the inlined step would count references at every sample
    x, s, out = borrow(x), borrow(s), borrow(out)
    sf = s.sf
    for i in range(x.shape[0]):
        osc_step(x[i], op, s)
        out[0, i] = sf[OF_FREQ]
        out[1, i] = sf[OF_SHARE]
        out[2, i] = sf[OF_AMP]


def osc_init(n_fft: int) -> OscState:
    if n_fft < 16 or n_fft & (n_fft - 1):
        raise ValueError(f"n_fft must be a power of two >= 16, got {n_fft}")
    tw_half, rev = fft_tables(n_fft // 2)
    tw_full = np.exp(-2j * np.pi * np.arange(n_fft // 2) / n_fft)
    tab = np.concatenate((tw_half, tw_full)).astype(np.complex128)
    win = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    sf = np.zeros(4)
    sf[OF_FREQ:] = np.nan
    return OscState(
        np.full(n_fft, np.nan),
        np.zeros(3, np.int64),
        sf,
        tab,
        rev,
        win,
        np.empty(n_fft),
        np.empty(n_fft // 2, np.complex128),
    )


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
    op = OscParams(
        decim, hop, float(dt_grid_s), float(f_lo_hz), float(f_hi_hz), int(max_invalid_frac * n)
    )
    _osc_kernel(x, op, state, out)
    return out[0], out[1], out[2]
