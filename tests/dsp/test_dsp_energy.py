"""Specific energy (DESIGN "REY yield"): the drives' shaft power integrated like the other
cumulatives (never across a gap, only where power and dry solids are both known), over the
dry tonnes of those same steps; checked against a hand computation."""

from __future__ import annotations

import dataclasses

import numpy as np

from dsp.chain import OUTPUT_FIELDS, init_state, process_block
from dsp.quality import BAD
from tests.dsp.dsp_synth import SHORT_WINDOWS, chain_defaults, make_block, nominal

P = dataclasses.replace(chain_defaults(**SHORT_WINDOWS), teos10=False, slip_m_s=0.0)
N = 3000  # 300 s at 10 Hz
CV = 0.017


def test_energy_and_specific_energy_equal_the_hand_computation() -> None:
    t, v, q = nominal(N, P, cv=CV)  # 330 m3/h return, 300 injection: mud, no seawater zero
    s = (t - t[0]) / 1e9
    v["shaft_power_a_kw"] = 300.0 + 0.1 * s  # a rising load
    v["shaft_power_b_kw"] = np.full(N, 200.0)
    q["shaft_power_a_kw"] = np.zeros(N, np.uint8)
    q["shaft_power_b_kw"] = np.zeros(N, np.uint8)
    q["shaft_power_b_kw"][(s >= 100) & (s < 110)] = BAD  # power unknown for 10 s
    q["rho_mix_kg_m3"][(s >= 200) & (s < 205)] = BAD  # a 5 s gap (> max_gap 2 s)
    state = init_state(P)
    cols = []
    for a in range(0, N, 250):  # blocks: the totals carry over
        res, state = process_block(P, state, make_block(t, v, q, slice(a, a + 250)))
        cols.append(res.data)
    r = dict(zip(OUTPUT_FIELDS, np.concatenate(cols, axis=1), strict=True))

    # by hand: trapezoid steps between neighbours that both have power and dry solids
    power = v["shaft_power_a_kw"] + v["shaft_power_b_kw"]
    ok = (q["shaft_power_b_kw"] < BAD) & (q["rho_mix_kg_m3"] < BAD)
    both = ok[1:] & ok[:-1]
    dt = np.diff(s)
    energy_kwh = float(np.sum(0.5 * (power[1:] + power[:-1]) * dt * both) / 3600.0)
    rho_m = P.rho_w + CV * (P.rho_s - P.rho_w)
    ms_kg_s = P.rho_s * (rho_m - P.rho_w) / (P.rho_s - P.rho_w) * 330.0 / 3600.0
    tonnes = ms_kg_s * float(np.sum(dt * both)) / 1000.0
    assert abs(r["cum_energy_kwh"][-1] / energy_kwh - 1.0) < 1e-9
    assert abs(r["specific_energy_kwh_t"][-1] / (energy_kwh / tonnes) - 1.0) < 1e-9
    # the rate form: power now over dry tonnes per hour now; NaN where power is unknown
    last = power[-1] / (ms_kg_s * 3.6)
    assert abs(r["specific_energy_rate_kwh_t"][-1] / last - 1.0) < 1e-9
    assert np.isnan(r["specific_energy_rate_kwh_t"][(s >= 100) & (s < 110)]).all()
    np.testing.assert_array_equal(r["shaft_power_kw"][ok], power[ok])


def test_without_power_roles_no_energy_is_reported() -> None:
    t, v, q = nominal(N, P, cv=CV)
    res, _ = process_block(P, init_state(P), make_block(t, v, q))
    assert np.isnan(res["cum_energy_kwh"]).all() and np.isnan(res["specific_energy_kwh_t"]).all()
    assert np.isfinite(res["cum_solids_kg"][-1])
