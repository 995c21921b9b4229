"""Instrument layer: true plant values at sample times to device readings.

A reading is ``lag(true + drift) + noise``, quantised at the register resolution (AI-20
inputs in counts, through the 4-20 mA loop), float32 where the wire is float32, then
value-level faults (stuck, empty pipe, NAMUR current, status bits). One implementation
serves a live step (arrays of one sample) and a synth block (arrays of thousands): every
channel owns its lag state and its seeded random stream, so results depend only
on the seed and the sample times.

Readings are engineering units as in the ICD; status words are their integer values as
floats. An AI-20 channel under ``namur_fail`` reads the engineering value of the fault
current, i.e. outside its range, so the emulator encodes the failing current faithfully.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numba import njit

from hil.devices import AI_COUNTS_SPAN, DEVICES, ChannelSpec
from hil.faults import LINK_FAULTS, ActiveFault, FaultKind
from hil.plant import physics
from hil.plant.physics import Calibration
from hil.scenario import PlantParams

__all__ = ["TRUTH_COLUMNS", "SensorBank", "ai_milliamps"]

_FT_EMPTY_PIPE = 1 << 0
_FT_OUT_OF_RANGE = 1 << 3
_DT_LOW_COUNT = 1 << 1
_DT_EMPTY_PIPE = 1 << 2
_PUMP_READY, _PUMP_RUNNING, _PUMP_FAULT, _PUMP_REMOTE, _PUMP_AT_SPEED = (1, 2, 4, 8, 16)
_FLOW_RANGE_M3_H = 1000.0
_LOW_COUNT_RATE = 10_000.0
_UINT32 = 2**32


@njit(cache=True, nogil=True)
def _lag(x: np.ndarray, t: np.ndarray, tau: float, state: np.ndarray, out: np.ndarray) -> None:
    """First-order lag over irregular sample times; ``state`` = [y, t, started]."""
    y = state[0]
    tp = state[1]
    started = state[2] > 0.5
    for i in range(x.shape[0]):
        if not started:
            y = x[i]
            started = True
        else:
            dt = t[i] - tp
            if dt > 0.0:
                y += (x[i] - y) * (1.0 - np.exp(-dt / tau))
        tp = t[i]
        out[i] = y
    state[0] = y
    state[1] = tp
    state[2] = 1.0 if started else 0.0


@njit(cache=True, nogil=True)
def _ar1(
    e: np.ndarray, t: np.ndarray, tau: float, sigma: float, state: np.ndarray, out: np.ndarray
) -> None:
    """Stationary AR(1) noise over irregular sample times; ``state`` = [x, t, started]."""
    x = state[0]
    tp = state[1]
    started = state[2] > 0.5
    for i in range(e.shape[0]):
        if not started:
            x = sigma * e[i]
            started = True
        else:
            a = np.exp(-max(t[i] - tp, 0.0) / tau)
            x = a * x + sigma * np.sqrt(1.0 - a * a) * e[i]
        tp = t[i]
        out[i] = x
    state[0] = x
    state[1] = tp
    state[2] = 1.0 if started else 0.0


#: the plant output columns (``hydraulics.OUT_COLUMNS``) each device's model reads
TRUTH_COLUMNS: dict[str, tuple[str, ...]] = {
    "p101a": ("n_a_rpm", "q_a_m3_s", "p_pump_kpa_g", "cmd_a_rpm", "trip_a", "run_a_s"),
    "p101b": ("n_b_rpm", "q_b_m3_s", "p_pump_kpa_g", "cmd_b_rpm", "trip_b", "run_b_s"),
    "ft101": ("q_inj_m3_s", "vol_inj_m3"),
    "ft201": ("q_ret_m3_s", "vol_ret_m3", "cv_deck"),
    "ai20": ("p_pump_kpa_g", "p_deck_kpa_g"),
    "pt301": ("p_z0_kpa_abs", "p_z1_kpa_abs", "p_z2_kpa_abs"),
    "pt302": ("p_z0_kpa_abs", "p_z1_kpa_abs", "p_z2_kpa_abs"),
    "pt303": ("p_z0_kpa_abs", "p_z1_kpa_abs", "p_z2_kpa_abs"),
    "dt201": ("cv_deck", "q_ret_m3_s", "p_deck_kpa_g"),
}


Windows = list[tuple[int, ActiveFault, np.ndarray]]


@dataclass(frozen=True)
class _Sampling:
    """One device sampled at times ``t``: the plant's truth there and the faults then on."""

    device: str
    t: np.ndarray
    truth: Mapping[str, np.ndarray]
    win: Windows
    spec: dict[str, ChannelSpec]


def ai_milliamps(value: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Loop current of an AI-20 reading (inverse of the ICD scaling)."""
    return 4.0 + 16.0 * (np.asarray(value) - lo) / (hi - lo)


class SensorBank:
    """Per-device instrument models with their state (lags, random streams, stuck values)."""

    def __init__(
        self,
        p: PlantParams,
        depth_order: tuple[str, ...],
        faults: list[ActiveFault],
        seed: int,
        *,
        pump_q_bep_m3_s: float,
        calibration: Calibration | None = None,
    ) -> None:
        self.p = p
        self.cal = calibration or Calibration()
        self._depth_col = {tag: f"p_z{i}_kpa_abs" for i, tag in enumerate(depth_order)}
        self._faults = faults
        self._q_bep = pump_q_bep_m3_s
        # one stream per channel, so splitting a run into blocks draws the same numbers
        self._rng = {
            f"{d}.{c}": np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, i, j])))
            for i, (d, s) in enumerate(DEVICES.items())
            for j, c in enumerate(s.channels)
        }
        self._lag_state = {f"{d}.{c}": np.zeros(3) for d, s in DEVICES.items() for c in s.channels}
        self._ar_state = {f"{d}.{c}": np.zeros(3) for d, s in DEVICES.items() for c in s.channels}
        self._stuck: dict[tuple[int, str], float] = {}

    # -- helpers ---------------------------------------------------------------------
    def _windows(self, device: str, t: np.ndarray) -> Windows:
        hits = []
        for i, f in enumerate(self._faults):
            if device not in f.devices or f.kind in LINK_FAULTS:
                continue
            mask = f.window(t)
            if mask.any():
                hits.append((i, f, mask))
        return hits

    def _instrument(
        self, at: _Sampling, name: str, true: np.ndarray, noise_gate: np.ndarray | None = None
    ) -> np.ndarray:
        """The reading of channel ``name`` whose true value is ``true``."""
        device, spec, t, windows = at.device, at.spec[name], at.t, at.win
        rng = self._rng[f"{device}.{name}"]
        x = np.array(true, dtype=np.float64)
        for _, f, mask in windows:
            if f.kind is FaultKind.DRIFT and f.channel == name:
                total = f.param("total", 0.0)
                ramp = f.param("ramp_s", 0.0)
                w = np.clip((t - f.start_s) / ramp, 0.0, 1.0) if ramp > 0 else 1.0
                x = np.where(mask, x + total * w, x)
        x = self.cal.apply(f"{device}.{name}", x)
        if spec.lag_s > 0.0:
            y = np.empty_like(x)
            _lag(x, t, spec.lag_s, self._lag_state[f"{device}.{name}"], y)
            x = y
        if spec.noise > 0.0 and spec.noise_tau_s > 0.0:
            e = np.asarray(rng.standard_normal(x.shape[0]), dtype=np.float64)
            ar = np.empty_like(e)
            _ar1(e, t, spec.noise_tau_s, spec.noise, self._ar_state[f"{device}.{name}"], ar)
            noise = ar
            x = x + (noise if noise_gate is None else noise * noise_gate)
        elif spec.noise > 0.0:
            noise = np.asarray(rng.normal(0.0, spec.noise, x.shape[0]), dtype=np.float64)
            x = x + (noise if noise_gate is None else noise * noise_gate)
        if spec.ai_range is not None:
            lo, hi = spec.ai_range
            ma = np.clip(ai_milliamps(x, lo, hi), 3.8, 20.5)
            for _, f, mask in windows:
                if f.kind is FaultKind.NAMUR_FAIL and f.channel == name:
                    ma = np.where(mask, f.param("ma", 3.5), ma)
            counts = np.round((ma - 4.0) / 16.0 * AI_COUNTS_SPAN)
            x = lo + counts / AI_COUNTS_SPAN * (hi - lo)
        elif spec.quantum > 0.0:
            x = np.round(x / spec.quantum) * spec.quantum
        if spec.float32:
            x = x.astype(np.float32).astype(np.float64)
        return self._apply_stuck(at, name, x)

    def _apply_stuck(self, at: _Sampling, name: str, x: np.ndarray) -> np.ndarray:
        for i, f, mask in at.win:
            if f.kind is FaultKind.STUCK and f.channel in (None, name):
                key = (i, name)
                if key not in self._stuck:
                    self._stuck[key] = float(x[np.argmax(mask)])
                x = np.where(mask, self._stuck[key], x)
        return x

    @staticmethod
    def _or_bits(status: np.ndarray, windows: Windows, bits: int) -> np.ndarray:
        for _, f, mask in windows:
            if f.kind is FaultKind.STATUS_BITS:
                status = np.where(mask, status.astype(np.int64) | int(f.param("mask", 0)), status)
            elif f.kind is FaultKind.EMPTY_PIPE:
                status = np.where(mask, status.astype(np.int64) | bits, status)
        return status.astype(np.float64)

    @staticmethod
    def _empty(at: _Sampling) -> np.ndarray:
        empty = np.zeros(at.t.shape[0], dtype=bool)
        for _, f, mask in at.win:
            if f.kind is FaultKind.EMPTY_PIPE:
                empty |= mask
        return empty

    def temperature_c(self, depth_m: float | np.ndarray, t: np.ndarray) -> np.ndarray:
        """Return-leg fluid temperature: warms from the collector to the deck, which drifts."""
        p = self.p
        frac = np.asarray(depth_m) / p.riser_length_m
        deck = physics.deck_temperature(p, t)
        return deck + (p.seabed_temp_c + 3.0 - deck) * frac

    # -- devices ---------------------------------------------------------------------
    def measure(
        self, device: str, t_s: np.ndarray, truth: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Readings of every channel of ``device`` at simulation times ``t_s``.

        ``truth`` maps hydraulics output columns to arrays aligned with ``t_s``.
        """
        t = np.asarray(t_s, dtype=np.float64)
        at = _Sampling(device, t, truth, self._windows(device, t), DEVICES[device].channels)
        if device.startswith("p101"):
            return self._pump(at)
        if device.startswith("ft"):
            return self._flowmeter(at)
        if device == "ai20":
            return self._ai(at)
        if device.startswith("pt"):
            return self._subsea(at)
        return self._densitometer(at)

    def _pump(self, at: _Sampling) -> dict[str, np.ndarray]:
        device, truth, win = at.device, at.truth, at.win
        p = self.p
        j = "a" if device == "p101a" else "b"
        n = truth[f"n_{j}_rpm"]
        q = truth[f"q_{j}_m3_s"]
        h = truth["p_pump_kpa_g"]
        cmd = truth[f"cmd_{j}_rpm"]
        trip = truth[f"trip_{j}"]
        spinning = n > 1.0
        speed_frac = n / p.pump_speed_rpm
        x = q / np.maximum(self._q_bep * speed_frac, 1e-9)
        eff = p.pump_efficiency_bep * np.clip(1.0 - (x - 1.0) ** 2, 0.15, 1.0)
        churn = 0.04 * p.motor_rated_kw * (n / p.motor_rated_rpm) ** 3
        shaft_kw = np.where(spinning, h * q / eff + churn, 0.0)
        torque_pct = np.where(
            spinning,
            100.0 * shaft_kw / p.motor_rated_kw * p.motor_rated_rpm / np.maximum(n, 1.0),
            0,
        )
        i_per_kw = 1000.0 / (np.sqrt(3.0) * p.motor_voltage_v * p.motor_power_factor)
        i_rated = p.motor_rated_kw * i_per_kw / p.motor_efficiency
        current = np.where(spinning, shaft_kw * i_per_kw / p.motor_efficiency + 0.15 * i_rated, 0.0)
        tripped = trip > 0.5
        running = ~tripped & (n > 5.0)
        at_speed = running & (np.abs(n - cmd) <= np.maximum(0.01 * cmd, 2.0))
        status = (
            np.where(tripped, _PUMP_FAULT, _PUMP_READY)
            + np.where(running, _PUMP_RUNNING, 0)
            + _PUMP_REMOTE
            + np.where(at_speed, _PUMP_AT_SPEED, 0)
        ).astype(np.float64)
        gate = spinning.astype(np.float64)
        run_h = p.run_hours_initial_h + truth[f"run_{j}_s"] / 3600.0
        out = {
            "status_word": self._or_bits(status, win, 0),
            "speed": self._instrument(at, "speed", n, gate),
            "motor_current": self._instrument(at, "motor_current", current, gate),
            "torque": self._instrument(at, "torque", torque_pct, gate),
            "shaft_power": self._instrument(at, "shaft_power", shaft_kw, gate),
            "dc_bus_voltage": self._instrument(at, "dc_bus_voltage", p.dc_bus_v - 0.03 * shaft_kw),
            "fault_code": np.where(tripped, trip, 0.0),
            "run_hours": self._instrument(at, "run_hours", run_h),
        }
        return out

    def _flowmeter(self, at: _Sampling) -> dict[str, np.ndarray]:
        device, truth, win = at.device, at.truth, at.win
        p = self.p
        inj = device == "ft101"
        q = truth["q_inj_m3_s" if inj else "q_ret_m3_s"]
        total = truth["vol_inj_m3" if inj else "vol_ret_m3"] + (152_000.0 if inj else 167_000.0)
        cv = np.zeros_like(q) if inj else truth["cv_deck"]
        empty = self._empty(at)
        flow = self._instrument(at, "volume_flow", q * 3600.0)
        vel = self._instrument(at, "velocity", q / p.return_area_m2)
        cond = self._instrument(at, "conductivity", p.conductivity_us_cm * (1.0 - 1.5 * cv))
        diag = np.where(np.abs(flow) > _FLOW_RANGE_M3_H, _FT_OUT_OF_RANGE, 0).astype(np.float64)
        return {
            "volume_flow": np.where(empty, 0.0, flow),
            "velocity": np.where(empty, 0.0, vel),
            "totalizer": self._apply_stuck(at, "totalizer", total),
            "diagnostics": self._or_bits(diag, win, _FT_EMPTY_PIPE),
            "conductivity": np.where(empty, 0.0, cond),
        }

    def _ai(self, at: _Sampling) -> dict[str, np.ndarray]:
        t, truth = at.t, at.truth
        true = {
            "pt101": truth["p_pump_kpa_g"] / 100.0,
            "pt201": truth["p_deck_kpa_g"] / 100.0,
            "tt201": self.temperature_c(0.0, t),
        }
        return {k: self._instrument(at, k, v) for k, v in true.items()}

    def _subsea(self, at: _Sampling) -> dict[str, np.ndarray]:
        device, t, truth, win = at.device, at.t, at.truth, at.win
        depth = self.p.transmitter_depths_m[device]
        unit = int(device[2:])
        counter = (np.floor(t * 10.0) + 1000.0 * unit) % _UINT32
        return {
            "pressure": self._instrument(at, "pressure", truth[self._depth_col[device]]),
            "temperature": self._instrument(at, "temperature", self.temperature_c(depth, t)),
            "status": self._or_bits(np.zeros_like(t), win, 0),
            "sample_counter": self._apply_stuck(at, "sample_counter", counter),
        }

    def _densitometer(self, at: _Sampling) -> dict[str, np.ndarray]:
        t, truth, win = at.t, at.truth, at.win
        p = self.p
        # the gauge sees in-situ solids (slower than the water: more of them than delivered)
        # in seawater at the deck's temperature and line pressure
        rho = physics.deck_density(
            p, t, truth["cv_deck"], truth["q_ret_m3_s"], truth["p_deck_kpa_g"]
        )
        empty = self._empty(at)
        rho = np.where(empty, 1.2, rho)
        density = self._instrument(at, "density", rho)
        # the gauge infers density from attenuation: counts follow its own reading
        rate = p.counts_at_1000 * np.exp(-p.attenuation_per_kg_m3 * (density - 1000.0))
        rate = rate + self._rng["dt201.count_rate"].normal(0.0, 1.0, t.shape[0]) * np.sqrt(
            rate / 2.0
        )
        rate = self._apply_stuck(at, "count_rate", np.round(rate))
        status = np.where(rate < _LOW_COUNT_RATE, _DT_LOW_COUNT, 0).astype(np.float64)
        temp = self._instrument(at, "temperature", self.temperature_c(0.0, t) + 0.4)
        return {
            "density": density,
            "temperature": temp,
            "count_rate": rate,
            "status": self._or_bits(status, win, _DT_EMPTY_PIPE),
        }
