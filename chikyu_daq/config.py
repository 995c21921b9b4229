"""The installation config: one TOML file, validated completely at load.

`load_config(path)` returns a frozen `Config` or raises `ConfigError` whose `issues` each name the
file, the key path and what was expected. Secrets are only ever referenced (`*_env`, `*_file`);
`resolve_secret` reads them at connect time so they never sit in the config object or its logs.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PositiveFloat, ValidationError, model_validator

from drivers.spec import Bus, Device, RegisterMap, SentenceMap, Strict
from dsp.params import ALARM_NAMES as CHAIN_ALARM_NAMES


class Site(Strict):
    vessel: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    #: Relative paths resolve against the working directory (systemd sets StateDirectory).
    data_dir: str = "data"
    description: str = ""


class Processing(Strict):
    grid_hz: PositiveFloat = 10.0
    publish_hz: PositiveFloat = 1.0
    align: Literal["hold", "linear"] = "hold"
    #: A channel with no sample for this long is BAD on the grid.
    staleness_s: PositiveFloat = 2.0
    #: Grid points wait this long for late samples before they are computed.
    lateness_s: Annotated[float, Field(ge=0.0)] = 0.1
    max_gap_s: PositiveFloat = 2.0


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


class Physics(Strict):
    rho_w_kg_m3: PositiveFloat = 1025.0
    rho_s_kg_m3: PositiveFloat = 2500.0
    rho_b_kg_m3: PositiveFloat = 1300.0
    g_m_s2: PositiveFloat = 9.80665
    cv_max: Annotated[float, Field(gt=0.0, le=1.0)] = 0.35
    return_id_m: PositiveFloat = 0.20
    injection_hd_m: PositiveFloat = 0.25
    riser_length_m: PositiveFloat = 5700.0
    depth_collector_m: PositiveFloat = 5690.0
    depth_mid_m: PositiveFloat = 2850.0
    depth_upper_m: PositiveFloat = 500.0
    darcy_f: PositiveFloat = 0.015
    durand_fl: PositiveFloat = 0.8
    #: seawater density: TEOS-10 at temperature and pressure, or rho_w_kg_m3 everywhere
    seawater: Literal["teos10", "constant"] = "teos10"
    salinity_g_kg: Annotated[float, Field(gt=0.0, lt=50.0)] = 35.16
    #: used while roles.t_deck is unset or BAD, and line pressure while p_return_deck is BAD
    deck_temperature_c: Annotated[float, Field(gt=-5.0, lt=60.0)] = 9.5
    deck_pressure_bar: Annotated[float, Field(ge=0.0)] = 1.0
    #: riser fluid temperature (depth m, degC), by increasing depth
    temperature_profile: list[tuple[float, float]] = Field(
        default_factory=lambda: [(0.0, 9.5), (5700.0, 4.6)], min_length=1
    )
    #: Darcy factor: Colebrook at the mixture's Reynolds number, or darcy_f
    friction: Literal["colebrook", "fixed"] = "colebrook"
    roughness_m: Annotated[float, Field(ge=0.0)] = 4.5e-5
    #: solids fraction of the slurry viscosity (Thomas) in the Reynolds number
    friction_cv: Annotated[float, Field(gt=0.0, le=0.5)] = 0.02
    slip_m_s: Annotated[float, Field(ge=0.0)] = 0.0

    @model_validator(mode="after")
    def _densities_ordered(self) -> Physics:
        if not self.rho_w_kg_m3 < self.rho_b_kg_m3 < self.rho_s_kg_m3:
            raise ValueError("expected rho_w_kg_m3 < rho_b_kg_m3 < rho_s_kg_m3")
        if not self.depth_upper_m < self.depth_mid_m < self.depth_collector_m:
            raise ValueError("expected depth_upper_m < depth_mid_m < depth_collector_m")
        depths = [z for z, _ in self.temperature_profile]
        if depths != sorted(depths):
            raise ValueError("temperature_profile depths must increase")
        return self


class Uncertainty(Strict):
    """Standard uncertainties (k = 1), split into systematic (calibration: one error for the
    whole run, never shrinks when integrated) and random (independent `tau_random_s` apart)."""

    flow_rel_sys: Annotated[float, Field(ge=0.0)] = 0.004
    flow_rel_rand: Annotated[float, Field(ge=0.0)] = 0.003
    density_sys_kg_m3: Annotated[float, Field(ge=0.0)] = 1.2
    density_rand_kg_m3: Annotated[float, Field(ge=0.0)] = 0.9
    tau_random_s: PositiveFloat = 1.0
    rho_s_kg_m3: Annotated[float, Field(ge=0.0)] = 50.0
    rho_w_kg_m3: Annotated[float, Field(ge=0.0)] = 2.0
    rho_b_kg_m3: Annotated[float, Field(ge=0.0)] = 50.0
    p_kpa: Annotated[float, Field(ge=0.0)] = 5.0
    #: rho_w once the densitometer is referenced to seawater (temperature drift only)
    rho_w_ref_kg_m3: Annotated[float, Field(ge=0.0)] = 0.05
    friction_rel: Annotated[float, Field(ge=0.0)] = 0.05
    dz_m: Annotated[float, Field(ge=0.0)] = 2.0
    slip_m_s: Annotated[float, Field(ge=0.0)] = 0.01
    #: batch length of the empirical random part (several noise correlation times)
    noise_batch_s: PositiveFloat = 120.0


class Grade(Strict):
    default_rey_ppm: PositiveFloat = 2000.0
    default_u_rey_ppm: Annotated[float, Field(ge=0.0)] = 150.0
    reo_factor: PositiveFloat = 1.2
    replay_interpolate: bool = False


class Stability(Strict):
    """Windows and the scales at which each stability component reaches 0 (see dsp.chain)."""

    cv_window_s: PositiveFloat = 60.0
    compare_window_s: PositiveFloat = 600.0
    slope_window_s: PositiveFloat = 120.0
    injection_hold_m3_h_s: PositiveFloat = 0.01
    hampel_window: Annotated[int, Field(ge=3)] = 31
    hampel_n_sigma: PositiveFloat = 4.0
    #: Despiking ignores deviations below these floors (keep them above sensor noise).
    hampel_floor_flow_m3_h: PositiveFloat = 2.0
    hampel_floor_rho_kg_m3: PositiveFloat = 3.0
    osc_n_fft: Annotated[int, Field(ge=64)] = 512
    osc_decim: Annotated[int, Field(ge=1)] = 2
    osc_update_s: PositiveFloat = 10.0
    osc_f_lo_hz: PositiveFloat = 0.02
    osc_f_hi_hz: PositiveFloat = 2.0
    osc_amp_bad_bar: PositiveFloat = 0.1
    margin_ok: Annotated[float, Field(gt=1.0)] = 1.5
    cv_flow_bad: PositiveFloat = 0.2
    cv_density_bad: PositiveFloat = 0.05
    cv_torque_bad: PositiveFloat = 0.2
    slope_bad_bar_s: PositiveFloat = 0.01
    ratio_nominal: PositiveFloat = 1.1
    ratio_tol: PositiveFloat = 0.2
    max_transit_s: PositiveFloat = 10800.0
    #: seawater reference: this long with no mud taken and a steady reading near TEOS-10
    zero_window_s: Annotated[float, Field(ge=10.0)] = 300.0
    zero_max_kg_m3: PositiveFloat = 5.0
    zero_steady_kg_m3: PositiveFloat = 2.0
    zero_min_flow_m3_h: PositiveFloat = 50.0
    #: planned stop: injection below this suppresses flow/stability alarms until holdoff
    stop_flow_m3_h: PositiveFloat = 100.0
    stop_holdoff_s: PositiveFloat = 90.0

    @model_validator(mode="after")
    def _fft(self) -> Stability:
        if self.osc_n_fft & (self.osc_n_fft - 1):
            raise ValueError(f"osc_n_fft must be a power of two, got {self.osc_n_fft}")
        if self.osc_f_lo_hz >= self.osc_f_hi_hz:
            raise ValueError("expected osc_f_lo_hz < osc_f_hi_hz")
        return self


class Alarm(Strict):
    """Hysteresis: raise_at > clear_at is a high alarm, raise_at < clear_at a low one; each
    condition must hold for min_duration_s."""

    raise_at: float
    clear_at: float
    min_duration_s: Annotated[float, Field(ge=0.0)] = 5.0

    @model_validator(mode="after")
    def _hysteresis(self) -> Alarm:
        if self.raise_at == self.clear_at:
            raise ValueError("expected clear_at != raise_at (hysteresis)")
        return self


#: The chain's alarms plus SENSOR_FAULT, which the processor derives from channel quality.
ALARM_NAMES = (*CHAIN_ALARM_NAMES, "SENSOR_FAULT")


class Recorder(Strict):
    enabled: bool = True
    segment_s: PositiveFloat = 600.0
    flush_s: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5


class Influx(Strict):
    enabled: bool = False
    dialect: Literal["v1", "v2"] = "v2"
    url: str = "http://127.0.0.1:8086"
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
    batch_lines: Annotated[int, Field(ge=1, le=5000)] = 5000
    batch_bytes: Annotated[int, Field(ge=1024, le=1_000_000)] = 1_000_000
    spool_quota_mb: PositiveFloat = 1024.0
    overflow: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    timeout_s: PositiveFloat = 10.0

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


class Mqtt(Strict):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    prefix: str = "chikyu/{vessel}"
    client_id: str = "chikyu-daq-{vessel}"
    username: str = ""
    password_env: str | None = None
    password_file: str | None = None
    tls: bool = False
    ca_file: str | None = None
    keepalive_s: Annotated[int, Field(ge=5)] = 30
    queue_size: Annotated[int, Field(ge=10)] = 1000

    @model_validator(mode="after")
    def _tls(self) -> Mqtt:
        if self.ca_file and not self.tls:
            raise ValueError("ca_file is set but tls = false (credentials would go in clear)")
        return self


class Outputs(Strict):
    influx: Influx = Field(default_factory=Influx)
    mqtt: Mqtt = Field(default_factory=Mqtt)


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
    alarms: dict[Literal[ALARM_NAMES], Alarm] = Field(default_factory=dict)  # type: ignore[valid-type]
    recorder: Recorder = Field(default_factory=Recorder)
    outputs: Outputs = Field(default_factory=Outputs)

    @property
    def mqtt_prefix(self) -> str:
        return self.outputs.mqtt.prefix.format(vessel=self.site.vessel)


@dataclass(frozen=True)
class ConfigIssue:
    """One thing wrong with a config file, located by key path (and line if TOML knows it)."""

    path: str
    message: str
    line: int | None = None

    def format(self, file: str) -> str:
        where = f"{file}:{self.line}" if self.line else file
        return f"{where}: {self.path or '<top level>'}: {self.message}"


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
            msg = f"{msg} (got {e['input']!r})"
        msg = msg.removeprefix("Value error, ")
        issues.append(ConfigIssue(_loc_to_path(e["loc"]), msg))
    return issues


_TOML_LINE = re.compile(r"line (\d+)")


def parse_config(data: dict[str, Any], file: str = "<config>") -> Config:
    """Validate an already parsed TOML document (also used for reloads and tests)."""
    from chikyu_daq.config_checks import semantic_issues

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
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(file, [ConfigIssue("", f"cannot read file: {err.strerror}")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        m = _TOML_LINE.search(str(err))
        line = int(m.group(1)) if m else None
        raise ConfigError(file, [ConfigIssue("", f"TOML syntax error: {err}", line)]) from None
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
