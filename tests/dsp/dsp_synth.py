"""Synthetic grid blocks with known truth for the dsp tests (independent of dsp internals)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chikyu_daq.config.model import Config
from chikyu_daq.config.params import chain_params
from dsp.chain import ROLES, Block
from dsp.params import ChainParams

T0_NS = 1_767_225_600_000_000_000  # 2026-01-01
G = 9.80665
#: Windows short enough for a few thousand grid points (the tests' chain, not the defaults).
SHORT_WINDOWS: dict[str, Any] = {
    "max_transit_s": 300.0,
    "cv_window_s": 20.0,
    "compare_window_s": 30.0,
    "slope_window_s": 20.0,
    "osc_n_fft": 256,
    "osc_update_s": 5.0,
}
#: A 150 m riser with its transmitters inside the 5 m3 leg and tight E3 terms, so that E3 is
#: compared with E1 over the matching past window within the tests' few thousand points.
SHORT_E3_GEOMETRY: dict[str, Any] = {
    "depth_collector_m": 150.0,
    "depth_mid_m": 80.0,
    "depth_upper_m": 10.0,
    "u_dz_m": 0.1,
    "u_p_kpa": 1.0,
}
#: The systematic uncertainty terms, zeroed where a random source is under test alone.
NO_SYSTEMATIC_U: dict[str, Any] = {
    "u_flow_rel_sys": 0.0,
    "u_rho_m_sys_kg_m3": 0.0,
    "u_rho_s_kg_m3": 0.0,
    "u_rho_w_kg_m3": 0.0,
}


def grid(n: int, step_s: float = 0.1) -> NDArray[np.int64]:
    return T0_NS + np.arange(n, dtype=np.int64) * round(step_s * 1e9)


def pressures_kpa(
    p: ChainParams,
    rho_lower: float | NDArray[np.float64],
    rho_upper: float | NDArray[np.float64],
    q_m3_h: NDArray[np.float64] | float,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Collector/mid/upper pressures for given section densities, with Darcy friction."""
    area = np.pi * p.return_id_m**2 / 4
    v = np.asarray(q_m3_h, dtype=float) / 3600 / area
    dz_lo = p.depth_collector_m - p.depth_mid_m
    dz_up = p.depth_mid_m - p.depth_upper_m
    p_up = 101.325 + 1030 * G * p.depth_upper_m / 1000 + 0 * v
    fr = p.darcy_f / p.return_id_m * v**2 / 2  # per unit density per metre
    p_mid = p_up + rho_upper * (G + fr) * dz_up / 1000
    p_col = p_mid + rho_lower * (G + fr) * dz_lo / 1000
    return p_col, p_mid, p_up


def nominal(
    n: int,
    p: ChainParams,
    *,
    cv: float = 0.017,
    q_ret: float | NDArray[np.float64] = 330.0,
    q_inj: float | NDArray[np.float64] = 300.0,
    rng: np.random.Generator | None = None,
    noise: float = 0.0,
) -> tuple[NDArray[np.int64], dict[str, NDArray[np.float64]], dict[str, NDArray[np.uint8]]]:
    """Steady (or given) flows, constant Cv; optional white noise of relative size ``noise``."""
    t = grid(n, p.grid_step_s)
    rho_m = p.rho_w + cv * (p.rho_s - p.rho_w)
    qr = np.broadcast_to(np.asarray(q_ret, float), (n,)).copy()
    qi = np.broadcast_to(np.asarray(q_inj, float), (n,)).copy()
    pc, pm, pu = pressures_kpa(p, rho_m, rho_m, qr)
    v = {
        "q_return_m3_h": qr,
        "q_injection_m3_h": qi,
        "rho_mix_kg_m3": np.full(n, rho_m),
        "p_collector_kpa": pc,
        "p_mid_kpa": pm,
        "p_upper_kpa": pu,
        "p_discharge_bar": np.full(n, 60.0),
        "p_return_deck_bar": np.full(n, 3.0),
        "torque_a_pct": np.full(n, 75.0),
        "torque_b_pct": np.zeros(n),
    }
    if rng is not None and noise > 0:
        for k in v:
            v[k] = v[k] * (1 + noise * rng.standard_normal(n))
    q = {k: np.zeros(n, np.uint8) for k in ROLES}
    return t, v, q


def make_block(
    t: NDArray[np.int64],
    v: dict[str, NDArray[np.float64]],
    q: dict[str, NDArray[np.uint8]],
    sl: slice = slice(None),
    **assays: NDArray[np.float64] | NDArray[np.int64],
) -> Block:
    return Block(
        t[sl], {k: a[sl] for k, a in v.items()}, {k: a[sl] for k, a in q.items()}, **assays
    )


def chain_defaults(**changes: Any) -> ChainParams:
    """ChainParams from the config model's defaults (their one definition), with ``changes``."""
    return dataclasses.replace(chain_params(Config.model_construct()), **changes)
