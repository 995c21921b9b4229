"""The chain kernel: one grid-rate pass over all roles, carrying every state array explicitly.

Parameters arrive by name (:class:`dsp.params.KernelParams`), state by name
(:class:`ChainState`: arrays, and the ``SCALARS`` record of scalars); input rows ``R_*``, output
rows ``O_*`` and quality rows ``Q_*`` are laid out with :mod:`dsp.chain`, which allocates.
All state is updated in place; window positions derive from the absolute grid index
``grid_n`` only, which is what makes blocks of any size equal one pass.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numba import njit
from numpy.typing import NDArray

from . import params as P
from .alarms import AlarmLimits, AlarmState, alarm_step
from .filters import (
    HampelRows,
    Limits,
    hampel_step,
    meanvar_get,
    meanvar_step,
    meanvar_step_call,
    wrap,
)
from .quality import BAD, GOOD, UNCERTAIN
from .spectrum import OF_AMP, OF_FREQ, OF_SHARE, OscParams, OscState, osc_step
from .unmanaged import borrow

Rows = tuple[NDArray[np.float64], ...]  # one contiguous array per role: no stacking copy
QRows = tuple[NDArray[np.uint8], ...]
Scalars = Any  # one SCALARS record (a numba Record): fields read and written by attribute

# input rows of vals / qual, by role name (dsp.params.ROLE_TABLE)
R_QRET = P.ROLES.index("q_return_m3_h")
R_QINJ = P.ROLES.index("q_injection_m3_h")
R_RHO = P.ROLES.index("rho_mix_kg_m3")
R_PCOL = P.ROLES.index("p_collector_kpa")
R_PMID = P.ROLES.index("p_mid_kpa")
R_PUP = P.ROLES.index("p_upper_kpa")
R_PDIS = P.ROLES.index("p_discharge_bar")
R_PRET = P.ROLES.index("p_return_deck_bar")
R_TQA = P.ROLES.index("torque_a_pct")
R_TQB = P.ROLES.index("torque_b_pct")

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
    "rho_w_kg_m3",
    "rho_zero_kg_m3",
    "u_rho_zero_kg_m3",
    "referenced",
    "solids_t_h",
    "cum_solids_kg",
    "u95_cum_solids_kg",
    "inventory_kg",
    "plug_expected_bar_s",
    "flow_imbalance_z",
    "cv_e3_delayed",
    "cv_e1_window",
    "disagreement_e3_z",
    "ref_cmd_state",
    "rho_zero_age_s",
    "shaft_power_kw",
    "cum_energy_kwh",
    "specific_energy_kwh_t",
    "specific_energy_rate_kwh_t",
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
    O_RHOW,
    O_ZERO,
    O_UZERO,
    O_REF,
    O_SOL_TH,
    O_CUM_SOL,
    O_U95_CUM_SOL,
    O_INV,
    O_PLUG_EXP,
    O_FIZ,
    O_CV3_DEL,
    O_CV1_WIN,
    O_Z3,
    O_REF_CMD,
    O_ZERO_AGE,
    O_POWER,
    O_CUM_E,
    O_SPEC_E,
    O_SPEC_RATE,
    O_N,
) = range(57)
QUALITY_FIELDS = ("q_yield", "q_cumulative", "q_stability")
(Q_YIELD, Q_CUM, Q_STAB, Q_N) = range(4)

#: The kernel's scalar state, one record (``ChainState.scalars[0]``) updated in place by name.
SCALARS = np.dtype(
    [
        ("grid_n", np.int64),
        ("has_last", np.int64),
        ("last_t_ns", np.int64),
        ("gaps", np.int64),
        ("e2_ptr", np.int64),
        ("alarm_bits", np.int64),
        ("lane_n", np.int64),
        ("lane_n_pdis", np.int64),
        ("lane_n_qinj", np.int64),
        ("e3_ptr", np.int64),
        ("e1w_ptr", np.int64),
        ("lane_n_zero", np.int64),
        ("lane_n_qret", np.int64),
        ("zero_streak", np.int64),
        ("zero_run", np.int64),
        ("zero_ok", np.int64),
        ("grade_id", np.int64),
        ("stop_t_ns", np.int64),
        ("lane_n_expl", np.int64),
        ("batch_n", np.int64),
        ("cum_rey", np.float64),
        ("gap_s", np.float64),
        ("last_rate", np.float64),
        ("volume", np.float64),
        ("q_hold", np.float64),
        ("acc_rand", np.float64),
        ("last_var", np.float64),
        ("lane_sum_pdis", np.float64),
        ("lane_sum_qinj", np.float64),
        ("slope_pdis", np.float64),
        ("slope_qinj", np.float64),
        ("z", np.float64),
        ("acc_rand_s", np.float64),
        ("last_var_s", np.float64),
        ("cum_solids", np.float64),
        ("last_rate_s", np.float64),
        ("inventory", np.float64),
        ("slope_expl", np.float64),
        ("lane_sum_zero", np.float64),
        ("lane_sum_qret", np.float64),
        ("lane_sum_expl", np.float64),
        ("zero", np.float64),
        ("u_zero", np.float64),
        ("batch_sum_rey", np.float64),
        ("batch_sum_s", np.float64),
        ("batch_prev_rey", np.float64),
        ("batch_prev_s", np.float64),
        ("batch_prev2_rey", np.float64),
        ("batch_prev2_s", np.float64),
        ("acc_d1_rey", np.float64),
        ("acc_d1_s", np.float64),
        ("acc_emp_rey", np.float64),
        ("acc_emp_s", np.float64),
        ("cum_cq", np.float64),
        ("cum_vq", np.float64),
        ("z3", np.float64),
        ("grade_done", np.float64),
        # the operator-commanded seawater reference (dsp.params.REF_*) and the reference's age
        ("ref_state", np.int64),
        ("ref_last", np.int64),
        ("ref_t1", np.int64),
        ("ref_lanes", np.int64),
        ("ref_n", np.int64),
        ("ref_mud", np.int64),
        ("ref_far", np.int64),
        ("zero_t_ns", np.int64),
        # the drives' energy over the points where power and dry solids are both valid, and
        # the dry solids over those same points (the specific energy's denominator)
        ("cum_energy", np.float64),
        ("cum_solids_e", np.float64),
        ("last_pw", np.float64),
        ("energy_n", np.int64),
    ],
    align=True,  # numba treats a packed record as unaligned: every access slower
)
#: Scalars that start as NaN ("not estimated yet"); the rest start at 0 except grade_id (-1,
#: no assay) and stop_t_ns (long ago: not stopped).
SCALARS_NAN = (
    "slope_pdis",
    "slope_qinj",
    "slope_expl",
    "z",
    "z3",
    "batch_prev_rey",
    "batch_prev_s",
    "batch_prev2_rey",
    "batch_prev2_s",
    "last_pw",
)
N_COMPARED = 4  # 1 s sums compared at each lane step: E1, E2, E3 delayed, E1 over E3's window
# systematic sources: flow calibration, density calibration (or the seawater reference),
# rho_s, rho_w, grade, slip. acc_sys/last_sys hold REY [0, N_SYS) then dry solids.
# The grade's error is one per assay (lab error and the grade's wander until the next one):
# linear within an assay's period, periods add in quadrature (F_G_DONE).
I_GRADE = 4
# alarms suppressed by design while the lift is stopped (ALARM_NAMES order: all of them;
# the estimators are not compared across a stop either)
N_STOP_SUPPRESSED = 6
N_SYS = 6
# history rows: integrated volume, E2 intake rate, Q_return, E3 section Cv, cumulative
# Cv * dV of E1 and the volume it covers (for E1's volume-weighted past-window mean)
(H_VOL, H_MS2, H_QRET, H_CV3, H_CQ, H_VQ, H_N) = range(7)
# 1 s lane rows: discharge pressure, injection flow, inventory head (bar), zero samples
(L_PDIS, L_QINJ, L_INV, L_N) = range(4)


@njit(cache=True, nogil=True, inline="always")
def _valid(v: NDArray[np.float64], q: NDArray[np.uint8], i: int) -> float:
    x = v[i]
    return x if q[i] < BAD and np.isfinite(x) else np.nan


@njit(cache=True, nogil=True, inline="always")
def _ratio_cv(c: int, cnt: NDArray[np.int64], mom: NDArray[np.float64], min_count: int) -> float:
    m, var = meanvar_get(c, cnt, mom, min_count)
    if np.isnan(m) or abs(m) < 1e-12:
        return np.nan
    return np.sqrt(var) / abs(m)


@njit(cache=True, nogil=True)
def _sxx(w: int) -> float:
    """``sum((j - mean(j))**2)`` over a whole ring of ``w``, as :func:`_slopes` sums it when no
    value is missing (computed once per call: the same operations give the same bits)."""
    sx = 0
    for j in range(w):
        sx += j
    mx = float(sx) / w
    sxx = 0.0
    for j in range(w):
        sxx += (j - mx) * (j - mx)
    return sxx


@njit(cache=True, nogil=True, inline="always")
def _run(part: int, head: int, w: int) -> tuple[int, int, int]:
    """A ring read in time order as two straight runs: (time index of the run's first value,
    its slot, its length) for the oldest slot on (part 0), then from slot 0 (part 1)."""
    return (0, head, w - head) if part == 0 else (w - head, 0, head)


@njit(cache=True, nogil=True)
def _slopes(
    ring: NDArray[np.float64], c1: int, c2: int, head: int, min_count: int, sxx_full: float
) -> tuple[float, float]:
    """Least-squares slopes per lane step of rows ``c1`` and ``c2`` over the ring in time order,
    NaN-skipping; ``sxx_full`` is :func:`_sxx` of the ring's width. (The kernel computes the
    same bits with :func:`_slopes4`, four lane steps at once; this is their reference.)

    Each sum is a chain of dependent additions in time order (which fixes its bits); the two
    rows' chains run side by side in one loop, the ring in two straight runs (oldest slot on,
    then from slot 0). A missing value adds +0.0 where the sum skipped it: the same bits, as a
    sum that starts at +0.0 never becomes -0.0. The abscissa's sums are integers (exact), or
    the whole ring's (``sxx_full``) when no value is missing."""
    w = ring.shape[1]
    k1 = k2 = sx1 = sx2 = 0  # valid values and the sums of their abscissae (exact)
    sy1 = sy2 = 0.0
    for part in range(2):
        j0, s0, m = _run(part, head, w)
        for q in range(m):
            j, v1, v2 = j0 + q, ring[c1, s0 + q], ring[c2, s0 + q]
            ok1, ok2 = not np.isnan(v1), not np.isnan(v2)
            k1, sx1, sy1 = k1 + ok1, sx1 + (j if ok1 else 0), sy1 + (v1 if ok1 else 0.0)
            k2, sx2, sy2 = k2 + ok2, sx2 + (j if ok2 else 0), sy2 + (v2 if ok2 else 0.0)
    ok1 = k1 >= min_count
    ok2 = k2 >= min_count
    if not ok1 and not ok2:
        return np.nan, np.nan
    mx1 = float(sx1) / k1 if ok1 else 0.0
    mx2 = float(sx2) / k2 if ok2 else 0.0
    my1 = sy1 / k1 if ok1 else 0.0
    my2 = sy2 / k2 if ok2 else 0.0
    full = k1 == w and k2 == w  # nothing missing: the abscissa's sum is the whole ring's
    sxy1 = sxy2 = sxx1 = sxx2 = 0.0
    for part in range(2):
        j0, s0, m = _run(part, head, w)
        for q in range(m):
            j, v1, v2 = j0 + q, ring[c1, s0 + q], ring[c2, s0 + q]
            ok1, ok2 = not np.isnan(v1), not np.isnan(v2)
            sxy1 += (j - mx1) * (v1 - my1) if ok1 else 0.0
            sxy2 += (j - mx2) * (v2 - my2) if ok2 else 0.0
            if not full:
                sxx1 += (j - mx1) * (j - mx1) if ok1 else 0.0
                sxx2 += (j - mx2) * (j - mx2) if ok2 else 0.0
    if full:
        sxx1 = sxx_full
        sxx2 = sxx_full
    r1 = sxy1 / sxx1 if k1 >= min_count and sxx1 > 0.0 else np.nan
    r2 = sxy2 / sxx2 if k2 >= min_count and sxx2 > 0.0 else np.nan
    return r1, r2


class Lin(NamedTuple):
    """One ring row laid out in time order for a block's lane steps: the ring's values before
    the block, then each lane step's new value, three NaN slots after (so four windows can
    always be read at once). ``xc`` is the row with missing values as +0.0, ``ok`` 1 where a
    value is there, ``pk``/``pj`` exact prefix sums of ``ok`` and of ``index * ok``."""

    xc: NDArray[np.float64]
    ok: NDArray[np.uint8]
    pk: NDArray[np.int64]
    pj: NDArray[np.int64]


@njit(cache=True, nogil=True)
def _lin(x: NDArray[np.float64]) -> Lin:
    """:class:`Lin` of a row in time order (NaN = missing)."""
    n = x.shape[0]
    xc = np.empty(n)
    ok = np.empty(n, np.uint8)
    pk = np.empty(n + 1, np.int64)
    pj = np.empty(n + 1, np.int64)
    k = 0
    sj = 0
    pk[0] = 0
    pj[0] = 0
    for q in range(n):
        v = x[q]
        good = not np.isnan(v)
        xc[q] = v if good else 0.0
        ok[q] = good
        k += good
        sj += q if good else 0
        pk[q + 1] = k
        pj[q + 1] = sj
    return Lin(xc, ok, pk, pj)


@njit(cache=True, nogil=True)
def _slopes4(
    r: Lin, e0: int, w: int, min_count: int, sxx_full: float, res: NDArray[np.float64]
) -> None:
    """:func:`_slopes` of one row for the four windows of width ``w`` ending at ``e0`` ..
    ``e0 + 3`` of a :class:`Lin` row, into ``res[:4]``, with the same bits.

    The windows' chains of dependent additions (one per window, in time order, as
    :func:`_slopes` sums them) run side by side: four at once instead of one after the other.
    Counts and abscissa sums come exactly from the prefix sums; a missing value adds +0.0."""
    xc, ok, pk, pj = r
    b = e0 - w + 1
    k0 = pk[b + w] - pk[b]
    k1 = pk[b + 1 + w] - pk[b + 1]
    k2 = pk[b + 2 + w] - pk[b + 2]
    k3 = pk[b + 3 + w] - pk[b + 3]
    sx0 = pj[b + w] - pj[b] - b * k0
    sx1 = pj[b + 1 + w] - pj[b + 1] - (b + 1) * k1
    sx2 = pj[b + 2 + w] - pj[b + 2] - (b + 2) * k2
    sx3 = pj[b + 3 + w] - pj[b + 3] - (b + 3) * k3
    # views from the first window's start: indices from 0 up need no negative-index fix-up
    x = xc[b:]
    m = ok[b:]
    sy0 = sy1 = sy2 = sy3 = 0.0
    for j in range(w):
        sy0 += x[j]
        sy1 += x[j + 1]
        sy2 += x[j + 2]
        sy3 += x[j + 3]
    mx0 = float(sx0) / k0 if k0 >= min_count else 0.0
    mx1 = float(sx1) / k1 if k1 >= min_count else 0.0
    mx2 = float(sx2) / k2 if k2 >= min_count else 0.0
    mx3 = float(sx3) / k3 if k3 >= min_count else 0.0
    my0 = sy0 / k0 if k0 >= min_count else 0.0
    my1 = sy1 / k1 if k1 >= min_count else 0.0
    my2 = sy2 / k2 if k2 >= min_count else 0.0
    my3 = sy3 / k3 if k3 >= min_count else 0.0
    sxy0 = sxy1 = sxy2 = sxy3 = 0.0
    sxx0 = sxx1 = sxx2 = sxx3 = sxx_full
    if k0 == w and k1 == w and k2 == w and k3 == w:  # nothing missing (the usual case)
        for j in range(w):
            sxy0 += (j - mx0) * (x[j] - my0)
            sxy1 += (j - mx1) * (x[j + 1] - my1)
            sxy2 += (j - mx2) * (x[j + 2] - my2)
            sxy3 += (j - mx3) * (x[j + 3] - my3)
    else:
        sxx0 = sxx1 = sxx2 = sxx3 = 0.0
        for j in range(w):
            # each term computed whether or not the value is there, then selected: no branches
            t0 = (j - mx0) * (x[j] - my0)
            t1 = (j - mx1) * (x[j + 1] - my1)
            t2 = (j - mx2) * (x[j + 2] - my2)
            t3 = (j - mx3) * (x[j + 3] - my3)
            sxy0 += t0 if m[j] else 0.0
            sxy1 += t1 if m[j + 1] else 0.0
            sxy2 += t2 if m[j + 2] else 0.0
            sxy3 += t3 if m[j + 3] else 0.0
            # something missing: the abscissae's sums too
            sxx0 += (j - mx0) * (j - mx0) if m[j] else 0.0
            sxx1 += (j - mx1) * (j - mx1) if m[j + 1] else 0.0
            sxx2 += (j - mx2) * (j - mx2) if m[j + 2] else 0.0
            sxx3 += (j - mx3) * (j - mx3) if m[j + 3] else 0.0
        sxx0 = sxx_full if k0 == w else sxx0
        sxx1 = sxx_full if k1 == w else sxx1
        sxx2 = sxx_full if k2 == w else sxx2
        sxx3 = sxx_full if k3 == w else sxx3
    res[0] = sxy0 / sxx0 if k0 >= min_count and sxx0 > 0.0 else np.nan
    res[1] = sxy1 / sxx1 if k1 >= min_count and sxx1 > 0.0 else np.nan
    res[2] = sxy2 / sxx2 if k2 >= min_count and sxx2 > 0.0 else np.nan
    res[3] = sxy3 / sxx3 if k3 >= min_count and sxx3 > 0.0 else np.nan


@njit(cache=True, nogil=True)
def _time_order(ring: NDArray[np.float64], row: int, head: int, n_new: int) -> NDArray[np.float64]:
    """Row ``row`` of a ring in time order from ``head`` (its oldest slot), then ``n_new`` + 3
    NaN slots for the block's lane steps to fill."""
    w = ring.shape[1]
    x = np.full(w + n_new + 3, np.nan)
    for j in range(w):
        x[j] = ring[row, wrap(head + j, w)]
    return x


@njit(cache=True, nogil=True, inline="always")
def _component(x: float, bad: float) -> float:
    """1 at x = 0 falling linearly to 0 at x = bad."""
    return 1.0 - min(max(x / bad, 0.0), 1.0)


@njit(cache=True, nogil=True)
def _walk(
    hist: NDArray[np.float64], p: int, a: int, pos: int, target: float
) -> tuple[int, int, float]:
    """Advance history pointer ``p`` (absolute index) to the last point with volume <= target.

    ``pos`` is the ring slot of ``a``. Returns (pointer, its ring slot, fraction towards the
    next point); fraction NaN when the history does not reach back to ``target`` yet. Volumes
    only grow, so pointers only move forward.
    """
    h_len = hist.shape[1]
    if p < a - h_len + 1:  # the transit outgrew the history: restart at its oldest end
        p = a - h_len + 1
    if p < 0:
        p = 0
    # ring slots of p and p + 1 (p is within one ring of a), advanced without a division
    s0 = pos - (a - p)
    s0 = s0 + h_len if s0 < 0 else s0
    s1 = wrap(s0 + 1, h_len)
    while p + 1 <= a and hist[H_VOL, s1] <= target:
        p += 1
        s0 = s1
        s1 = wrap(s1 + 1, h_len)
    v0 = hist[H_VOL, s0]
    if p + 1 > a or not v0 <= target:
        return p, s0, np.nan
    v1 = hist[H_VOL, s1]
    return p, s0, (target - v0) / (v1 - v0) if v1 > v0 else 0.0


@njit(cache=True, nogil=True, inline="always")
def _at(hist: NDArray[np.float64], row: int, s0: int, frac: float) -> float:
    """Row ``row`` interpolated ``frac`` of the way from ring slot ``s0`` to the next."""
    x0 = hist[row, s0]
    return x0 + frac * (hist[row, wrap(s0 + 1, hist.shape[1])] - x0)


@njit(cache=True, nogil=True)
def _batch_stats(
    ring: NDArray[np.float64], head: int, n: int, bl: int, nb: int
) -> tuple[float, float, float]:
    """Mean, standard error and standard deviation of ``n`` ring values from ``head`` on.

    The standard error comes from ``nb`` batch means of ``bl`` values from the oldest on (so
    correlated noise is not overconfident), never below the white-noise one of all ``n``.
    """
    w = ring.shape[0]
    m = 0.0
    for j in range(n):
        m += ring[(head + j) % w]
    m /= n
    var = 0.0
    for j in range(n):
        d = ring[(head + j) % w] - m
        var += d * d
    var /= n - 1
    vb = 0.0
    for b in range(nb):
        mb = 0.0
        for j in range(bl):
            mb += ring[(head + b * bl + j) % w]
        mb /= bl
        vb += (mb - m) * (mb - m)
    vb /= nb - 1
    return m, np.sqrt(max(vb / nb, var / n)), np.sqrt(var)


class ChainState(NamedTuple):
    """Everything the chain remembers between blocks (named arrays, mutated in place)."""

    scalars: NDArray[np.void]  # one SCALARS record
    cmp_sum: NDArray[np.float64]  # [N_COMPARED] 1 s sums of the compared estimates
    cmp_cnt: NDArray[np.int64]
    acc_sys: NDArray[np.float64]
    last_sys: NDArray[np.float64]
    h_ring: NDArray[np.float64]
    h_srt: NDArray[np.float64]
    h_cnt: NDArray[np.int64]
    a_ring: NDArray[np.float64]
    a_cnt: NDArray[np.int64]
    a_mom: NDArray[np.float64]
    b_ring: NDArray[np.float64]
    b_cnt: NDArray[np.int64]
    b_mom: NDArray[np.float64]
    hist: NDArray[np.float64]
    lane: NDArray[np.float64]
    z_ring: NDArray[np.float64]
    o_ring: NDArray[np.float64]
    o_si: NDArray[np.int64]
    o_sf: NDArray[np.float64]
    tab: NDArray[np.complex128]
    rev: NDArray[np.int64]
    win: NDArray[np.float64]
    o_y: NDArray[np.float64]
    o_z: NDArray[np.complex128]
    al_active: NDArray[np.uint8]
    al_pending: NDArray[np.int64]
    assay_t: NDArray[np.int64]
    assay_g: NDArray[np.float64]
    assay_u: NDArray[np.float64]
    rejected: NDArray[np.int64]  # per role (ROLES + OPTIONAL_ROLES): absurd GOOD values made BAD
    ref_t: NDArray[np.int64]  # commanded seawater references: start, end (ns, by start)
    ref_e: NDArray[np.int64]
    r_ring: NDArray[np.float64]  # the commanded window's valid (reading - TEOS-10) seconds

    def copy(self) -> ChainState:
        return ChainState._make(np.array(a, copy=True) for a in self)


class Compare(NamedTuple):
    """The estimator comparison's arrays (1 s sums, then their rolling window), built once
    per call: only the once-a-second lane step takes them."""

    b_ring: NDArray[np.float64]
    b_cnt: NDArray[np.int64]
    b_mom: NDArray[np.float64]
    cmp_sum: NDArray[np.float64]
    cmp_cnt: NDArray[np.int64]


class RefIn(NamedTuple):
    """The commanded seawater references (start, end ns) and the window's collected seconds."""

    ref_t: NDArray[np.int64]
    ref_e: NDArray[np.int64]
    r_ring: NDArray[np.float64]


class LaneIn(NamedTuple):
    """What a lane step reads of the current grid point (floats: free to pass)."""

    mq: float  # rolling mean return flow
    mqi: float  # rolling mean injection flow
    u_dens: float  # u of the density
    u_rw: float  # u of seawater density
    rho_w: float
    fr: float  # friction gradient


# -- the named steps of one grid point, in the order chain_kernel runs them ------------------
# Each is inlined into the loop (numba IR inlining): the arithmetic and its order are the
# one-function kernel's, so results stay bit-identical.
_step = njit(cache=True, nogil=True, inline="always", error_model="numpy")


@njit(cache=True, nogil=True, error_model="numpy")
def _despike(
    kp: P.KernelParams,
    rows: HampelRows,
    v: Rows,
    q: QRows,
    a0: int,
    clean: NDArray[np.float64],
    replaced: NDArray[np.uint8],
) -> None:
    """Screened return flow, injection flow and density (``v``, ``q``: these three roles)
    through the Hampel filter, and whether each was replaced (the return flow's and density's
    quality drops to UNCERTAIN), for a block whose first point has grid index ``a0``.

    A column pass per role before the block's points (the filter reads its inputs only): one
    inlined filter step in a tight loop instead of three in the kernel's."""
    rows, v, q, clean, replaced = (
        borrow(rows),
        borrow(v),
        borrow(q),
        borrow(clean),
        borrow(replaced),
    )
    w = rows.ring.shape[1]
    half = w // 2 + 1
    for c in range(3):
        floor = kp.hampel_floor_rho if c == 2 else kp.hampel_floor_flow
        lim = Limits(kp.hampel_n_sigma, floor, half)
        vc = v[c]
        qc = q[c]
        pos = a0 % w
        for i in range(vc.shape[0]):
            x, rep = hampel_step(_valid(vc, qc, i), c, pos, lim, rows)
            clean[c, i] = x
            replaced[c, i] = rep
            pos = pos + 1 if pos + 1 < w else 0


@_step
def _stopped(kp: P.KernelParams, sc: Scalars, ti: int, q_inj: float) -> bool:
    """A planned stop (and a holdoff after the restart): no comparisons, no flow alarms."""
    if not np.isnan(q_inj) and q_inj < kp.stop_flow_m3_h:
        sc.stop_t_ns = ti
    return ti - sc.stop_t_ns < kp.stop_holdoff_s * 1e9


@_step
def _e1(
    kp: P.KernelParams, rho: float, rho_w: float, q_ret: float
) -> tuple[float, float, float, float, float, float]:
    """E1: in-situ Cv from density, delivered Cv after slip, solids mass rate (kg/s).

    Cv is not clipped at 0: in seawater the noise is symmetric about Cv = 0 and cutting its
    negative half off integrates a positive bias (~0.3 kg/m3 at 0.7 kg/m3 noise, +0.1 % of a
    day with ~2 h of seawater at the deck). Only readings further below seawater than the
    seawater reference accepts (``zero_max_kg_m3``) are not seawater with noise."""
    rho_s = kp.rho_s
    cv_lo = -kp.zero_max_kg_m3 / (rho_s - rho_w)
    cv_in = min(max((rho - rho_w) / (rho_s - rho_w), cv_lo), kp.cv_max)  # NaN stays NaN
    q_s = q_ret / 3600.0
    vel = q_s / kp.area_return_m2
    slip_f = 1.0
    if kp.slip_m_s > 0.0 and vel > 0.0:
        slip_f = max(1.0 - (1.0 - cv_in) * kp.slip_m_s / vel, 0.0)
    cv = cv_in * slip_f
    ms1 = rho_s * cv * q_s
    return cv_in, q_s, vel, slip_f, cv, ms1


@_step
def _e2(
    kp: P.KernelParams,
    sc: Scalars,
    hist: NDArray[np.float64],
    pos: int,
    a: int,
    q_ret: float,
    q_inj: float,
    cv_in: float,
) -> tuple[float, float, float, float]:
    """E2: intake now, read back one return-leg volume ago, scaled by Q(t)/Q(t-tau).

    Also records this point in the transit history. Returns (pumped volume, intake rate now,
    E2, transit s)."""
    dt = kp.dt_s
    if not np.isnan(q_ret):
        sc.q_hold = max(q_ret, 0.0)
    vol = sc.volume + sc.q_hold * dt / 3600.0
    sc.volume = vol
    ms_in = kp.rho_s * kp.phi_b * (q_ret - q_inj) / 3600.0
    hist[H_VOL, pos] = vol
    hist[H_MS2, pos] = ms_in
    hist[H_QRET, pos] = q_ret
    if not np.isnan(cv_in) and not np.isnan(q_ret):
        sc.cum_cq += cv_in * q_ret * dt / 3600.0
        sc.cum_vq += q_ret * dt / 3600.0
    hist[H_CQ, pos] = sc.cum_cq
    hist[H_VQ, pos] = sc.cum_vq
    p, s_p, frac = _walk(hist, sc.e2_ptr, a, pos, vol - kp.leg_volume_m3)
    sc.e2_ptr = p
    ms2 = np.nan
    transit = np.nan
    if not np.isnan(frac):
        q_then = _at(hist, H_QRET, s_p, frac)
        # the flow ratio is meaningless across a stop (the same solids, no flow)
        ratio_q = q_ret / q_then if q_then >= kp.stop_flow_m3_h else np.nan
        ms2 = _at(hist, H_MS2, s_p, frac) * ratio_q
        transit = (a - p - frac) * dt
    return vol, ms_in, ms2, transit


@_step
def _friction(kp: P.KernelParams, ft: NDArray[np.float64], vel: float) -> float:
    """Friction gradient per unit density (m/s2): Darcy factor from the table at ``vel``."""
    fv = min(abs(vel) / kp.friction_dv_m_s, ft.shape[0] - 1.000001) if not np.isnan(vel) else 0.0
    j0 = int(fv)
    f_d = ft[j0] + (fv - j0) * (ft[j0 + 1] - ft[j0])
    return f_d / (2.0 * kp.d_return_m) * vel * vel


@_step
def _e3(
    kp: P.KernelParams,
    sc: Scalars,
    hist: NDArray[np.float64],
    pos: int,
    a: int,
    vol: float,
    fr: float,
    p_c: float,
    p_m: float,
    p_u: float,
    q_s: float,
    out: NDArray[np.float64],
    i: int,
) -> tuple[float, float]:
    """E3: hydrostatic section densities and Cv, with TEOS-10 water at the measured pressure.

    Returns E3 one collector transit ago and E1's volume-weighted mean over the section's
    volume since then (the two the comparison lane sets side by side)."""
    g = kp.g
    rho_s = kp.rho_s
    rho3 = (p_c - p_u) * 1000.0 / ((g + fr) * kp.dz_section_m)
    out[O_RHO3, i] = rho3
    out[O_RHO_LO, i] = (p_c - p_m) * 1000.0 / ((g + fr) * kp.dz_lower_m)
    out[O_RHO_UP, i] = (p_m - p_u) * 1000.0 / ((g + fr) * kp.dz_upper_m)
    # the section's water at the pressure measured there (the column is heavier than
    # seawater and friction adds more): trapezoid of the transmitters' excess pressure
    e_c = p_c - kp.p_sea_collector_kpa
    e_m = p_m - kp.p_sea_mid_kpa
    e_u = p_u - kp.p_sea_upper_kpa
    if np.isnan(e_m):
        e_sec = 0.5 * (e_c + e_u)
    else:
        e_sec = (
            0.5 * (e_u + e_m) * kp.dz_upper_m + 0.5 * (e_m + e_c) * kp.dz_lower_m
        ) / kp.dz_section_m
    w3 = kp.rho_w_section + kp.kappa * e_sec
    cv3 = (rho3 - w3) / (rho_s - w3)
    out[O_CV3, i] = cv3
    out[O_MS3, i] = rho_s * cv3 * q_s
    hist[H_CV3, pos] = cv3
    # E3 is the mud that passes the deck over the section's transit: E3 one collector
    # transit ago against E1's volume-weighted mean over the section's volume since then
    cv3_del = np.nan
    cv1_win = np.nan
    p3, s3, f3 = _walk(hist, sc.e3_ptr, a, pos, vol - kp.volume_collector_m3)
    sc.e3_ptr = p3
    pw, sw, fw = _walk(hist, sc.e1w_ptr, a, pos, vol - kp.volume_section_m3)
    sc.e1w_ptr = pw
    if not np.isnan(f3) and not np.isnan(fw):
        cv3_del = _at(hist, H_CV3, s3, f3)
        dvq = sc.cum_vq - _at(hist, H_VQ, sw, fw)
        if dvq >= 0.8 * kp.volume_section_m3:
            cv1_win = (sc.cum_cq - _at(hist, H_CQ, sw, fw)) / dvq
    return cv3_del, cv1_win


@njit(cache=True, nogil=True, error_model="numpy")
def _rolling(
    kp: P.KernelParams,
    a_ring: NDArray[np.float64],
    a_cnt: NDArray[np.int64],
    a_mom: NDArray[np.float64],
    clean: NDArray[np.float64],
    v_tqa: NDArray[np.float64],
    q_tqa: NDArray[np.uint8],
    v_tqb: NDArray[np.float64],
    q_tqb: NDArray[np.uint8],
    a0: int,
    out: NDArray[np.float64],
    means: NDArray[np.float64],
) -> None:
    """Rolling CVs of flow and torque, mean flows (into ``means``), their ratio and the
    imbalance z of a block, into ``out``'s rows; ``clean`` holds the despiked return and
    injection flows (rows 0, 1). A column pass before the block's points (these windows read
    inputs only; the density's, which reads the seawater reference, runs per point:
    :func:`_rolling_density`)."""
    a_ring, a_cnt, a_mom = borrow(a_ring), borrow(a_cnt), borrow(a_mom)
    clean, out, means = borrow(clean), borrow(out), borrow(means)
    v_tqa, q_tqa, v_tqb, q_tqb = borrow(v_tqa), borrow(q_tqa), borrow(v_tqb), borrow(q_tqb)
    w = a_ring.shape[1]
    min_a = max(2, w // 2)
    pos = a0 % w
    for i in range(clean.shape[1]):
        tq_a = _valid(v_tqa, q_tqa, i)
        tq_b = _valid(v_tqb, q_tqb, i)
        tq = tq_a + tq_b  # NaN if either fails: a missing pump would fake a torque swing
        meanvar_step(tq, 2, pos, a_ring, a_cnt, a_mom)
        out[O_CVT, i] = _ratio_cv(2, a_cnt, a_mom, min_a)
        pos = pos + 1 if pos + 1 < w else 0
    pos = a0 % w
    for i in range(clean.shape[1]):
        meanvar_step(clean[0, i], 0, pos, a_ring, a_cnt, a_mom)
        meanvar_step(clean[1, i], 3, pos, a_ring, a_cnt, a_mom)
        cvf = _ratio_cv(0, a_cnt, a_mom, min_a)
        mq, _ = meanvar_get(0, a_cnt, a_mom, min_a)
        mqi, _ = meanvar_get(3, a_cnt, a_mom, min_a)
        ratio = mq / mqi if mqi > 1e-9 else np.nan
        u_dq = kp.u_flow_rel * np.sqrt(mq * mq + mqi * mqi)
        fiz = (mq - mqi) / u_dq if u_dq > 0.0 else np.nan
        out[O_CVF, i] = cvf
        out[O_RATIO, i] = ratio
        out[O_FIZ, i] = fiz
        means[0, i] = mq
        means[1, i] = mqi
        pos = pos + 1 if pos + 1 < w else 0


@_step
def _rolling_density(
    a_ring: NDArray[np.float64],
    a_cnt: NDArray[np.int64],
    a_mom: NDArray[np.float64],
    pos: int,
    rho: float,
) -> float:
    """The density's rolling CV (it reads the seawater reference: per point)."""
    min_a = max(2, a_ring.shape[1] // 2)
    meanvar_step(rho, 1, pos, a_ring, a_cnt, a_mom)
    return _ratio_cv(1, a_cnt, a_mom, min_a)


@_step
def _compare_sums(
    cmp_sum: NDArray[np.float64],
    cmp_cnt: NDArray[np.int64],
    ms1: float,
    ms2: float,
    cv3_del: float,
    cv1_win: float,
) -> None:
    """1 s sums of the estimates compared at each lane step."""
    if not np.isnan(ms1):
        cmp_sum[0] += ms1
        cmp_cnt[0] += 1
    if not np.isnan(ms2):
        cmp_sum[1] += ms2
        cmp_cnt[1] += 1
    if not np.isnan(cv3_del) and not np.isnan(cv1_win):
        cmp_sum[2] += cv3_del
        cmp_cnt[2] += 1
        cmp_sum[3] += cv1_win
        cmp_cnt[3] += 1


@njit(cache=True, nogil=True)
def _assays_known(assay_t: NDArray[np.int64], k: int, ti: int) -> int:
    """Assays sampled at or before ``ti`` (a call: a loop inside an inlined step keeps the
    step's array references from being pruned)."""
    while k < assay_t.shape[0] and assay_t[k] <= ti:
        k += 1
    return k


@_step
def _grade(
    kp: P.KernelParams,
    acc_sys: NDArray[np.float64],
    sc: Scalars,
    assay_t: NDArray[np.int64],
    assay_g: NDArray[np.float64],
    assay_u: NDArray[np.float64],
    k_assay: int,
    ti: int,
) -> tuple[float, float, int]:
    """Grade (ppm) and its uncertainty at ``ti``: the default before any assay, then the
    latest assay (or interpolated, replay). A new assay closes the grade's error period."""
    n_assay = assay_t.shape[0]
    k_assay = _assays_known(assay_t, k_assay, ti)
    if k_assay == 0:
        gr = kp.grade_default_ppm
        ug = kp.u_grade_default_ppm
    elif kp.grade_interpolate and k_assay < n_assay:
        t0 = assay_t[k_assay - 1]
        f = (ti - t0) / (assay_t[k_assay] - t0)
        gr = assay_g[k_assay - 1] + f * (assay_g[k_assay] - assay_g[k_assay - 1])
        ug = assay_u[k_assay - 1] + f * (assay_u[k_assay] - assay_u[k_assay - 1])
    else:
        gr = assay_g[k_assay - 1]
        ug = assay_u[k_assay - 1]
    g_id = assay_t[k_assay - 1] if k_assay > 0 else -1
    if g_id != sc.grade_id:
        sc.grade_done += acc_sys[I_GRADE] * acc_sys[I_GRADE]
        acc_sys[I_GRADE] = 0.0
        sc.grade_id = g_id
    return gr, ug, k_assay


@_step
def _sensitivities(
    kp: P.KernelParams,
    sens: NDArray[np.float64],
    referenced: bool,
    u_zero: float,
    ms1: float,
    gf: float,
    ug: float,
    cv: float,
    cv_in: float,
    q_s: float,
    vel: float,
    slip_f: float,
    rho_w: float,
) -> tuple[float, float, float, float]:
    """Systematic sensitivities of REY [0, N_SYS) and dry solids [N_SYS, 2 N_SYS) into
    ``sens``; returns (random variance of solids, of REY, u of density, u of rho_w)."""
    rho_s = kp.rho_s
    d_sw = rho_s - rho_w
    uq = kp.u_flow_rel_sys
    u_dens = u_zero if referenced else kp.u_rho_m_sys
    u_rw = kp.u_rho_w_ref if referenced else kp.u_rho_w
    dms_drho = rho_s * q_s / d_sw * slip_f  # kg/s per kg/m3
    sens[0] = ms1 * uq
    sens[1] = dms_drho * u_dens
    sens[2] = cv * q_s * rho_w / d_sw * kp.u_rho_s
    sens[3] = dms_drho * (1.0 - cv_in) * u_rw
    sens[4] = 0.0
    sens[5] = rho_s * cv_in * q_s * (1.0 - cv_in) / vel * kp.u_slip_m_s if vel > 0 else 0.0
    for k in range(N_SYS):
        sens[N_SYS + k] = sens[k]
        sens[k] *= gf
    sens[4] = ms1 * 1e-6 * ug
    var_s = (ms1 * kp.u_flow_rel_rand) ** 2 + (dms_drho * kp.u_rho_m_rand) ** 2
    var_r = var_s * gf * gf
    return var_s, var_r, u_dens, u_rw


@_step
def _integrate(
    kp: P.KernelParams,
    acc_sys: NDArray[np.float64],
    last_sys: NDArray[np.float64],
    sc: Scalars,
    sens: NDArray[np.float64],
    ti: int,
    rate: float,
    ms1: float,
    var_r: float,
    var_s: float,
    pw: float,
) -> bool:
    """Trapezoid totals of REY and solids, their random and systematic variances, the noise
    batch sums, and the drives' energy (kWh, ``pw`` kW) with the solids over the same steps;
    a step longer than max_gap_s is a gap, not integrated."""
    valid = not np.isnan(rate)
    if valid:
        sc.batch_sum_rey += rate
        sc.batch_sum_s += ms1
        sc.batch_n += 1
        if sc.has_last == 1:
            dt_ns = ti - sc.last_t_ns
            dts = dt_ns * 1e-9
            if dt_ns <= kp.max_gap_s * 1e9:
                sc.cum_rey += 0.5 * (sc.last_rate + rate) * dts
                sc.cum_solids += 0.5 * (sc.last_rate_s + ms1) * dts
                sc.acc_rand += 0.5 * (sc.last_var + var_r) * kp.tau_random_s * dts
                sc.acc_rand_s += 0.5 * (sc.last_var_s + var_s) * kp.tau_random_s * dts
                for k in range(2 * N_SYS):
                    acc_sys[k] += 0.5 * (last_sys[k] + sens[k]) * dts
                if not np.isnan(pw) and not np.isnan(sc.last_pw):
                    sc.cum_energy += 0.5 * (sc.last_pw + pw) * dts / 3600.0
                    sc.cum_solids_e += 0.5 * (sc.last_rate_s + ms1) * dts
                    sc.energy_n += 1
            else:
                sc.gap_s += dts
                sc.gaps += 1
        sc.has_last = 1
        sc.last_t_ns = ti
        sc.last_rate = rate
        sc.last_rate_s = ms1
        sc.last_var = var_r
        sc.last_var_s = var_s
        sc.last_pw = pw
        for k in range(2 * N_SYS):
            last_sys[k] = sens[k]
    return valid


@_step
def _explained_discharge(
    kp: P.KernelParams, sc: Scalars, ms1: float, ms_in: float, fr: float, rho_w: float, p_rd: float
) -> None:
    """Riser solids inventory (intake now minus delivery now) and the discharge pressure the
    model explains from it, the deck back pressure and the return leg's friction."""
    if not np.isnan(ms1) and not np.isnan(ms_in):
        sc.inventory += (max(ms_in, 0.0) - ms1) * kp.dt_s
    fric_bar = fr * rho_w * kp.leg_volume_m3 / kp.area_return_m2 / 1e5
    p_expl = sc.inventory * kp.inventory_bar_per_kg + p_rd + fric_bar
    if not np.isnan(p_expl):
        sc.lane_sum_expl += p_expl
        sc.lane_n_expl += 1


@_step
def _totals(
    kp: P.KernelParams,
    acc_sys: NDArray[np.float64],
    sc: Scalars,
    ti: int,
    valid: bool,
    out: NDArray[np.float64],
    i: int,
    pw: float,
    ms1: float,
) -> bool:
    """Cumulative totals, gap time (an open gap included) and their 95 % uncertainties; the
    drives' energy and specific energy (kWh per dry tonne: cumulative, and power over the dry
    tonnes per hour now). Returns whether a gap is open now."""
    max_gap_ns = kp.max_gap_s * 1e9
    gap = sc.gap_s
    open_gap = False
    if not valid and sc.has_last == 1 and ti - sc.last_t_ns > max_gap_ns:
        gap += (ti - sc.last_t_ns) * 1e-9
        open_gap = True
    out[O_GAP, i] = gap
    out[O_CUM_REY, i] = sc.cum_rey
    out[O_CUM_REO, i] = sc.cum_rey * kp.reo_factor
    out[O_CUM_SOL, i] = sc.cum_solids
    out[O_POWER, i] = pw
    out[O_CUM_E, i] = sc.cum_energy if sc.energy_n > 0 else np.nan
    tonnes = sc.cum_solids_e * 1e-3
    out[O_SPEC_E, i] = sc.cum_energy / tonnes if tonnes >= P.SPECIFIC_MIN_T else np.nan
    t_h = ms1 * 3.6
    out[O_SPEC_RATE, i] = pw / t_h if t_h >= P.SPECIFIC_MIN_T_H else np.nan
    # random parts: the model's white-noise shrinkage unless the empirical (batch-mean)
    # estimate, which sees correlated noise, is larger
    emp_r = max(3.0 * sc.acc_emp_rey - 2.0 * sc.acc_d1_rey, sc.acc_emp_rey)
    emp_s = max(3.0 * sc.acc_emp_s - 2.0 * sc.acc_d1_s, sc.acc_emp_s)
    u_cum2 = max(sc.acc_rand, emp_r) + sc.grade_done
    u_sol2 = max(sc.acc_rand_s, emp_s)
    for k in range(N_SYS):
        u_cum2 += acc_sys[k] * acc_sys[k]
        u_sol2 += acc_sys[N_SYS + k] * acc_sys[N_SYS + k]
    out[O_U95_CUM, i] = 2.0 * np.sqrt(u_cum2)
    out[O_U95_CUM_REO, i] = out[O_U95_CUM, i] * kp.reo_factor
    out[O_U95_CUM_SOL, i] = 2.0 * np.sqrt(u_sol2)
    return open_gap


@_step
def _osc_severity(kp: P.KernelParams, share: float, amp: float) -> float:
    """Oscillation severity: the band share, scaled down while the amplitude is small."""
    return share * min(amp / kp.osc_amp_bad_bar, 1.0)


@njit(cache=True, nogil=True, error_model="numpy")
def _oscillation(
    kp: P.KernelParams,
    osc: OscState,
    v: NDArray[np.float64],
    q: NDArray[np.uint8],
    out: NDArray[np.float64],
) -> None:
    """The discharge pressure's oscillation (``v``, ``q``) and its severity per point of a
    block, into ``out``'s rows: a column pass before the block's points (the spectrum reads
    its input only), its step inlined in a tight loop."""
    osc, v, q, out = borrow(osc), borrow(v), borrow(q), borrow(out)
    op = OscParams(
        kp.osc_decim, kp.osc_hop, kp.dt_s, kp.osc_f_lo_hz, kp.osc_f_hi_hz, kp.osc_max_inv
    )
    sf = osc.sf
    for i in range(v.shape[0]):
        osc_step(_valid(v, q, i), op, osc)
        out[O_OSC_F, i] = sf[OF_FREQ]
        out[O_OSC_SHARE, i] = sf[OF_SHARE]
        out[O_OSC_AMP, i] = sf[OF_AMP]
        out[O_OSC_SEV, i] = _osc_severity(kp, sf[OF_SHARE], sf[OF_AMP])


@_step
def _lane_sums(
    sc: Scalars, p_d: float, q_inj: float, rho_raw: float, rho_w: float, q_ret: float
) -> None:
    """Sums of this 1 s lane: discharge pressure, injection flow, (density - seawater), flow."""
    if not np.isnan(p_d):
        sc.lane_sum_pdis += p_d
        sc.lane_n_pdis += 1
    if not np.isnan(q_inj):
        sc.lane_sum_qinj += q_inj
        sc.lane_n_qinj += 1
    if not np.isnan(rho_raw) and not np.isnan(q_ret):
        sc.lane_sum_zero += rho_raw - rho_w
        sc.lane_n_zero += 1
        sc.lane_sum_qret += q_ret
        sc.lane_n_qret += 1


@_step
def _ref_command(
    kp: P.KernelParams, ref: RefIn, sc: Scalars, ti: int, d_l: float, qr_l: float, qi_l: float
) -> None:
    """The operator-commanded seawater reference: 1 s lanes wholly inside the newest commanded
    window are collected; when it ends the offset is learned if mud was not taken (flows
    agree), the reading stayed near TEOS-10 and steady, else ``ref_state`` says why not."""
    lane_ns = kp.lane_points * kp.dt_s * 1e9
    k = _ref_started(ref.ref_t, sc.ref_last, ti - (lane_ns - kp.dt_s * 1e9))
    if k >= 0:  # a newer command (re)starts the window
        sc.ref_last = ref.ref_t[k]
        sc.ref_t1 = ref.ref_e[k]
        sc.ref_state = P.REF_COLLECTING
        sc.ref_lanes = 0
        sc.ref_n = 0
        sc.ref_mud = 0
        sc.ref_far = 0
    if sc.ref_state != P.REF_COLLECTING:
        return
    if ti <= sc.ref_t1:
        sc.ref_lanes += 1
        if np.isnan(d_l) or np.isnan(qr_l) or np.isnan(qi_l):
            pass  # counted only in ref_lanes: too few valid seconds refuse the window
        elif abs(qr_l - qi_l) > 2.0 * kp.u_flow_rel * np.sqrt(qr_l * qr_l + qi_l * qi_l):
            sc.ref_mud += 1
        elif abs(d_l) > kp.zero_max_kg_m3:
            sc.ref_far += 1
        elif sc.ref_n < ref.r_ring.shape[0]:
            ref.r_ring[sc.ref_n] = d_l
            sc.ref_n += 1
    if ti + lane_ns <= sc.ref_t1:
        return
    # the window is over (the next lane would end after it): learn or say why not
    bad = P.REF_BAD_FRACTION * sc.ref_lanes
    if sc.ref_mud > bad:
        sc.ref_state = P.REF_MUD
    elif sc.ref_far > bad:
        sc.ref_state = P.REF_FAR
    elif sc.ref_n < max(2 * P.ZERO_BATCHES, sc.ref_lanes - bad):
        sc.ref_state = P.REF_SHORT
    else:
        nb = P.ZERO_BATCHES
        zm, zu, sd = _batch_stats(ref.r_ring, 0, sc.ref_n, sc.ref_n // nb, nb)
        if sd <= kp.zero_steady_kg_m3:
            sc.zero = zm
            sc.u_zero = np.sqrt(zu * zu + kp.u_rho_w_ref**2)
            sc.zero_ok = 1
            sc.zero_t_ns = ti
            sc.ref_state = P.REF_LEARNED
        else:
            sc.ref_state = P.REF_UNSTEADY


@njit(cache=True, nogil=True)
def _ref_started(ref_t: NDArray[np.int64], last: int, lane_start: float) -> int:
    """Index of the newest command after ``last`` that started by ``lane_start``, else -1."""
    k = -1
    for j in range(ref_t.shape[0]):
        if last < ref_t[j] <= lane_start:
            k = j
    return k


@_step
def _seawater_zero(
    kp: P.KernelParams,
    lane: NDArray[np.float64],
    z_ring: NDArray[np.float64],
    ref: RefIn,
    sc: Scalars,
    ln: int,
    ti: int,
) -> None:
    """Lane means into the slope lanes; the seawater reference learns from seconds with no
    mud taken (flows agree), a reading near TEOS-10 and a steady window, and over a window an
    operator commanded (``_ref_command``).

    The learned offset is the mean of the whole stretch whose every window was steady (up to
    the ring's length), not of its last window: its noise would stay in the day's yield as a
    systematic error. Batches of a fixed length over the stretch give its standard error."""
    w_s = lane.shape[1]
    w_z = kp.zero_lanes
    w_r = z_ring.shape[0]  # the longest stretch (whole batches, at least one window)
    lane[L_PDIS, ln % w_s] = sc.lane_sum_pdis / sc.lane_n_pdis if sc.lane_n_pdis > 0 else np.nan
    lane[L_QINJ, ln % w_s] = sc.lane_sum_qinj / sc.lane_n_qinj if sc.lane_n_qinj > 0 else np.nan
    lane[L_INV, ln % w_s] = sc.lane_sum_expl / sc.lane_n_expl if sc.lane_n_expl > 0 else np.nan
    sc.lane_sum_expl = 0.0
    sc.lane_n_expl = 0
    d_l = sc.lane_sum_zero / sc.lane_n_zero if sc.lane_n_zero > 0 else np.nan
    qr_l = sc.lane_sum_qret / sc.lane_n_qret if sc.lane_n_qret > 0 else np.nan
    qi_l = lane[L_QINJ, ln % w_s]
    ok = (
        not np.isnan(d_l)
        and not np.isnan(qi_l)
        and qi_l >= kp.zero_min_flow_m3_h
        and abs(qr_l - qi_l) <= 2.0 * kp.u_flow_rel * np.sqrt(qr_l * qr_l + qi_l * qi_l)
        and abs(d_l) <= kp.zero_max_kg_m3
    )
    z_ring[ln % w_r] = d_l if ok else np.nan
    sc.zero_streak = sc.zero_streak + 1 if ok else 0
    # the stretch: seconds since the last window of the streak was first steady (issue 12)
    run = 0
    if sc.zero_streak >= w_z:
        bl = w_z // P.ZERO_BATCHES
        _, _, sd = _batch_stats(z_ring, (ln + 1 + w_r - w_z) % w_r, w_z, bl, P.ZERO_BATCHES)
        if sd <= kp.zero_steady_kg_m3:
            run = sc.zero_run + 1 if sc.zero_run >= w_z else w_z
            n = min(run, w_r)
            zm, zu, _ = _batch_stats(z_ring, (ln + 1 + w_r - n) % w_r, n, bl, n // bl)
            sc.zero = zm
            sc.u_zero = np.sqrt(zu * zu + kp.u_rho_w_ref**2)
            sc.zero_ok = 1
            sc.zero_t_ns = ti
    sc.zero_run = run
    _ref_command(kp, ref, sc, ti, d_l, qr_l, qi_l)
    sc.lane_sum_pdis = 0.0
    sc.lane_sum_qinj = 0.0
    sc.lane_sum_zero = 0.0
    sc.lane_sum_qret = 0.0
    sc.lane_n_pdis = 0
    sc.lane_n_qinj = 0
    sc.lane_n_zero = 0
    sc.lane_n_qret = 0


@_step
def _noise_batch(kp: P.KernelParams, sc: Scalars, step_s: float) -> None:
    """Batch means of the rates: their spread is the random part, correlated or not."""
    n_batch = kp.batch_lanes
    tb = n_batch * step_s
    pts = n_batch * kp.lane_points
    mr = np.nan
    ms_b = np.nan
    if sc.batch_n >= pts // 2:
        mr = sc.batch_sum_rey / sc.batch_n
        ms_b = sc.batch_sum_s / sc.batch_n
        # half mean squares of lag-2 (~ variance) and lag-1 (variance minus the adjacent
        # covariance) differences; correlated noise makes adjacent batches covary, and that
        # covariance adds to the integral's variance
        if not np.isnan(sc.batch_prev2_rey) and not np.isnan(sc.batch_prev_rey):
            sc.acc_emp_rey += 0.5 * (mr - sc.batch_prev2_rey) ** 2 * tb * tb
            sc.acc_emp_s += 0.5 * (ms_b - sc.batch_prev2_s) ** 2 * tb * tb
            sc.acc_d1_rey += 0.5 * (mr - sc.batch_prev_rey) ** 2 * tb * tb
            sc.acc_d1_s += 0.5 * (ms_b - sc.batch_prev_s) ** 2 * tb * tb
    sc.batch_prev2_rey = sc.batch_prev_rey
    sc.batch_prev2_s = sc.batch_prev_s
    sc.batch_prev_rey = mr
    sc.batch_prev_s = ms_b
    sc.batch_sum_rey = 0.0
    sc.batch_sum_s = 0.0
    sc.batch_n = 0


#: E1 - E3 may change across the comparison window by this much (kg/m3) without a cause the
#: drift test carries: the 1 s means' noise, heave, deck temperature wander, a 2 % flow change
#: moving the friction term (~0.07). Normal full-scale days (benchmarks/bench_campaign.py)
#: move it by at most ~0.3 over 600 s; a densitometer drifting 8 kg/m3/h moves it by 1.3.
DRIFT_FLOOR_KG_M3 = 0.3
#: E3's section mean and E1's window mean match to ~10 % of a change in the mud's density
#: (filling riser, intake changes): that part of a change is not drift.
U_WINDOW_REL = 0.1


@njit(cache=True, nogil=True)
def _drift_z(kp: P.KernelParams, w: int, s1: float, s3: float, d_sw: float) -> float:
    """Change of E1 - E3 (kg/m3) across the comparison window over what may change it.

    The level test waits for a drift to outgrow E3's whole budget (friction +-5 % alone is
    ~2 kg/m3 at full scale, and E1's window lags the gauge by half a section transit): a
    densitometer drifting 8 kg/m3 in an hour was raised after 73 min. The friction factor,
    depths, seawater at depth and the gauge's calibration are constant over the window, so
    the change of the difference does not carry them (least-squares slopes of the two 1 s
    rows in the ring (E1's ``s1``, E3's ``s3``, per lane step) times the window ``w``
    lane steps)."""
    if np.isnan(s1) or np.isnan(s3):
        return np.nan
    span = w * kp.lane_points * kp.dt_s
    d_r = (s1 - s3) * d_sw * span
    d_mud = s3 * (kp.rho_s - kp.rho_w_section) * span
    u = np.sqrt((U_WINDOW_REL * d_mud) ** 2 + DRIFT_FLOOR_KG_M3**2)
    return abs(d_r) / u


@_step
def _disagreement(
    kp: P.KernelParams, cmp: Compare, ln: int, li: LaneIn
) -> tuple[bool, float, bool, float, float]:
    """Compare the estimators over the comparison window: E1 against E2 and E3 against E1
    over E3's window, each over their combined standard uncertainty, and the change of
    E1 - E3 across the window (``_drift_z``); the largest z wins (:func:`_lane_z`).

    Returns (E3 compared, its level z, E2 compared, its z, rho_s - rho_w): the drift test's
    slopes are computed for all of a block's lane steps together (:func:`_lane_slopes`)."""
    b_ring, b_cnt, b_mom, cmp_sum, cmp_cnt = cmp
    mq, mqi, u_dens, u_rw, rho_w, fr = li.mq, li.mqi, li.u_dens, li.u_rw, li.rho_w, li.fr
    min_b = max(2, b_ring.shape[1] // 2)
    rho_s = kp.rho_s
    phi_b = kp.phi_b
    g = kp.g
    uq = kp.u_flow_rel_sys
    d_sw = rho_s - rho_w
    pb = (ln - 1) % b_ring.shape[1]
    for c4 in range(N_COMPARED):
        cnt_l = cmp_cnt[c4]
        mean_l = cmp_sum[c4] / cnt_l if cnt_l > 0 else np.nan
        meanvar_step_call(mean_l, c4, pb, b_ring, b_cnt, b_mom)
        cmp_sum[c4] = 0.0
        cmp_cnt[c4] = 0
    m1, _ = meanvar_get(0, b_cnt, b_mom, min_b)
    m2, _ = meanvar_get(1, b_cnt, b_mom, min_b)
    m3, _ = meanvar_get(2, b_cnt, b_mom, min_b)
    m4, _ = meanvar_get(3, b_cnt, b_mom, min_b)
    u_e1_rho = np.sqrt(u_dens * u_dens + u_rw * u_rw)
    dms_drho_m = rho_s * mq / 3600.0 / d_sw
    z3 = np.nan
    z2 = np.nan
    has3 = not np.isnan(m3) and not np.isnan(m4)
    has2 = not np.isnan(m1) and not np.isnan(m2)
    if has3:
        # E3's own budget: transmitters, friction factor, depths, seawater at depth
        dz = kp.dz_section_m
        w3 = kp.rho_w_section
        rho3_m = w3 + m3 * (rho_s - w3)
        u3_p = np.sqrt(2.0) * kp.u_p_kpa * 1000.0 / ((g + fr) * dz)
        u3_f = rho3_m * fr * kp.u_friction_rel / (g + fr)
        u3_z = rho3_m * kp.u_dz_m / dz
        u3 = np.sqrt(u3_p * u3_p + u3_f * u3_f + u3_z * u3_z + u_rw * u_rw)
        z3 = abs(m3 - m4) * d_sw / np.sqrt(u3 * u3 + u_e1_rho * u_e1_rho)
    if has2:
        u_qmud2 = (uq * mq) ** 2 + (uq * mqi) ** 2
        u2_2 = (rho_s * phi_b / 3600.0) ** 2 * u_qmud2
        u2_2 += (m2 * kp.u_rho_b / (phi_b * d_sw)) ** 2
        u1_2 = (dms_drho_m * u_dens) ** 2 + (m1 * uq) ** 2
        z2 = abs(m2 - m1) / np.sqrt(u1_2 + u2_2)
    return has3, z3, has2, z2, d_sw


@njit(cache=True, nogil=True, inline="always")
def _lane_z(
    kp: P.KernelParams,
    w: int,
    has3: bool,
    z3: float,
    has2: bool,
    z2: float,
    d_sw: float,
    s1: float,
    s3: float,
) -> tuple[float, float]:
    """(z, E3's z) of a lane step from :func:`_disagreement`'s parts and the comparison
    ring's slopes of E1 (``s1``) and E3 (``s3``)."""
    z = np.nan
    if has3:
        zd = _drift_z(kp, w, s1, s3, d_sw)
        z3 = z3 if not zd > z3 else zd
        z = z3
    if has2:
        z = z2 if np.isnan(z) else max(z, z2)
    return z, z3


@_step
def _lane_step(
    kp: P.KernelParams,
    lane: NDArray[np.float64],
    z_ring: NDArray[np.float64],
    cmp: Compare,
    ref: RefIn,
    sc: Scalars,
    li: LaneIn,
    ti: int,
) -> tuple[bool, float, bool, float, float]:
    """The end of a 1 s lane: seawater reference, noise batch, estimator comparison (whose
    parts it returns: :func:`_disagreement`). The slopes over the lanes and the comparison's
    drift test run over all of a block's lane steps after its points (:func:`_lane_slopes`)."""
    ln = sc.lane_n
    _seawater_zero(kp, lane, z_ring, ref, sc, ln, ti)
    ln += 1
    sc.lane_n = ln
    step_s = kp.lane_points * kp.dt_s
    if ln % kp.batch_lanes == 0:
        _noise_batch(kp, sc, step_s)
    return _disagreement(kp, cmp, ln, li)


@_step
def _plug(kp: P.KernelParams, sc: Scalars) -> float:
    """Discharge rise the riser's growing solids inventory does not explain, while injection
    holds (0 while it rises); NaN until both slopes exist."""
    slope_p = sc.slope_pdis
    slope_q = sc.slope_qinj
    slope_x = sc.slope_expl
    plug = np.nan
    if not np.isnan(slope_p) and not np.isnan(slope_q):
        expl = slope_x if not np.isnan(slope_x) else 0.0
        plug = slope_p - expl if slope_q <= kp.inj_hold_m3_h_s else 0.0
    return plug


@_step
def _stability_index(
    kp: P.KernelParams,
    margin: float,
    cvf: float,
    cvd: float,
    cvt: float,
    osc_sev: float,
    plug: float,
    ratio: float,
) -> float:
    """The weakest mechanism decides (any one of them can stop the lift); NaN if none known."""
    stab = np.inf
    c = min(max((margin - 1.0) / (kp.margin_ok - 1.0), 0.0), 1.0)
    stab = min(stab, c) if not np.isnan(c) else stab
    c = _component(cvf, kp.cv_flow_bad)
    stab = min(stab, c) if not np.isnan(c) else stab
    c = _component(cvd, kp.cv_density_bad)
    stab = min(stab, c) if not np.isnan(c) else stab
    c = _component(cvt, kp.cv_torque_bad)
    stab = min(stab, c) if not np.isnan(c) else stab
    c = 1.0 - osc_sev
    stab = min(stab, c) if not np.isnan(c) else stab
    c = _component(plug, kp.slope_bad_bar_s)
    stab = min(stab, c) if not np.isnan(c) else stab
    c = _component(abs(ratio - kp.ratio_nominal), kp.ratio_tol)
    stab = min(stab, c) if not np.isnan(c) else stab
    return np.nan if np.isinf(stab) else stab


@_step
def _alarms(
    kp: P.KernelParams,
    alarms: NDArray[np.float64],
    al: AlarmState,
    ti: int,
    stopped: bool,
    margin: float,
    osc_sev: float,
    plug: float,
    cvt: float,
    fiz: float,
    z: float,
) -> int:
    """Each chain alarm on its value (ALARM_NAMES order); all held clear while stopped.
    Returns the active bits."""
    b = 0
    for k in range(alarms.shape[0]):
        if stopped and k < N_STOP_SUPPRESSED:
            al.active[k] = 0
            al.pending_ns[k] = -1
            continue
        if k == 0:
            av = margin
        elif k == 1:
            av = osc_sev
        elif k == 2:
            av = plug
        elif k == 3:
            av = cvt
        elif k == 4:
            av = fiz
        else:
            av = z
        lim = AlarmLimits(alarms[k, 0], alarms[k, 1], int(alarms[k, 2]))
        act, pend = alarm_step(ti, av, lim, int(al.active[k]), al.pending_ns[k])
        al.active[k] = act
        al.pending_ns[k] = pend
        b |= act << k
    return b


class LaneRows(NamedTuple):
    """A block's lane steps in time order (:class:`Lin`, after the rings' values before it):
    discharge pressure, injection flow, explained discharge; E1 and E3 compared."""

    pdis: Lin
    qinj: Lin
    expl: Lin
    e1: Lin
    e3: Lin


@njit(cache=True, nogil=True, error_model="numpy")
def _lane_slopes(
    kp: P.KernelParams,
    rows: LaneRows,
    w_s: int,
    w_b: int,
    parts: NDArray[np.float64],
    res: NDArray[np.float64],
) -> None:
    """Slopes and z of each of a block's ``res.shape[1]`` lane steps, four at once.

    ``parts`` holds :func:`_disagreement`'s parts per lane step (rows: E3 compared, its level
    z, E2 compared, its z, rho_s - rho_w); ``res`` gets the rows discharge, injection and
    explained discharge slopes (per second), z and E3's z. The window of lane step ``k``
    ends at index ``w + k`` of its rows."""
    nl = res.shape[1]
    sxx_s = _sxx(w_s)
    sxx_b = _sxx(w_b)
    min_s = w_s // 2
    min_b = max(2, w_b // 2)
    step_s = kp.lane_points * kp.dt_s
    s4 = np.empty((5, 4))
    for k in range(0, nl, 4):
        _slopes4(rows.pdis, w_s + k, w_s, min_s, sxx_s, s4[0])
        _slopes4(rows.qinj, w_s + k, w_s, min_s, sxx_s, s4[1])
        _slopes4(rows.expl, w_s + k, w_s, min_s, sxx_s, s4[2])
        _slopes4(rows.e1, w_b + k, w_b, min_b, sxx_b, s4[3])
        _slopes4(rows.e3, w_b + k, w_b, min_b, sxx_b, s4[4])
        for q in range(min(4, nl - k)):
            res[0, k + q] = s4[0, q] / step_s
            res[1, k + q] = s4[1, q] / step_s
            res[2, k + q] = s4[2, q] / step_s
            z, z3 = _lane_z(
                kp,
                w_b,
                parts[0, k + q] != 0.0,
                parts[1, k + q],
                parts[2, k + q] != 0.0,
                parts[3, k + q],
                parts[4, k + q],
                s4[3, q],
                s4[4, q],
            )
            res[3, k + q] = z
            res[4, k + q] = z3


@njit(cache=True, nogil=True, error_model="numpy")
def chain_kernel(
    t: NDArray[np.int64],
    vals: Rows,
    qual: QRows,
    rho_w_in: NDArray[np.float64],
    power_in: NDArray[np.float64],
    kp: P.KernelParams,
    tables: P.KernelTables,
    assay_t: NDArray[np.int64],
    assay_g: NDArray[np.float64],
    assay_u: NDArray[np.float64],
    st: ChainState,
    out: NDArray[np.float64],
    oq: NDArray[np.uint8],
    bits: NDArray[np.uint8],
) -> None:
    """A block's grid points: each point runs the named steps above in order, except that the
    lane steps' slopes and drift test (:func:`_lane_slopes`: latency-bound sums, four lane
    steps at once) and what reads them (plug indicator, stability, alarms) follow in a second
    pass over the points; nothing in the first pass reads them."""
    # every array borrowed (dsp.unmanaged): the steps and helpers the loop calls with them
    # would count references atomically at every grid point
    t, vals, qual = borrow(t), borrow(vals), borrow(qual)
    rho_w_in, power_in, tables, st = borrow(rho_w_in), borrow(power_in), borrow(tables), borrow(st)
    assay_t, assay_g, assay_u = borrow(assay_t), borrow(assay_g), borrow(assay_u)
    out, oq, bits = borrow(out), borrow(oq), borrow(bits)
    # arrays taken out of the state and parameter tuples once, outside the loop (a tuple's
    # field read inside it costs a reference count per access)
    sc = st.scalars[0]
    cmp_sum, cmp_cnt = st.cmp_sum, st.cmp_cnt
    acc_sys, last_sys = st.acc_sys, st.last_sys
    hampel = HampelRows(st.h_ring, st.h_srt, st.h_cnt)
    a_ring, a_cnt, a_mom = st.a_ring, st.a_cnt, st.a_mom
    cmp = Compare(st.b_ring, st.b_cnt, st.b_mom, cmp_sum, cmp_cnt)
    hist, lane, z_ring = st.hist, st.lane, st.z_ring
    ref = RefIn(st.ref_t, st.ref_e, st.r_ring)
    osc = OscState(st.o_ring, st.o_si, st.o_sf, st.tab, st.rev, st.win, st.o_y, st.o_z)
    al = AlarmState(st.al_active, st.al_pending)
    friction, alarms = tables.friction, tables.alarms
    v_qret, q_qret = vals[R_QRET], qual[R_QRET]
    v_qinj, q_qinj = vals[R_QINJ], qual[R_QINJ]
    v_rho, q_rho = vals[R_RHO], qual[R_RHO]
    w_a = a_ring.shape[1]
    h_len = hist.shape[1]
    w_s = lane.shape[1]
    lane_len = kp.lane_points
    k_assay = 0
    sens = np.empty(2 * N_SYS)
    a0 = sc.grid_n
    pos_a = a0 % w_a
    pos_hist = a0 % h_len
    pos_lane = a0 % lane_len
    # the slopes over the lanes, the drift test and what depends on them (plug indicator,
    # stability, alarms) run after the points, over all of the block's lane steps at once
    n = t.shape[0]
    nl = (pos_lane + n) // lane_len  # lane steps in this block
    ln0 = sc.lane_n
    b_ring = st.b_ring
    w_b = b_ring.shape[1]
    x_pdis = _time_order(lane, L_PDIS, ln0 % w_s, nl)
    x_qinj = _time_order(lane, L_QINJ, ln0 % w_s, nl)
    x_expl = _time_order(lane, L_INV, ln0 % w_s, nl)
    x_e1 = _time_order(b_ring, 3, ln0 % w_b, nl)
    x_e3 = _time_order(b_ring, 2, ln0 % w_b, nl)
    parts = np.empty((5, nl))
    stopped_at = np.empty(n, np.uint8)
    k_lane = 0
    # inputs: screened and despiked (a column pass per role), then per point referenced to
    # seawater
    clean = np.empty((3, n))
    replaced = np.empty((3, n), np.uint8)
    _despike(kp, hampel, (v_qret, v_qinj, v_rho), (q_qret, q_qinj, q_rho), a0, clean, replaced)
    _oscillation(kp, osc, vals[R_PDIS], qual[R_PDIS], out)
    means = np.empty((2, n))
    v_tqa, q_tqa, v_tqb, q_tqb = vals[R_TQA], qual[R_TQA], vals[R_TQB], qual[R_TQB]
    _rolling(kp, a_ring, a_cnt, a_mom, clean, v_tqa, q_tqa, v_tqb, q_tqb, a0, out, means)
    for i in range(t.shape[0]):
        a = sc.grid_n
        ti = t[i]
        rho_w = rho_w_in[i]
        q_ret, q_inj, rho_raw = clean[0, i], clean[1, i], clean[2, i]
        rep_r, rep_d = replaced[0, i] != 0, replaced[2, i] != 0
        stopped = _stopped(kp, sc, ti, q_inj)
        q_q = qual[R_QRET][i]
        q_d = qual[R_RHO][i]
        if rep_r:
            q_q = max(q_q, UNCERTAIN)
        if rep_d:
            q_d = max(q_d, UNCERTAIN)
        referenced = sc.zero_ok == 1
        rho = rho_raw - sc.zero if referenced else rho_raw
        out[O_RHO_C, i] = rho
        out[O_QRET_C, i] = q_ret
        out[O_QINJ_C, i] = q_inj
        out[O_RHOW, i] = rho_w
        out[O_ZERO, i] = sc.zero if referenced else np.nan
        out[O_UZERO, i] = sc.u_zero if referenced else np.nan
        out[O_REF, i] = 1.0 if referenced else 0.0
        out[O_REF_CMD, i] = sc.ref_state
        out[O_ZERO_AGE, i] = (ti - sc.zero_t_ns) * 1e-9 if referenced else np.nan
        # the three estimators
        cv_in, q_s, vel, slip_f, cv, ms1 = _e1(kp, rho, rho_w, q_ret)
        out[O_CV, i] = cv
        out[O_MS1, i] = ms1
        out[O_SOL_TH, i] = ms1 * 3.6
        vol, ms_in, ms2, transit = _e2(kp, sc, hist, pos_hist, a, q_ret, q_inj, cv_in)
        out[O_MS2, i] = ms2
        out[O_TRANSIT, i] = transit
        fr = _friction(kp, friction, vel)
        p_c = _valid(vals[R_PCOL], qual[R_PCOL], i)
        p_m = _valid(vals[R_PMID], qual[R_PMID], i)
        p_u = _valid(vals[R_PUP], qual[R_PUP], i)
        cv3_del, cv1_win = _e3(kp, sc, hist, pos_hist, a, vol, fr, p_c, p_m, p_u, q_s, out, i)
        out[O_CV3_DEL, i] = cv3_del
        out[O_CV1_WIN, i] = cv1_win
        # rolling statistics
        tq_a = _valid(vals[R_TQA], qual[R_TQA], i)
        tq_b = _valid(vals[R_TQB], qual[R_TQB], i)
        tq = tq_a + tq_b  # (flow and torque windows: _rolling, before the points)
        out[O_CVD, i] = _rolling_density(a_ring, a_cnt, a_mom, pos_a, rho)
        mq, mqi = means[0, i], means[1, i]
        if not stopped:  # the estimators are not compared across a stop
            _compare_sums(cmp_sum, cmp_cnt, ms1, ms2, cv3_del, cv1_win)
        # grade, rates, their uncertainty and the cumulative totals
        gr, ug, k_assay = _grade(kp, acc_sys, sc, assay_t, assay_g, assay_u, k_assay, ti)
        out[O_GRADE, i] = gr
        out[O_UGRADE, i] = ug
        gf = gr * 1e-6
        rate = ms1 * gf  # kg/s
        out[O_REY, i] = rate * 3600.0
        out[O_REO, i] = rate * 3600.0 * kp.reo_factor
        var_s, var_r, u_dens, u_rw = _sensitivities(
            kp, sens, referenced, sc.u_zero, ms1, gf, ug, cv, cv_in, q_s, vel, slip_f, rho_w
        )
        u_sys2 = 0.0
        for k in range(N_SYS):
            u_sys2 += sens[k] * sens[k]
        out[O_U95_REY, i] = 2.0 * 3600.0 * np.sqrt(var_r + u_sys2)
        pw = power_in[i]
        valid = _integrate(kp, acc_sys, last_sys, sc, sens, ti, rate, ms1, var_r, var_s, pw)
        p_rd = _valid(vals[R_PRET], qual[R_PRET], i)
        _explained_discharge(kp, sc, ms1, ms_in, fr, rho_w, p_rd)
        out[O_INV, i] = sc.inventory
        open_gap = _totals(kp, acc_sys, sc, ti, valid, out, i, pw, ms1)
        oq[Q_YIELD, i] = max(q_q, q_d) if valid else BAD
        oq[Q_CUM, i] = UNCERTAIN if (sc.gaps > 0 or open_gap or sc.has_last == 0) else GOOD
        # stability: margin, oscillation, the 1 s lane (reference, slopes, comparison)
        margin = vel / kp.v_critical_m_s
        out[O_VEL, i] = vel
        out[O_MARGIN, i] = margin
        p_d = _valid(vals[R_PDIS], qual[R_PDIS], i)
        _lane_sums(sc, p_d, q_inj, rho_raw, rho_w, q_ret)
        pos_lane += 1
        if pos_lane == lane_len:
            pos_lane = 0
            li = LaneIn(mq, mqi, u_dens, u_rw, rho_w, fr)
            has3, z3l, has2, z2l, d_sw = _lane_step(kp, lane, z_ring, cmp, ref, sc, li, ti)
            # this lane step's new values, for the slopes after the points
            ln = sc.lane_n
            x_pdis[w_s + k_lane] = lane[L_PDIS, (ln - 1) % w_s]
            x_qinj[w_s + k_lane] = lane[L_QINJ, (ln - 1) % w_s]
            x_expl[w_s + k_lane] = lane[L_INV, (ln - 1) % w_s]
            x_e1[w_b + k_lane] = b_ring[3, (ln - 1) % w_b]
            x_e3[w_b + k_lane] = b_ring[2, (ln - 1) % w_b]
            parts[0, k_lane] = 1.0 if has3 else 0.0
            parts[1, k_lane] = z3l
            parts[2, k_lane] = 1.0 if has2 else 0.0
            parts[3, k_lane] = z2l
            parts[4, k_lane] = d_sw
            k_lane += 1
        stopped_at[i] = stopped
        # the stability group's quality if the index is known (BAD where it is not: below)
        q_in = max(max(q_q, qual[R_QINJ][i]), max(q_d, qual[R_PDIS][i]))
        oq[Q_STAB, i] = UNCERTAIN if q_in > GOOD or np.isnan(tq) else GOOD
        sc.grid_n = a + 1
        # ring positions advance together with the absolute index (no modulo in the loop)
        pos_a = pos_a + 1 if pos_a + 1 < w_a else 0
        pos_hist = pos_hist + 1 if pos_hist + 1 < h_len else 0
    rows = LaneRows(_lin(x_pdis), _lin(x_qinj), _lin(x_expl), _lin(x_e1), _lin(x_e3))
    res = np.empty((5, nl))
    _lane_slopes(kp, rows, w_s, w_b, parts, res)
    # the points again: the lane steps' slopes and z, plug indicator, stability, alarms
    pos_lane = a0 % lane_len
    ln = ln0
    k_lane = 0
    for i in range(n):
        pos_lane += 1
        if pos_lane == lane_len:
            pos_lane = 0
            ln += 1
            if ln >= w_s:
                sc.slope_pdis = res[0, k_lane]
                sc.slope_qinj = res[1, k_lane]
                sc.slope_expl = res[2, k_lane]
            sc.z = res[3, k_lane]
            sc.z3 = res[4, k_lane]
            k_lane += 1
        stopped = stopped_at[i] != 0
        z = sc.z
        # not compared across a stop: the last lanes' z would be stale (the alarm is held)
        out[O_Z, i] = z if not stopped else np.nan
        out[O_Z3, i] = sc.z3 if not stopped else np.nan
        plug = _plug(kp, sc)
        full = ln >= w_s
        out[O_SLOPE_P, i] = sc.slope_pdis if full else np.nan
        out[O_SLOPE_Q, i] = sc.slope_qinj if full else np.nan
        out[O_PLUG, i] = plug if full else np.nan
        out[O_PLUG_EXP, i] = sc.slope_expl if full else np.nan
        margin = out[O_MARGIN, i]
        osc_sev = out[O_OSC_SEV, i]
        cvt = out[O_CVT, i]
        stab = _stability_index(
            kp, margin, out[O_CVF, i], out[O_CVD, i], cvt, osc_sev, out[O_PLUG, i], out[O_RATIO, i]
        )
        out[O_STAB, i] = stab
        if np.isnan(stab):
            oq[Q_STAB, i] = BAD
        # alarms
        bits[i] = _alarms(
            kp,
            alarms,
            al,
            t[i],
            stopped,
            margin,
            osc_sev,
            out[O_PLUG, i],
            cvt,
            out[O_FIZ, i],
            z,
        )
