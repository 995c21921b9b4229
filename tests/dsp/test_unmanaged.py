"""Borrowed views (dsp.unmanaged.borrow): the same memory, shape and strides, in njit code."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit
from numpy.typing import NDArray

from dsp.unmanaged import borrow


class Pair(NamedTuple):
    a: NDArray[np.float64]
    k: int
    b: NDArray[np.int64]


@njit(cache=True)
def _bump(x: NDArray[np.float64]) -> float:
    v = borrow(x)
    total = 0.0
    for i in range(v.shape[0]):
        for j in range(v.shape[1]):
            v[i, j] += 1.0
            total += v[i, j]
    return total


@njit(cache=True)
def _bump_pair(p: Pair) -> int:
    q = borrow(p)
    q.a[0] = 7.0
    q.b[-1] = q.k
    return q.b.shape[0]


def test_borrowed_view_writes_through_a_strided_array() -> None:
    base = np.arange(24.0).reshape(4, 6)
    view = base[::2, 1::2]  # not contiguous: strides must come along
    want = view + 1.0
    got = _bump(view)
    np.testing.assert_array_equal(view, want)
    assert got == want.sum()
    assert base[1, 1] == 7.0  # rows and columns outside the view are untouched


def test_borrowed_tuple_keeps_its_scalars_and_arrays() -> None:
    p = Pair(np.zeros(3), 5, np.zeros(4, np.int64))
    assert _bump_pair(p) == 4
    assert p.a[0] == 7.0
    assert p.b[-1] == 5
