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

import numpy as np
from numba import njit

from hil.plant import physics
from hil.plant.physics import RE_LOG_MAX, RE_LOG_MIN, RE_N
from hil.scenario import PlantParams

__all__ = ["DRIVE_COLUMNS", "OUT_COLUMNS", "Hydraulics"]

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

OUT_COLUMNS = (
    "t_s",
    "q_inj_m3_s",
    "q_ret_m3_s",
    "q_mud_m3_s",
    "cv_in",
    "grade_in_ppm",
    "cv_deck",
    "grade_deck_ppm",
    "p_deck_kpa_g",
    "p_pump_kpa_g",
    "p_z0_kpa_abs",
    "p_z1_kpa_abs",
    "p_z2_kpa_abs",
    "n_a_rpm",
    "n_b_rpm",
    "q_a_m3_s",
    "q_b_m3_s",
    "solids_in_kg",
    "rey_in_kg",
    "solids_out_kg",
    "rey_out_kg",
    "solids_riser_kg",
    "rey_riser_kg",
    "rho_mean_kg_m3",
    "vol_inj_m3",
    "vol_ret_m3",
    "run_a_s",
    "run_b_s",
    "cmd_a_rpm",
    "cmd_b_rpm",
    "trip_a",
    "trip_b",
)
COL = {name: i for i, name in enumerate(OUT_COLUMNS)}

# parameter vector
(
    P_RHO_W,
    P_RHO_S,
    P_G,
    P_PATM,
    P_L,
    P_AR,
    P_DR,
    P_FR,
    P_AI,
    P_DI,
    P_FI,
    P_VCELL,
    P_DT,
    P_DECK_STATIC,
    P_DECK_K,
    P_H0,
    P_K,
    P_NREF,
    P_RAMP,
    P_COAST,
    P_FLOW_TAU,
    P_Z0,
    P_Z1,
    P_Z2,
    P_PHI_B,
    P_WCOL,
    P_MU,
    P_SLIP,
    P_RHOW_MEAN,
) = range(29)
N_PARAMS = 29

# float state
S_T, S_QINJ, S_NA, S_NB, S_SIN, S_RIN, S_SOUT, S_ROUT, S_MCOL, S_VINJ, S_VRET, S_RUNA, S_RUNB = (
    range(13)
)
N_FSTATE = 13
# int state: ring head index, cells in use
I_HEAD, I_COUNT, I_STEP = range(3)


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


@njit(cache=True, nogil=True, inline="always")
def _darcy(ftab: np.ndarray, re: float) -> float:
    x = (math.log10(max(re, 100.0)) - RE_LOG_MIN) / (RE_LOG_MAX - RE_LOG_MIN) * (RE_N - 1)
    x = min(max(x, 0.0), RE_N - 1.000001)
    j = int(x)
    return ftab[j] + (x - j) * (ftab[j + 1] - ftab[j])


@njit(cache=True, nogil=True)
def _advance(
    par: np.ndarray,
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
    n_steps = drive.shape[0]
    m = vol.shape[0]
    dt = par[P_DT]
    rho_w = par[P_RHO_W]
    rho_s = par[P_RHO_S]
    g = par[P_G]
    length = par[P_L]
    a_r = par[P_AR]
    vcell = par[P_VCELL]
    phi_b = par[P_PHI_B]
    fric_r0 = length / par[P_DR] / 2000.0  # kPa per (f rho V^2)
    d_r = par[P_DR]
    n_wz = wz.shape[0]
    fric_i = par[P_FI] * length / par[P_DI] / 2000.0 * rho_w / (par[P_AI] * par[P_AI])
    flow_alpha = 1.0 - math.exp(-dt / par[P_FLOW_TAU])
    coast = math.exp(-dt / par[P_COAST])
    ramp = par[P_RAMP] * dt
    zs = (par[P_Z0], par[P_Z1], par[P_Z2])
    m_above = np.zeros(3)
    for i in range(n_steps):
        d = drive[i]
        # pump rotors
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
                fs[S_RUNA + j] += dt
        q_mud = d[D_QMUD]
        fmult = d[D_FMULT]
        rho_mean = fs[S_MCOL] / (a_r * length)
        a_a = par[P_H0] * (fs[S_NA] / par[P_NREF]) ** 2
        a_b = par[P_H0] * (fs[S_NB] / par[P_NREF]) ** 2
        k = par[P_K]
        static = par[P_DECK_STATIC] + (fs[S_MCOL] / a_r - par[P_WCOL]) * g / 1000.0
        c_mean = (rho_mean - par[P_RHOW_MEAN]) / (rho_s - par[P_RHOW_MEAN])
        c_mean = min(max(c_mean, 0.0), 0.5)
        mu = par[P_MU] * (
            1.0 + 2.5 * c_mean + 10.05 * c_mean * c_mean + 0.00273 * math.exp(16.6 * c_mean)
        )
        re_per_q = rho_mean * d_r / (a_r * mu)  # Re per m3/s of return flow
        fr_r = fric_r0 * fmult * rho_mean / (a_r * a_r)
        # steady flow: pump curve meets system curve (both monotone in q)
        q_max = (math.sqrt(a_a) + math.sqrt(a_b)) / math.sqrt(k)
        q_ss = 0.0
        if q_max > 0.0 and _head_at_flow(0.0, a_a, a_b, k) > static + par[P_DECK_K] * q_mud**2:
            lo = 0.0
            hi = q_max
            for _ in range(44):
                q = 0.5 * (lo + hi)
                qr = q + q_mud
                f_r = _darcy(ftab, re_per_q * qr)
                h_sys = static + par[P_DECK_K] * qr * qr + fric_i * q * q + f_r * fr_r * qr * qr
                if _head_at_flow(q, a_a, a_b, k) > h_sys:
                    lo = q
                else:
                    hi = q
            q_ss = 0.5 * (lo + hi)
        q_base = fs[S_QINJ] + (q_ss - fs[S_QINJ]) * flow_alpha
        fs[S_QINJ] = q_base
        # pump discharge head at the actual flow, and the split between pumps
        h_pump = max(_head_at_flow(q_base, a_a, a_b, k), 0.0) if q_base > 0.0 else 0.0
        q_a = math.sqrt((a_a - h_pump) / k) if a_a > h_pump else 0.0
        q_b = math.sqrt((a_b - h_pump) / k) if a_b > h_pump else 0.0
        if q_a + q_b > 0.0:
            scale = q_base / (q_a + q_b)
            q_a *= scale
            q_b *= scale
        q_inj = max(q_base * (1.0 + d[D_HEAVE_Q]), 0.0)
        q_ret = q_inj + q_mud
        # intake: each m3 of wet mud carries phi_b m3 of solids
        ds = rho_s * phi_b * q_mud * dt
        dr = ds * d[D_GRADE] * 1e-6
        dv = q_ret * dt
        cv_in = phi_b * q_mud / q_ret if q_ret > 0.0 else 0.0
        fs[S_SIN] += ds
        fs[S_RIN] += dr
        fs[S_VINJ] += q_inj * dt
        fs[S_VRET] += dv
        # fill the bottom cell(s)
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
        # drain the top cell(s)
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
        fs[S_SOUT] += out_s
        fs[S_ROUT] += out_r
        if dv > 0.0 and out_s > 0.0:
            cv_deck = out_s / (rho_s * dv)
            grade_deck = out_r / out_s * 1e6
        else:
            cv_deck = sol[head] / (rho_s * vol[head]) if vol[head] > 0.0 else 0.0
            grade_deck = rey[head] / sol[head] * 1e6 if sol[head] > 0.0 else 0.0
        # walk the column from the top: mass per area above each transmitter depth
        vel = q_ret / a_r
        k_slip = 1.0 / (1.0 - par[P_SLIP] / vel) if vel > 2.0 * par[P_SLIP] else 1.0
        mass = 0.0
        s_riser = 0.0
        r_riser = 0.0
        depth = 0.0
        zi = 0
        m_above[:] = 0.0
        for c in range(count):
            idx = head + c
            if idx >= m:
                idx -= m
            v = vol[idx]
            if v <= 0.0:
                continue
            dz = v / a_r
            iz = min(int(depth + 0.5 * dz), n_wz - 1)
            s_in = sol[idx] * k_slip
            cell_mass = s_in + wz[iz] * (v - s_in / rho_s)
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
        fs[S_MCOL] = mass
        ist[I_STEP] += 1
        fs[S_T] = ist[I_STEP] * dt
        p_deck = par[P_DECK_STATIC] + par[P_DECK_K] * q_ret * q_ret
        f_now = _darcy(ftab, re_per_q * q_ret)
        grad = (g + f_now * fmult * vel * vel / (2.0 * par[P_DR])) / 1000.0
        o = out[i]
        o[0] = fs[S_T]
        o[1] = q_inj
        o[2] = q_ret
        o[3] = q_mud
        o[4] = cv_in
        o[5] = d[D_GRADE]
        o[6] = cv_deck
        o[7] = grade_deck
        o[8] = p_deck
        o[9] = h_pump
        heave_kpa = rho_w * g * d[D_HEAVE_M] / 1000.0
        for j in range(3):
            o[10 + j] = par[P_PATM] + p_deck + m_above[j] * grad + heave_kpa
        o[13] = fs[S_NA]
        o[14] = fs[S_NB]
        o[15] = q_a
        o[16] = q_b
        o[17] = fs[S_SIN]
        o[18] = fs[S_RIN]
        o[19] = fs[S_SOUT]
        o[20] = fs[S_ROUT]
        o[21] = s_riser
        o[22] = r_riser
        o[23] = mass / (a_r * length)
        o[24] = fs[S_VINJ]
        o[25] = fs[S_VRET]
        o[26] = fs[S_RUNA]
        o[27] = fs[S_RUNB]
        o[28] = d[D_CMD_A]
        o[29] = d[D_CMD_B]
        o[30] = d[D_TRIP_A]
        o[31] = d[D_TRIP_B]


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
        par = np.zeros(N_PARAMS)
        par[P_RHO_W] = p.rho_w_kg_m3
        par[P_RHO_S] = p.rho_s_kg_m3
        par[P_G] = p.g_m_s2
        par[P_PATM] = p.p_atm_kpa
        par[P_L] = p.riser_length_m
        par[P_AR] = a_r
        par[P_DR] = p.return_id_m
        par[P_FR] = p.friction_return
        par[P_AI] = p.injection_area_m2
        par[P_DI] = p.injection_dh_m
        par[P_FI] = f_i  # injection leg: seawater, Colebrook at its nominal Re
        par[P_VCELL] = vcell
        par[P_DT] = p.dt_s
        par[P_DECK_STATIC] = p.deck_static_kpa
        par[P_DECK_K] = p.deck_loss_kpa / nominal_return_m3_s(p) ** 2
        par[P_H0] = h0
        par[P_K] = k
        par[P_NREF] = p.pump_speed_rpm
        par[P_RAMP] = p.pump_ramp_rpm_s
        par[P_COAST] = p.pump_coast_tau_s
        par[P_FLOW_TAU] = p.flow_tau_s
        par[P_Z0], par[P_Z1], par[P_Z2] = zs
        par[P_PHI_B] = self.phi_b
        par[P_WCOL] = w_col
        par[P_MU] = mu
        par[P_SLIP] = p.slip_m_s
        par[P_RHOW_MEAN] = rho_w_col
        self.par = par
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
            self.par,
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
