"""Seawater (TEOS-10) and pipe friction (Colebrook) for the estimators, computed outside numba.

``gsw`` and ``fluids`` are plain NumPy/Python: the chain calls :func:`deck_density` once per
block on the block's arrays (pointwise, so any split of a recording gives the same numbers) and
builds the riser's section densities and a friction table once per parameter set. The kernel
only ever sees arrays and scalars.
"""

from __future__ import annotations

import math
from functools import lru_cache

import gsw
import numpy as np
from fluids.friction import friction_factor
from numpy.typing import NDArray

P_ATM_DBAR = 10.1325
MU_SEAWATER_PA_S = 1.4e-3  # about 6 degC; Re only moves f through a logarithm
FRICTION_V_MAX = 8.0  # m/s, top of the friction table
FRICTION_N = 161


def rho_seawater(
    sa_g_kg: float, t_c: NDArray[np.float64] | float, p_dbar: NDArray[np.float64] | float
) -> NDArray[np.float64]:
    """In-situ density (kg/m3) at absolute salinity, in-situ temperature and sea pressure."""
    p = np.maximum(np.asarray(p_dbar, dtype=np.float64), 0.0)
    ct = gsw.CT_from_t(sa_g_kg, t_c, p)
    return np.asarray(gsw.rho(sa_g_kg, ct, p), dtype=np.float64)


def deck_density(
    sa_g_kg: float,
    t_c: NDArray[np.float64],
    p_gauge_bar: NDArray[np.float64],
    t_default_c: float,
    p_default_bar: float,
) -> NDArray[np.float64]:
    """Seawater density on deck at the measured temperature and line (gauge) pressure.

    NaN temperature or pressure (BAD, missing) falls back to the configured nominal value:
    a dead thermometer costs ~0.2 kg/m3 per degC, a missing density would cost the yield.
    """
    t = np.where(np.isfinite(t_c), t_c, t_default_c)
    p = np.where(np.isfinite(p_gauge_bar), p_gauge_bar, p_default_bar) * 10.0  # bar -> dbar
    return rho_seawater(sa_g_kg, t, p)


def profile_temperature(
    depth_m: NDArray[np.float64] | float, profile: tuple[tuple[float, float], ...]
) -> NDArray[np.float64]:
    """Riser fluid temperature at depth, linear between configured (depth, degC) points."""
    z = np.array([d for d, _ in profile])
    t = np.array([c for _, c in profile])
    return np.asarray(np.interp(depth_m, z, t), dtype=np.float64)


@lru_cache(maxsize=16)
def _column(
    sa_g_kg: float, profile: tuple[tuple[float, float], ...], z_max_m: float, g: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(depth, seawater density, sea pressure dbar) of a resting seawater column, 0.5 m steps.

    Pressure is integrated down from the surface with the water's own density, so
    compressibility (~2.5 % over 5,700 m) and the cold deep water are both in.
    """
    dz = 0.5
    z = np.arange(0.0, z_max_m + dz, dz)
    t = profile_temperature(z, profile)
    p = np.zeros(z.shape[0])
    rho = rho_seawater(sa_g_kg, t, p)
    for _ in range(3):  # fixed point p(z) = g int rho dz: converges in two passes
        cum = np.concatenate(([0.0], np.cumsum(0.5 * (rho[1:] + rho[:-1]) * dz)))
        p = g * cum / 1e4
        rho = rho_seawater(sa_g_kg, t, p)
    return z, rho, p


def sea_pressure_dbar(
    sa_g_kg: float, profile: tuple[tuple[float, float], ...], z_m: float, g: float
) -> float:
    """Sea pressure of a resting seawater column at depth ``z_m``."""
    z, _, p = _column(sa_g_kg, profile, max(z_m, 1.0), g)
    return float(np.interp(z_m, z, p))


@lru_cache(maxsize=64)
def section_seawater(
    sa_g_kg: float,
    profile: tuple[tuple[float, float], ...],
    z_top_m: float,
    z_bottom_m: float,
    g: float,
) -> float:
    """Mean seawater density (kg/m3) of a vertical section at its hydrostatic pressure."""
    z, rho, _ = _column(sa_g_kg, profile, z_bottom_m, g)
    sel = (z >= z_top_m) & (z <= z_bottom_m)
    return float(np.trapezoid(rho[sel], z[sel]) / (z[sel][-1] - z[sel][0]))


def thomas_viscosity(mu_w: float, cv: float) -> float:
    """Slurry viscosity, Thomas (1965): fine particles, Cv up to ~0.6."""
    return mu_w * (1.0 + 2.5 * cv + 10.05 * cv * cv + 0.00273 * math.exp(16.6 * cv))


@lru_cache(maxsize=64)
def friction_table(
    rho_kg_m3: float, d_m: float, roughness_m: float, cv: float
) -> tuple[float, ...]:
    """Darcy factor (Colebrook, exact) at velocities 0 .. FRICTION_V_MAX m/s, evenly spaced.

    Re = rho V D / mu with the slurry viscosity at ``cv``; below Re 2,300 it is laminar 64/Re.
    """
    mu = thomas_viscosity(MU_SEAWATER_PA_S, cv)
    out = []
    for v in np.linspace(0.0, FRICTION_V_MAX, FRICTION_N):
        re = max(rho_kg_m3 * v * d_m / mu, 1.0)
        f = 64.0 / re if re < 2300.0 else friction_factor(Re=re, eD=roughness_m / d_m)
        out.append(float(f))
    return tuple(out)


def colebrook(rho_kg_m3: float, v_m_s: float, d_m: float, roughness_m: float, cv: float) -> float:
    """Darcy factor at one operating point (Clamond's exact Colebrook solution)."""
    re = max(rho_kg_m3 * v_m_s * d_m / thomas_viscosity(MU_SEAWATER_PA_S, cv), 1.0)
    return 64.0 / re if re < 2300.0 else float(friction_factor(Re=re, eD=roughness_m / d_m))
