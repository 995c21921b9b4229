"""Hampel despiking and rolling mean/variance as streaming steps with explicit state.

The ``*_step`` functions are njit helpers that the chain kernel inlines; ``hampel`` and
``rolling_mean_var`` wrap them as standalone kernels so that each can be tested against a
pandas/NumPy oracle. State lives in plain arrays owned by the caller and is updated in place.

Both filters are trailing (causal): the value at grid index ``a`` uses indices ``a-w+1 .. a``,
so a live stream never waits for the future and chunked processing equals one pass.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit
from numpy.typing import NDArray

from .unmanaged import borrow

MAD_TO_SIGMA = 1.4826  # consistent estimator of sigma for Gaussian noise


@njit(cache=True, nogil=True, inline="always")
def wrap(j: int, n: int) -> int:
    """Ring slot of ``j`` in ``[0, 2n)``: one compare where ``j % n`` costs a division."""
    return j if j < n else j - n


class Limits(NamedTuple):
    """A window filter's settings (scalars: free to pass per sample). The rolling mean and
    variance read ``min_count`` only."""

    n_sigma: float  # Hampel: a spike is further than n_sigma robust sigmas from the median
    floor: float  # Hampel: the least robust sigma (held grid values make the MAD zero)
    min_count: int  # valid values the window needs before it answers


class HampelRows(NamedTuple):
    """A Hampel window's rows, updated in place."""

    ring: NDArray[np.float64]  # [channels, window] values by slot (NaN = invalid)
    srt: NDArray[np.float64]  # [channels, window] the valid values, sorted
    cnt: NDArray[np.int64]  # [channels] valid values


@njit(cache=True, nogil=True, inline="always")
def hampel_step(x: float, c: int, pos: int, lim: Limits, h: HampelRows) -> tuple[float, bool]:
    """Push ``x`` (NaN = invalid) into window row ``c`` at slot ``pos``; return (clean, replaced).

    ``srt[c, :cnt[c]]`` keeps the window's valid values sorted, so median and MAD cost O(w)
    instead of a sort per sample. Spikes stay in the window (classic Hampel on raw values).
    The threshold is ``n_sigma * max(1.4826 * MAD, floor)``: held (repeated) grid values make
    MAD zero, and without the floor every genuine change would be called a spike.
    """
    n_sigma, floor, min_count = lim
    ring, srt, cnt = h
    old = ring[c, pos]
    n = cnt[c]
    old_ok = not np.isnan(old)
    new_ok = not np.isnan(x)
    # the row, indexed unsigned in the loops below: a signed index costs a negative-index
    # fix-up at every access (the indices are never negative)
    r = srt[c]
    u = np.uint64
    if old_ok:
        # old's first slot (it is there exactly): the values below it are a prefix of the
        # sorted row, so counting them finds it without a data-dependent jump (a scan's
        # mispredicted exit, a binary search's two or three on a 31-value row)
        j = 0
        for q in range(n - 1):
            j += r[q] < old
        if new_ok:  # replace in place, moving only across the values between old and x
            if x >= old:
                while j + 1 < n and r[u(j + 1)] < x:
                    r[u(j)] = r[u(j + 1)]
                    j += 1
            else:
                while j > 0 and r[u(j - 1)] > x:
                    r[u(j)] = r[u(j - 1)]
                    j -= 1
            r[u(j)] = x
        else:
            while j < n - 1:
                r[u(j)] = r[u(j + 1)]
                j += 1
            n -= 1
    elif new_ok:
        j = n
        while j > 0 and r[u(j - 1)] > x:
            r[u(j)] = r[u(j - 1)]
            j -= 1
        r[u(j)] = x
        n += 1
    ring[c, pos] = x
    cnt[c] = n
    if not new_ok or n < min_count:
        return x, False
    half = n // 2
    med = srt[c, half] if n % 2 == 1 else 0.5 * (srt[c, half - 1] + srt[c, half])
    if abs(x - med) <= n_sigma * floor:
        return x, False  # inside the floor band: no MAD can make it a spike
    # MAD: merge the deviations on both sides of the median in ascending order.
    lo = half - 1
    hi = half + 1 if n % 2 == 1 else half
    taken = 1 if n % 2 == 1 else 0  # odd n: the median itself is a zero deviation
    d_prev = 0.0
    d_cur = 0.0
    need = half + 1  # index half of the sorted deviations (and half-1 for even n)
    while taken < need:
        dl = med - srt[c, lo] if lo >= 0 else np.inf
        dh = srt[c, hi] - med if hi < n else np.inf
        d_prev = d_cur
        if dl <= dh:
            d_cur = dl
            lo -= 1
        else:
            d_cur = dh
            hi += 1
        taken += 1
    mad = d_cur if n % 2 == 1 else 0.5 * (d_prev + d_cur)
    scale = MAD_TO_SIGMA * mad
    scale = max(scale, floor)
    if abs(x - med) > n_sigma * scale:
        return med, True
    return x, False


@njit(cache=True, nogil=True, inline="always")
def meanvar_step(
    x: float,
    c: int,
    pos: int,
    ring: NDArray[np.float64],
    cnt: NDArray[np.int64],
    mom: NDArray[np.float64],
) -> None:
    """Slide window row ``c`` by one slot (``pos``), adding ``x`` (NaN = invalid).

    Shifted sums: ``mom[c] = (sum(x - K), sum((x - K)^2), K)`` with the shift ``K`` near the
    window mean, so the variance does not cancel catastrophically at large offsets and an
    update needs no division. Whenever ``pos`` wraps to 0 the sums are recomputed exactly from
    the ring (two-pass, ``K`` = the window mean), which bounds rounding drift to one window of
    updates; refresh points depend only on the absolute index, so chunked == one pass.
    """
    w = ring.shape[1]
    old = ring[c, pos]
    n = cnt[c]
    s1 = mom[c, 0]
    s2 = mom[c, 1]
    k = mom[c, 2]
    if not np.isnan(old):
        n -= 1
        d = old - k
        s1 -= d
        s2 -= d * d
    if not np.isnan(x):
        if n == 0:  # empty window: restart the shift at this value
            k = x
            s1 = 0.0
            s2 = 0.0
        n += 1
        d = x - k
        s1 += d
        s2 += d * d
    ring[c, pos] = x
    if pos == w - 1:
        m = 0
        tot = 0.0
        for j in range(w):
            v = ring[c, j]
            if not np.isnan(v):
                tot += v
                m += 1
        k = tot / m if m > 0 else 0.0
        s1 = 0.0
        s2 = 0.0
        for j in range(w):
            v = ring[c, j]
            if not np.isnan(v):
                s1 += v - k
                s2 += (v - k) * (v - k)
        n = m
    cnt[c] = n
    mom[c, 0] = s1
    mom[c, 1] = s2
    mom[c, 2] = k


#: :func:`meanvar_step` as a call, for a caller that runs it seldom (the chain kernel's once
#: a second comparison window): inlined there it would only add to the kernel's compile time.
meanvar_step_call = njit(cache=True, nogil=True)(meanvar_step.py_func)


@njit(cache=True, nogil=True)
def meanvar_get(
    c: int, cnt: NDArray[np.int64], mom: NDArray[np.float64], min_count: int
) -> tuple[float, float]:
    """Mean and sample variance (ddof=1) of row ``c``; NaN until ``min_count`` valid values."""
    n = cnt[c]
    if n < min_count or n < 2:
        return np.nan, np.nan
    s1 = mom[c, 0]
    return mom[c, 2] + s1 / n, max(mom[c, 1] - s1 * s1 / n, 0.0) / (n - 1)


class Window(NamedTuple):
    """Rolling window rows of the standalone filters (:func:`hampel`, :func:`rolling_mean_var`),
    updated in place; the chain kernel keeps the same arrays in its own state. The filters
    tell their windows apart by ``aux``'s width only (a 3-wide Hampel window passes for both)."""

    n_seen: NDArray[np.int64]  # samples seen: the slot of the next one is n_seen % window
    ring: NDArray[np.float64]
    cnt: NDArray[np.int64]
    aux: NDArray[np.float64]  # Hampel: the sorted valid values; mean/variance: shifted sums


@njit(cache=True, nogil=True)
def _window_kernel(
    x: NDArray[np.float64],
    s: Window,
    lim: Limits,
    hampel: bool,
    out: NDArray[np.float64],
    out2: NDArray[np.float64],
) -> None:
    """Streams a block through either filter: (clean, replaced) or (mean, variance)."""
    # borrowed (dsp.unmanaged): the inlined steps would count references at every sample
    x, s, out, out2 = borrow(x), borrow(s), borrow(out), borrow(out2)
    w = s.ring.shape[1]
    a = s.n_seen[0]
    rows = HampelRows(s.ring, s.aux, s.cnt)
    for i in range(x.shape[0]):
        if hampel:
            out[i], rep = hampel_step(x[i], 0, a % w, lim, rows)
            out2[i] = 1.0 if rep else 0.0
        else:
            meanvar_step(x[i], 0, a % w, s.ring, s.cnt, s.aux)
            out[i], out2[i] = meanvar_get(0, s.cnt, s.aux, lim.min_count)
        a += 1
    s.n_seen[0] = a


def _check_window(window: int, min_count: int) -> None:
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not 1 <= min_count <= window:
        raise ValueError(f"min_count must be in [1, window], got {min_count}")


def _window(window: int, channels: int, aux: NDArray[np.float64]) -> Window:
    _check_window(window, 1)
    ring = np.full((channels, window), np.nan)
    return Window(np.zeros(1, np.int64), ring, np.zeros(channels, np.int64), aux)


def hampel_init(window: int, channels: int = 1) -> Window:
    return _window(window, channels, np.zeros((channels, max(window, 0))))


def meanvar_init(window: int, channels: int = 1) -> Window:
    return _window(window, channels, np.zeros((channels, 3)))


def _stream(
    x: NDArray[np.float64], state: Window, lim: Limits, hampel: bool
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    _check_window(state.ring.shape[1], lim.min_count)
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty_like(x)
    out2 = np.empty_like(x)
    _window_kernel(x, state, lim, hampel, out, out2)
    return out, out2


def hampel(
    x: NDArray[np.float64],
    state: Window,
    *,
    n_sigma: float = 3.0,
    floor: float = 0.0,
    min_count: int = 3,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Trailing Hampel filter; returns (cleaned, replaced). NaN stays NaN and is not counted."""
    if n_sigma <= 0:
        raise ValueError(f"n_sigma must be > 0, got {n_sigma}")
    if state.aux.shape != state.ring.shape:
        raise ValueError("hampel needs a window from hampel_init")
    out, rep = _stream(x, state, Limits(float(n_sigma), float(floor), int(min_count)), True)
    return out, rep != 0.0


def rolling_mean_var(
    x: NDArray[np.float64], state: Window, *, min_count: int = 2
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Trailing NaN-skipping mean and variance (ddof=1) over the state's window length."""
    if state.aux.shape != (state.ring.shape[0], 3):
        raise ValueError("rolling_mean_var needs a window from meanvar_init")
    return _stream(x, state, Limits(np.nan, 0.0, int(min_count)), False)
