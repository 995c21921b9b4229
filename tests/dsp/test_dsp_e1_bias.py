"""E1 must be unbiased where the truth is zero: seawater at the deck with a noisy gauge.

A normal day has ~2 h of seawater passing the densitometer (circulation, the riser's seawater
pushed out by the first mud, the flush and the restart). Clipping Cv at 0 keeps the positive
half of the gauge's noise and integrates it: +0.1 % of the day's dry solids at 0.7 kg/m3.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dsp.chain import init_state, process_block
from tests.dsp.dsp_synth import SHORT_WINDOWS, chain_defaults, make_block, nominal

# constant seawater so that the truth is exactly the gauge's own mean reading
P = dataclasses.replace(chain_defaults(**SHORT_WINDOWS), teos10=False)


def test_seawater_with_symmetric_noise_integrates_no_solids() -> None:
    n, sigma = 6000, 0.7  # 10 min at 10 Hz, the densitometer's noise
    t, v, q = nominal(n, P, cv=0.0)  # flows 330 / 300 m3/h disagree: no seawater reference
    noise = sigma * np.random.default_rng(5).standard_normal(n)
    v["rho_mix_kg_m3"] = P.rho_w + noise
    r, _ = process_block(P, init_state(P), make_block(t, v, q))
    assert r["referenced"].max() == 0.0
    # what an unbiased E1 integrates: the noise's own sample mean through Cv, slip aside
    elapsed = (t[-1] - t[0]) / 1e9
    unbiased = P.rho_s / (P.rho_s - P.rho_w) * noise.mean() * 330.0 / 3600.0 * elapsed
    # clipping at Cv = 0 integrates sigma / sqrt(2 pi) ~ 0.28 kg/m3 of mud: ~ +26 kg here
    clipped = P.rho_s / (P.rho_s - P.rho_w) * sigma / np.sqrt(2 * np.pi) * 330.0 / 3600 * elapsed
    assert clipped > 20.0
    assert abs(r["cum_solids_kg"][-1] - unbiased) < 0.1 * clipped, r["cum_solids_kg"][-1]


def test_a_reading_far_below_seawater_is_not_negative_mud() -> None:
    """Gas or an empty pipe reads far below seawater: no large negative solids rate."""
    n = 600
    t, v, q = nominal(n, P, cv=0.0)
    v["rho_mix_kg_m3"] = np.full(n, P.rho_w - 40.0)
    r, _ = process_block(P, init_state(P), make_block(t, v, q))
    cv_floor = -P.zero_max_kg_m3 / (P.rho_s - P.rho_w)
    cv = r["cv"][100:]
    assert np.all(cv >= cv_floor) and np.all(cv <= 0.99 * cv_floor), (cv.min(), cv.max())
