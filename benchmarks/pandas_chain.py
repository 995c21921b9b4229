"""The estimator chain written the way a competent pandas/NumPy user would: the DSP benchmark's
reference.

It computes the physics of :mod:`dsp.kernel` (DESIGN "Estimators") with whole-array operations:
hold alignment by ``reindex(ffill)``, the trailing Hampel filter (rolling median, exact MAD only
where a point leaves the floor band), TEOS-10 deck seawater with ``gsw`` on the arrays, the
seawater reference learned from 1 s lanes, E1 with slip, E2 read one return-leg volume back
(``searchsorted`` on the integrated volume), E3 with Colebrook friction and seawater at the
measured pressure, the delayed E3/E1 comparison, rolling CVs, the 1 s lanes (regression slopes,
plug indicator, disagreement z), the batched oscillation spectrum (``rfft`` over strided
windows), the stability index, the trapezoid yield with its GUM budget and the alarms'
hysteresis with minimum duration (a loop over condition runs: sequential by nature).
Scalars derived once per parameter set (section seawater, hydrostatic pressures, the friction
table) come from :func:`dsp.params.kernel_params`, as any user would reuse them; they cost nothing per
point. It is a reference for speed and a cross-check for sums, not bit-identical: the benchmark
asserts agreement within tolerances before it reports the ratio.
"""

from __future__ import annotations

import gsw
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from drivers.sample import Blocks
from dsp import params as P
from dsp.params import ALARM_NAMES, ChainParams, KernelParams, kernel_params, kernel_tables

F = NDArray[np.float64]


def _hampel(s: pd.Series, w: int, n_sigma: float, floor: float) -> F:
    """Trailing Hampel: rolling median; the window's MAD only where it can decide."""
    x = s.to_numpy()
    med = s.rolling(w, min_periods=w // 2 + 1).median().to_numpy()
    dev = np.abs(x - med)
    cand = np.flatnonzero(dev > n_sigma * floor)  # NaN compares False
    out = x.copy()
    if cand.size:
        padded = np.concatenate((np.full(w - 1, np.nan), x))
        win = np.lib.stride_tricks.sliding_window_view(padded, w)[cand]
        mad = np.nanmedian(np.abs(win - med[cand, None]), axis=1)
        spike = dev[cand] > n_sigma * np.maximum(1.4826 * mad, floor)
        out[cand[spike]] = med[cand[spike]]
    return out


def _read_back(
    vol: F, target: F, h_len: int, rows: tuple[F, ...]
) -> tuple[NDArray[np.intp], F, list[F]]:
    """Rows interpolated at the point where the integrated volume was ``target`` (NaN before)."""
    n = vol.shape[0]
    a = np.arange(n)
    p = np.searchsorted(vol, target, side="right") - 1
    ok = (p >= 0) & (p + 1 <= a) & (p >= a - h_len + 1)
    pc = np.clip(p, 0, n - 2)
    v0, v1 = vol[pc], vol[pc + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(v1 > v0, (target - v0) / (v1 - v0), 0.0)
    frac = np.where(ok, frac, np.nan)
    return p, frac, [r[pc] + frac * (r[pc + 1] - r[pc]) for r in rows]


def _lane_mean(x: F, mask: NDArray[np.bool_], lane: int) -> F:
    """Means of the valid points of each whole lane (NaN for an empty one)."""
    m = x.shape[0] // lane * lane
    v = np.where(mask[:m], x[:m], 0.0).reshape(-1, lane)
    c = mask[:m].reshape(-1, lane).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, v.sum(axis=1) / c, np.nan)


def _lane_to_grid(lane_vals: F, n: int, lane: int) -> F:
    """Hold each lane's value from its last grid point until the next lane completes."""
    k = (np.arange(n) + 1) // lane - 1
    out = np.full(n, np.nan)
    ok = (k >= 0) & (k < lane_vals.shape[0])
    out[ok] = lane_vals[k[ok]]
    return out


def _slope(y: F, w: int) -> F:
    """Rolling least-squares slope per step, NaN-skipping, from ``w // 2`` valid points."""
    ys = pd.Series(y)
    xs = pd.Series(np.arange(y.shape[0], dtype=np.float64))
    xm = xs.where(ys.notna())
    r = w // 2
    return (ys.rolling(w, min_periods=r).cov(xm) / xm.rolling(w, min_periods=r).var()).to_numpy()


def _oscillation(pdis: F, p: ChainParams, kp: KernelParams, n: int) -> tuple[F, F, F]:
    """Held dominant frequency, band share and amplitude from strided Hann periodograms."""
    decim, hop, nfft = p.osc_decim, kp.osc_hop, p.osc_n_fft
    m = n // decim
    dec = _lane_mean(pdis, ~np.isnan(pdis), decim)[:m]
    freq, share, amp = (np.full(n, np.nan) for _ in range(3))
    if m < nfft:
        return freq, share, amp
    win = np.lib.stride_tricks.sliding_window_view(dec, nfft)[::hop]
    bad = np.isnan(win).sum(axis=1) > kp.osc_max_inv
    # hold gaps: one forward fill of the whole series; a window that starts in a gap takes its
    # first value backwards instead (rare: recomputed row by row)
    y = np.lib.stride_tricks.sliding_window_view(pd.Series(dec).ffill().to_numpy(), nfft)[::hop]
    lead = np.flatnonzero(np.isnan(win[:, 0]))
    if lead.size:
        y = y.copy()
        y[lead] = pd.DataFrame(win[lead].T).ffill().bfill().to_numpy().T
    i = np.arange(nfft)
    xm = 0.5 * (nfft - 1)
    ym = y.mean(axis=1, keepdims=True)
    slope = ((i - xm) * (y - ym)).sum(axis=1, keepdims=True) / ((i - xm) ** 2).sum()
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * i / nfft)
    pw = np.abs(np.fft.rfft((y - ym - slope * (i - xm)) * hann, axis=1)) ** 2
    df = 1.0 / (nfft * p.grid_step_s * decim)
    k_lo = max(int(np.ceil(p.osc_f_lo_hz / df - 1e-9)), 1)
    k_hi = min(int(np.floor(p.osc_f_hi_hz / df + 1e-9)), nfft // 2 - 1)
    band = pw[:, k_lo : k_hi + 1]
    kb = np.argmax(band, axis=1)
    rows = np.arange(band.shape[0])
    lo = np.where(kb > 0, band[rows, np.maximum(kb - 1, 0)], 0.0)
    hi = np.where(kb < band.shape[1] - 1, band[rows, np.minimum(kb + 1, band.shape[1] - 1)], 0.0)
    peak = band[rows, kb] + lo + hi
    tot = band.sum(axis=1)
    upd_f = np.where(bad, np.nan, (kb + k_lo) * df)
    upd_s = np.where(bad, np.nan, np.where(tot > 0, peak / tot, 0.0))
    upd_a = np.where(bad, np.nan, np.sqrt(32.0 * peak / (3.0 * nfft * nfft)))
    # update j happens at grid index (nfft + j hop) decim - 1 and is held until the next
    at = (nfft + rows * hop) * decim - 1
    j = np.searchsorted(at, np.arange(n), side="right") - 1
    has = j >= 0
    freq[has], share[has], amp[has] = upd_f[j[has]], upd_s[j[has]], upd_a[j[has]]
    return freq, share, amp


def _alarm_transitions(
    t: NDArray[np.int64], v: F, raise_: float, clear: float, min_ns: int, stopped: NDArray[np.bool_]
) -> int:
    """Raise/clear count of one hysteresis alarm with a minimum duration (forced off while
    stopped): a loop over runs of the conditions, not over samples."""
    high = raise_ > clear
    with np.errstate(invalid="ignore"):
        c_on = (v >= raise_ if high else v <= raise_) & ~stopped
        c_off = (v <= clear if high else v >= clear) & ~stopped
    n = t.shape[0]

    def runs(c: NDArray[np.bool_]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        d = np.diff(np.concatenate(([0], c.astype(np.int8), [0])))
        return np.flatnonzero(d == 1), np.flatnonzero(d == -1)

    def held(starts: NDArray[np.intp], ends: NDArray[np.intp], i: int) -> int:
        """First index from ``i`` where a run of the condition has lasted ``min_ns``, or -1."""
        k = int(np.searchsorted(ends, i, side="right"))
        while k < starts.shape[0]:
            s0 = max(int(starts[k]), i)
            j = int(np.searchsorted(t, t[s0] + min_ns, side="left"))
            if j < ends[k]:
                return j
            k += 1
        return -1

    on_s, on_e = runs(c_on)
    off_s, off_e = runs(c_off)
    stop_idx = np.flatnonzero(stopped)
    i, active, events = 0, False, 0
    while i < n:
        if not active:
            found = held(on_s, on_e, i)
            if found < 0:
                break
            active, events, i = True, events + 1, found + 1
        else:
            found = held(off_s, off_e, i)
            js = np.searchsorted(stop_idx, i)
            stop_at = int(stop_idx[js]) if js < stop_idx.shape[0] else -1
            if stop_at >= 0 and (found < 0 or stop_at < found):
                found = stop_at
            if found < 0:
                break
            active, events, i = False, events + 1, found + 1
    return events


def pandas_chain(p: ChainParams, grid: NDArray[np.int64], raw: Blocks) -> dict[str, float]:
    """Run the chain over one recording; returns the summary the benchmark compares."""
    kp, kt = kernel_params(p), kernel_tables(p)
    n = grid.shape[0]
    dt = p.grid_step_s
    idx = pd.DatetimeIndex(grid.view("datetime64[ns]"))
    col: dict[str, F] = {}
    for role, (t, v, q) in raw.items():
        lo, hi = P.INPUT_RANGES[role]
        good = (q < 2) & (v >= lo) & (v <= hi)
        s = pd.Series(np.where(good, v, np.nan), index=pd.DatetimeIndex(t.view("datetime64[ns]")))
        col[role] = s.reindex(idx, method="ffill", tolerance=pd.Timedelta(seconds=3)).to_numpy()
    w_h = p.hampel_window
    q_ret = _hampel(
        pd.Series(col["q_return_m3_h"]), w_h, p.hampel_n_sigma, p.hampel_floor_flow_m3_h
    )
    q_inj = _hampel(
        pd.Series(col["q_injection_m3_h"]), w_h, p.hampel_n_sigma, p.hampel_floor_flow_m3_h
    )
    rho_raw = _hampel(
        pd.Series(col["rho_mix_kg_m3"]), w_h, p.hampel_n_sigma, p.hampel_floor_rho_kg_m3
    )
    # a planned stop and its holdoff
    stop_t = pd.Series(np.where(q_inj < p.stop_flow_m3_h, grid, np.nan)).ffill().to_numpy()
    stopped = (grid - stop_t) < p.stop_holdoff_s * 1e9  # NaN: never stopped
    # TEOS-10 seawater on deck (temperature missing: nominal; line pressure measured)
    t_deck = col.get("t_deck_c", np.full(n, np.nan))
    t_deck = np.where(np.isfinite(t_deck), t_deck, p.t_deck_c)
    p_line = col["p_return_deck_bar"]
    p_dbar = np.maximum(np.where(np.isfinite(p_line), p_line, p.p_deck_bar) * 10.0, 0.0)
    rho_w = np.asarray(
        gsw.rho(p.salinity_g_kg, gsw.CT_from_t(p.salinity_g_kg, t_deck, p_dbar), p_dbar)
    )
    rho_s = p.rho_s
    d_sw = rho_s - rho_w
    lane = kp.lane_points
    uq, uq_r = p.u_flow_rel_sys, p.u_flow_rel_rand
    uq_tot = np.hypot(uq, uq_r)
    # seawater reference: 1 s lanes where no mud is taken, a full steady window of them
    both = ~np.isnan(rho_raw) & ~np.isnan(q_ret)
    d_l = _lane_mean(rho_raw - rho_w, both, lane)
    qr_l = _lane_mean(q_ret, both, lane)
    qi_l = _lane_mean(q_inj, ~np.isnan(q_inj), lane)
    with np.errstate(invalid="ignore"):
        ok = (
            (qi_l >= p.zero_min_flow_m3_h)
            & (np.abs(qr_l - qi_l) <= 2.0 * uq_tot * np.hypot(qr_l, qi_l))
            & (np.abs(d_l) <= p.zero_max_kg_m3)
        )
    w_z = kp.zero_lanes
    zs = pd.Series(np.where(ok, d_l, np.nan))
    full = pd.Series(ok.astype(float)).rolling(w_z).sum().to_numpy() == w_z
    z_std = zs.rolling(w_z).std().to_numpy()
    bl = w_z // P.ZERO_BATCHES
    accept = full & (z_std <= p.zero_steady_kg_m3)
    # the zero averages the stretch whose every window was steady (up to the longest), its
    # standard error from batches of bl lanes from the stretch's oldest on
    run = pd.Series(accept).groupby((~accept).cumsum()).cumsum().to_numpy() + w_z - 1
    n_l = np.minimum(run, kp.zero_stretch_lanes)
    zv = zs.to_numpy()
    z_mean = np.full(d_l.shape[0], np.nan)
    z_u = np.full(d_l.shape[0], np.nan)
    for k in np.flatnonzero(accept):
        seg = zv[k - n_l[k] + 1 : k + 1]
        nb = seg.size // bl
        m = seg.mean()
        vb = np.sum((seg[: nb * bl].reshape(nb, bl).mean(axis=1) - m) ** 2) / (nb - 1)
        z_mean[k] = m
        z_u[k] = np.sqrt(max(vb / nb, seg.var(ddof=1) / seg.size))
    zero_l = pd.Series(np.where(accept, z_mean, np.nan)).ffill().to_numpy()
    uzero_l = pd.Series(np.where(accept, np.hypot(z_u, p.u_rho_w_ref_kg_m3), np.nan)).ffill()
    zero = _lane_to_grid(zero_l, n, lane)
    uzero = _lane_to_grid(uzero_l.to_numpy(), n, lane)
    referenced = ~np.isnan(zero)
    rho = np.where(referenced, rho_raw - zero, rho_raw)
    # E1
    area = kp.area_return_m2
    cv_in = np.clip((rho - rho_w) / d_sw, 0.0, p.cv_max)
    q_s = q_ret / 3600.0
    vel = q_s / area
    slip_f = np.ones(n)
    if p.slip_m_s > 0:
        with np.errstate(invalid="ignore", divide="ignore"):
            slip_f = np.where(vel > 0, np.maximum(1.0 - (1.0 - cv_in) * p.slip_m_s / vel, 0.0), 1.0)
    cv = cv_in * slip_f
    ms1 = rho_s * cv * q_s
    # E2: intake one return-leg volume ago, scaled by Q(t)/Q(t - tau)
    vol = np.cumsum(pd.Series(q_ret).ffill().fillna(0.0).clip(lower=0.0).to_numpy() * dt / 3600.0)
    ms_in = rho_s * kp.phi_b * (q_ret - q_inj) / 3600.0
    h_len = p.points(p.max_transit_s)
    pe2, fe2, (ms_then, q_then) = _read_back(
        vol, vol - p.return_leg_volume_m3, h_len, (ms_in, q_ret)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        ms2 = ms_then * np.where(q_then >= p.stop_flow_m3_h, q_ret / q_then, np.nan)
    transit = (np.arange(n) - pe2 - fe2) * dt
    # E3: hydrostatic with Colebrook friction and seawater at the measured pressure
    fv = np.where(
        np.isnan(vel),
        0.0,
        np.minimum(np.abs(vel) / kp.friction_dv_m_s, kt.friction.shape[0] - 1.000001),
    )
    f_d = np.interp(fv, np.arange(kt.friction.shape[0]), kt.friction)
    d_ret = np.sqrt(4.0 * area / np.pi)
    fr = f_d / (2.0 * d_ret) * vel * vel
    p_c, p_m, p_u = col["p_collector_kpa"], col["p_mid_kpa"], col["p_upper_kpa"]
    dz_all, dz_lo, dz_up = kp.dz_section_m, kp.dz_lower_m, kp.dz_upper_m
    rho3 = (p_c - p_u) * 1000.0 / ((p.g + fr) * dz_all)
    e_c, e_m, e_u = p_c - kp.p_sea_collector_kpa, p_m - kp.p_sea_mid_kpa, p_u - kp.p_sea_upper_kpa
    e_sec = np.where(
        np.isnan(e_m),
        0.5 * (e_c + e_u),
        (0.5 * (e_u + e_m) * dz_up + 0.5 * (e_m + e_c) * dz_lo) / dz_all,
    )
    w3 = kp.rho_w_section + kp.kappa * e_sec
    cv3 = (rho3 - w3) / (rho_s - w3)
    ms3 = rho_s * cv3 * q_s
    fin = ~np.isnan(cv_in) & ~np.isnan(q_ret)
    cq = np.cumsum(np.where(fin, cv_in * q_ret * dt / 3600.0, 0.0))
    vq = np.cumsum(np.where(fin, q_ret * dt / 3600.0, 0.0))
    _, _, (cv3_del,) = _read_back(vol, vol - kp.volume_collector_m3, h_len, (cv3,))
    _, _, (cq_w, vq_w) = _read_back(vol, vol - kp.volume_section_m3, h_len, (cq, vq))
    dvq = vq - vq_w
    with np.errstate(invalid="ignore", divide="ignore"):
        cv1_win = np.where(dvq >= 0.8 * kp.volume_section_m3, (cq - cq_w) / dvq, np.nan)
    cv1_win = np.where(np.isnan(cv3_del), np.nan, cv1_win)
    # rolling statistics
    w_a = kp.cv_points
    tq = col["torque_a_pct"] + col["torque_b_pct"]
    frame = pd.DataFrame({"q": q_ret, "rho": rho, "tq": tq, "qi": q_inj})
    roll = frame.rolling(w_a, min_periods=max(2, w_a // 2))
    mean, std = roll.mean(), roll.std()
    with np.errstate(invalid="ignore", divide="ignore"):
        cvs = (std / mean.abs()).where(mean.abs() >= 1e-12).to_numpy()
        mq, mqi = mean["q"].to_numpy(), mean["qi"].to_numpy()
        ratio = np.where(mqi > 1e-9, mq / mqi, np.nan)
        u_dq = uq_tot * np.hypot(mq, mqi)
        fiz = np.where(u_dq > 0, (mq - mqi) / u_dq, np.nan)
    cvf, cvd, cvt = cvs[:, 0], cvs[:, 1], cvs[:, 2]
    # yield, rates' uncertainty and the totals (trapezoid, never across a long gap)
    grade, u_grade = p.grade_default_ppm, p.u_grade_default_ppm
    gf = grade * 1e-6
    rate = ms1 * gf
    u_dens = np.where(referenced, uzero, p.u_rho_m_sys_kg_m3)
    u_rw = np.where(referenced, p.u_rho_w_ref_kg_m3, p.u_rho_w_kg_m3)
    dms_drho = rho_s * q_s / d_sw * slip_f
    with np.errstate(invalid="ignore", divide="ignore"):
        slip_s = np.where(vel > 0, rho_s * cv_in * q_s * (1 - cv_in) / vel * p.u_slip_m_s, 0.0)
    sens_s = np.stack(
        [
            ms1 * uq,
            dms_drho * u_dens,
            cv * q_s * rho_w / d_sw * p.u_rho_s_kg_m3,
            dms_drho * (1.0 - cv_in) * u_rw,
            np.zeros(n),
            slip_s,
        ]
    )
    sens_r = sens_s * gf
    sens_r[4] = ms1 * 1e-6 * u_grade
    var_s = (ms1 * uq_r) ** 2 + (dms_drho * p.u_rho_m_rand_kg_m3) ** 2
    var_r = var_s * gf * gf
    ok_r = np.flatnonzero(~np.isnan(rate))
    dts = np.diff(grid[ok_r]) * 1e-9
    keep = dts <= p.max_gap_s

    def trap(x: F) -> float:
        xv = x[..., ok_r]
        return (0.5 * (xv[..., 1:] + xv[..., :-1]) * dts * keep).sum(axis=-1)

    cum_rey = trap(rate)
    cum_sol = trap(ms1)
    acc_sys = trap(sens_r)
    acc_rand = trap(var_r) * p.tau_random_s
    # empirical random part: batch means of the rate (correlated noise shows as covariance)
    nb = kp.batch_lanes * lane
    nbat = n // nb
    rb = rate[: nbat * nb].reshape(nbat, nb)
    cnt = (~np.isnan(rb)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mr = np.where(cnt >= nb // 2, np.nansum(rb, axis=1) / cnt, np.nan)
    tb = nb * dt
    emp = np.nansum(0.5 * (mr[2:] - mr[:-2]) ** 2 * tb * tb * ~np.isnan(mr[1:-1]))
    d1 = np.nansum(0.5 * (mr[2:] - mr[1:-1]) ** 2 * tb * tb * ~np.isnan(mr[:-2]))
    emp_r = max(3.0 * emp - 2.0 * d1, emp)
    u95_cum = 2.0 * np.sqrt(max(acc_rand, emp_r) + float((np.asarray(acc_sys) ** 2).sum()))
    # 1 s lanes: estimator comparison over matching windows, slopes, plug indicator
    moving = ~stopped
    m1l = _lane_mean(ms1, moving & ~np.isnan(ms1), lane)
    m2l = _lane_mean(ms2, moving & ~np.isnan(ms2), lane)
    both3 = moving & ~np.isnan(cv3_del) & ~np.isnan(cv1_win)
    m3l = _lane_mean(cv3_del, both3, lane)
    m4l = _lane_mean(cv1_win, both3, lane)
    w_b = kp.compare_lanes
    bmean = (
        pd.DataFrame({"1": m1l, "2": m2l, "3": m3l, "4": m4l})
        .rolling(w_b, min_periods=max(2, w_b // 2))
        .mean()
    )
    m1, m2, m3, m4 = (bmean[c].to_numpy() for c in "1234")
    last = np.arange(m1.shape[0]) * lane + lane - 1  # grid index where each lane completes
    u_dens_l, u_rw_l, fr_l, mq_l, mqi_l = u_dens[last], u_rw[last], fr[last], mq[last], mqi[last]
    d_sw_l = d_sw[last]
    u_e1 = np.hypot(u_dens_l, u_rw_l)
    w3n = kp.rho_w_section
    rho3_m = w3n + m3 * (rho_s - w3n)
    u3 = np.sqrt(
        (np.sqrt(2.0) * p.u_p_kpa * 1000.0 / ((p.g + fr_l) * dz_all)) ** 2
        + (rho3_m * fr_l * p.u_friction_rel / (p.g + fr_l)) ** 2
        + (rho3_m * p.u_dz_m / dz_all) ** 2
        + u_rw_l**2
    )
    z3_l = np.abs(m3 - m4) * d_sw_l / np.hypot(u3, u_e1)
    u2 = np.sqrt(
        (rho_s * kp.phi_b / 3600.0) ** 2 * ((uq * mq_l) ** 2 + (uq * mqi_l) ** 2)
        + (m2 * p.u_rho_b_kg_m3 / (kp.phi_b * d_sw_l)) ** 2
    )
    u1 = np.hypot(rho_s * mq_l / 3600.0 / d_sw_l * u_dens_l, m1 * uq)
    z2_l = np.abs(m2 - m1) / np.hypot(u1, u2)
    z_l = np.fmax(z3_l, z2_l)
    z = _lane_to_grid(z_l, n, lane)
    inv = np.cumsum(
        np.where(~np.isnan(ms1) & ~np.isnan(ms_in), (np.maximum(ms_in, 0) - ms1) * dt, 0.0)
    )
    p_rd = col["p_return_deck_bar"]
    fric_bar = fr * rho_w * p.return_leg_volume_m3 / area / 1e5
    p_expl = inv * kp.inventory_bar_per_kg + p_rd + fric_bar
    p_d = col["p_discharge_bar"]
    w_s = kp.slope_lanes
    step_s = lane * dt
    slope_p = _slope(_lane_mean(p_d, ~np.isnan(p_d), lane), w_s) / step_s
    slope_q = _slope(_lane_mean(q_inj, ~np.isnan(q_inj), lane), w_s) / step_s
    slope_x = _slope(_lane_mean(p_expl, ~np.isnan(p_expl), lane), w_s) / step_s
    plug_l = np.where(slope_q <= p.inj_hold_m3_h_s, slope_p - np.nan_to_num(slope_x), 0.0)
    plug_l = np.where(np.isnan(slope_p) | np.isnan(slope_q), np.nan, plug_l)
    plug_l[: w_s - 1] = np.nan
    plug = _lane_to_grid(plug_l, n, lane)
    # oscillation, stability index
    freq, share, amp = _oscillation(p_d, p, kp, n)
    osc_sev = share * np.minimum(amp / p.osc_amp_bad_bar, 1.0)
    margin = vel / kp.v_critical_m_s

    def comp(x: F, bad: float) -> F:
        return 1.0 - np.clip(x / bad, 0.0, 1.0)

    with np.errstate(invalid="ignore", all="ignore"):
        parts = np.stack(
            [
                np.clip((margin - 1.0) / (p.margin_ok - 1.0), 0.0, 1.0),
                comp(cvf, p.cv_flow_bad),
                comp(cvd, p.cv_density_bad),
                comp(cvt, p.cv_torque_bad),
                1.0 - osc_sev,
                comp(plug, p.slope_bad_bar_s),
                comp(np.abs(ratio - p.ratio_nominal), p.ratio_tol),
            ]
        )
        stab = np.fmin.reduce(parts, axis=0)
    # alarms
    monitored = (margin, osc_sev, plug, cvt, fiz, z)
    events = {
        name: _alarm_transitions(grid, v, a[0], a[1], int(a[2]), stopped)
        for name, v, a in zip(ALARM_NAMES, monitored, kt.alarms, strict=True)
    }
    return {
        "cum_rey_kg": float(cum_rey),
        "cum_solids_kg": float(cum_sol),
        "u95_cum_rey_kg": float(u95_cum),
        "ms_e2_mean_kg_s": float(np.nanmean(ms2)),
        "ms_e3_mean_kg_s": float(np.nanmean(ms3)),
        "transit_s": float(np.nanmean(transit)),
        "rho_w_mean_kg_m3": float(np.mean(rho_w)),
        "referenced_frac": float(referenced.mean()),
        "osc_freq_hz": float(freq[-1]),
        "stab_mean": float(np.nanmean(stab)),
        "events": int(sum(events.values())),
        "events_by_alarm": events,  # type: ignore[dict-item]
    }
