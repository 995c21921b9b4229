"""The four-at-once lane slopes (`_slopes4`) give the bits of the one-window reference
(`_slopes`) over rings with gaps, ties, zeros and every magnitude the lanes see.

The chain's golden replays cover only the windows the reference recordings produce; this draws
windows the recordings never show (almost empty, all ties, 1e6-scale values)."""

from __future__ import annotations

import numpy as np
import pytest

from dsp.kernel import _lin, _slopes, _slopes4, _sxx, _time_order


def _bits(x: float) -> int:
    return int(np.float64(x).view(np.uint64))


@pytest.mark.parametrize("seed", range(4))
def test_slopes4_matches_the_one_window_slopes_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    checked = 0
    for _ in range(60):
        w = int(rng.choice([3, 4, 7, 120, 600]))
        n_new = int(rng.integers(1, 40))
        scale, offset = rng.choice([1e-3, 1.0, 1e6]), rng.choice([0.0, 300.0, -5.0])
        ring = rng.standard_normal((1, w)) * scale + offset
        p_gap = float(rng.choice([0.0, 0.01, 0.3, 0.9]))
        ring[0, rng.random(w) < p_gap] = np.nan
        if rng.random() < 0.2:
            ring[0, :] = np.round(ring[0, :])  # ties and zeros
        head = int(rng.integers(0, w))
        new = rng.standard_normal(n_new)
        new[rng.random(n_new) < p_gap] = np.nan
        if rng.random() < 0.2:
            new[:] = 0.0
        x = _time_order(ring, 0, head, n_new)
        x[w : w + n_new] = new
        lin = _lin(x)
        min_count, sxx = max(2, w // 2), _sxx(w)
        res = np.empty(4)
        ref_ring = ring.copy()
        for k in range(n_new):
            # the reference ring after k + 1 lane steps: new[k] at slot (head + k) % w
            ref_ring[0, (head + k) % w] = new[k]
            ref, _ = _slopes(ref_ring, 0, 0, (head + k + 1) % w, min_count, sxx)
            if k % 4 == 0:
                _slopes4(lin, w + k, w, min_count, sxx, res)
            assert _bits(res[k % 4]) == _bits(ref), (w, k, ref, res[k % 4])
            checked += 1
    assert checked > 100
