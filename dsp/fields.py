"""The one table of chain outputs: name, unit, dtype, published group, quality code or value.

Every place that names, types or groups an output reads it from here: the MQTT payloads and
InfluxDB measurements (`group` "yield" or "stability"; None means recorded only), the JSON types
(`dtype`: "float64" values go out as floats, non-finite as null; "uint8" codes as integers) and
`quality` (a GOOD/UNCERTAIN/BAD code of `dsp.quality`, not a measured value). A name that begins
with `q_` is not a quality code by itself: `q_return_m3_h` is a flow. The rows follow the
kernel's output rows, then its quality rows, then `alarm_bits` (a test holds that to the kernel).
Units are SI-style text: "1" for a dimensionless ratio, "" for a code or bit mask.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

__all__ = [
    "FIELDS",
    "FIELD_BY_NAME",
    "STABILITY_FIELDS",
    "YIELD_FIELDS",
    "OutputField",
    "group_fields",
]

Group = Literal["yield", "stability"]


Dtype = Literal["float64", "uint8"]


class OutputField(NamedTuple):
    name: str
    unit: str
    dtype: Dtype
    group: Group | None
    quality: bool = False


_F: Dtype = "float64"
_Y: Group = "yield"
_S: Group = "stability"

FIELDS: tuple[OutputField, ...] = (
    OutputField("cv", "1", _F, _Y),
    OutputField("ms_e1_kg_s", "kg/s", _F, _Y),
    OutputField("ms_e2_kg_s", "kg/s", _F, _Y),
    OutputField("transit_s", "s", _F, _Y),
    OutputField("rho_section_kg_m3", "kg/m3", _F, None),
    OutputField("cv_section", "1", _F, _Y),
    OutputField("ms_e3_kg_s", "kg/s", _F, _Y),
    OutputField("rho_lower_kg_m3", "kg/m3", _F, None),
    OutputField("rho_upper_kg_m3", "kg/m3", _F, None),
    OutputField("disagreement_z", "1", _F, _Y),
    OutputField("grade_ppm", "ppm", _F, _Y),
    OutputField("u_grade_ppm", "ppm", _F, None),
    OutputField("rey_kg_h", "kg/h", _F, _Y),
    OutputField("reo_kg_h", "kg/h", _F, _Y),
    OutputField("cum_rey_kg", "kg", _F, _Y),
    OutputField("cum_reo_kg", "kg", _F, _Y),
    OutputField("u95_rey_kg_h", "kg/h", _F, _Y),
    OutputField("u95_cum_rey_kg", "kg", _F, _Y),
    OutputField("u95_cum_reo_kg", "kg", _F, _Y),
    OutputField("velocity_m_s", "m/s", _F, _S),
    OutputField("deposition_margin", "1", _F, _S),
    OutputField("cv_flow", "1", _F, _S),
    OutputField("cv_density", "1", _F, _S),
    OutputField("cv_torque", "1", _F, _S),
    OutputField("osc_freq_hz", "Hz", _F, _S),
    OutputField("osc_share", "1", _F, _S),
    OutputField("osc_amp_bar", "bar", _F, _S),
    OutputField("osc_severity", "1", _F, None),
    OutputField("discharge_slope_bar_s", "bar/s", _F, _S),
    OutputField("injection_slope_m3_h_s", "m3/h/s", _F, None),
    OutputField("plug_indicator_bar_s", "bar/s", _F, _S),
    OutputField("flow_ratio", "1", _F, _S),
    OutputField("stability_index", "1", _F, _S),
    OutputField("gap_s", "s", _F, _Y),
    OutputField("rho_mix_kg_m3", "kg/m3", _F, _Y),
    OutputField("q_return_m3_h", "m3/h", _F, _Y),
    OutputField("q_injection_m3_h", "m3/h", _F, _Y),
    OutputField("rho_w_kg_m3", "kg/m3", _F, _Y),
    OutputField("rho_zero_kg_m3", "kg/m3", _F, _Y),
    OutputField("u_rho_zero_kg_m3", "kg/m3", _F, _Y),
    OutputField("referenced", "1", _F, _Y),
    OutputField("solids_t_h", "t/h", _F, _Y),
    OutputField("cum_solids_kg", "kg", _F, _Y),
    OutputField("u95_cum_solids_kg", "kg", _F, _Y),
    OutputField("inventory_kg", "kg", _F, _Y),
    OutputField("plug_expected_bar_s", "bar/s", _F, _S),
    OutputField("flow_imbalance_z", "1", _F, _S),
    OutputField("cv_e3_delayed", "1", _F, None),
    OutputField("cv_e1_window", "1", _F, None),
    OutputField("disagreement_e3_z", "1", _F, _Y),
    # the operator-commanded seawater reference: dsp.params.REF_STATES[code]; and how old the
    # applied reference (commanded or automatic) is
    OutputField("ref_cmd_state", "1", _F, _Y),
    OutputField("rho_zero_age_s", "s", _F, _Y),
    # the drives' shaft power, its energy and the specific energy (DESIGN "REY yield")
    OutputField("shaft_power_kw", "kW", _F, _Y),
    OutputField("cum_energy_kwh", "kWh", _F, _Y),
    OutputField("specific_energy_kwh_t", "kWh/t", _F, _Y),
    OutputField("specific_energy_rate_kwh_t", "kWh/t", _F, _Y),
    OutputField("q_yield", "", "uint8", _Y, quality=True),
    OutputField("q_cumulative", "", "uint8", _Y, quality=True),
    OutputField("q_stability", "", "uint8", _S, quality=True),
    OutputField("alarm_bits", "", "uint8", None),
)

FIELD_BY_NAME = {f.name: f for f in FIELDS}


def group_fields(group: Group) -> tuple[str, ...]:
    """Names published in `group`, in table order."""
    return tuple(f.name for f in FIELDS if f.group == group)


YIELD_FIELDS = group_fields("yield")
STABILITY_FIELDS = group_fields("stability")
