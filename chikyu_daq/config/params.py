"""Config → `dsp.ChainParams`: the one place where installation keys meet kernel parameters."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from dsp.alarms import AlarmSpec
from dsp.params import (
    ALARM_BY_NAME,
    ALARM_NAMES,
    ALARM_TABLE,
    POWER_ROLES,
    ROLE_BY_KEY,
    SENSOR_FAULT,
    ChainParams,
)

if TYPE_CHECKING:  # config calls the estimators' checks at load: no runtime import back
    from chikyu_daq.config.model import Config


def alarm_spec(cfg: Config, name: str) -> AlarmSpec:
    """The config's thresholds for alarm `name`; a config built without validation (a test's
    `model_copy`) may lack it, then the alarm's one default applies."""
    a = cfg.alarms.get(name)
    return AlarmSpec(a.raise_at, a.clear_at, a.min_duration_s) if a else ALARM_BY_NAME[name].default


#: Sections whose keys carry over to the ChainParams field of the same name, after the first
#: prefix that makes one (an uncertainty of x is the field ``u_x``).
BY_NAME = (
    ("processing", ("",)),
    ("physics", ("",)),
    ("uncertainty", ("u_", "")),
    ("grade", ("",)),
    ("stability", ("",)),
)
#: ChainParams fields whose config key ("section.key") is named otherwise: the config key is
#: what an operator reads (units and section spelled out), the field what the chain reads.
RENAMED = {
    "rho_w": "physics.rho_w_kg_m3",
    "rho_s": "physics.rho_s_kg_m3",
    "rho_b": "physics.rho_b_kg_m3",
    "g": "physics.g_m_s2",
    "t_deck_c": "physics.deck_temperature_c",
    "p_deck_bar": "physics.deck_pressure_bar",
    "u_rho_m_sys_kg_m3": "uncertainty.density_sys_kg_m3",
    "u_rho_m_rand_kg_m3": "uncertainty.density_rand_kg_m3",
    "grade_default_ppm": "grade.default_rey_ppm",
    "u_grade_default_ppm": "grade.default_u_rey_ppm",
    "inj_hold_m3_h_s": "stability.injection_hold_m3_h_s",
}
_CHAIN_FIELDS = {f.name for f in dataclasses.fields(ChainParams)}


def _key(cfg: Config, path: str) -> Any:
    section, key = path.split(".")
    return getattr(getattr(cfg, section), key)


def _by_name(cfg: Config, skip: set[str]) -> dict[str, Any]:
    """The BY_NAME keys that are ChainParams fields not in `skip`; a field two keys would set
    is a programming error, not a silent override."""
    out: dict[str, Any] = {}
    for section, prefixes in BY_NAME:
        for k, v in getattr(cfg, section):
            name = next((f"{p}{k}" for p in prefixes if f"{p}{k}" in _CHAIN_FIELDS), None)
            if name is None or name in skip:
                continue
            if name in out:
                raise AssertionError(f"two config keys set ChainParams.{name}")
            out[name] = v
    return out


def chain_params(cfg: Config, *, replay: bool = False) -> ChainParams:
    """Kernel parameters for this installation; `replay` enables assay interpolation if asked.

    Keys carry over by name (BY_NAME) or by the RENAMED table; only derived values are
    spelled out here.
    """
    ph = cfg.physics
    given = {field: _key(cfg, path) for field, path in RENAMED.items()}
    given |= {
        "return_leg_volume_m3": math.pi / 4.0 * ph.return_id_m**2 * ph.riser_length_m,
        "teos10": ph.seawater == "teos10",
        "temp_profile": tuple((float(z), float(c)) for z, c in ph.temperature_profile),
        "colebrook": ph.friction == "colebrook",
        "grid_step_s": 1.0 / cfg.processing.grid_hz,
        "grade_interpolate": replay and cfg.grade.replay_interpolate,
        **{a.field: alarm_spec(cfg, a.name) for a in ALARM_TABLE},
    }
    return ChainParams(**_by_name(cfg, skip=set(given)), **given)


def sensor_fault_spec(cfg: Config) -> AlarmSpec:
    return alarm_spec(cfg, SENSOR_FAULT.name)


def alarm_names(cfg: Config) -> list[str]:
    """Every alarm the processor can raise: the chain's and SENSOR_FAULT(<role channel>) (not
    of the shaft-power roles: their drive's torque raises it)."""
    roles = cfg.roles.model_dump().items()
    channels = sorted({ch for key, ch in roles if ROLE_BY_KEY[key] not in POWER_ROLES})
    return [*ALARM_NAMES, *(f"{SENSOR_FAULT.name}({ch})" for ch in channels)]


def base_name(name: str) -> str:
    return name.split("(", 1)[0]
