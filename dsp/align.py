"""Streaming alignment of one channel's irregular samples onto the processing grid.

Grid point ``T`` is evaluated at ``E = T - lag_ns`` using only samples with ``t <= T``:

* hold (``method="hold"``, lag normally 0): the newest sample with ``t <= E``;
* linear: between that sample and the next one if the next is at or before ``T``; otherwise
  (next sample late or missing) it falls back to hold. Set ``lag_ns`` to about one sample
  period so that the right-hand sample is usually there: the grid then lags by that much.

A BAD sample or a NaN value is the current truth ("the reading failed"), so hold gives NaN/BAD
until the next good sample; interpolation needs both ends valid, else it holds. When
``E - t_newest_used > stale_ns`` the grid value is NaN/BAD. Output quality is the worst
quality of the samples used.

Samples must come in time order. Samples newer than ``E`` of the last grid point stay pending
in the state and are used by the next call, so the caller may pass any samples it has as long
as every sample with ``t <= T`` has arrived before grid point ``T`` is asked for: then blocks
of any size give the same result as one pass.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit
from numpy.typing import NDArray

from .quality import BAD

HOLD = 0
LINEAR = 1
_METHODS = {"hold": HOLD, "linear": LINEAR}


class AlignState(NamedTuple):
    """Last consumed sample (``last_*``, ``has_last``) and samples not yet consumed."""

    last_t: int
    last_v: float
    last_q: int
    has_last: bool
    pend_t: NDArray[np.int64]
    pend_v: NDArray[np.float64]
    pend_q: NDArray[np.uint8]


def align_init() -> AlignState:
    return AlignState(
        0, np.nan, BAD, False, np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.uint8)
    )


class AlignHow(NamedTuple):
    """How grid values are taken from the samples (scalars: one value per call)."""

    method: int  # HOLD or LINEAR
    lag_ns: int
    stale_ns: int


class Samples(NamedTuple):
    """One channel's samples in time order: the (t_ns, value, quality) block."""

    t: NDArray[np.int64]
    v: NDArray[np.float64]
    q: NDArray[np.uint8]


class Held(NamedTuple):
    """The last consumed sample (``has`` 0 before the first)."""

    t: int
    v: float
    q: int
    has: int


@njit(cache=True, nogil=True)
def _align_kernel(
    smp: Samples, grid: NDArray[np.int64], how: AlignHow, held: Held
) -> tuple[NDArray[np.float64], NDArray[np.uint8], int, Held]:
    """Grid values and qualities, the number of samples consumed and the last one of them."""
    t, v, q = smp
    method, lag_ns, stale_ns = how
    lt, lv, lq, has = held
    out_v = np.empty(grid.shape[0])
    out_q = np.empty(grid.shape[0], np.uint8)
    n = t.shape[0]
    j = 0
    for i in range(grid.shape[0]):
        T = grid[i]
        E = T - lag_ns
        while j < n and t[j] <= E:
            lt = t[j]
            lv = v[j]
            lq = q[j]
            has = 1
            j += 1
        if has == 0 or E - lt > stale_ns or lq >= 2 or np.isnan(lv):
            out_v[i] = np.nan
            out_q[i] = 2
            continue
        if method == 1 and j < n and t[j] <= T and q[j] < 2 and not np.isnan(v[j]) and t[j] > lt:
            f = (E - lt) / (t[j] - lt)
            out_v[i] = lv + f * (v[j] - lv)
            out_q[i] = max(lq, q[j])
        else:
            out_v[i] = lv
            out_q[i] = lq
    return out_v, out_q, j, Held(lt, lv, lq, has)


def align(
    state: AlignState,
    t_ns: NDArray[np.int64],
    value: NDArray[np.float64],
    quality: NDArray[np.uint8],
    grid_t_ns: NDArray[np.int64],
    *,
    method: str = "hold",
    stale_ns: int,
    lag_ns: int = 0,
) -> tuple[NDArray[np.float64], NDArray[np.uint8], AlignState]:
    """Align new samples onto ``grid_t_ns`` (increasing, after any grid point asked before)."""
    if method not in _METHODS:
        raise ValueError(f"method must be one of {sorted(_METHODS)}, got {method!r}")
    if stale_ns < 0 or lag_ns < 0:
        raise ValueError(f"stale_ns and lag_ns must be >= 0, got {stale_ns}, {lag_ns}")
    t = np.concatenate((state.pend_t, np.asarray(t_ns, np.int64)))
    v = np.concatenate((state.pend_v, np.asarray(value, np.float64)))
    q = np.concatenate((state.pend_q, np.asarray(quality, np.uint8)))
    if t.shape != v.shape or t.shape != q.shape:
        raise ValueError("t_ns, value and quality must have the same length")
    grid = np.ascontiguousarray(grid_t_ns, dtype=np.int64)
    held = Held(int(state.last_t), float(state.last_v), int(state.last_q), int(state.has_last))
    how = AlignHow(_METHODS[method], int(lag_ns), int(stale_ns))
    out_v, out_q, used, held = _align_kernel(Samples(t, v, q), grid, how, held)
    new = AlignState(
        int(held.t),
        float(held.v),
        int(held.q),
        bool(held.has),
        t[used:].copy(),
        v[used:].copy(),
        q[used:].copy(),
    )
    return out_v, out_q, new
