"""The seawater reference over its whole stretch (issue 12): 20 min of circulation before the
intake starts are all averaged, not only the last window, since the zero's noise stays in the
whole day's yield as a systematic error. The oracle is plain numpy on the test's own inputs:
the mean of the readings over the stretch less the (constant) seawater density."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.signal import lfilter

from dsp.chain import ChainResult, init_state, process_block
from dsp.params import ChainParams
from dsp.quality import BAD
from tests.dsp.dsp_synth import SHORT_WINDOWS, chain_defaults, make_block, nominal

P = dataclasses.replace(
    chain_defaults(**SHORT_WINDOWS), teos10=False, zero_window_s=300.0, zero_stretch_max_s=3600.0
)
N_SEA = 12_000  # 20 min of seawater circulation at 10 Hz (flows agree), then mud
N = N_SEA + 1_000
TAU_S = 5.0  # the densitometer's AR(1) noise correlation time
SD = 0.5


def ar1(seed: int) -> NDArray[np.float64]:
    """Stationary AR(1) noise of standard deviation SD and correlation time TAU_S."""
    rng = np.random.default_rng(seed)
    a = np.exp(-P.grid_step_s / TAU_S)
    e = rng.standard_normal(N) * SD * np.sqrt(1 - a * a)
    e[0] = rng.standard_normal() * SD
    return lfilter([1.0], [1.0, -a], e)


def day(offset: NDArray[np.float64] | float, seed: int) -> tuple:
    """Seawater read `offset` kg/m3 high with AR(1) noise, then the intake starts (mud)."""
    t, v, q = nominal(N, P, cv=0.0, q_ret=300.0, q_inj=300.0)
    v["q_return_m3_h"][N_SEA:] = 330.0
    v["rho_mix_kg_m3"] = P.rho_w + offset + ar1(seed)
    v["rho_mix_kg_m3"][N_SEA:] += 0.017 * (P.rho_s - P.rho_w)
    # the densitometer BAD for 5 s as the intake starts, so that the stretch ends exactly at
    # N_SEA (despiking holds a step at the old level for half its window)
    q["rho_mix_kg_m3"][N_SEA : N_SEA + 50] = BAD
    return t, v, q


def run(p: ChainParams, t, v, q, block: int = N) -> ChainResult:
    state, parts = init_state(p), []
    for a in range(0, N, block):
        res, state = process_block(p, state, make_block(t, v, q, slice(a, a + block)))
        parts.append(res.data)
    return ChainResult(t, np.concatenate(parts, axis=1), res.qual, res.alarm_bits, [])


def se_part(r: ChainResult, i: int) -> float:
    """The zero's own standard error (its uncertainty less the seawater model's)."""
    return float(np.sqrt(r["u_rho_zero_kg_m3"][i] ** 2 - P.u_rho_w_ref_kg_m3**2))


def test_zero_is_the_mean_of_the_whole_stretch_and_its_error_shrinks() -> None:
    """The offset moves from 1.0 to 1.6 kg/m3 halfway (every window stays steady): the zero
    is the stretch's mean (1.3), not the last window's (1.6)."""
    offset = np.where(np.arange(N) < N_SEA // 2, 1.0, 1.6)
    t, v, q = day(offset, seed=11)
    r = run(P, t, v, q)
    want = float(np.mean(v["rho_mix_kg_m3"][:N_SEA])) - P.rho_w
    first = int(np.flatnonzero(r["referenced"] == 1.0)[0])
    assert first == pytest.approx(3000, abs=10)  # the first zero after one full window
    assert r["rho_zero_kg_m3"][-1] == pytest.approx(want, abs=1e-9)
    assert abs(want - 1.3) < 0.1
    # the learned offset is applied to the mud: Cv as delivered
    assert np.mean(r["cv"][N_SEA + 100 :]) == pytest.approx(0.017, rel=0.01)
    # capped at the configured longest stretch: the last 10 min only
    capped = run(dataclasses.replace(P, zero_stretch_max_s=600.0), t, v, q)
    tail = float(np.mean(v["rho_mix_kg_m3"][N_SEA - 6000 : N_SEA])) - P.rho_w
    assert capped["rho_zero_kg_m3"][-1] == pytest.approx(tail, abs=1e-9)


def test_zero_restarts_after_an_unsteady_window() -> None:
    """Two and a half minutes of slow +-2.5 kg/m3 swings (near seawater, but unsteady) in the
    stretch: the zero averages only from the first steady window after them."""
    p = dataclasses.replace(P, zero_steady_kg_m3=1.0)
    t, v, q = day(0.5, seed=5)
    swing = slice(4000, 5500)  # 400-550 s, smooth enough to pass the despiking as it is
    v["rho_mix_kg_m3"][swing] += 2.5 * np.sin(2 * np.pi * np.arange(1500) * P.grid_step_s / 60)
    r = run(p, t, v, q)
    lanes = (v["rho_mix_kg_m3"][:N_SEA] - P.rho_w).reshape(-1, 10).mean(axis=1)
    w = 300
    sd = np.array([lanes[e - w + 1 : e + 1].std(ddof=1) for e in range(w - 1, lanes.size)])
    first_steady_after = w - 1 + int(np.flatnonzero(sd > p.zero_steady_kg_m3)[-1]) + 1
    assert 700 < first_steady_after < 850  # the swing made the windows over it unsteady
    want = float(np.mean(lanes[first_steady_after - w + 1 :]))
    assert r["rho_zero_kg_m3"][-1] == pytest.approx(want, abs=1e-9)


def test_zero_uncertainty_covers_correlated_noise() -> None:
    """Twenty days of AR(1) noise (the densitometer's 5 s): the zero's own standard error sees
    the correlation that the white-noise error of 1200 1 s means would miss (that covers the
    truth at 2 sigma in about half the days). Batches of 30 s still underestimate a 5 s AR(1)
    by ~10 % (2 sigma covers ~88 %); the seawater term in u_zero more than makes up for it."""
    own = full = 0
    shrink = []
    for seed in range(20):
        t, v, q = day(1.3, seed=100 + seed)
        r = run(P, t, v, q)
        lanes = (v["rho_mix_kg_m3"][:N_SEA] - P.rho_w).reshape(-1, 10).mean(axis=1)
        white = lanes.std(ddof=1) / np.sqrt(lanes.size)
        se = se_part(r, -1)
        assert se > 2.0 * white
        err = abs(r["rho_zero_kg_m3"][-1] - 1.3)
        own += err <= 2.0 * se
        full += err <= 2.0 * r["u_rho_zero_kg_m3"][-1]
        shrink.append(se / se_part(r, int(np.flatnonzero(r["referenced"] == 1.0)[0])))
    assert own >= 14 and full >= 19, (own, full)
    # four windows averaged: about half the first zero's standard error
    assert np.mean(shrink) < 0.7, shrink


def test_blocks_give_the_same_zero_as_one_pass() -> None:
    t, v, q = day(1.3, seed=3)
    whole = run(P, t, v, q)
    np.testing.assert_array_equal(run(P, t, v, q, block=997).data, whole.data)
    np.testing.assert_array_equal(run(P, t, v, q, block=7).data, whole.data)
