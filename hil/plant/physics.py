"""The plant's own physics and its per-run truth: richer than the estimators', never shared.

- seawater from TEOS-10 (``gsw``) along the riser's temperature profile at the column's own
  hydrostatic pressure, and on deck at the (drifting) deck temperature and line pressure;
- Darcy factor from Colebrook (``fluids``) at the mixture's Reynolds number with a slurry
  viscosity (Thomas), looked up by the kernel from a log(Re) table;
- with ``draws`` on, a run draws its true grain density, mud bulk density, salinity, pipe
  roughness, slip and temperatures around the configured nominal values within their stated
  uncertainty, and each instrument's calibration error within its specification (uniform),
  all from the run's seed. The DAQ under test only ever gets the nominal config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import gsw
import numpy as np
from fluids.friction import friction_factor

from hil.scenario import PlantParams

__all__ = [
    "Calibration",
    "PlantTruth",
    "deck_seawater",
    "draw",
    "friction_table",
    "mu_water",
    "seawater_column",
    "thomas",
]

P_ATM_DBAR = 10.1325
RE_LOG_MIN, RE_LOG_MAX, RE_N = 2.0, 8.0, 241

#: (true - nominal) draws, uniform in +-half_width: the stated uncertainty of each constant
TRUTH_SPREAD = {
    "rho_s_kg_m3": 50.0,
    "rho_b_kg_m3": 50.0,
    "salinity_g_kg": 0.25,
    "slip_m_s": 0.006,
    "deck_return_temp_c": 0.3,
    "seabed_temp_c": 0.5,
}
ROUGHNESS_SPREAD_REL = 0.3
#: instrument calibration errors, uniform within the specification: (gain, offset) half widths
CALIBRATION_SPEC: dict[str, tuple[float, float]] = {
    "ft101.volume_flow": (0.005, 0.0),
    "ft201.volume_flow": (0.005, 0.0),
    "dt201.density": (0.003, 1.5),  # gain about the 1,000 kg/m3 calibration point
    "pt301.pressure": (0.0, 7.0),  # 0.01 % of 70 MPa
    "pt302.pressure": (0.0, 7.0),
    "pt303.pressure": (0.0, 7.0),
    "ai20.tt201": (0.0, 0.2),
    "ai20.pt201": (0.0, 0.05),
    "ai20.pt101": (0.0, 0.5),
}
#: reference points the gains turn about
GAIN_PIVOT = {"dt201.density": 1000.0}


@dataclass(frozen=True)
class Calibration:
    """Per channel ``(gain, offset)``: reading = pivot + (1 + gain)(true - pivot) + offset."""

    errors: dict[str, tuple[float, float]] = field(default_factory=dict)

    def apply(self, channel: str, x: np.ndarray) -> np.ndarray:
        gain, offset = self.errors.get(channel, (0.0, 0.0))
        if gain == 0.0 and offset == 0.0:
            return x
        pivot = GAIN_PIVOT.get(channel, 0.0)
        return pivot + (1.0 + gain) * (x - pivot) + offset


@dataclass(frozen=True)
class PlantTruth:
    """The run's true constants (``params``) and its instruments' calibration errors."""

    params: PlantParams
    calibration: Calibration
    drawn: dict[str, float]


def draw(p: PlantParams, seed: int) -> PlantTruth:
    """True constants and calibration errors of one run (identity unless ``p.draws``)."""
    if not p.draws:
        return PlantTruth(p, Calibration(), {})
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 77_777])))
    update: dict[str, float] = {}
    for name, half in TRUTH_SPREAD.items():
        update[name] = float(getattr(p, name) + rng.uniform(-half, half))
    update["roughness_m"] = float(p.roughness_m * (1.0 + rng.uniform(-1, 1) * ROUGHNESS_SPREAD_REL))
    errors = {
        ch: (float(rng.uniform(-g, g)), float(rng.uniform(-o, o)))
        for ch, (g, o) in CALIBRATION_SPEC.items()
    }
    drawn = dict(update)
    drawn.update({f"{ch}.gain": e[0] for ch, e in errors.items()})
    drawn.update({f"{ch}.offset": e[1] for ch, e in errors.items()})
    return PlantTruth(p.model_copy(update=update), Calibration(errors), drawn)


def rho_seawater(sa: float, t_c: np.ndarray | float, p_dbar: np.ndarray | float) -> np.ndarray:
    p = np.maximum(np.asarray(p_dbar, dtype=np.float64), 0.0)
    return np.asarray(gsw.rho(sa, gsw.CT_from_t(sa, t_c, p), p), dtype=np.float64)


def profile_temp(p: PlantParams, depth_m: np.ndarray | float) -> np.ndarray:
    """Return-leg fluid temperature: the deck value at the top, seabed + 3 degC at the bottom."""
    frac = np.asarray(depth_m, dtype=np.float64) / p.riser_length_m
    return p.deck_return_temp_c + (p.seabed_temp_c + 3.0 - p.deck_return_temp_c) * frac


def deck_temperature(p: PlantParams, t_s: np.ndarray) -> np.ndarray:
    """Deck return temperature: slow daily drift plus a two-hour wander."""
    t = np.asarray(t_s, dtype=np.float64)
    drift = p.deck_temp_drift_c * np.sin(2.0 * np.pi * t / 43_200.0)
    return p.deck_return_temp_c + drift + 0.15 * np.sin(2.0 * np.pi * t / 7200.0)


def seawater_column(p: PlantParams, dz: float = 1.0) -> np.ndarray:
    """Seawater density (kg/m3) every ``dz`` metres down the riser at its own pressure."""
    z = np.arange(0.0, p.riser_length_m + 2 * dz, dz)
    t = profile_temp(p, z)
    pres = np.zeros_like(z)
    rho = rho_seawater(p.salinity_g_kg, t, pres)
    for _ in range(3):
        cum = np.concatenate(([0.0], np.cumsum(0.5 * (rho[1:] + rho[:-1]) * dz)))
        pres = p.g_m_s2 * cum / 1e4
        rho = rho_seawater(p.salinity_g_kg, t, pres)
    return rho


def deck_seawater(p: PlantParams, t_s: np.ndarray, p_gauge_kpa: np.ndarray) -> np.ndarray:
    """Seawater on deck at the true deck temperature and line pressure."""
    return rho_seawater(p.salinity_g_kg, deck_temperature(p, t_s), np.asarray(p_gauge_kpa) / 10.0)


def deck_density(
    p: PlantParams,
    t_s: np.ndarray,
    cv_delivered: np.ndarray,
    q_ret_m3_s: np.ndarray,
    p_gauge_kpa: np.ndarray,
) -> np.ndarray:
    """True slurry density at the densitometer: in-situ solids (slip) in deck seawater."""
    vel = np.asarray(q_ret_m3_s) / p.return_area_m2
    k_slip = np.where(vel > 2 * p.slip_m_s, 1.0 / (1.0 - p.slip_m_s / np.maximum(vel, 1e-9)), 1.0)
    c_in = np.asarray(cv_delivered) * k_slip
    rho_w = deck_seawater(p, t_s, p_gauge_kpa)
    return np.asarray(rho_w + c_in * (p.rho_s_kg_m3 - rho_w), dtype=np.float64)


def mu_water(t_c: float) -> float:
    """Seawater dynamic viscosity (Pa s), a fit good to ~2 % between 0 and 30 degC."""
    return 1.88e-3 * math.exp(-0.0267 * t_c) * 1.07  # fresh water x 1.07 for salt


def thomas(cv: float) -> float:
    return 1.0 + 2.5 * cv + 10.05 * cv * cv + 0.00273 * math.exp(16.6 * cv)


def darcy(re: float, ed: float) -> float:
    """Darcy factor: laminar below Re 2,300, else Colebrook (Clamond's exact solution)."""
    return 64.0 / re if re < 2300.0 else float(friction_factor(Re=re, eD=ed))


def friction_table(p: PlantParams) -> np.ndarray:
    """Darcy factor at log10(Re) from RE_LOG_MIN to RE_LOG_MAX (laminar below 2,300)."""
    out = np.empty(RE_N)
    for i, lr in enumerate(np.linspace(RE_LOG_MIN, RE_LOG_MAX, RE_N)):
        re = 10.0**lr
        out[i] = darcy(re, p.roughness_m / p.return_id_m)
    return out
