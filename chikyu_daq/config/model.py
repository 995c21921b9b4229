"""The installation config: one TOML file, validated completely at load.

`load_config(path)` returns a frozen `Config` or raises `ConfigError` whose `issues` each name the
file, the key path and what was expected. Nothing at this edge reaches the core unchecked: every
number is finite and within a physically and computationally sensible range (`between`), every
template placeholder is known, URLs and MQTT topics are parsed, and a file that is not a config
(not UTF-8, too large, nested too deep) is an issue too. Secrets are only ever referenced
(`*_env`, `*_file`); `resolve_secret` reads them at connect time so they never sit in the config
object or its logs.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, NoReturn

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from chikyu_daq.config.rules import (
    MQTT_CLIENT_ID_MAX,
    MQTT_PREFIX_MAX_BYTES,
    ConfigIssue,
    expand,
    template_issue,
    url_issue,
)
from drivers.spec import HOST, PORT, Bus, Device, RegisterMap, SentenceMap, Strict, between
from dsp.params import ALARMS

#: Ranges that several keys share (one definition each; the error still names the key).
#: A positive duration up to an hour: windows, update periods, staleness.
UP_TO_HOUR_S = Annotated[float, between(0.0, 3600.0, open_lo=True)]
#: A standard uncertainty of a density (kg/m3) or a length (m).
SIGMA = Annotated[float, between(0.0, 1000.0)]
#: A positive dimensionless ratio: coefficients of variation, pressure ratios.
RATIO = Annotated[float, between(0.0, 10.0, open_lo=True)]
#: A sensor's depth below the sea surface on the riser (the deepest ocean is ~11 km).
DEPTH_M = Annotated[float, between(0.0, 12000.0, open_lo=True)]

#: Key -> why its string is wrong (None: fine).
_Rules = Mapping[str, Callable[[str], str | None]]


class _Ruled(Strict):
    """A record whose string keys are checked by rules from `config.rules`: one rule's message
    is the key's error (after the control-character check of `Strict`)."""

    RULES: ClassVar[_Rules] = {}

    @field_validator("*", mode="after")
    @classmethod
    def _ruled(cls, value: Any, info: ValidationInfo) -> Any:
        rule = cls.RULES.get(info.field_name or "")
        problem = rule(value) if rule is not None else None
        if problem:
            raise ValueError(problem)
        return value


class Site(Strict):
    #: Goes into topics, client ids and tags: short and plain.
    vessel: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    #: Relative paths resolve against the working directory (systemd sets StateDirectory).
    data_dir: Annotated[str, Field(min_length=1, max_length=4096)] = "data"
    description: str = ""


class Processing(Strict):
    """Rates and delays of the grid. The estimators allocate per grid point (e.g. the transit
    history is max_transit_s x grid_hz), so the grid rate bounds memory as well as CPU: 100 Hz is
    twice the fastest poll (AI-20 at 50 Hz) and 10 s per step is the coarsest useful grid."""

    grid_hz: Annotated[float, between(0.1, 100.0)] = 10.0
    publish_hz: Annotated[float, between(0.0, 100.0, open_lo=True)] = 1.0
    align: Literal["hold", "linear"] = "hold"
    #: A channel with no sample for this long is BAD on the grid (an hour of silence is a fault).
    staleness_s: UP_TO_HOUR_S = 2.0
    #: Grid points wait this long for late samples before they are computed; samples of every
    #: channel are buffered meanwhile, and every output is delayed by it (a minute at most).
    lateness_s: Annotated[float, between(0.0, 60.0)] = 0.1
    max_gap_s: UP_TO_HOUR_S = 2.0


class Roles(Strict):
    """Which channel feeds each estimator input; every value must be a configured channel."""

    q_return: str = "ft201.volume_flow"
    q_injection: str = "ft101.volume_flow"
    rho_mix: str = "dt201.density"
    p_collector: str = "pt301.pressure"
    p_mid: str = "pt302.pressure"
    p_upper: str = "pt303.pressure"
    p_discharge: str = "ai20.pt101"
    p_return_deck: str = "ai20.pt201"
    torque_a: str = "p101a.torque"
    torque_b: str = "p101b.torque"
    #: deck temperature of the return line for TEOS-10 seawater (none: physics.deck_temperature_c)
    t_deck: str | None = None
    #: the pumps' shaft power (kW) for the specific energy (none: not reported)
    shaft_power_a: str | None = None
    shaft_power_b: str | None = None


class Physics(Strict):
    """Site constants, each within what the Earth and the mud allow (ranges are generous)."""

    rho_w_kg_m3: Annotated[float, between(990.0, 1100.0)] = 1025.0  # fresh to brine
    rho_s_kg_m3: Annotated[float, between(1500.0, 6000.0)] = 2500.0  # grains: clay to magnetite
    rho_b_kg_m3: Annotated[float, between(990.0, 6000.0)] = 1300.0
    g_m_s2: Annotated[float, between(9.7, 9.9)] = 9.80665  # 9.78 at the equator, 9.83 at a pole
    cv_max: Annotated[float, between(0.0, 1.0, open_lo=True)] = 0.35
    return_id_m: Annotated[float, between(0.01, 2.0)] = 0.20
    injection_hd_m: Annotated[float, between(0.01, 2.0)] = 0.25
    riser_length_m: Annotated[float, between(1.0, 12000.0)] = 5700.0  # deepest ocean ~11 km
    depth_collector_m: DEPTH_M = 5690.0
    depth_mid_m: DEPTH_M = 2850.0
    depth_upper_m: DEPTH_M = 500.0
    darcy_f: Annotated[float, between(0.001, 0.2)] = 0.015  # Moody chart
    durand_fl: Annotated[float, between(0.1, 3.0)] = 0.8  # Durand's F_L, ~0.4-1.5 in practice
    #: seawater density: TEOS-10 at temperature and pressure, or rho_w_kg_m3 everywhere
    seawater: Literal["teos10", "constant"] = "teos10"
    salinity_g_kg: Annotated[float, between(0.0, 50.0, open_lo=True)] = 35.16
    #: used while roles.t_deck is unset or BAD, and line pressure while p_return_deck is BAD
    deck_temperature_c: Annotated[float, between(-5.0, 60.0)] = 9.5
    deck_pressure_bar: Annotated[float, between(0.0, 1000.0)] = 1.0
    #: riser fluid temperature (depth m, degC), by increasing depth
    temperature_profile: list[tuple[float, float]] = Field(
        default_factory=lambda: [(0.0, 9.5), (5700.0, 4.6)], min_length=1, max_length=1000
    )
    #: Darcy factor: Colebrook at the mixture's Reynolds number, or darcy_f
    friction: Literal["colebrook", "fixed"] = "colebrook"
    roughness_m: Annotated[float, between(0.0, 0.01)] = 4.5e-5
    #: solids fraction of the slurry viscosity (Thomas) in the Reynolds number
    friction_cv: Annotated[float, between(0.0, 0.5, open_lo=True)] = 0.02
    slip_m_s: Annotated[float, between(0.0, 1.0)] = 0.0

    @model_validator(mode="after")
    def _densities_ordered(self) -> Physics:
        if not self.rho_w_kg_m3 < self.rho_b_kg_m3 < self.rho_s_kg_m3:
            raise ValueError("expected rho_w_kg_m3 < rho_b_kg_m3 < rho_s_kg_m3")
        if not self.depth_upper_m < self.depth_mid_m < self.depth_collector_m:
            raise ValueError("expected depth_upper_m < depth_mid_m < depth_collector_m")
        if self.depth_collector_m > self.riser_length_m:
            raise ValueError("expected depth_collector_m <= riser_length_m (sensors on the riser)")
        depths = [z for z, _ in self.temperature_profile]
        if depths != sorted(depths):
            raise ValueError("temperature_profile depths must increase")
        for z, t in self.temperature_profile:
            if not (0.0 <= z <= 12000.0 and -3.0 <= t <= 60.0):
                raise ValueError("temperature_profile points must be (0..12000 m, -3..60 degC)")
        return self


class Uncertainty(Strict):
    """Standard uncertainties (k = 1), split into systematic (calibration: one error for the
    whole run, never shrinks when integrated) and random (independent `tau_random_s` apart)."""

    flow_rel_sys: Annotated[float, between(0.0, 1.0)] = 0.004
    flow_rel_rand: Annotated[float, between(0.0, 1.0)] = 0.003
    density_sys_kg_m3: SIGMA = 1.2
    density_rand_kg_m3: SIGMA = 0.9
    tau_random_s: UP_TO_HOUR_S = 1.0
    rho_s_kg_m3: SIGMA = 50.0
    rho_w_kg_m3: SIGMA = 2.0
    rho_b_kg_m3: SIGMA = 50.0
    p_kpa: Annotated[float, between(0.0, 10_000.0)] = 5.0
    #: rho_w once the densitometer is referenced to seawater (temperature drift only)
    rho_w_ref_kg_m3: SIGMA = 0.05
    friction_rel: Annotated[float, between(0.0, 1.0)] = 0.05
    dz_m: SIGMA = 2.0
    slip_m_s: Annotated[float, between(0.0, 1.0)] = 0.01
    #: batch length of the empirical random part (several noise correlation times)
    noise_batch_s: Annotated[float, between(1.0, 86_400.0)] = 120.0


class Grade(Strict):
    #: Rare-earth mud runs 1,000-7,000 ppm; 50,000 ppm (5 %) is far beyond any known deposit.
    default_rey_ppm: Annotated[float, between(0.0, 50_000.0, open_lo=True)] = 2000.0
    default_u_rey_ppm: Annotated[float, between(0.0, 50_000.0)] = 150.0
    #: Oxide-to-element mass ratio, ~1.17-1.25 for the rare earths.
    reo_factor: Annotated[float, between(1.0, 2.0)] = 1.2
    replay_interpolate: bool = False


class Stability(Strict):
    """Windows and the scales at which each stability component reaches 0 (see dsp.chain).

    The estimators allocate ring buffers from these: grid_hz x cv_window_s and x max_transit_s
    points, compare/slope windows in 1 s lanes, hampel_window and osc_n_fft points. With
    grid_hz <= 100 the bounds below cap the whole state at about 100 MB (transit history
    12 h x 100 Hz x 2 lanes x 8 B = 69 MB) and the per-point work at a few thousand operations.
    """

    cv_window_s: UP_TO_HOUR_S = 60.0
    compare_window_s: Annotated[float, between(0.0, 86_400.0, open_lo=True)] = 600.0
    slope_window_s: UP_TO_HOUR_S = 120.0
    injection_hold_m3_h_s: Annotated[float, between(0.0, 1000.0, open_lo=True)] = 0.01
    #: Points of the despiking window; its sorted copy is updated per point (O(window)), and a
    #: spike lasts seconds: 6001 points is 60 s even at 100 Hz.
    hampel_window: Annotated[int, between(3, 6001)] = 31
    hampel_n_sigma: Annotated[float, between(0.0, 100.0, open_lo=True)] = 4.0
    #: Despiking ignores deviations below these floors (keep them above sensor noise).
    hampel_floor_flow_m3_h: Annotated[float, between(0.0, 10_000.0, open_lo=True)] = 2.0
    hampel_floor_rho_kg_m3: Annotated[float, between(0.0, 10_000.0, open_lo=True)] = 3.0
    #: FFT length (power of two): 65536 decimated points is hours of signal at any grid rate.
    osc_n_fft: Annotated[int, between(64, 65536)] = 512
    osc_decim: Annotated[int, between(1, 1000)] = 2
    osc_update_s: UP_TO_HOUR_S = 10.0
    osc_f_lo_hz: Annotated[float, between(0.0, 50.0, open_lo=True)] = 0.02
    osc_f_hi_hz: Annotated[float, between(0.0, 50.0, open_lo=True)] = 2.0
    osc_amp_bad_bar: Annotated[float, between(0.0, 1000.0, open_lo=True)] = 0.1
    margin_ok: Annotated[float, between(1.0, 100.0, open_lo=True)] = 1.5
    cv_flow_bad: RATIO = 0.2
    cv_density_bad: RATIO = 0.05
    cv_torque_bad: RATIO = 0.2
    slope_bad_bar_s: Annotated[float, between(0.0, 100.0, open_lo=True)] = 0.01
    ratio_nominal: RATIO = 1.1
    ratio_tol: RATIO = 0.2
    #: Longest transit the yield integral looks back over; 12 h is a flow of 1/20 of nominal.
    max_transit_s: Annotated[float, between(1.0, 43_200.0)] = 10800.0
    #: seawater reference: this long with no mud taken and a steady reading near TEOS-10
    zero_window_s: Annotated[float, between(10.0, 86_400.0)] = 300.0
    #: the zero is the mean of its whole steady stretch, up to this long (at least one window)
    zero_stretch_max_s: Annotated[float, between(10.0, 86_400.0)] = 3600.0
    zero_max_kg_m3: Annotated[float, between(0.0, 100.0, open_lo=True)] = 5.0
    zero_steady_kg_m3: Annotated[float, between(0.0, 100.0, open_lo=True)] = 2.0
    zero_min_flow_m3_h: Annotated[float, between(0.0, 100_000.0, open_lo=True)] = 50.0
    #: planned stop: injection below this suppresses flow/stability alarms until holdoff
    stop_flow_m3_h: Annotated[float, between(0.0, 100_000.0, open_lo=True)] = 100.0
    stop_holdoff_s: Annotated[float, between(0.0, 86_400.0, open_lo=True)] = 90.0

    @model_validator(mode="after")
    def _fft(self) -> Stability:
        if self.osc_n_fft & (self.osc_n_fft - 1):
            raise ValueError(f"osc_n_fft must be a power of two, got {self.osc_n_fft}")
        if self.osc_f_lo_hz >= self.osc_f_hi_hz:
            raise ValueError("expected osc_f_lo_hz < osc_f_hi_hz")
        return self


class Alarm(Strict):
    """Hysteresis: raise_at > clear_at is a high alarm, raise_at < clear_at a low one; each
    condition must hold for min_duration_s. A key left out keeps the alarm's default
    (`dsp.params.ALARMS`, their one definition)."""

    raise_at: Annotated[float, between(-1e9, 1e9)]
    clear_at: Annotated[float, between(-1e9, 1e9)]
    #: A condition held for a day is no longer an alarm but the state of the plant.
    min_duration_s: Annotated[float, between(0.0, 86_400.0)]

    @model_validator(mode="after")
    def _hysteresis(self) -> Alarm:
        if self.raise_at == self.clear_at:
            raise ValueError("expected clear_at != raise_at (hysteresis)")
        return self


#: The chain's alarms plus SENSOR_FAULT, which the processor derives from channel quality.
ALARM_NAMES = tuple(a.name for a in ALARMS)
#: Each alarm's default thresholds, as config keys.
ALARM_DEFAULTS = {
    a.name: {
        "raise_at": a.default.raise_,
        "clear_at": a.default.clear,
        "min_duration_s": a.default.min_duration_s,
    }
    for a in ALARMS
}


def _default_alarms() -> dict[str, Alarm]:
    return {name: Alarm(**keys) for name, keys in ALARM_DEFAULTS.items()}


class Recorder(Strict):
    enabled: bool = True
    #: Each segment is compacted into one file: under 10 s that is a file storm, over a day
    #: one file holds too much to lose. The ranges keep every segment >= 10 flushes.
    segment_s: Annotated[float, between(10.0, 86_400.0)] = 600.0
    flush_s: Annotated[float, between(0.0, 1.0, open_lo=True)] = 0.5


class Influx(_Ruled):
    RULES: ClassVar[_Rules] = {"url": url_issue}
    enabled: bool = False
    dialect: Literal["v1", "v2"] = "v2"
    url: Annotated[str, Field(max_length=2048)] = "http://127.0.0.1:8086"
    org: str = ""
    bucket: str = ""
    token_env: str | None = None
    token_file: str | None = None
    db: str = ""
    rp: str = ""
    username: str = ""
    password_env: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    batch_lines: Annotated[int, between(1, 5000)] = 5000
    batch_bytes: Annotated[int, between(1024, 1_000_000)] = 1_000_000
    #: The reference installation writes in the order of 50 kB/s of line protocol: 16 MB holds
    #: a few minutes of outage and several whole batches (batch_bytes <= 1 MB); 1 TiB is more
    #: disk than the DAQ computer has.
    spool_quota_mb: Annotated[float, between(16.0, 1_048_576.0)] = 1024.0
    overflow: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    timeout_s: Annotated[float, between(0.0, 600.0, open_lo=True)] = 10.0

    @model_validator(mode="after")
    def _dialect_fields(self) -> Influx:
        if self.ca_file and not self.url.startswith("https://"):
            raise ValueError(
                "ca_file is set but url is not https:// (credentials would go in clear)"
            )
        if not self.enabled:
            return self
        if self.dialect == "v2" and not self.bucket:
            raise ValueError("dialect v2 needs bucket")
        if self.dialect == "v1" and not self.db:
            raise ValueError("dialect v1 needs db")
        return self


class LabAssays(Strict):
    """Bounds on lab assays received over MQTT: what a plausible lab result looks like.

    Checked before an assay reaches the grade: payload size and JSON nesting before parsing,
    the grade range, and `sampled_at` within `max_age_days` before and `max_future_s` after now
    (a far-future assay would otherwise outrank every real one). A lab result is posted minutes
    to hours after its sample, so `max_future_s` only covers clock skew; kept small, it also
    bounds how long near-future assays could push the one in force out of the chain's kept set
    (`dsp.chain.ASSAY_CAPACITY`). `dedupe_ids` bounds the memory of sample ids already seen
    (duplicates are rejected).
    """

    rey_ppm_min: Annotated[float, Field(gt=0.0, le=1e6, allow_inf_nan=False)] = 1.0
    rey_ppm_max: Annotated[float, Field(gt=0.0, le=1e6, allow_inf_nan=False)] = 50_000.0
    max_age_days: Annotated[float, Field(gt=0.0, le=3660.0, allow_inf_nan=False)] = 30.0
    max_future_s: Annotated[float, Field(ge=0.0, le=86_400.0, allow_inf_nan=False)] = 10.0
    max_payload_bytes: Annotated[int, Field(ge=256, le=65_536)] = 4096
    max_depth: Annotated[int, Field(ge=1, le=16)] = 2
    dedupe_ids: Annotated[int, Field(ge=16, le=1_000_000)] = 4096

    @model_validator(mode="after")
    def _range(self) -> LabAssays:
        if self.rey_ppm_min >= self.rey_ppm_max:
            raise ValueError("rey_ppm_min must be below rey_ppm_max")
        return self


class Mqtt(_Ruled):
    RULES: ClassVar[_Rules] = {"prefix": template_issue, "client_id": template_issue}
    enabled: bool = False
    host: HOST = "127.0.0.1"
    port: PORT = 1883
    #: Templates (TEMPLATE_FIELDS); the expanded topic is checked with the site's vessel.
    prefix: Annotated[str, Field(max_length=MQTT_PREFIX_MAX_BYTES)] = "chikyu/{vessel}"
    client_id: Annotated[str, Field(max_length=MQTT_CLIENT_ID_MAX)] = "chikyu-daq-{vessel}"
    username: str = ""
    password_env: str | None = None
    password_file: str | None = None
    tls: bool = False
    ca_file: str | None = None
    #: The protocol field is 16 bits (65535 s), but the broker publishes the last will only
    #: after 1.5 keepalives of silence: beyond an hour a dead daemon looks alive far too long.
    keepalive_s: Annotated[int, between(5, 3600)] = 30
    #: Events held while the broker is away; a million is hours of alarms and bounded memory.
    queue_size: Annotated[int, between(10, 1_000_000)] = 1000
    assays: LabAssays = Field(default_factory=LabAssays)

    @model_validator(mode="after")
    def _tls(self) -> Mqtt:
        if self.ca_file and not self.tls:
            raise ValueError("ca_file is set but tls = false (credentials would go in clear)")
        return self


class Prometheus(Strict):
    """`/metrics` for a Prometheus server: the daemon's health read at scrape time."""

    enabled: bool = False
    host: HOST = "127.0.0.1"
    port: PORT = 9108


class OpcUa(Strict):
    """Read-only OPC UA server: live channels, results and alarm states as variables."""

    enabled: bool = False
    endpoint: str = "opc.tcp://127.0.0.1:4840/chikyu/"
    security_policy: Literal["None", "Basic256Sha256"] = "None"
    #: PEM/DER server certificate and private key; required by Basic256Sha256.
    certificate_file: str | None = None
    private_key_file: str | None = None
    namespace: str = "urn:jamstec:chikyu-daq"
    update_s: Annotated[float, between(0.05, 3600.0)] = 1.0
    #: Accept Part 9 Acknowledge (routed to the alarm manager); off: read-only.
    commands: bool = False

    @model_validator(mode="after")
    def _policy(self) -> OpcUa:
        if not self.endpoint.startswith("opc.tcp://"):
            raise ValueError(f"endpoint must start with opc.tcp://, got {self.endpoint!r}")
        if self.security_policy != "None" and not (self.certificate_file and self.private_key_file):
            raise ValueError(
                f"security_policy {self.security_policy} needs certificate_file "
                "and private_key_file"
            )
        return self


class Outputs(Strict):
    influx: Influx = Field(default_factory=Influx)
    mqtt: Mqtt = Field(default_factory=Mqtt)
    prometheus: Prometheus = Field(default_factory=Prometheus)
    opcua: OpcUa = Field(default_factory=OpcUa)


class SuppressWhen(Strict):
    """One process condition on a channel's newest GOOD value (missing or BAD: not met)."""

    channel: str
    below: float | None = None
    above: float | None = None
    equals: float | None = None

    @model_validator(mode="after")
    def _one_test(self) -> SuppressWhen:
        if sum(x is not None for x in (self.below, self.above, self.equals)) != 1:
            raise ValueError("expected exactly one of below, above, equals")
        return self


class Suppression(Strict):
    """Suppression by design: `alarms` (names or globs) are suppressed while every `when`
    condition holds, e.g. PLUG_SUSPECTED while both pumps are commanded down."""

    alarms: Annotated[list[str], Field(min_length=1)]
    reason: Annotated[str, Field(min_length=1)]
    when: Annotated[list[SuppressWhen], Field(min_length=1)]


class Maintenance(Strict):
    """A device's maintenance window: its SENSOR_FAULT alarms are suppressed inside it."""

    device: Annotated[str, Field(min_length=1)]
    start: datetime
    end: datetime
    reason: str = "maintenance"

    @model_validator(mode="after")
    def _ordered(self) -> Maintenance:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a UTC offset (e.g. 2026-01-01T00:00:00Z)")
        if self.end <= self.start:
            raise ValueError("expected start < end")
        return self


class ClockHealth(Strict):
    """The host clock's discipline (chrony or the kernel) and wall-clock steps as events."""

    enabled: bool = True
    #: A wall-clock jump larger than this between two 1 s checks is a `clock_step` event.
    step_bound_s: Annotated[float, between(0.001, 3600.0)] = 0.5
    discipline_check_s: Annotated[float, between(1.0, 86_400.0)] = 10.0


class AlarmManagement(Strict):
    """Operator-facing alarm lifecycle (ISA-18.2): priorities, shelving, suppression, state."""

    #: Alarm name (or base name, e.g. SENSOR_FAULT) -> priority; others get default_priority.
    priorities: dict[str, Literal["low", "medium", "high", "critical"]] = Field(
        default_factory=dict
    )
    default_priority: Literal["low", "medium", "high", "critical"] = "medium"
    max_shelve_s: Annotated[float, between(60.0, 7 * 86400.0)] = 8 * 3600.0
    #: Alarm names or globs (e.g. "SENSOR_FAULT(pt302.*)") taken out of service.
    out_of_service: list[str] = Field(default_factory=list)
    suppress: list[Suppression] = Field(default_factory=list)
    maintenance: list[Maintenance] = Field(default_factory=list)
    #: Relative to the data directory.
    state_file: str = "alarm_state.json"
    control_socket: str = "control.sock"


class Config(Strict):
    site: Site
    processing: Processing = Field(default_factory=Processing)
    buses: dict[str, Bus]
    maps: dict[str, RegisterMap]
    sentences: dict[str, SentenceMap] = Field(default_factory=dict)
    devices: dict[str, Device]
    roles: Roles = Field(default_factory=Roles)
    physics: Physics = Field(default_factory=Physics)
    uncertainty: Uncertainty = Field(default_factory=Uncertainty)
    grade: Grade = Field(default_factory=Grade)
    stability: Stability = Field(default_factory=Stability)
    #: Every alarm, each key from the config or else the alarm's default.
    alarms: dict[Literal[ALARM_NAMES], Alarm] = Field(default_factory=_default_alarms)  # type: ignore[valid-type]
    recorder: Recorder = Field(default_factory=Recorder)
    outputs: Outputs = Field(default_factory=Outputs)
    alarm_management: AlarmManagement = Field(default_factory=AlarmManagement)
    clock: ClockHealth = Field(default_factory=ClockHealth)

    @field_validator("alarms", mode="before")
    @classmethod
    def _alarm_defaults(cls, given: Any) -> Any:
        """The given `[alarms.*]` keys over every alarm's defaults (anything that is not a
        table is left for validation to name)."""
        if not isinstance(given, Mapping):
            return given
        merged: dict[Any, Any] = {k: dict(v) for k, v in ALARM_DEFAULTS.items()}
        for name, keys in given.items():
            if isinstance(keys, Mapping) and name in merged:
                merged[name].update(keys)
            else:
                merged[name] = keys
        return merged

    @property
    def mqtt_prefix(self) -> str:
        return expand(self.outputs.mqtt.prefix, self.site.vessel)


class ConfigError(Exception):
    """A config that must not run; `issues` lists every problem found, not only the first."""

    def __init__(self, file: str, issues: list[ConfigIssue]) -> None:
        self.file = file
        self.issues = issues
        super().__init__("\n".join(i.format(file) for i in issues))


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if item == "[key]":
            continue  # pydantic's marker for a bad dict key; the key itself is already named
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in {"modbus_tcp", "modbus_rtu_tcp", "modbus_rtu_serial", "ascii_stream"}:
            continue  # pydantic's discriminator tag, not a key the user wrote
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _pydantic_issues(err: ValidationError) -> list[ConfigIssue]:
    issues = []
    for e in err.errors():
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif isinstance(e.get("input"), str | int | float | bool) and e["type"] != "value_error":
            msg = f"{msg} (got {_shown(e['input'])})"
        msg = msg.removeprefix("Value error, ")
        issues.append(ConfigIssue(_loc_to_path(e["loc"]), msg))
    return issues


def _shown(value: object) -> str:
    """A value as the message quotes it: short, whatever the input (a 10 kB string, 10**5000)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


_TOML_LINE = re.compile(r"line (\d+)")
#: A config is a few kB; anything past this is not one (and is not parsed into memory).
MAX_CONFIG_BYTES = 1 << 20


def parse_config(data: dict[str, Any], file: str = "<config>") -> Config:
    """Validate an already parsed TOML document (also used for reloads and tests)."""
    from chikyu_daq.config.checks import semantic_issues

    try:
        cfg = Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(file, _pydantic_issues(err)) from None
    issues = semantic_issues(cfg)
    if issues:
        raise ConfigError(file, issues)
    return cfg


def load_config(path: str | Path) -> Config:
    file = str(path)
    try:
        with Path(path).open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError(file, [ConfigIssue("", f"cannot read file: {err.strerror}")]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(file, [ConfigIssue("", f"larger than {MAX_CONFIG_BYTES} bytes")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(file, [ConfigIssue("", f"not UTF-8 text: {err.reason}")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        m = _TOML_LINE.search(str(err))
        line = int(m.group(1)) if m else None
        raise ConfigError(file, [ConfigIssue("", f"TOML syntax error: {err}", line)]) from None
    except ValueError as err:  # e.g. an integer of more than 4300 digits
        raise ConfigError(file, [ConfigIssue("", f"TOML value error: {err}")]) from None
    except RecursionError:
        raise ConfigError(file, [ConfigIssue("", "TOML nested too deeply")]) from None
    return parse_config(data, file)


def resolve_secret(env: str | None, file: str | None) -> str | None:
    """Read a referenced secret; env wins over file. Never log the result."""
    if env:
        value = os.environ.get(env)
        if value is not None:
            return value
    if file:
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        p = Path(file)
        if not p.is_absolute() and creds:
            p = Path(creds) / p
        return p.read_text(encoding="utf-8").strip()
    return None


def fail_config(err: ConfigError) -> NoReturn:
    """Print every config problem, one per line, and exit 2 (no traceback)."""
    for issue in err.issues:
        print(f"error: {issue.format(err.file)}", file=sys.stderr)
    raise SystemExit(2)


def load_or_exit(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as err:
        fail_config(err)
