"""Where emulated devices get their engineering values: the seam for the plant model.

A `ValueSource` maps time (UTC seconds) to engineering values by channel id
(`"ft201.volume_flow": 330.0`). Channels it omits read as raw 0; free-running counters and
sequence numbers are the emulators' own business. The plant model implements the same protocol.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Protocol

G_M_S2 = 9.80665
RHO_MIX_KG_M3 = 1050.0
P_ATM_KPA = 101.325


class ValueSource(Protocol):
    def values(self, t_s: float) -> Mapping[str, float]: ...


def _hydrostatic_kpa(depth_m: float) -> float:
    return P_ATM_KPA + RHO_MIX_KG_M3 * G_M_S2 * depth_m / 1000.0


def _velocity_m_s(q_m3_h: float, d_m: float) -> float:
    return q_m3_h / 3600.0 / (math.pi * d_m * d_m / 4.0)


def _pump(prefix: str) -> dict[str, float]:
    return {
        f"{prefix}.status_word": float(0b11011),  # ready, running, remote, at_speed
        f"{prefix}.speed": 1480.0,
        f"{prefix}.motor_current": 412.3,
        f"{prefix}.torque": 78.5,
        f"{prefix}.shaft_power": 315.25,
        f"{prefix}.dc_bus_voltage": 650.0,
        f"{prefix}.fault_code": 0.0,
        f"{prefix}.run_hours": 12345.6,
    }


def _flowmeter(prefix: str, q_m3_h: float, d_m: float, total_m3: float) -> dict[str, float]:
    return {
        f"{prefix}.volume_flow": q_m3_h,
        f"{prefix}.velocity": _velocity_m_s(q_m3_h, d_m),
        f"{prefix}.totalizer": total_m3,
        f"{prefix}.diagnostics": 0.0,
        f"{prefix}.conductivity": 52000.0,
    }


def _quartz(prefix: str, depth_m: float, temp_c: float) -> dict[str, float]:
    return {
        f"{prefix}.pressure": _hydrostatic_kpa(depth_m),
        f"{prefix}.temperature": temp_c,
        f"{prefix}.status": 0.0,
    }


#: Nominal operation of the reference installation (docs/CONVENTIONS.md).
NOMINAL: dict[str, float] = {
    **_pump("p101a"),
    **_pump("p101b"),
    **_flowmeter("ft101", 300.0, 0.25, 123456.75),
    **_flowmeter("ft201", 330.0, 0.20, 135802.5),
    "ai20.pt101": 62.0,
    "ai20.pt201": 4.5,
    "ai20.tt201": 18.4,
    **_quartz("pt301", 5690.0, 2.0),
    **_quartz("pt302", 2850.0, 2.5),
    **_quartz("pt303", 500.0, 8.0),
    "dt201.density": RHO_MIX_KG_M3,
    "dt201.temperature": 18.4,
    "dt201.count_rate": 52113.0,
    "dt201.status": 0.0,
}


class ConstantSource:
    """Fixed values (nominal by default); `set` changes them live, e.g. from a test."""

    def __init__(self, values: Mapping[str, float] | None = None) -> None:
        self._values = dict(NOMINAL if values is None else values)

    def set(self, channel: str, value: float) -> None:
        self._values[channel] = value

    def values(self, t_s: float) -> Mapping[str, float]:
        return self._values


class ScriptedSource:
    """Base values plus per-channel functions of time since `t0_s` (ramps, steps, sines)."""

    def __init__(
        self,
        scripts: Mapping[str, Callable[[float], float]],
        base: Mapping[str, float] | None = None,
        *,
        t0_s: float = 0.0,
    ) -> None:
        self._scripts = dict(scripts)
        self._base = dict(NOMINAL if base is None else base)
        self._t0_s = t0_s

    def values(self, t_s: float) -> Mapping[str, float]:
        out = dict(self._base)
        dt = t_s - self._t0_s
        for ch, fn in self._scripts.items():
            out[ch] = fn(dt)
        return out
