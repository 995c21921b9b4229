"""Turn a scenario's events into the hydraulics kernel's per-step drive rows (vectorised).

Events apply in time order; later events override earlier ones from their start. Ramps
interpolate linearly from whatever the value was at each instant, so overlapping ramps
stay continuous. The same function serves one live step and a 24 h synth block.
"""

from __future__ import annotations

import numpy as np

from hil.plant.hydraulics import (
    D_CMD_A,
    D_FMULT,
    D_GRADE,
    D_HEAVE_M,
    D_HEAVE_Q,
    D_QMUD,
    D_TRIP_A,
    DRIVE_COLUMNS,
)
from hil.scenario import (
    FaultEvent,
    FrictionEvent,
    GradeEvent,
    HeaveEvent,
    IntakeEvent,
    PumpSpeedEvent,
    PumpStartEvent,
    PumpTripEvent,
    Scenario,
    SlugEvent,
)

__all__ = ["Schedule"]


def _ramp_to(
    t: np.ndarray, current: np.ndarray, at_s: float, target: float, ramp_s: float
) -> np.ndarray:
    if ramp_s <= 0.0:
        return np.where(t >= at_s, target, current)
    w = np.clip((t - at_s) / ramp_s, 0.0, 1.0)
    return current + (target - current) * w


def _window(t: np.ndarray, at_s: float, duration_s: float | None) -> np.ndarray:
    mask = t >= at_s
    if duration_s is not None:
        mask &= t < at_s + duration_s
    return mask


class Schedule:
    """The scenario's event list, ready to evaluate at any simulation times."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.events = sorted(scenario.events, key=lambda e: e.at_s)
        self.faults = [e.scheduled() for e in self.events if isinstance(e, FaultEvent)]

    def drive(self, t_s: np.ndarray) -> np.ndarray:
        """Drive rows (columns ``DRIVE_COLUMNS``) for steps starting at ``t_s``."""
        p = self.scenario.plant
        t = np.asarray(t_s, dtype=np.float64)
        n = t.shape[0]
        out = np.empty((n, len(DRIVE_COLUMNS)))
        cmd = [np.full(n, p.pump_speed_rpm), np.full(n, p.pump_speed_rpm)]
        trip = [np.zeros(n), np.zeros(n)]
        mud = np.full(n, p.mud_intake_m3_h)
        grade = np.full(n, p.grade_ppm)
        fmult = np.ones(n)
        slug = np.ones(n)
        heave_m = np.zeros(n)
        heave_q = np.zeros(n)
        for ev in self.events:
            if isinstance(ev, GradeEvent):
                grade = _ramp_to(t, grade, ev.at_s, ev.grade_ppm, ev.ramp_s)
            elif isinstance(ev, IntakeEvent):
                mud = _ramp_to(t, mud, ev.at_s, ev.mud_m3_h, ev.ramp_s)
            elif isinstance(ev, FrictionEvent):
                fmult = _ramp_to(t, fmult, ev.at_s, ev.factor, ev.ramp_s)
            elif isinstance(ev, PumpSpeedEvent):
                j = 0 if ev.pump == "p101a" else 1
                cmd[j] = np.where(t >= ev.at_s, ev.speed_rpm, cmd[j])
            elif isinstance(ev, PumpTripEvent):
                j = 0 if ev.pump == "p101a" else 1
                trip[j] = np.where(t >= ev.at_s, float(ev.fault_code), trip[j])
            elif isinstance(ev, PumpStartEvent):
                j = 0 if ev.pump == "p101a" else 1
                trip[j] = np.where(t >= ev.at_s, 0.0, trip[j])
            elif isinstance(ev, SlugEvent):
                w = _window(t, ev.at_s, ev.duration_s)
                phase = 2.0 * np.pi * (t - ev.at_s) / ev.period_s
                slug = np.where(w, slug * (1.0 + ev.amplitude_rel * np.sin(phase)), slug)
            elif isinstance(ev, HeaveEvent):
                w = _window(t, ev.at_s, ev.duration_s)
                phase = 2.0 * np.pi * (t - ev.at_s) / ev.period_s
                heave_m = heave_m + np.where(w, ev.amplitude_m * np.sin(phase), 0.0)
                # flow follows heave velocity: a quarter period ahead of displacement
                heave_q = heave_q + np.where(w, ev.flow_amplitude_rel * np.cos(phase), 0.0)
        out[:, D_CMD_A] = cmd[0]
        out[:, D_CMD_A + 1] = cmd[1]
        out[:, D_TRIP_A] = trip[0]
        out[:, D_TRIP_A + 1] = trip[1]
        out[:, D_QMUD] = np.maximum(mud * slug, 0.0) / 3600.0
        if p.grade_wander_rel > 0.0:
            # slow wander of the mud's grade: two incommensurate periods, phases from the seed
            ph = np.random.default_rng(self.scenario.seed).uniform(0, 2 * np.pi, 2)
            w = 2.0 * np.pi * t / p.grade_wander_period_s
            grade = grade * (
                1.0 + p.grade_wander_rel * (0.7 * np.sin(w + ph[0]) + 0.3 * np.sin(2.7 * w + ph[1]))
            )
        out[:, D_GRADE] = grade
        out[:, D_FMULT] = fmult
        out[:, D_HEAVE_M] = heave_m
        out[:, D_HEAVE_Q] = heave_q
        return out
