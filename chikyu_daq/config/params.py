"""Config → `dsp.ChainParams`: the one place where installation keys meet kernel parameters."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from dsp.alarms import AlarmSpec
from dsp.params import ALARM_NAMES as CHAIN_ALARM_NAMES
from dsp.params import POWER_ROLES, ROLE_BY_KEY, ChainParams

if TYPE_CHECKING:  # config calls the estimators' checks at load: no runtime import back
    from chikyu_daq.config.model import Alarm, Config

#: Config alarm name → ChainParams field.
CHAIN_ALARMS = {
    "DEPOSITION_RISK": "deposition_risk",
    "SLUGGING": "slugging",
    "PLUG_SUSPECTED": "plug_suspected",
    "PUMP_SURGE": "pump_surge",
    "FLOW_IMBALANCE": "flow_imbalance",
    "ESTIMATOR_DISAGREEMENT": "estimator_disagreement",
}

SENSOR_FAULT_DEFAULT = AlarmSpec(2.0, 0.0, 0.0)


def alarm_spec(a: Alarm) -> AlarmSpec:
    return AlarmSpec(a.raise_at, a.clear_at, a.min_duration_s)


def _by_name(*sections: tuple[BaseModel, tuple[str, ...]]) -> dict[str, Any]:
    """Keys that are ChainParams fields of the same name after the first prefix that makes
    one; a field two keys would set is a programming error, not a silent override."""
    out: dict[str, Any] = {}
    for section, prefixes in sections:
        for k, v in section:
            name = next((f"{p}{k}" for p in prefixes if f"{p}{k}" in _CHAIN_FIELDS), None)
            if name is None or name in _RENAMED:
                continue
            if name in out:
                raise AssertionError(f"two config keys set ChainParams.{name}")
            out[name] = v
    return out


_CHAIN_FIELDS = {f.name for f in dataclasses.fields(ChainParams)}
#: ChainParams fields whose config key differs in name or value (set in `chain_params`).
_RENAMED = {
    "rho_w",
    "rho_s",
    "rho_b",
    "g",
    "return_leg_volume_m3",
    "teos10",
    "t_deck_c",
    "p_deck_bar",
    "temp_profile",
    "colebrook",
    "grid_step_s",
    "max_gap_s",
    "u_rho_m_sys_kg_m3",
    "u_rho_m_rand_kg_m3",
    "grade_default_ppm",
    "u_grade_default_ppm",
    "reo_factor",
    "grade_interpolate",
    "inj_hold_m3_h_s",
}


def chain_params(cfg: Config, *, replay: bool = False) -> ChainParams:
    """Kernel parameters for this installation; `replay` enables assay interpolation if asked.

    Keys named as the ChainParams field (uncertainties with a ``u_`` prefix) carry over by
    name; only the renames and derived values are spelled out here.
    """
    ph, un, st = cfg.physics, cfg.uncertainty, cfg.stability
    alarms: dict[str, Any] = {
        field: alarm_spec(cfg.alarms[name])
        for name, field in CHAIN_ALARMS.items()
        if name in cfg.alarms
    }
    named = _by_name((ph, ("",)), (un, ("u_", "")), (st, ("",)))
    return ChainParams(
        **named,
        rho_w=ph.rho_w_kg_m3,
        rho_s=ph.rho_s_kg_m3,
        rho_b=ph.rho_b_kg_m3,
        g=ph.g_m_s2,
        return_leg_volume_m3=math.pi / 4.0 * ph.return_id_m**2 * ph.riser_length_m,
        teos10=ph.seawater == "teos10",
        t_deck_c=ph.deck_temperature_c,
        p_deck_bar=ph.deck_pressure_bar,
        temp_profile=tuple((float(z), float(c)) for z, c in ph.temperature_profile),
        colebrook=ph.friction == "colebrook",
        grid_step_s=1.0 / cfg.processing.grid_hz,
        max_gap_s=cfg.processing.max_gap_s,
        u_rho_m_sys_kg_m3=un.density_sys_kg_m3,
        u_rho_m_rand_kg_m3=un.density_rand_kg_m3,
        grade_default_ppm=cfg.grade.default_rey_ppm,
        u_grade_default_ppm=cfg.grade.default_u_rey_ppm,
        reo_factor=cfg.grade.reo_factor,
        grade_interpolate=replay and cfg.grade.replay_interpolate,
        inj_hold_m3_h_s=st.injection_hold_m3_h_s,
        **alarms,
    )


def sensor_fault_spec(cfg: Config) -> AlarmSpec:
    sf = cfg.alarms.get("SENSOR_FAULT")
    return alarm_spec(sf) if sf is not None else SENSOR_FAULT_DEFAULT


def alarm_names(cfg: Config) -> list[str]:
    """Every alarm the processor can raise: the chain's and SENSOR_FAULT(<role channel>) (not
    of the shaft-power roles: their drive's torque raises it)."""
    roles = cfg.roles.model_dump().items()
    channels = sorted({ch for key, ch in roles if ROLE_BY_KEY[key] not in POWER_ROLES})
    return [*CHAIN_ALARM_NAMES, *(f"SENSOR_FAULT({ch})" for ch in channels)]


def base_name(name: str) -> str:
    return name.split("(", 1)[0]
