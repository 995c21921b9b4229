"""The chain kernel: one grid-rate pass over all roles, carrying every state array explicitly.

Layout contracts with :mod:`dsp.chain` (which owns allocation and naming): input rows ``R_*``,
output rows ``O_*``, quality rows ``Q_*``, scalar state slots ``S_*`` (int) and ``F_*`` (float).
All state arrays are updated in place; window positions derive from the absolute grid index
``si[S_N]`` only, which is what makes blocks of any size equal one pass.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from . import params as P
from .alarms import alarm_step
from .filters import hampel_step, meanvar_get, meanvar_step
from .spectrum import OF_AMP, OF_FREQ, OF_SHARE, osc_step

Rows = tuple[NDArray[np.float64], ...]  # one contiguous array per role: no stacking copy
QRows = tuple[NDArray[np.uint8], ...]

# input roles (rows of vals / qual)
(R_QRET, R_QINJ, R_RHO, R_PCOL, R_PMID, R_PUP, R_PDIS, R_PRET, R_TQA, R_TQB, R_N) = range(11)

OUTPUT_FIELDS = (
    "cv",
    "ms_e1_kg_s",
    "ms_e2_kg_s",
    "transit_s",
    "rho_section_kg_m3",
    "cv_section",
    "ms_e3_kg_s",
    "rho_lower_kg_m3",
    "rho_upper_kg_m3",
    "disagreement_z",
    "grade_ppm",
    "u_grade_ppm",
    "rey_kg_h",
    "reo_kg_h",
    "cum_rey_kg",
    "cum_reo_kg",
    "u95_rey_kg_h",
    "u95_cum_rey_kg",
    "u95_cum_reo_kg",
    "velocity_m_s",
    "deposition_margin",
    "cv_flow",
    "cv_density",
    "cv_torque",
    "osc_freq_hz",
    "osc_share",
    "osc_amp_bar",
    "osc_severity",
    "discharge_slope_bar_s",
    "injection_slope_m3_h_s",
    "plug_indicator_bar_s",
    "flow_ratio",
    "stability_index",
    "gap_s",
    "rho_mix_kg_m3",
    "q_return_m3_h",
    "q_injection_m3_h",
)
(
    O_CV,
    O_MS1,
    O_MS2,
    O_TRANSIT,
    O_RHO3,
    O_CV3,
    O_MS3,
    O_RHO_LO,
    O_RHO_UP,
    O_Z,
    O_GRADE,
    O_UGRADE,
    O_REY,
    O_REO,
    O_CUM_REY,
    O_CUM_REO,
    O_U95_REY,
    O_U95_CUM,
    O_U95_CUM_REO,
    O_VEL,
    O_MARGIN,
    O_CVF,
    O_CVD,
    O_CVT,
    O_OSC_F,
    O_OSC_SHARE,
    O_OSC_AMP,
    O_OSC_SEV,
    O_SLOPE_P,
    O_SLOPE_Q,
    O_PLUG,
    O_RATIO,
    O_STAB,
    O_GAP,
    O_RHO_C,
    O_QRET_C,
    O_QINJ_C,
    O_N,
) = range(38)
QUALITY_FIELDS = ("q_yield", "q_cumulative", "q_stability")
(Q_YIELD, Q_CUM, Q_STAB, Q_N) = range(4)

# int scalar state
(
    S_N,
    S_HAS_LAST,
    S_LAST_T,
    S_GAPS,
    S_E2_PTR,
    S_BITS,
    S_LANE_N,
    S_LANE_CP,
    S_LANE_CQ,
    S_LC1,
    S_LC2,
    S_LC3,
    S_N_,
) = range(13)
# float scalar state
(
    F_CUM,
    F_GAP,
    F_LAST_RATE,
    F_V,
    F_Q_HOLD,
    F_ACC_RAND,
    F_LAST_VAR,
    F_LANE_SP,
    F_LANE_SQ,
    F_SLOPE_P,
    F_SLOPE_Q,
    F_LS1,
    F_LS2,
    F_LS3,
    F_Z,
    F_N_,
) = range(16)
N_SYS = 5  # systematic sources: flow calibration, density calibration, rho_s, rho_w, grade


@njit(cache=True, nogil=True, inline="always")
def _valid(v: NDArray[np.float64], q: NDArray[np.uint8], i: int) -> float:
    return v[i] if q[i] < 2 else np.nan


@njit(cache=True, nogil=True, inline="always")
def _ratio_cv(c: int, cnt: NDArray[np.int64], mom: NDArray[np.float64], min_count: int) -> float:
    m, var = meanvar_get(c, cnt, mom, min_count)
    if np.isnan(m) or abs(m) < 1e-12:
        return np.nan
    return np.sqrt(var) / abs(m)


@njit(cache=True, nogil=True)
def _slope(ring: NDArray[np.float64], c: int, head: int, min_count: int) -> float:
    """Least-squares slope per lane step over the ring in time order, NaN-skipping."""
    w = ring.shape[1]
    k = 0
    sx = 0.0
    sy = 0.0
    for j in range(w):
        v = ring[c, (head + j) % w]
        if not np.isnan(v):
            k += 1
            sx += j
            sy += v
    if k < min_count:
        return np.nan
    mx = sx / k
    my = sy / k
    sxy = 0.0
    sxx = 0.0
    for j in range(w):
        v = ring[c, (head + j) % w]
        if not np.isnan(v):
            sxy += (j - mx) * (v - my)
            sxx += (j - mx) * (j - mx)
    return sxy / sxx if sxx > 0.0 else np.nan


@njit(cache=True, nogil=True, inline="always")
def _component(x: float, bad: float) -> float:
    """1 at x = 0 falling linearly to 0 at x = bad."""
    return 1.0 - min(max(x / bad, 0.0), 1.0)


@njit(cache=True, nogil=True)
def chain_kernel(
    t: NDArray[np.int64],
    vals: Rows,
    qual: QRows,
    pf: NDArray[np.float64],
    pi: NDArray[np.int64],
    alarm_tab: NDArray[np.float64],
    assay_t: NDArray[np.int64],
    assay_g: NDArray[np.float64],
    assay_u: NDArray[np.float64],
    grade_default: NDArray[np.float64],
    si: NDArray[np.int64],
    sf: NDArray[np.float64],
    acc_sys: NDArray[np.float64],
    last_sys: NDArray[np.float64],
    h_ring: NDArray[np.float64],
    h_srt: NDArray[np.float64],
    h_cnt: NDArray[np.int64],
    a_ring: NDArray[np.float64],
    a_cnt: NDArray[np.int64],
    a_mom: NDArray[np.float64],
    b_ring: NDArray[np.float64],
    b_cnt: NDArray[np.int64],
    b_mom: NDArray[np.float64],
    hist: NDArray[np.float64],
    lane: NDArray[np.float64],
    o_ring: NDArray[np.float64],
    o_si: NDArray[np.int64],
    o_sf: NDArray[np.float64],
    tab: NDArray[np.complex128],
    rev: NDArray[np.int64],
    win: NDArray[np.float64],
    o_y: NDArray[np.float64],
    o_z: NDArray[np.complex128],
    al_active: NDArray[np.uint8],
    al_pending: NDArray[np.int64],
    out: NDArray[np.float64],
    oq: NDArray[np.uint8],
    bits: NDArray[np.uint8],
) -> None:
    n = t.shape[0]
    rho_w = pf[P.P_RHO_W]
    rho_s = pf[P.P_RHO_S]
    d_sw = rho_s - rho_w
    phi_b = pf[P.P_PHI_B]
    dt = pf[P.P_DT]
    max_gap_ns = pf[P.P_MAX_GAP] * 1e9
    w_h = h_ring.shape[1]
    w_a = a_ring.shape[1]
    w_b = b_ring.shape[1]
    h_len = hist.shape[1]
    lane_len = pi[P.I_LANE]
    w_s = lane.shape[1]
    n_alarm = alarm_tab.shape[0]
    min_a = max(2, w_a // 2)
    min_b = max(2, w_b // 2)
    n_assay = assay_t.shape[0]
    k_assay = 0
    sens = np.empty(N_SYS)
    uq = pf[P.P_UQ_SYS]
    a0 = si[S_N]
    pos_h = a0 % w_h
    pos_a = a0 % w_a
    pos_hist = a0 % h_len
    pos_lane = a0 % lane_len
    p_slot = si[S_E2_PTR] % h_len
    v_qret = vals[R_QRET]
    q_qret = qual[R_QRET]
    v_qinj = vals[R_QINJ]
    q_qinj = qual[R_QINJ]
    v_rho = vals[R_RHO]
    q_rho = qual[R_RHO]
    v_pcol = vals[R_PCOL]
    q_pcol = qual[R_PCOL]
    v_pmid = vals[R_PMID]
    q_pmid = qual[R_PMID]
    v_pup = vals[R_PUP]
    q_pup = qual[R_PUP]
    v_pdis = vals[R_PDIS]
    q_pdis = qual[R_PDIS]
    v_tqa = vals[R_TQA]
    q_tqa = qual[R_TQA]
    v_tqb = vals[R_TQB]
    q_tqb = qual[R_TQB]
    for i in range(n):
        a = si[S_N]
        ti = t[i]
        # --- despiked primary channels -------------------------------------------------
        q_ret, rep_r = hampel_step(
            _valid(v_qret, q_qret, i),
            0,
            pos_h,
            h_ring,
            h_srt,
            h_cnt,
            pf[P.P_H_NSIG],
            pf[P.P_H_FLOOR_Q],
            w_h // 2 + 1,
        )
        q_inj, _rep_i = hampel_step(
            _valid(v_qinj, q_qinj, i),
            1,
            pos_h,
            h_ring,
            h_srt,
            h_cnt,
            pf[P.P_H_NSIG],
            pf[P.P_H_FLOOR_Q],
            w_h // 2 + 1,
        )
        rho, rep_d = hampel_step(
            _valid(v_rho, q_rho, i),
            2,
            pos_h,
            h_ring,
            h_srt,
            h_cnt,
            pf[P.P_H_NSIG],
            pf[P.P_H_FLOOR_RHO],
            w_h // 2 + 1,
        )
        q_q = q_qret[i]
        q_d = q_rho[i]
        if rep_r:
            q_q = max(q_q, 1)
        if rep_d:
            q_d = max(q_d, 1)
        out[O_RHO_C, i] = rho
        out[O_QRET_C, i] = q_ret
        out[O_QINJ_C, i] = q_inj
        # --- E1 --------------------------------------------------------------------------
        cv = min(max((rho - rho_w) / d_sw, 0.0), pf[P.P_CV_MAX])  # NaN stays NaN
        q_s = q_ret / 3600.0
        ms1 = rho_s * cv * q_s
        out[O_CV, i] = cv
        out[O_MS1, i] = ms1
        # --- E2: intake now, read back one return-leg volume ago --------------------------
        if not np.isnan(q_ret):
            sf[F_Q_HOLD] = max(q_ret, 0.0)
        vol = sf[F_V] + sf[F_Q_HOLD] * dt / 3600.0
        sf[F_V] = vol
        hist[0, pos_hist] = vol
        hist[1, pos_hist] = rho_s * phi_b * (q_ret - q_inj) / 3600.0
        target = vol - pf[P.P_LEG_V]
        p = si[S_E2_PTR]
        if p < a - h_len + 1:  # the transit outgrew the history: restart at its oldest end
            p = a - h_len + 1
            p_slot = p % h_len
        nxt = p_slot + 1 if p_slot + 1 < h_len else 0
        while p + 1 <= a and hist[0, nxt] <= target:
            p += 1
            p_slot = nxt
            nxt = p_slot + 1 if p_slot + 1 < h_len else 0
        si[S_E2_PTR] = p
        ms2 = np.nan
        transit = np.nan
        if p + 1 <= a and hist[0, p_slot] <= target:
            v0 = hist[0, p_slot]
            v1 = hist[0, nxt]
            frac = (target - v0) / (v1 - v0)
            m0 = hist[1, p_slot]
            ms2 = m0 + frac * (hist[1, nxt] - m0)
            transit = (a - p - frac) * dt
        out[O_MS2, i] = ms2
        out[O_TRANSIT, i] = transit
        # --- E3: hydrostatic section densities with Darcy-Weisbach friction ---------------
        vel = q_s / pf[P.P_AREA_RET]
        fr = pf[P.P_FRIC_PER_M] * vel * vel
        g = pf[P.P_G]
        p_c = _valid(v_pcol, q_pcol, i)
        p_m = _valid(v_pmid, q_pmid, i)
        p_u = _valid(v_pup, q_pup, i)
        rho3 = (p_c - p_u) * 1000.0 / ((g + fr) * pf[P.P_DZ_ALL])
        out[O_RHO3, i] = rho3
        out[O_RHO_LO, i] = (p_c - p_m) * 1000.0 / ((g + fr) * pf[P.P_DZ_LO])
        out[O_RHO_UP, i] = (p_m - p_u) * 1000.0 / ((g + fr) * pf[P.P_DZ_UP])
        cv3 = (rho3 - rho_w) / d_sw
        ms3 = rho_s * cv3 * q_s
        out[O_CV3, i] = cv3
        out[O_MS3, i] = ms3
        # --- rolling statistics ------------------------------------------------------------
        tq_a = _valid(v_tqa, q_tqa, i)
        tq_b = _valid(v_tqb, q_tqb, i)
        tq = tq_a + tq_b  # NaN if either fails: a missing pump would fake a torque swing
        meanvar_step(q_ret, 0, pos_a, a_ring, a_cnt, a_mom)
        meanvar_step(rho, 1, pos_a, a_ring, a_cnt, a_mom)
        meanvar_step(tq, 2, pos_a, a_ring, a_cnt, a_mom)
        meanvar_step(q_inj, 3, pos_a, a_ring, a_cnt, a_mom)
        cvf = _ratio_cv(0, a_cnt, a_mom, min_a)
        cvd = _ratio_cv(1, a_cnt, a_mom, min_a)
        cvt = _ratio_cv(2, a_cnt, a_mom, min_a)
        mq, _ = meanvar_get(0, a_cnt, a_mom, min_a)
        mqi, _ = meanvar_get(3, a_cnt, a_mom, min_a)
        ratio = mq / mqi if mqi > 1e-9 else np.nan
        out[O_CVF, i] = cvf
        out[O_CVD, i] = cvd
        out[O_CVT, i] = cvt
        out[O_RATIO, i] = ratio
        # 1 s sums of the three estimates, compared over the same window at each lane step
        if not np.isnan(ms1):
            sf[F_LS1] += ms1
            si[S_LC1] += 1
        if not np.isnan(ms2):
            sf[F_LS2] += ms2
            si[S_LC2] += 1
        if not np.isnan(ms3):
            sf[F_LS3] += ms3
            si[S_LC3] += 1
        # --- grade -------------------------------------------------------------------------
        while k_assay < n_assay and assay_t[k_assay] <= ti:
            k_assay += 1
        if k_assay == 0:
            gr = grade_default[0]
            ug = grade_default[1]
        elif pi[P.I_INTERP] == 1 and k_assay < n_assay:
            t0 = assay_t[k_assay - 1]
            f = (ti - t0) / (assay_t[k_assay] - t0)
            gr = assay_g[k_assay - 1] + f * (assay_g[k_assay] - assay_g[k_assay - 1])
            ug = assay_u[k_assay - 1] + f * (assay_u[k_assay] - assay_u[k_assay - 1])
        else:
            gr = assay_g[k_assay - 1]
            ug = assay_u[k_assay - 1]
        out[O_GRADE, i] = gr
        out[O_UGRADE, i] = ug
        # --- REY rate, its uncertainty and the cumulative total ----------------------------
        gf = gr * 1e-6
        rate = ms1 * gf  # kg/s
        out[O_REY, i] = rate * 3600.0
        out[O_REO, i] = rate * 3600.0 * pf[P.P_REO]
        sens[0] = rate * uq
        sens[1] = rho_s * q_s / d_sw * gf * pf[P.P_URHO_SYS]
        sens[2] = cv * q_s * rho_w / d_sw * gf * pf[P.P_URHO_S]
        sens[3] = rho_s * q_s / d_sw * (1.0 - cv) * gf * pf[P.P_URHO_W]
        sens[4] = ms1 * 1e-6 * ug
        var_r = (rate * pf[P.P_UQ_RAND]) ** 2 + (rho_s * q_s / d_sw * gf * pf[P.P_URHO_RAND]) ** 2
        u_sys2 = 0.0
        for k in range(N_SYS):
            u_sys2 += sens[k] * sens[k]
        out[O_U95_REY, i] = 2.0 * 3600.0 * np.sqrt(var_r + u_sys2)
        valid = not np.isnan(rate)
        if valid:
            if si[S_HAS_LAST] == 1:
                dt_ns = ti - si[S_LAST_T]
                dts = dt_ns * 1e-9
                if dt_ns <= max_gap_ns:
                    sf[F_CUM] += 0.5 * (sf[F_LAST_RATE] + rate) * dts
                    sf[F_ACC_RAND] += 0.5 * (sf[F_LAST_VAR] + var_r) * pf[P.P_TAU] * dts
                    for k in range(N_SYS):
                        acc_sys[k] += 0.5 * (last_sys[k] + sens[k]) * dts
                else:
                    sf[F_GAP] += dts
                    si[S_GAPS] += 1
            si[S_HAS_LAST] = 1
            si[S_LAST_T] = ti
            sf[F_LAST_RATE] = rate
            sf[F_LAST_VAR] = var_r
            for k in range(N_SYS):
                last_sys[k] = sens[k]
        gap = sf[F_GAP]
        open_gap = False
        if not valid and si[S_HAS_LAST] == 1 and ti - si[S_LAST_T] > max_gap_ns:
            gap += (ti - si[S_LAST_T]) * 1e-9
            open_gap = True
        out[O_GAP, i] = gap
        out[O_CUM_REY, i] = sf[F_CUM]
        out[O_CUM_REO, i] = sf[F_CUM] * pf[P.P_REO]
        u_cum2 = sf[F_ACC_RAND]
        for k in range(N_SYS):
            u_cum2 += acc_sys[k] * acc_sys[k]
        out[O_U95_CUM, i] = 2.0 * np.sqrt(u_cum2)
        out[O_U95_CUM_REO, i] = out[O_U95_CUM, i] * pf[P.P_REO]
        oq[Q_YIELD, i] = max(q_q, q_d) if valid else 2
        oq[Q_CUM, i] = 1 if (si[S_GAPS] > 0 or open_gap or si[S_HAS_LAST] == 0) else 0
        # --- stability ---------------------------------------------------------------------
        margin = vel / pf[P.P_VC]
        out[O_VEL, i] = vel
        out[O_MARGIN, i] = margin
        p_d = _valid(v_pdis, q_pdis, i)
        osc_step(
            p_d,
            pi[P.I_DECIM],
            pi[P.I_HOP],
            dt,
            pf[P.P_F_LO],
            pf[P.P_F_HI],
            pi[P.I_MAX_INV],
            o_ring,
            o_si,
            o_sf,
            tab,
            rev,
            win,
            o_y,
            o_z,
        )
        out[O_OSC_F, i] = o_sf[OF_FREQ]
        out[O_OSC_SHARE, i] = o_sf[OF_SHARE]
        out[O_OSC_AMP, i] = o_sf[OF_AMP]
        osc_sev = o_sf[OF_SHARE] * min(o_sf[OF_AMP] / pf[P.P_OSC_AMP_BAD], 1.0)
        out[O_OSC_SEV, i] = osc_sev
        # 1 Hz lane: block means of discharge pressure and injection flow, exact regression
        if not np.isnan(p_d):
            sf[F_LANE_SP] += p_d
            si[S_LANE_CP] += 1
        if not np.isnan(q_inj):
            sf[F_LANE_SQ] += q_inj
            si[S_LANE_CQ] += 1
        pos_lane += 1
        if pos_lane == lane_len:
            pos_lane = 0
            ln = si[S_LANE_N]
            lane[0, ln % w_s] = sf[F_LANE_SP] / si[S_LANE_CP] if si[S_LANE_CP] > 0 else np.nan
            lane[1, ln % w_s] = sf[F_LANE_SQ] / si[S_LANE_CQ] if si[S_LANE_CQ] > 0 else np.nan
            sf[F_LANE_SP] = 0.0
            sf[F_LANE_SQ] = 0.0
            si[S_LANE_CP] = 0
            si[S_LANE_CQ] = 0
            ln += 1
            si[S_LANE_N] = ln
            step_s = lane_len * dt
            if ln >= w_s:
                sf[F_SLOPE_P] = _slope(lane, 0, ln % w_s, w_s // 2) / step_s
                sf[F_SLOPE_Q] = _slope(lane, 1, ln % w_s, w_s // 2) / step_s
            pb = (ln - 1) % w_b
            for c3 in range(3):
                cnt_l = si[S_LC1 + c3]
                mean_l = sf[F_LS1 + c3] / cnt_l if cnt_l > 0 else np.nan
                meanvar_step(mean_l, c3, pb, b_ring, b_cnt, b_mom)
                sf[F_LS1 + c3] = 0.0
                si[S_LC1 + c3] = 0
            m1, _ = meanvar_get(0, b_cnt, b_mom, min_b)
            m2, _ = meanvar_get(1, b_cnt, b_mom, min_b)
            m3, _ = meanvar_get(2, b_cnt, b_mom, min_b)
            dms_drho = rho_s * mq / 3600.0 / d_sw  # kg/s per kg/m3
            u1_rho2 = (dms_drho * pf[P.P_URHO_SYS]) ** 2
            z = np.nan
            if not np.isnan(m1) and not np.isnan(m3):
                u3 = dms_drho * np.sqrt(2.0) * pf[P.P_UP_KPA] * 1000.0 / (g * pf[P.P_DZ_ALL])
                z = abs(m3 - m1) / np.sqrt(u1_rho2 + u3 * u3)  # flow error is common: left out
            if not np.isnan(m1) and not np.isnan(m2):
                u_qmud2 = (uq * mq) ** 2 + (uq * mqi) ** 2
                u2_2 = (rho_s * phi_b / 3600.0) ** 2 * u_qmud2
                u2_2 += (m2 * pf[P.P_URHO_B] / (phi_b * d_sw)) ** 2
                z2 = abs(m2 - m1) / np.sqrt(u1_rho2 + (m1 * uq) ** 2 + u2_2)
                z = z2 if np.isnan(z) else max(z, z2)
            sf[F_Z] = z
        z = sf[F_Z]
        out[O_Z, i] = z
        slope_p = sf[F_SLOPE_P]
        slope_q = sf[F_SLOPE_Q]
        plug = np.nan
        if not np.isnan(slope_p) and not np.isnan(slope_q):
            plug = slope_p if slope_q <= pf[P.P_INJ_HOLD] else 0.0
        out[O_SLOPE_P, i] = slope_p if si[S_LANE_N] >= w_s else np.nan
        out[O_SLOPE_Q, i] = slope_q if si[S_LANE_N] >= w_s else np.nan
        out[O_PLUG, i] = plug if si[S_LANE_N] >= w_s else np.nan
        # stability index: the weakest mechanism decides (any one of them can stop the lift)
        stab = np.inf
        c = min(max((margin - 1.0) / (pf[P.P_MARGIN_OK] - 1.0), 0.0), 1.0)
        stab = min(stab, c) if not np.isnan(c) else stab
        c = _component(cvf, pf[P.P_CVF_BAD])
        stab = min(stab, c) if not np.isnan(c) else stab
        c = _component(cvd, pf[P.P_CVD_BAD])
        stab = min(stab, c) if not np.isnan(c) else stab
        c = _component(cvt, pf[P.P_CVT_BAD])
        stab = min(stab, c) if not np.isnan(c) else stab
        c = 1.0 - osc_sev
        stab = min(stab, c) if not np.isnan(c) else stab
        c = _component(out[O_PLUG, i], pf[P.P_SLOPE_BAD])
        stab = min(stab, c) if not np.isnan(c) else stab
        c = _component(abs(ratio - pf[P.P_RATIO_NOM]), pf[P.P_RATIO_TOL])
        stab = min(stab, c) if not np.isnan(c) else stab
        stab = np.nan if np.isinf(stab) else stab
        out[O_STAB, i] = stab
        q_in = max(max(q_q, q_qinj[i]), max(q_d, q_pdis[i]))
        if np.isnan(stab):
            oq[Q_STAB, i] = 2
        elif q_in > 0 or np.isnan(tq):
            oq[Q_STAB, i] = 1
        else:
            oq[Q_STAB, i] = 0
        # --- alarms ------------------------------------------------------------------------
        av0 = margin
        b = 0
        for k in range(n_alarm):
            if k == 0:
                av = av0
            elif k == 1:
                av = osc_sev
            elif k == 2:
                av = out[O_PLUG, i]
            elif k == 3:
                av = cvt
            elif k == 4:
                av = ratio
            else:
                av = z
            alarm_step(
                ti,
                av,
                alarm_tab[k, 0],
                alarm_tab[k, 1],
                int(alarm_tab[k, 2]),
                k,
                al_active,
                al_pending,
            )
            b |= al_active[k] << k
        bits[i] = b
        si[S_N] = a + 1
        # ring positions advance together with the absolute index (no modulo in the loop)
        pos_h = pos_h + 1 if pos_h + 1 < w_h else 0
        pos_a = pos_a + 1 if pos_a + 1 < w_a else 0
        pos_hist = pos_hist + 1 if pos_hist + 1 < h_len else 0
