"""HIL scenarios: plant parameters, a schedule of events and what a run is scored against.

A scenario is a TOML file in ``hil/scenarios/`` (data, not code). Loading validates it
completely: an unknown key or a bad value raises :class:`ScenarioError` naming the file and
the key path, so a typo can never silently fall back to a default.

Defaults of :class:`PlantParams` are the reference installation (``docs/CONVENTIONS.md``);
CI scenarios override the riser length (and transmitter depths) so the transit is short,
and :meth:`Scenario.at_full_scale` puts the 5,700 m riser back for synthetic recordings.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dsp.params import ALARMS
from hil.devices import resolve_target
from hil.faults import ActiveFault, FaultKind, check_fault

__all__ = [
    "ALARM_NAMES",
    "PUMP_IDS",
    "Accuracy",
    "Event",
    "Expectations",
    "ExpectedAlarm",
    "FaultEvent",
    "FaultKind",
    "FrictionEvent",
    "GradeEvent",
    "HeaveEvent",
    "IntakeEvent",
    "PlantParams",
    "PumpSpeedEvent",
    "PumpStartEvent",
    "PumpTripEvent",
    "Scenario",
    "ScenarioError",
    "SlugEvent",
    "list_scenarios",
    "load_scenario",
]

SCENARIO_DIR = Path(__file__).with_name("scenarios")
#: Alarms a scenario may expect: the DAQ's (one definition, in dsp).
ALARM_NAMES = frozenset(a.name for a in ALARMS)
PUMP_IDS = ("p101a", "p101b")
REFERENCE_DEPTHS_M = {"pt301": 5690.0, "pt302": 2850.0, "pt303": 500.0}


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and the key path."""


#: The two ranges most plant parameters share (units are in the keys' names).
POSITIVE = Annotated[float, Field(gt=0)]
NON_NEGATIVE = Annotated[float, Field(ge=0)]
#: Efficiencies and power factors: (0, 1].
FRACTION = Annotated[float, Field(gt=0, le=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlantParams(_Strict):
    """Physical plant. Units are in the names; defaults are the reference installation."""

    rho_w_kg_m3: POSITIVE = 1025.0
    rho_s_kg_m3: POSITIVE = 2500.0
    rho_b_kg_m3: POSITIVE = 1300.0
    g_m_s2: POSITIVE = 9.80665
    p_atm_kpa: POSITIVE = 101.325
    riser_length_m: POSITIVE = 5700.0
    return_id_m: POSITIVE = 0.20
    injection_dh_m: POSITIVE = 0.25
    injection_area_m2: POSITIVE = 0.1433
    friction_return: POSITIVE = 0.015  # nominal: pump-curve fit only
    friction_injection: POSITIVE = 0.015
    transmitter_depths_m: dict[str, float] = Field(default_factory=lambda: dict(REFERENCE_DEPTHS_M))
    cells: int = Field(default=400, ge=4, le=100_000)
    dt_s: float = Field(default=0.1, gt=0, le=1.0)
    # operation
    injection_m3_h: POSITIVE = 300.0
    mud_intake_m3_h: NON_NEGATIVE = 30.0
    #: the intake the pump curve is fitted for (a day may start with seawater only)
    design_intake_m3_h: NON_NEGATIVE = 30.0
    grade_ppm: NON_NEGATIVE = 2000.0
    initial_fill: Literal["steady", "water"] = "steady"
    # pumps: two identical drives in parallel; the curve is fitted so that nominal speed
    # delivers exactly injection_m3_h against the nominal system.
    pump_speed_rpm: POSITIVE = 1480.0
    pump_shutoff_ratio: float = Field(default=1.35, gt=1.0)
    pump_efficiency_bep: FRACTION = 0.78
    pump_ramp_rpm_s: POSITIVE = 150.0
    pump_coast_tau_s: POSITIVE = 4.0
    flow_tau_s: POSITIVE = 5.0
    motor_rated_kw: POSITIVE = 315.0
    motor_rated_rpm: POSITIVE = 1490.0
    motor_voltage_v: POSITIVE = 690.0
    motor_power_factor: FRACTION = 0.86
    motor_efficiency: FRACTION = 0.95
    dc_bus_v: POSITIVE = 930.0
    run_hours_initial_h: NON_NEGATIVE = 12_345.6
    # deck: return line back pressure = static part + quadratic loss at nominal return flow
    deck_static_kpa: NON_NEGATIVE = 100.0
    deck_loss_kpa: NON_NEGATIVE = 50.0
    # temperatures
    seabed_temp_c: float = Field(default=1.6, gt=-5, lt=40)
    deck_return_temp_c: float = Field(default=9.5, gt=-5, lt=60)
    surface_water_temp_c: float = Field(default=24.0, gt=-5, lt=40)
    # densitometer gamma attenuation: count_rate = counts_at_1000 * exp(-k (rho - 1000))
    counts_at_1000: POSITIVE = 60_600.0
    attenuation_per_kg_m3: POSITIVE = 0.00154
    conductivity_us_cm: POSITIVE = 52_000.0
    # plant v2 (hil/plant/physics.py): TEOS-10 seawater along the riser, Colebrook friction at
    # the mixture's Reynolds number, slip; rho_w_kg_m3 above is only the pump-curve fit's
    salinity_g_kg: float = Field(default=35.16, gt=0, lt=50)
    roughness_m: NON_NEGATIVE = 4.5e-5
    slip_m_s: NON_NEGATIVE = 0.012
    deck_temp_drift_c: NON_NEGATIVE = 0.3
    #: draw true constants and calibration errors per run from the seed (within spec)
    draws: bool = False
    #: slow intake-grade wander (relative amplitude) around the scheduled grade
    grade_wander_rel: float = Field(default=0.0, ge=0, lt=1)
    grade_wander_period_s: POSITIVE = 5400.0
    #: ship's lab (hil/plant/lab.py; live sessions and hil synth): a deck sample every interval,
    #: assayed with this relative error and reported this long after sampling (REY by ICP-MS:
    #: about an hour). The CI scenarios set a fast lab that fits their short runs.
    lab_interval_s: POSITIVE = 3600.0
    lab_delay_s: NON_NEGATIVE = 3600.0
    lab_error_rel: float = Field(default=0.03, ge=0, lt=1)

    @model_validator(mode="after")
    def _check(self) -> PlantParams:
        missing = set(REFERENCE_DEPTHS_M) - set(self.transmitter_depths_m)
        extra = set(self.transmitter_depths_m) - set(REFERENCE_DEPTHS_M)
        if missing or extra:
            raise ValueError(
                f"transmitter_depths_m must name exactly {sorted(REFERENCE_DEPTHS_M)}, "
                f"got {sorted(self.transmitter_depths_m)}"
            )
        for tag, z in self.transmitter_depths_m.items():
            if not 0.0 < z <= self.riser_length_m:
                raise ValueError(
                    f"transmitter_depths_m.{tag} = {z} m is outside the riser "
                    f"(0, {self.riser_length_m}] m"
                )
        if not self.rho_w_kg_m3 < self.rho_b_kg_m3 < self.rho_s_kg_m3:
            raise ValueError("need rho_w_kg_m3 < rho_b_kg_m3 < rho_s_kg_m3")
        return self

    @property
    def return_area_m2(self) -> float:
        return math.pi * self.return_id_m**2 / 4.0

    @property
    def phi_b(self) -> float:
        """Solids volume fraction of the wet mud taken in."""
        return (self.rho_b_kg_m3 - self.rho_w_kg_m3) / (self.rho_s_kg_m3 - self.rho_w_kg_m3)


class _EventBase(_Strict):
    at_s: NON_NEGATIVE


class _Ramped(_EventBase):
    """A value that moves to its target over ``ramp_s`` (0: at once)."""

    ramp_s: NON_NEGATIVE = 0.0


class _OnePump(_EventBase):
    pump: Literal["p101a", "p101b"]


class _Lasting(_EventBase):
    """On from ``at_s`` for ``duration_s`` (None: to the end of the run)."""

    duration_s: float | None = Field(default=None, gt=0)


class GradeEvent(_Ramped):
    """Intake grade (REY ppm, dry basis) moves to ``grade_ppm`` over ``ramp_s``."""

    kind: Literal["grade"]
    grade_ppm: NON_NEGATIVE


class IntakeEvent(_Ramped):
    """Wet-mud intake rate moves to ``mud_m3_h`` over ``ramp_s``."""

    kind: Literal["intake"]
    mud_m3_h: NON_NEGATIVE


class PumpSpeedEvent(_OnePump):
    """New speed command; the drive ramps at its own rate."""

    kind: Literal["pump_speed"]
    speed_rpm: NON_NEGATIVE


class PumpTripEvent(_OnePump):
    """Drive fault: the pump coasts down, status bit 2 and ``fault_code`` are set."""

    kind: Literal["pump_trip"]
    fault_code: int = Field(default=7, ge=1, le=65535)


class PumpStartEvent(_OnePump):
    """Fault reset and restart towards the last speed command."""

    kind: Literal["pump_start"]


class FrictionEvent(_Ramped):
    """Return-leg friction multiplier moves to ``factor`` over ``ramp_s`` (plugging)."""

    kind: Literal["friction"]
    factor: POSITIVE


class SlugEvent(_Lasting):
    """Mud intake waves: intake x (1 + amplitude_rel sin(2 pi t / period_s))."""

    kind: Literal["slugging"]
    period_s: POSITIVE
    amplitude_rel: float = Field(gt=0, le=1)


class HeaveEvent(_Lasting):
    """Vessel heave: transmitter depths move by amplitude_m, flows by flow_amplitude_rel."""

    kind: Literal["heave"]
    period_s: POSITIVE
    amplitude_m: NON_NEGATIVE
    flow_amplitude_rel: float = Field(default=0.0, ge=0, lt=1)


class FaultEvent(_Lasting):
    """A sensor, device or link fault on ``target`` (a device, endpoint or channel id)."""

    kind: Literal["fault"]
    target: str = Field(min_length=2)
    fault: FaultKind
    params: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _target(self) -> FaultEvent:
        check_fault(self.fault, resolve_target(self.target))
        return self

    def scheduled(self) -> ActiveFault:
        """The fault as the plant and emulators act on it: devices resolved, end time set."""
        target = resolve_target(self.target)
        end = None if self.duration_s is None else self.at_s + self.duration_s
        return ActiveFault(
            self.target,
            self.fault,
            self.at_s,
            end,
            target.devices,
            target.channel,
            dict(self.params),
        )


Event = Annotated[
    GradeEvent
    | IntakeEvent
    | PumpSpeedEvent
    | PumpTripEvent
    | PumpStartEvent
    | FrictionEvent
    | SlugEvent
    | HeaveEvent
    | FaultEvent,
    Field(discriminator="kind"),
]


class ExpectedAlarm(_Strict):
    """An alarm the DAQ must raise no later than ``latest_raise_s`` after the run starts.

    Only alarms whose ``latest_raise_s`` lies inside the run are checked, so a full-length
    expectation (an hour of drift) does not fail a short CI run.
    """

    name: str
    channel: str | None = None
    latest_raise_s: POSITIVE

    @model_validator(mode="after")
    def _known(self) -> ExpectedAlarm:
        if self.name not in ALARM_NAMES:
            raise ValueError(f"unknown alarm {self.name!r}; known: {sorted(ALARM_NAMES)}")
        return self


class Accuracy(_Strict):
    """Scoring of the cumulative REY estimate against plant truth."""

    rey_error_pct_max: float | None = Field(default=None, gt=0)
    truth_in_interval: bool = False


class Expectations(_Strict):
    alarms: tuple[ExpectedAlarm, ...] = ()
    allow_other_alarms: bool = True
    accuracy: Accuracy = Field(default_factory=Accuracy)


class Scenario(_Strict):
    """One validated scenario file."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    duration_s: POSITIVE
    ci_duration_s: POSITIVE
    seed: int = Field(default=0, ge=0)
    plant: PlantParams = Field(default_factory=PlantParams)
    events: tuple[Event, ...] = ()
    expect: Expectations = Field(default_factory=Expectations)

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        if self.ci_duration_s > self.duration_s:
            raise ValueError("ci_duration_s must not exceed duration_s")
        return self

    def at_full_scale(self) -> Scenario:
        """The same scenario on the reference 5,700 m riser with the reference ship's lab (for
        ``hil synth``): what a CI scenario shortens to fit its run is put back."""
        lab = ("lab_interval_s", "lab_delay_s")
        reference = {k: PlantParams.model_fields[k].default for k in lab}
        plant = self.plant.model_copy(
            update={
                "riser_length_m": 5700.0,
                "transmitter_depths_m": dict(REFERENCE_DEPTHS_M),
                "cells": 400,
                **reference,
            }
        )
        return self.model_copy(update={"plant": plant})


def _format_errors(source: str, err: ValidationError) -> str:
    lines = [f"{source}: invalid scenario"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {loc}: unknown key")
        else:
            lines.append(f"  {loc}: {e['msg']}")
    return "\n".join(lines)


def parse_scenario(data: dict[str, object], source: str = "<scenario>") -> Scenario:
    """Validate already-parsed TOML data; errors name ``source`` and the key path."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(_format_errors(source, err)) from None


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a bundled scenario by name (``"nominal"``) or any scenario file by path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = SCENARIO_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise ScenarioError(
                f"no scenario named {name_or_path!r}; known: {', '.join(list_scenarios())}"
            )
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as err:
        raise ScenarioError(f"{path}: cannot read: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(f"{path}: not valid TOML: {err}") from None
    return parse_scenario(data, str(path))


def list_scenarios() -> list[str]:
    """Names of the bundled scenarios, sorted."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))
