"""Riser hydraulics and ground truth: one numba kernel stepped on a fixed simulation step.

The return leg is plug flow in a ring of equal-volume cells, each carrying water volume,
dry-solids mass and REY mass. Every step the wet-mud-laden inflow fills the bottom cell and
the same volume drains from the top cell, so what reaches the deck entered the collector one
transit (return-leg volume / integrated flow) earlier, smeared over at most one cell. Every
kilogram leaving a cell is added to the delivered total: the truth balance
``taken_in + initial = delivered + in_riser`` holds to float rounding.

Pressures follow the collector head balance (kPa, m3/s inside the kernel):
``P_pump = P_deck + friction_injection + friction_return + g (M / A - W)`` where ``M`` is the
return column's mass and ``W`` the mass per area of the seawater column beside it (TEOS-10
along the temperature profile at its own pressure, :mod:`hil.plant.physics`); at a
transmitter depth z, ``P_abs = P_atm + P_deck + M(z) (g + f V^2 / (2 D))`` where ``M(z)`` is
the mass per unit area of the column above z. Each cell's water has the seawater density of
its depth; its solids are in-situ (slip makes them ``1 / (1 - v_slip / V)`` of the delivered
ones). ``f`` is Colebrook's at the mixture's Reynolds number with the slurry viscosity
(Thomas), from a log(Re) table.

State is plain numpy arrays owned by :class:`Hydraulics`; the kernel mutates them in place,
so any split of a run into calls gives the same result.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from dsp.named import from_fields
from hil.plant import physics
from hil.plant.physics import RE_LOG_MAX, RE_LOG_MIN, RE_N
from hil.scenario import PlantParams

__all__ = ["COL", "DRIVE_COLUMNS", "OUT", "OUT_COLUMNS", "Hydraulics", "KernelParams", "OutRow"]

# drive columns (per step inputs, built from the scenario schedule)
D_CMD_A, D_CMD_B, D_TRIP_A, D_TRIP_B, D_QMUD, D_GRADE, D_FMULT, D_HEAVE_M, D_HEAVE_Q = range(9)
DRIVE_COLUMNS = (
    "cmd_a_rpm",
    "cmd_b_rpm",
    "trip_a",
    "trip_b",
    "q_mud_m3_s",
    "grade_ppm",
    "friction_mult",
    "heave_m",
    "heave_flow_rel",
)


class OutRow(NamedTuple):
    """The kernel's output row: one field per column; :data:`OUT` holds each one's index."""

    t_s: int
    q_inj_m3_s: int
    q_ret_m3_s: int
    q_mud_m3_s: int
    cv_in: int
    grade_in_ppm: int
    cv_deck: int
    grade_deck_ppm: int
    p_deck_kpa_g: int
    p_pump_kpa_g: int
    p_z0_kpa_abs: int  # transmitters in depth order (Hydraulics.depth_order)
    p_z1_kpa_abs: int
    p_z2_kpa_abs: int
    n_a_rpm: int
    n_b_rpm: int
    q_a_m3_s: int
    q_b_m3_s: int
    solids_in_kg: int
    rey_in_kg: int
    solids_out_kg: int
    rey_out_kg: int
    solids_riser_kg: int
    rey_riser_kg: int
    rho_mean_kg_m3: int
    vol_inj_m3: int
    vol_ret_m3: int
    run_a_s: int
    run_b_s: int
    cmd_a_rpm: int
    cmd_b_rpm: int
    trip_a: int
    trip_b: int


OUT = OutRow(*range(len(OutRow._fields)))
OUT_COLUMNS: tuple[str, ...] = OutRow._fields
COL = OUT._asdict()


class KernelParams(NamedTuple):
    """One plant's constants as the kernel reads them (SI units; pressures in kPa)."""

    rho_w_kg_m3: float  # pump-curve fit's seawater density
    rho_s_kg_m3: float
    g_m_s2: float
    p_atm_kpa: float
    riser_length_m: float
    return_area_m2: float
    return_id_m: float
    injection_area_m2: float
    injection_dh_m: float
    f_inj: float  # injection leg: seawater, Colebrook at its nominal Re
    vcell_m3: float
    dt_s: float
    deck_static_kpa: float
    deck_k: float  # deck back pressure per (m3/s)^2
    pump_h0_kpa: float  # shut-off head at n_ref_rpm
    pump_k: float  # kPa per (m3/s)^2 of one pump
    pump_speed_rpm: float
    pump_ramp_rpm_s: float
    pump_coast_tau_s: float
    flow_tau_s: float
    z_m: tuple[float, float, float]  # transmitter depths, in depth order
    phi_b: float  # solids volume fraction of the wet mud taken in
    w_col: float  # mass per area of the seawater column beside the riser
    mu_pa_s: float  # water viscosity at mid-riser
    slip_m_s: float
    rho_w_mean: float  # mean seawater density of that column


# float state
S_T, S_QINJ, S_NA, S_NB, S_SIN, S_RIN, S_SOUT, S_ROUT, S_MCOL, S_VINJ, S_VRET, S_RUNA, S_RUNB = (
    range(13)
)
N_FSTATE = 13
# int state: ring head index, cells in use
I_HEAD, I_COUNT, I_STEP = range(3)

#: a named step of the kernel, inlined into it (compiles no slower than one long function)
_step = njit(cache=True, nogil=True, inline="always")


@njit(cache=True, nogil=True)
def _head_at_flow(q: float, a_a: float, a_b: float, k: float) -> float:
    """Discharge head (kPa) of two parallel pumps delivering q in total (check valves).

    Pump i gives ``q_i = sqrt((a_i - h) / k)`` while ``a_i > h``; with both delivering,
    ``x + y = q sqrt(k)`` and ``x^2 - y^2 = a_a - a_b`` for ``x, y = sqrt(a_i - h)``.
    """
    hi = max(a_a, a_b)
    lo = min(a_a, a_b)
    if q <= 0.0:
        return hi
    s = q * math.sqrt(k)
    delta = hi - lo
    y = 0.5 * (s - delta / s)
    if y > 0.0 and lo > 0.0:
        x = 0.5 * (s + delta / s)
        return hi - x * x
    return hi - s * s


@_step
def _darcy(ftab: np.ndarray, re: float) -> float:
    x = (math.log10(max(re, 100.0)) - RE_LOG_MIN) / (RE_LOG_MAX - RE_LOG_MIN) * (RE_N - 1)
    x = min(max(x, 0.0), RE_N - 1.000001)
    j = int(x)
    return ftab[j] + (x - j) * (ftab[j + 1] - ftab[j])


@_step
def _turn_rotors(
    kp: KernelParams, fs: np.ndarray, d: np.ndarray, ramp: float, coast: float
) -> None:
    """Each drive ramps towards its command, or coasts down when tripped; run hours count."""
    for j in range(2):
        sidx = S_NA + j
        n = fs[sidx]
        if d[D_TRIP_A + j] > 0.5:
            n *= coast
        else:
            cmd = d[D_CMD_A + j]
            n = min(cmd, n + ramp) if n < cmd else max(cmd, n - ramp)
        fs[sidx] = n
        if n > 1.0:
            fs[S_RUNA + j] += kp.dt_s


@_step
def _system_curve(
    kp: KernelParams, fs: np.ndarray, fmult: float, fric_r0: float
) -> tuple[float, float, float]:
    """Static head (kPa), Re per m3/s of return flow and the return leg's friction factor
    scale, from the column's mass at the start of the step (Thomas viscosity)."""
    a_r = kp.return_area_m2
    rho_mean = fs[S_MCOL] / (a_r * kp.riser_length_m)
    static = kp.deck_static_kpa + (fs[S_MCOL] / a_r - kp.w_col) * kp.g_m_s2 / 1000.0
    c_mean = (rho_mean - kp.rho_w_mean) / (kp.rho_s_kg_m3 - kp.rho_w_mean)
    c_mean = min(max(c_mean, 0.0), 0.5)
    mu = kp.mu_pa_s * (
        1.0 + 2.5 * c_mean + 10.05 * c_mean * c_mean + 0.00273 * math.exp(16.6 * c_mean)
    )
    re_per_q = rho_mean * kp.return_id_m / (a_r * mu)
    fr_r = fric_r0 * fmult * rho_mean / (a_r * a_r)
    return static, re_per_q, fr_r


@_step
def _steady_flow(
    kp: KernelParams,
    ftab: np.ndarray,
    a_a: float,
    a_b: float,
    q_mud: float,
    static: float,
    re_per_q: float,
    fr_r: float,
    fric_i: float,
) -> float:
    """Injection flow where the pump curve meets the system curve (both monotone in q)."""
    k = kp.pump_k
    q_max = (math.sqrt(a_a) + math.sqrt(a_b)) / math.sqrt(k)
    if not (q_max > 0.0 and _head_at_flow(0.0, a_a, a_b, k) > static + kp.deck_k * q_mud**2):
        return 0.0
    lo = 0.0
    hi = q_max
    for _ in range(44):
        q = 0.5 * (lo + hi)
        qr = q + q_mud
        f_r = _darcy(ftab, re_per_q * qr)
        h_sys = static + kp.deck_k * qr * qr + fric_i * q * q + f_r * fr_r * qr * qr
        if _head_at_flow(q, a_a, a_b, k) > h_sys:
            lo = q
        else:
            hi = q
    return 0.5 * (lo + hi)


@_step
def _split_pumps(q_base: float, a_a: float, a_b: float, k: float) -> tuple[float, float, float]:
    """Discharge head at the actual flow, and each pump's share of that flow."""
    h_pump = max(_head_at_flow(q_base, a_a, a_b, k), 0.0) if q_base > 0.0 else 0.0
    q_a = math.sqrt((a_a - h_pump) / k) if a_a > h_pump else 0.0
    q_b = math.sqrt((a_b - h_pump) / k) if a_b > h_pump else 0.0
    if q_a + q_b > 0.0:
        scale = q_base / (q_a + q_b)
        q_a *= scale
        q_b *= scale
    return h_pump, q_a, q_b


@_step
def _fill_bottom(
    vcell: float,
    ist: np.ndarray,
    vol: np.ndarray,
    sol: np.ndarray,
    rey: np.ndarray,
    dv: float,
    ds: float,
    dr: float,
) -> None:
    """The inflow fills the bottom cell(s) of the ring, opening new cells as they fill."""
    m = vol.shape[0]
    head = ist[I_HEAD]
    count = ist[I_COUNT]
    remaining = dv
    while remaining > 0.0:
        tail = (head + count - 1) % m
        room = vcell - vol[tail]
        if count >= m:  # ring full (step much larger than a cell): overfill the tail
            room = remaining
        elif room <= vcell * 1e-12:
            count += 1
            tail = (head + count - 1) % m
            vol[tail] = 0.0
            sol[tail] = 0.0
            rey[tail] = 0.0
            room = vcell
        take = min(room, remaining)
        share = take / dv
        vol[tail] += take
        sol[tail] += ds * share
        rey[tail] += dr * share
        remaining -= take
    ist[I_COUNT] = count


@_step
def _drain_top(
    ist: np.ndarray, vol: np.ndarray, sol: np.ndarray, rey: np.ndarray, dv: float
) -> tuple[float, float]:
    """The same volume leaves the top cell(s): solids and REY delivered (kg)."""
    m = vol.shape[0]
    head = ist[I_HEAD]
    count = ist[I_COUNT]
    remaining = dv
    out_s = 0.0
    out_r = 0.0
    while remaining > 0.0 and count > 1:
        v = vol[head]
        if v <= remaining * (1.0 + 1e-12):
            out_s += sol[head]
            out_r += rey[head]
            remaining -= v
            vol[head] = 0.0
            sol[head] = 0.0
            rey[head] = 0.0
            head = (head + 1) % m
            count -= 1
        else:
            frac = remaining / v
            ts = sol[head] * frac
            tr = rey[head] * frac
            out_s += ts
            out_r += tr
            vol[head] = v - remaining
            sol[head] -= ts
            rey[head] -= tr
            remaining = 0.0
    ist[I_HEAD] = head
    ist[I_COUNT] = count
    return out_s, out_r


@_step
def _deck_mix(
    rho_s: float,
    head: int,
    vol: np.ndarray,
    sol: np.ndarray,
    rey: np.ndarray,
    dv: float,
    out_s: float,
    out_r: float,
) -> tuple[float, float]:
    """Cv and grade on deck: of what left this step, else of the top cell."""
    if dv > 0.0 and out_s > 0.0:
        return out_s / (rho_s * dv), out_r / out_s * 1e6
    cv_deck = sol[head] / (rho_s * vol[head]) if vol[head] > 0.0 else 0.0
    grade_deck = rey[head] / sol[head] * 1e6 if sol[head] > 0.0 else 0.0
    return cv_deck, grade_deck


@_step
def _walk_column(
    kp: KernelParams,
    wz: np.ndarray,
    ist: np.ndarray,
    vol: np.ndarray,
    sol: np.ndarray,
    rey: np.ndarray,
    k_slip: float,
    m_above: np.ndarray,
) -> tuple[float, float, float]:
    """From the top down: the column's mass, solids and REY in the riser, and the mass per
    area above each transmitter depth (into ``m_above``)."""
    m = vol.shape[0]
    head = ist[I_HEAD]
    a_r = kp.return_area_m2
    zs = kp.z_m
    n_wz = wz.shape[0]
    mass = 0.0
    s_riser = 0.0
    r_riser = 0.0
    depth = 0.0
    zi = 0
    m_above[:] = 0.0
    for c in range(ist[I_COUNT]):
        idx = head + c
        if idx >= m:
            idx -= m
        v = vol[idx]
        if v <= 0.0:
            continue
        dz = v / a_r
        iz = min(int(depth + 0.5 * dz), n_wz - 1)
        s_in = sol[idx] * k_slip
        cell_mass = s_in + wz[iz] * (v - s_in / kp.rho_s_kg_m3)
        while zi < 3 and zs[zi] <= depth + dz:
            m_above[zi] = (mass + cell_mass * (zs[zi] - depth) / dz) / a_r
            zi += 1
        mass += cell_mass
        depth += dz
        s_riser += sol[idx]
        r_riser += rey[idx]
    while zi < 3:
        m_above[zi] = mass / a_r
        zi += 1
    return mass, s_riser, r_riser


@njit(cache=True, nogil=True)
def _advance(
    kp: KernelParams,
    wz: np.ndarray,
    ftab: np.ndarray,
    fs: np.ndarray,
    ist: np.ndarray,
    vol: np.ndarray,
    sol: np.ndarray,
    rey: np.ndarray,
    drive: np.ndarray,
    out: np.ndarray,
) -> None:
    """One step per drive row: pumps, flow, ring transport, column, pressures; one row out."""
    dt = kp.dt_s
    rho_s = kp.rho_s_kg_m3
    g = kp.g_m_s2
    a_r = kp.return_area_m2
    k = kp.pump_k
    fric_r0 = kp.riser_length_m / kp.return_id_m / 2000.0  # kPa per (f rho V^2)
    fric_i = (
        kp.f_inj
        * kp.riser_length_m
        / kp.injection_dh_m
        / 2000.0
        * kp.rho_w_kg_m3
        / (kp.injection_area_m2 * kp.injection_area_m2)
    )
    flow_alpha = 1.0 - math.exp(-dt / kp.flow_tau_s)
    coast = math.exp(-dt / kp.pump_coast_tau_s)
    ramp = kp.pump_ramp_rpm_s * dt
    m_above = np.zeros(3)
    for i in range(drive.shape[0]):
        d = drive[i]
        _turn_rotors(kp, fs, d, ramp, coast)
        q_mud = d[D_QMUD]
        fmult = d[D_FMULT]
        a_a = kp.pump_h0_kpa * (fs[S_NA] / kp.pump_speed_rpm) ** 2
        a_b = kp.pump_h0_kpa * (fs[S_NB] / kp.pump_speed_rpm) ** 2
        static, re_per_q, fr_r = _system_curve(kp, fs, fmult, fric_r0)
        q_ss = _steady_flow(kp, ftab, a_a, a_b, q_mud, static, re_per_q, fr_r, fric_i)
        q_base = fs[S_QINJ] + (q_ss - fs[S_QINJ]) * flow_alpha  # the flow lags its steady state
        fs[S_QINJ] = q_base
        h_pump, q_a, q_b = _split_pumps(q_base, a_a, a_b, k)
        q_inj = max(q_base * (1.0 + d[D_HEAVE_Q]), 0.0)
        q_ret = q_inj + q_mud
        # intake: each m3 of wet mud carries phi_b m3 of solids
        ds = rho_s * kp.phi_b * q_mud * dt
        dr = ds * d[D_GRADE] * 1e-6
        dv = q_ret * dt
        cv_in = kp.phi_b * q_mud / q_ret if q_ret > 0.0 else 0.0
        fs[S_SIN] += ds
        fs[S_RIN] += dr
        fs[S_VINJ] += q_inj * dt
        fs[S_VRET] += dv
        _fill_bottom(kp.vcell_m3, ist, vol, sol, rey, dv, ds, dr)
        out_s, out_r = _drain_top(ist, vol, sol, rey, dv)
        fs[S_SOUT] += out_s
        fs[S_ROUT] += out_r
        cv_deck, grade_deck = _deck_mix(rho_s, ist[I_HEAD], vol, sol, rey, dv, out_s, out_r)
        vel = q_ret / a_r
        k_slip = 1.0 / (1.0 - kp.slip_m_s / vel) if vel > 2.0 * kp.slip_m_s else 1.0
        mass, s_riser, r_riser = _walk_column(kp, wz, ist, vol, sol, rey, k_slip, m_above)
        fs[S_MCOL] = mass
        ist[I_STEP] += 1
        fs[S_T] = ist[I_STEP] * dt
        # pressures: deck back pressure, then hydrostatic plus friction down to each depth
        p_deck = kp.deck_static_kpa + kp.deck_k * q_ret * q_ret
        f_now = _darcy(ftab, re_per_q * q_ret)
        grad = (g + f_now * fmult * vel * vel / (2.0 * kp.return_id_m)) / 1000.0
        heave_kpa = kp.rho_w_kg_m3 * g * d[D_HEAVE_M] / 1000.0
        o = out[i]
        o[OUT.t_s] = fs[S_T]
        o[OUT.q_inj_m3_s] = q_inj
        o[OUT.q_ret_m3_s] = q_ret
        o[OUT.q_mud_m3_s] = q_mud
        o[OUT.cv_in] = cv_in
        o[OUT.grade_in_ppm] = d[D_GRADE]
        o[OUT.cv_deck] = cv_deck
        o[OUT.grade_deck_ppm] = grade_deck
        o[OUT.p_deck_kpa_g] = p_deck
        o[OUT.p_pump_kpa_g] = h_pump
        for j in range(3):
            o[OUT.p_z0_kpa_abs + j] = kp.p_atm_kpa + p_deck + m_above[j] * grad + heave_kpa
        o[OUT.n_a_rpm] = fs[S_NA]
        o[OUT.n_b_rpm] = fs[S_NB]
        o[OUT.q_a_m3_s] = q_a
        o[OUT.q_b_m3_s] = q_b
        o[OUT.solids_in_kg] = fs[S_SIN]
        o[OUT.rey_in_kg] = fs[S_RIN]
        o[OUT.solids_out_kg] = fs[S_SOUT]
        o[OUT.rey_out_kg] = fs[S_ROUT]
        o[OUT.solids_riser_kg] = s_riser
        o[OUT.rey_riser_kg] = r_riser
        o[OUT.rho_mean_kg_m3] = mass / (a_r * kp.riser_length_m)
        o[OUT.vol_inj_m3] = fs[S_VINJ]
        o[OUT.vol_ret_m3] = fs[S_VRET]
        o[OUT.run_a_s] = fs[S_RUNA]
        o[OUT.run_b_s] = fs[S_RUNB]
        o[OUT.cmd_a_rpm] = d[D_CMD_A]
        o[OUT.cmd_b_rpm] = d[D_CMD_B]
        o[OUT.trip_a] = d[D_TRIP_A]
        o[OUT.trip_b] = d[D_TRIP_B]


def system_head_kpa(
    p: PlantParams, q_inj_m3_s: float, q_mud_m3_s: float, rho_mean_kg_m3: float
) -> float:
    """Steady head the pumps must deliver (collector head balance), kPa."""
    q_ret = q_inj_m3_s + q_mud_m3_s
    a_r = p.return_area_m2
    deck = p.deck_static_kpa + p.deck_loss_kpa * (q_ret / nominal_return_m3_s(p)) ** 2
    v_i = q_inj_m3_s / p.injection_area_m2
    v_r = q_ret / a_r
    fr_i = p.friction_injection * p.riser_length_m / p.injection_dh_m * p.rho_w_kg_m3 * v_i**2 / 2
    fr_r = p.friction_return * p.riser_length_m / p.return_id_m * rho_mean_kg_m3 * v_r**2 / 2
    excess = (rho_mean_kg_m3 - p.rho_w_kg_m3) * p.g_m_s2 * p.riser_length_m
    return deck + (fr_i + fr_r + excess) / 1000.0


def nominal_return_m3_s(p: PlantParams) -> float:
    return (p.injection_m3_h + p.mud_intake_m3_h) / 3600.0


def nominal_cv(p: PlantParams) -> float:
    """Cv of the slurry leaving the collector at nominal injection and intake."""
    return p.phi_b * p.mud_intake_m3_h / (p.injection_m3_h + p.mud_intake_m3_h)


class Hydraulics:
    """Owns the plant state arrays and advances them with the kernel.

    ``advance(drive)`` runs one step per drive row (columns :data:`DRIVE_COLUMNS`) and returns
    one output row per step (columns :data:`OUT_COLUMNS`), stamped with the time at the end
    of the step. Transmitter pressure columns ``p_z{k}_kpa_abs`` follow :attr:`depth_order`.
    """

    def __init__(self, p: PlantParams) -> None:
        self.params = p
        a_r = p.return_area_m2
        self.wz = physics.seawater_column(p)
        self.ftab = physics.friction_table(p)
        w_col = float(np.trapezoid(self.wz[: int(p.riser_length_m) + 1]))
        rho_w_col = w_col / p.riser_length_m
        # pore water of the mud in situ at the collector; the intake's solids fraction
        self.phi_b = (p.rho_b_kg_m3 - self.wz[-1]) / (p.rho_s_kg_m3 - self.wz[-1])
        self.return_volume_m3 = a_r * p.riser_length_m
        vcell = self.return_volume_m3 / p.cells
        q_nom = p.injection_m3_h / 3600.0
        q_mud = p.design_intake_m3_h / 3600.0  # the pumps are sized for mud, not seawater
        # the pump curve is fitted so that nominal speed delivers the nominal flows against
        # this plant's own nominal system (TEOS-10 columns, Colebrook, slip)
        mu = physics.mu_water(float(physics.profile_temp(p, 0.5 * p.riser_length_m)))
        v_i = q_nom / p.injection_area_m2
        f_i = physics.darcy(
            rho_w_col * v_i * p.injection_dh_m / mu, p.roughness_m / p.injection_dh_m
        )
        v_r = (q_nom + q_mud) / a_r
        cv0 = self.phi_b * q_mud / (q_nom + q_mud) / (1.0 - p.slip_m_s / v_r)  # in situ
        rho0 = rho_w_col + cv0 * (p.rho_s_kg_m3 - rho_w_col)
        re0 = rho0 * v_r * p.return_id_m / (mu * physics.thomas(cv0))
        f_r = physics.darcy(re0, p.roughness_m / p.return_id_m)
        fric = (
            f_i * p.riser_length_m / p.injection_dh_m * rho_w_col * v_i**2 / 2
            + f_r * p.riser_length_m / p.return_id_m * rho0 * v_r**2 / 2
        )
        excess = (rho0 - rho_w_col) * p.g_m_s2 * p.riser_length_m
        h_sys = p.deck_static_kpa + p.deck_loss_kpa + (fric + excess) / 1000.0
        h0 = p.pump_shutoff_ratio * h_sys
        k = (h0 - h_sys) / (q_nom / 2.0) ** 2
        self.pump_shutoff_kpa = h0
        self.pump_k_kpa_s2_m6 = k
        self.depth_order: tuple[str, ...] = tuple(
            sorted(p.transmitter_depths_m, key=lambda tag: p.transmitter_depths_m[tag])
        )
        zs = [p.transmitter_depths_m[tag] for tag in self.depth_order]
        # fields named as a PlantParams field carry over; the rest are derived
        self.kp = from_fields(
            KernelParams,
            p,
            f_inj=f_i,
            vcell_m3=vcell,
            deck_k=p.deck_loss_kpa / nominal_return_m3_s(p) ** 2,
            pump_h0_kpa=h0,
            pump_k=k,
            z_m=(zs[0], zs[1], zs[2]),
            phi_b=self.phi_b,
            w_col=w_col,
            mu_pa_s=mu,
            rho_w_mean=rho_w_col,
        )
        # ring of cells: room for a few partially filled cells beyond the nominal count
        ring = p.cells + 8
        self.vol = np.zeros(ring)
        self.sol = np.zeros(ring)
        self.rey = np.zeros(ring)
        self.ist = np.zeros(3, dtype=np.int64)
        self.fs = np.zeros(N_FSTATE)
        cv_fill = self.phi_b * p.mud_intake_m3_h / (p.injection_m3_h + p.mud_intake_m3_h)
        cv_fill = cv_fill if p.initial_fill == "steady" else 0.0
        self.vol[: p.cells] = vcell
        self.sol[: p.cells] = p.rho_s_kg_m3 * cv_fill * vcell
        self.rey[: p.cells] = self.sol[: p.cells] * p.grade_ppm * 1e-6
        self.ist[I_HEAD] = 0
        self.ist[I_COUNT] = p.cells
        self.fs[S_QINJ] = q_nom
        self.fs[S_NA] = p.pump_speed_rpm
        self.fs[S_NB] = p.pump_speed_rpm
        self.fs[S_MCOL] = float(np.sum(self.sol) + w_col * a_r * (1.0 - cv_fill))
        self.solids_initial_kg = float(np.sum(self.sol))
        self.rey_initial_kg = float(np.sum(self.rey))

    @property
    def t_s(self) -> float:
        return float(self.fs[S_T])

    def advance(self, drive: np.ndarray) -> np.ndarray:
        """Run ``len(drive)`` steps of ``dt_s``; returns the output rows."""
        drive = np.ascontiguousarray(drive, dtype=np.float64)
        if drive.ndim != 2 or drive.shape[1] != len(DRIVE_COLUMNS):
            raise ValueError(f"drive must be (n, {len(DRIVE_COLUMNS)}), got {drive.shape}")
        out = np.empty((drive.shape[0], len(OUT_COLUMNS)))
        _advance(
            self.kp,
            self.wz,
            self.ftab,
            self.fs,
            self.ist,
            self.vol,
            self.sol,
            self.rey,
            drive,
            out,
        )
        return out
