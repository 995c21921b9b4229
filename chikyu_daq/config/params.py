"""Config → `dsp.ChainParams`: the one place where installation keys meet kernel parameters."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from dsp.alarms import AlarmSpec
from dsp.params import ALARM_NAMES as CHAIN_ALARM_NAMES
from dsp.params import ChainParams

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


def chain_params(cfg: Config, *, replay: bool = False) -> ChainParams:
    """Kernel parameters for this installation; `replay` enables assay interpolation if asked."""
    ph, un, st = cfg.physics, cfg.uncertainty, cfg.stability
    alarms: dict[str, Any] = {
        field: alarm_spec(cfg.alarms[name])
        for name, field in CHAIN_ALARMS.items()
        if name in cfg.alarms
    }
    return ChainParams(
        rho_w=ph.rho_w_kg_m3,
        rho_s=ph.rho_s_kg_m3,
        rho_b=ph.rho_b_kg_m3,
        cv_max=ph.cv_max,
        g=ph.g_m_s2,
        return_id_m=ph.return_id_m,
        return_leg_volume_m3=math.pi / 4.0 * ph.return_id_m**2 * ph.riser_length_m,
        depth_collector_m=ph.depth_collector_m,
        depth_mid_m=ph.depth_mid_m,
        depth_upper_m=ph.depth_upper_m,
        darcy_f=ph.darcy_f,
        durand_fl=ph.durand_fl,
        teos10=ph.seawater == "teos10",
        salinity_g_kg=ph.salinity_g_kg,
        t_deck_c=ph.deck_temperature_c,
        p_deck_bar=ph.deck_pressure_bar,
        temp_profile=tuple((float(z), float(c)) for z, c in ph.temperature_profile),
        colebrook=ph.friction == "colebrook",
        roughness_m=ph.roughness_m,
        friction_cv=ph.friction_cv,
        slip_m_s=ph.slip_m_s,
        grid_step_s=1.0 / cfg.processing.grid_hz,
        max_gap_s=cfg.processing.max_gap_s,
        max_transit_s=st.max_transit_s,
        u_flow_rel_sys=un.flow_rel_sys,
        u_flow_rel_rand=un.flow_rel_rand,
        u_rho_m_sys_kg_m3=un.density_sys_kg_m3,
        u_rho_m_rand_kg_m3=un.density_rand_kg_m3,
        tau_random_s=un.tau_random_s,
        u_rho_s_kg_m3=un.rho_s_kg_m3,
        u_rho_w_kg_m3=un.rho_w_kg_m3,
        u_rho_b_kg_m3=un.rho_b_kg_m3,
        u_p_kpa=un.p_kpa,
        u_rho_w_ref_kg_m3=un.rho_w_ref_kg_m3,
        u_friction_rel=un.friction_rel,
        u_dz_m=un.dz_m,
        u_slip_m_s=un.slip_m_s,
        noise_batch_s=un.noise_batch_s,
        zero_window_s=st.zero_window_s,
        zero_max_kg_m3=st.zero_max_kg_m3,
        zero_steady_kg_m3=st.zero_steady_kg_m3,
        zero_min_flow_m3_h=st.zero_min_flow_m3_h,
        stop_flow_m3_h=st.stop_flow_m3_h,
        stop_holdoff_s=st.stop_holdoff_s,
        grade_default_ppm=cfg.grade.default_rey_ppm,
        u_grade_default_ppm=cfg.grade.default_u_rey_ppm,
        reo_factor=cfg.grade.reo_factor,
        grade_interpolate=replay and cfg.grade.replay_interpolate,
        cv_window_s=st.cv_window_s,
        compare_window_s=st.compare_window_s,
        slope_window_s=st.slope_window_s,
        inj_hold_m3_h_s=st.injection_hold_m3_h_s,
        hampel_window=st.hampel_window,
        hampel_n_sigma=st.hampel_n_sigma,
        hampel_floor_flow_m3_h=st.hampel_floor_flow_m3_h,
        hampel_floor_rho_kg_m3=st.hampel_floor_rho_kg_m3,
        osc_decim=st.osc_decim,
        osc_n_fft=st.osc_n_fft,
        osc_update_s=st.osc_update_s,
        osc_f_lo_hz=st.osc_f_lo_hz,
        osc_f_hi_hz=st.osc_f_hi_hz,
        osc_amp_bad_bar=st.osc_amp_bad_bar,
        margin_ok=st.margin_ok,
        cv_flow_bad=st.cv_flow_bad,
        cv_density_bad=st.cv_density_bad,
        cv_torque_bad=st.cv_torque_bad,
        slope_bad_bar_s=st.slope_bad_bar_s,
        ratio_nominal=st.ratio_nominal,
        ratio_tol=st.ratio_tol,
        **alarms,
    )


def sensor_fault_spec(cfg: Config) -> AlarmSpec:
    sf = cfg.alarms.get("SENSOR_FAULT")
    return alarm_spec(sf) if sf is not None else SENSOR_FAULT_DEFAULT


def alarm_names(cfg: Config) -> list[str]:
    """Every alarm the processor can raise: the chain's and SENSOR_FAULT(<role channel>)."""
    channels = sorted(set(cfg.roles.model_dump().values()))
    return [*CHAIN_ALARM_NAMES, *(f"SENSOR_FAULT({ch})" for ch in channels)]


def base_name(name: str) -> str:
    return name.split("(", 1)[0]
