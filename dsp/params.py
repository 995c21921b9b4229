"""Chain parameters: site physics, instrument uncertainties, windows and alarm thresholds.

Values come from the config model (its defaults are the reference installation, see
docs/CONVENTIONS.md). Uncertainties are standard
(k = 1). Each instrument's stated total is split into a systematic part (calibration: the same
error for the whole run, so it does not shrink when integrated) and a random part (noise
independent between samples ``tau_random_s`` apart): flow 0.5 % of reading = 0.4 % calibration
(+) 0.3 % repeatability; density 1.5 kg/m3 = 1.2 kg/m3 calibration (+) 0.9 kg/m3 counting noise
per second. rho_s, rho_w and grade are systematic for a run.

Seawater is TEOS-10 (``teos10``): on deck at the measured temperature and line pressure, along
the riser at each depth's hydrostatic pressure and the configured temperature profile
(:mod:`dsp.seawater`, computed outside numba); ``rho_w`` is then only the nominal value used
for the Durand criterion and parameter checks. ``teos10 = False`` keeps one constant ``rho_w``
and ``colebrook = False`` one constant ``darcy_f`` (analytic test oracles).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from . import seawater
from .alarms import AlarmSpec
from .named import from_fields


class Role(NamedTuple):
    """One estimator input: its name (unit in the name), the config ``[roles]`` key naming its
    channel, and its physically possible range (a GOOD value outside it, or non-finite, is
    made BAD before any filter sees it: an absurd sample must never poison state)."""

    name: str
    key: str
    lo: float
    hi: float
    optional: bool = False


#: The one table of input roles: block keys, kernel rows (``dsp.kernel.R_*``, in this order),
#: config keys and ranges all derive from it.
ROLE_TABLE = (
    Role("q_return_m3_h", "q_return", -100.0, 2000.0),
    Role("q_injection_m3_h", "q_injection", -100.0, 2000.0),
    Role("rho_mix_kg_m3", "rho_mix", 900.0, 2600.0),
    Role("p_collector_kpa", "p_collector", 0.0, 100_000.0),
    Role("p_mid_kpa", "p_mid", 0.0, 100_000.0),
    Role("p_upper_kpa", "p_upper", 0.0, 100_000.0),
    Role("p_discharge_bar", "p_discharge", -5.0, 500.0),
    Role("p_return_deck_bar", "p_return_deck", -5.0, 100.0),
    Role("torque_a_pct", "torque_a", -400.0, 400.0),
    Role("torque_b_pct", "torque_b", -400.0, 400.0),
    # the deck temperature for TEOS-10 seawater
    Role("t_deck_c", "t_deck", -5.0, 60.0, optional=True),
    # the pumps' shaft power (kW) for the specific energy (kWh per dry tonne)
    Role("shaft_power_a_kw", "shaft_power_a", -1000.0, 10_000.0, optional=True),
    Role("shaft_power_b_kw", "shaft_power_b", -1000.0, 10_000.0, optional=True),
)
ROLES = tuple(r.name for r in ROLE_TABLE if not r.optional)
#: Inputs a block may carry besides ROLES.
OPTIONAL_ROLES = tuple(r.name for r in ROLE_TABLE if r.optional)
INPUT_RANGES: dict[str, tuple[float, float]] = {r.name: (r.lo, r.hi) for r in ROLE_TABLE}
#: Config ``[roles]`` key -> role name.
ROLE_BY_KEY = {r.key: r.name for r in ROLE_TABLE}


class AlarmDef(NamedTuple):
    """One alarm: the output field it watches, which way it trips, the range that value can
    take (thresholds outside it would never or always trip) and its default thresholds."""

    name: str
    watches: str
    direction: Literal["high", "low"]
    lo: float
    hi: float
    default: AlarmSpec

    @property
    def field(self) -> str:
        """Its :class:`ChainParams` field."""
        return self.name.lower()


#: The chain's alarms, in the kernel's order (alarm bit k is ``ALARM_TABLE[k]``). Their one
#: set of defaults: the config model takes its `[alarms.*]` defaults from here.
ALARM_TABLE = (
    # deposition margin V / Vc (Durand) falls below
    AlarmDef("DEPOSITION_RISK", "deposition_margin", "low", 0.0, 100.0, AlarmSpec(1.1, 1.2, 30.0)),
    # oscillation severity, a share times an amplitude scale
    AlarmDef("SLUGGING", "osc_severity", "high", 0.0, 1.0, AlarmSpec(0.5, 0.3, 60.0)),
    # discharge rise (bar/s) the riser's solids inventory does not explain
    AlarmDef(
        "PLUG_SUSPECTED",
        "plug_indicator_bar_s",
        "high",
        -100.0,
        100.0,
        AlarmSpec(0.006, 0.003, 60.0),
    ),
    # rolling coefficient of variation of pump torque
    AlarmDef("PUMP_SURGE", "cv_torque", "high", 0.0, 10.0, AlarmSpec(0.10, 0.05, 10.0)),
    # (Q_return - Q_injection) over its combined standard uncertainty falls below
    AlarmDef("FLOW_IMBALANCE", "flow_imbalance_z", "low", -1e3, 1e3, AlarmSpec(-3.0, -2.0, 60.0)),
    # |E1 - E2| over their combined standard uncertainty
    AlarmDef(
        "ESTIMATOR_DISAGREEMENT", "disagreement_z", "high", 0.0, 1e3, AlarmSpec(3.0, 2.0, 300.0)
    ),
)
ALARM_NAMES = tuple(a.name for a in ALARM_TABLE)
#: Raised by the processor, not the chain: seconds a role channel has been BAD without a break.
SENSOR_FAULT = AlarmDef("SENSOR_FAULT", "", "high", 0.0, 86_400.0, AlarmSpec(2.0, 0.0, 0.0))
#: Every alarm a config may set.
ALARMS = (*ALARM_TABLE, SENSOR_FAULT)
ALARM_BY_NAME = {a.name: a for a in ALARMS}


@dataclass(frozen=True)
class ChainParams:
    """Everything the chain is configured by. No defaults here: the config model
    (``chikyu_daq.config.model``) is the one place they live (the alarms' from ALARM_TABLE),
    and ``chain_params`` builds this from it."""

    # physics (kg/m3, m, m/s2)
    rho_w: float
    rho_s: float
    rho_b: float
    cv_max: float
    g: float
    return_id_m: float
    return_leg_volume_m3: float
    depth_collector_m: float
    depth_mid_m: float
    depth_upper_m: float
    darcy_f: float
    durand_fl: float
    # seawater (TEOS-10), friction (Colebrook), slip
    teos10: bool
    salinity_g_kg: float
    t_deck_c: float  # used while the deck temperature is unavailable
    p_deck_bar: float  # used while the deck line pressure is unavailable
    temp_profile: tuple[tuple[float, float], ...]
    colebrook: bool
    roughness_m: float
    friction_cv: float  # slurry viscosity (Thomas) for the Reynolds number
    slip_m_s: float
    # grid and integration
    grid_step_s: float
    max_gap_s: float
    max_transit_s: float
    # uncertainties (standard, k = 1)
    u_flow_rel_sys: float
    u_flow_rel_rand: float
    u_rho_m_sys_kg_m3: float
    u_rho_m_rand_kg_m3: float
    tau_random_s: float
    u_rho_s_kg_m3: float
    u_rho_w_kg_m3: float
    u_rho_b_kg_m3: float
    u_p_kpa: float
    u_rho_w_ref_kg_m3: float  # rho_w after a seawater reference (temperature drift only)
    u_friction_rel: float
    u_dz_m: float
    u_slip_m_s: float
    noise_batch_s: float  # batches for the empirical (correlated) random part
    # seawater reference ("zero"): no mud taken and a steady reading close to TEOS-10
    zero_window_s: float
    zero_stretch_max_s: float  # the zero averages its whole stretch, up to this
    zero_max_kg_m3: float
    zero_steady_kg_m3: float
    zero_min_flow_m3_h: float
    # a planned stop: injection below this suppresses the flow and stability alarms by design
    # (a stopped lift is not deposition, surge or imbalance), until holdoff after restart
    stop_flow_m3_h: float
    stop_holdoff_s: float
    # grade
    grade_default_ppm: float
    u_grade_default_ppm: float
    reo_factor: float
    grade_interpolate: bool
    # windows (s) and filters
    cv_window_s: float
    compare_window_s: float
    slope_window_s: float
    inj_hold_m3_h_s: float  # injection "holds" while its slope is below this
    hampel_window: int
    hampel_n_sigma: float
    # floors of the Hampel scale: keep them a few times above the sensor noise, or genuine
    # noise on held grid values (where MAD is near 0) is clipped and biases the uncertainty
    hampel_floor_flow_m3_h: float
    hampel_floor_rho_kg_m3: float
    osc_decim: int
    osc_n_fft: int
    osc_update_s: float
    osc_f_lo_hz: float
    osc_f_hi_hz: float
    # stability index scales: the value at which a component reaches 0 (1 = healthy)
    margin_ok: float
    cv_flow_bad: float
    cv_density_bad: float
    cv_torque_bad: float
    slope_bad_bar_s: float
    osc_amp_bad_bar: float  # oscillation severity = share * min(amplitude / this, 1)
    ratio_nominal: float
    ratio_tol: float
    # alarms (ALARM_TABLE: each field is the alarm's name in lower case)
    deposition_risk: AlarmSpec
    slugging: AlarmSpec
    plug_suspected: AlarmSpec
    pump_surge: AlarmSpec
    flow_imbalance: AlarmSpec
    estimator_disagreement: AlarmSpec

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type in ("float", "int") and (
                isinstance(v, bool) or not isinstance(v, int | float)
            ):
                raise TypeError(f"ChainParams.{f.name} must be a number, got {v!r}")
            if f.type in ("float", "int") and not math.isfinite(v):
                raise ValueError(f"ChainParams.{f.name} must be finite, got {v!r}")
        if not self.rho_w < self.rho_b < self.rho_s:
            raise ValueError(
                f"need rho_w < rho_b < rho_s, got {self.rho_w}, {self.rho_b}, {self.rho_s}"
            )
        if not self.depth_collector_m > self.depth_mid_m > self.depth_upper_m >= 0:
            raise ValueError("sensor depths must decrease collector > mid > upper >= 0")
        positive = (
            "cv_max",
            "g",
            "return_id_m",
            "return_leg_volume_m3",
            "grid_step_s",
            "max_gap_s",
            "max_transit_s",
            "tau_random_s",
            "grade_default_ppm",
            "reo_factor",
            "cv_window_s",
            "compare_window_s",
            "slope_window_s",
            "osc_update_s",
            "margin_ok",
            "cv_flow_bad",
            "cv_density_bad",
            "cv_torque_bad",
            "slope_bad_bar_s",
            "ratio_tol",
            "osc_amp_bad_bar",
            "salinity_g_kg",
            "friction_cv",
            "noise_batch_s",
            "zero_window_s",
            "zero_stretch_max_s",
            "zero_max_kg_m3",
            "zero_steady_kg_m3",
            "zero_min_flow_m3_h",
            "stop_flow_m3_h",
            "stop_holdoff_s",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"ChainParams.{name} must be > 0, got {getattr(self, name)}")
        if self.hampel_window < 3 or self.osc_decim < 1:
            raise ValueError("hampel_window must be >= 3 and osc_decim >= 1")
        if self.osc_n_fft < 64 or self.osc_n_fft & (self.osc_n_fft - 1):
            raise ValueError(f"osc_n_fft must be a power of two >= 64, got {self.osc_n_fft}")
        if self.osc_f_hi_hz > 0.5 / (self.grid_step_s * self.osc_decim):
            raise ValueError(f"osc_f_hi_hz {self.osc_f_hi_hz} is above the decimated Nyquist")
        zs = [z for z, _ in self.temp_profile]
        if (
            len(zs) < 1
            or zs != sorted(zs)
            or not all(math.isfinite(z) and math.isfinite(c) for z, c in self.temp_profile)
        ):
            raise ValueError("temp_profile must be (depth m, degC) points by increasing depth")
        for name in ("roughness_m", "slip_m_s", "u_friction_rel", "u_dz_m", "u_slip_m_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"ChainParams.{name} must be >= 0, got {getattr(self, name)}")
        if self.margin_ok <= 1.0:
            raise ValueError(f"margin_ok must be > 1, got {self.margin_ok}")

    def alarm_specs(self) -> tuple[AlarmSpec, ...]:
        """Specs in ``ALARM_NAMES`` order."""
        return tuple(getattr(self, a.field) for a in ALARM_TABLE)

    def points(self, seconds: float) -> int:
        """Whole grid steps in ``seconds`` (at least 1)."""
        return max(1, round(seconds / self.grid_step_s))


#: The zero window's batches for its standard error; their length (window / this) also
#: batches the whole stretch the zero averages.
ZERO_BATCHES = 10


def _friction(p: ChainParams) -> NDArray[np.float64]:
    """Darcy factor table over velocity (Colebrook at the mixture's Re, or the fixed factor)."""
    if not p.colebrook:
        return np.full(seawater.FRICTION_N, p.darcy_f)
    rho = p.rho_w if not p.teos10 else p.rho_w + p.friction_cv * (p.rho_s - p.rho_w)
    return np.array(seawater.friction_table(rho, p.return_id_m, p.roughness_m, p.friction_cv))


def section_rho_w(p: ChainParams) -> tuple[float, float, float, float]:
    """Mean seawater density of the whole, lower and upper sections and at the collector."""
    if not p.teos10:
        return p.rho_w, p.rho_w, p.rho_w, p.rho_w
    sa, prof, g = p.salinity_g_kg, p.temp_profile, p.g
    zc, zm, zu = p.depth_collector_m, p.depth_mid_m, p.depth_upper_m
    return (
        seawater.section_seawater(sa, prof, zu, zc, g),
        seawater.section_seawater(sa, prof, zm, zc, g),
        seawater.section_seawater(sa, prof, zu, zm, g),
        seawater.section_seawater(sa, prof, zc - 1.0, zc, g),
    )


def hydrostatic(p: ChainParams) -> tuple[float, float, float, float]:
    """Seawater-column absolute pressure (kPa) at collector, mid, upper; compressibility.

    The kernel evaluates the section's water at the measured pressure as
    ``rho_sec + kappa * (p_measured - p_seawater)`` (kappa in kg/m3 per kPa).
    """
    if not p.teos10:
        return 0.0, 0.0, 0.0, 0.0
    sa, prof, g = p.salinity_g_kg, p.temp_profile, p.g
    zs = (p.depth_collector_m, p.depth_mid_m, p.depth_upper_m)
    pk = [
        seawater.P_ATM_DBAR * 10.0 + seawater.sea_pressure_dbar(sa, prof, z, g) * 10.0 for z in zs
    ]
    zm = 0.5 * (p.depth_collector_m + p.depth_upper_m)
    pm = seawater.sea_pressure_dbar(sa, prof, zm, g)
    tm = float(seawater.profile_temperature(zm, prof))
    kappa = float(
        (seawater.rho_seawater(sa, tm, pm + 10.0) - seawater.rho_seawater(sa, tm, pm)) / 100.0
    )
    return pk[0], pk[1], pk[2], kappa


class KernelParams(NamedTuple):
    """What the chain kernel reads, by name: built once per :class:`ChainParams`.

    Floats and ints derived from the chain parameters (areas, seawater-column pressures,
    window lengths in points or 1 s lanes); no arrays (those are :class:`KernelTables`), so
    every step may take it for free.
    """

    rho_s: float
    phi_b: float  # solids fraction of the in-situ mud (pore water at the collector)
    cv_max: float
    g: float
    area_return_m2: float
    d_return_m: float  # the return line's inner diameter, back from its area
    v_critical_m_s: float  # Durand deposition velocity
    leg_volume_m3: float
    dz_lower_m: float
    dz_upper_m: float
    dz_section_m: float
    dt_s: float
    max_gap_s: float
    u_flow_rel_sys: float
    u_flow_rel_rand: float
    u_flow_rel: float  # total (systematic and random) relative flow uncertainty
    u_rho_m_sys: float
    u_rho_m_rand: float
    tau_random_s: float
    u_rho_s: float
    u_rho_w: float
    u_rho_b: float
    u_p_kpa: float
    reo_factor: float
    hampel_n_sigma: float
    hampel_floor_flow: float
    hampel_floor_rho: float
    osc_f_lo_hz: float
    osc_f_hi_hz: float
    margin_ok: float
    cv_flow_bad: float
    cv_density_bad: float
    cv_torque_bad: float
    slope_bad_bar_s: float
    ratio_nominal: float
    ratio_tol: float
    inj_hold_m3_h_s: float
    osc_amp_bad_bar: float
    rho_w_section: float  # mean seawater density over the E3 section
    slip_m_s: float
    u_friction_rel: float
    u_dz_m: float
    u_slip_m_s: float
    u_rho_w_ref: float
    zero_max_kg_m3: float
    zero_steady_kg_m3: float
    zero_min_flow_m3_h: float
    volume_collector_m3: float  # pipe volume from the collector to the deck
    volume_section_m3: float  # pipe volume of the E3 section
    friction_dv_m_s: float  # velocity step of the friction table
    inventory_bar_per_kg: float  # discharge pressure per kg of solids in the riser
    p_sea_collector_kpa: float  # seawater-column absolute pressure at the transmitters
    p_sea_mid_kpa: float
    p_sea_upper_kpa: float
    kappa: float  # d rho_w / d p at the section (kg/m3 per kPa)
    stop_flow_m3_h: float
    stop_holdoff_s: float
    grade_default_ppm: float
    u_grade_default_ppm: float
    grade_interpolate: bool
    cv_points: int  # grid points of the CV window
    compare_lanes: int  # 1 s lanes of the estimator comparison
    lane_points: int  # grid points per 1 s lane
    slope_lanes: int
    osc_decim: int
    osc_hop: int  # decimated points between spectrum updates
    osc_max_inv: int
    zero_lanes: int  # 1 s lanes of the seawater-reference window (whole batches)
    zero_stretch_lanes: int  # longest stretch it averages (whole batches, >= one window)
    batch_lanes: int  # 1 s lanes per noise batch


class KernelTables(NamedTuple):
    """The kernel's parameter arrays, apart from :class:`KernelParams`: a tuple holding an
    array is reference counted each time a step receives it, scalars-only ones are free."""

    alarms: NDArray[np.float64]  # [n_alarms, 3]: raise, clear, minimum duration ns
    friction: NDArray[np.float64]  # Darcy factor over velocity (step friction_dv_m_s)


@functools.lru_cache(maxsize=32)
def kernel_tables(p: ChainParams) -> KernelTables:
    """The alarm table (``ALARM_NAMES`` order) and the Darcy factor table (cached)."""
    alarms = np.array(
        [(a.raise_, a.clear, round(a.min_duration_s * 1e9)) for a in p.alarm_specs()], np.float64
    )
    return KernelTables(alarms=alarms, friction=_friction(p))


#: KernelParams fields that ChainParams (after the config key) names otherwise.
KERNEL_NAMES = {
    "leg_volume_m3": "return_leg_volume_m3",
    "dt_s": "grid_step_s",
    "u_rho_m_sys": "u_rho_m_sys_kg_m3",
    "u_rho_m_rand": "u_rho_m_rand_kg_m3",
    "u_rho_s": "u_rho_s_kg_m3",
    "u_rho_w": "u_rho_w_kg_m3",
    "u_rho_b": "u_rho_b_kg_m3",
    "u_rho_w_ref": "u_rho_w_ref_kg_m3",
    "hampel_floor_flow": "hampel_floor_flow_m3_h",
    "hampel_floor_rho": "hampel_floor_rho_kg_m3",
}


@functools.lru_cache(maxsize=32)
def kernel_params(p: ChainParams) -> KernelParams:
    """The kernel's named parameters (cached: built once per parameter set, not per block).

    The mud's solids fraction uses the pore water's in-situ density at the collector: rho_b is
    the wet bulk density there.
    """
    w_all, _, _, w_col = section_rho_w(p)
    area = math.pi * p.return_id_m**2 / 4.0
    p_col, p_mid, p_up, kappa = hydrostatic(p)
    zero_lanes = max(ZERO_BATCHES, round(p.zero_window_s / ZERO_BATCHES) * ZERO_BATCHES)
    bl = zero_lanes // ZERO_BATCHES  # the zero's batch length (lanes)
    # fields named as a ChainParams field carry over; the rest are renamed or derived
    return from_fields(
        KernelParams,
        p,
        **{k: getattr(p, name) for k, name in KERNEL_NAMES.items()},
        phi_b=(p.rho_b - w_col) / (p.rho_s - w_col),
        area_return_m2=area,
        d_return_m=math.sqrt(4.0 * area / math.pi),
        v_critical_m_s=p.durand_fl
        * math.sqrt(2.0 * p.g * p.return_id_m * (p.rho_s / p.rho_w - 1.0)),
        dz_lower_m=p.depth_collector_m - p.depth_mid_m,
        dz_upper_m=p.depth_mid_m - p.depth_upper_m,
        dz_section_m=p.depth_collector_m - p.depth_upper_m,
        u_flow_rel=math.sqrt(
            p.u_flow_rel_sys * p.u_flow_rel_sys + p.u_flow_rel_rand * p.u_flow_rel_rand
        ),
        rho_w_section=w_all,
        volume_collector_m3=area * p.depth_collector_m,
        volume_section_m3=area * (p.depth_collector_m - p.depth_upper_m),
        friction_dv_m_s=seawater.FRICTION_V_MAX / (seawater.FRICTION_N - 1),
        inventory_bar_per_kg=p.g * (1.0 - p.rho_w / p.rho_s) / area / 1e5,
        p_sea_collector_kpa=p_col,
        p_sea_mid_kpa=p_mid,
        p_sea_upper_kpa=p_up,
        kappa=kappa,
        cv_points=p.points(p.cv_window_s),
        compare_lanes=max(2, round(p.compare_window_s)),
        lane_points=p.points(1.0),
        slope_lanes=max(3, round(p.slope_window_s)),
        osc_hop=max(1, round(p.osc_update_s / (p.grid_step_s * p.osc_decim))),
        osc_max_inv=p.osc_n_fft // 10,
        zero_lanes=zero_lanes,
        zero_stretch_lanes=max(zero_lanes, round(p.zero_stretch_max_s / bl) * bl),
        batch_lanes=max(2, round(p.noise_batch_s)),
    )


#: Operator-commanded seawater reference (DESIGN "Estimators"): the window an operator may
#: command (s), the share of its 1 s lanes that may show mud or a reading far from seawater
#: before it is refused, and the states published as ``ref_cmd_state`` (index = code).
REF_MIN_S = 20.0
REF_MAX_S = 3600.0
REF_BAD_FRACTION = 0.1
REF_STATES = (
    "none",
    "collecting",
    "learned",
    "refused: mud taken (injection and return flows disagree)",
    "refused: density unsteady",
    "refused: reading too far from TEOS-10 seawater",
    "refused: too few valid seconds (density or flows BAD)",
)
#: Shaft-power roles summed into the drives' power (those configured; none: no energy).
POWER_ROLES = ("shaft_power_a_kw", "shaft_power_b_kw")
#: Specific energy is reported once this many dry tonnes are integrated (the cumulative
#: ratio), and where at least this many dry tonnes per hour are delivered (the rate form).
SPECIFIC_MIN_T = 1.0
SPECIFIC_MIN_T_H = 1.0
(REF_NONE, REF_COLLECTING, REF_LEARNED, REF_MUD, REF_UNSTEADY, REF_FAR, REF_SHORT) = range(
    len(REF_STATES)
)
