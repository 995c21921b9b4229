"""Hysteresis alarms with minimum durations, as per-sample state and timestamped events.

Direction follows from the thresholds: ``raise_ > clear`` is a high alarm (raise when the value
is at or above ``raise_``), ``raise_ < clear`` a low alarm. A condition must hold continuously
for ``min_duration_s`` before the alarm raises, and the clear condition as long before it
clears. A NaN value restarts the pending timer and leaves the alarm as it is: missing data
neither raises nor clears anything. The chain kernel uses :func:`alarm_step`; the processor can
use :func:`hysteresis_alarm` for SENSOR_FAULT(channel) on a quality-derived value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit
from numpy.typing import NDArray


@dataclass(frozen=True)
class AlarmSpec:
    """Raise/clear thresholds (value units) and the minimum duration of either condition."""

    raise_: float
    clear: float
    min_duration_s: float

    def __post_init__(self) -> None:
        for name in ("raise_", "clear", "min_duration_s"):
            if not isinstance(getattr(self, name), int | float):
                raise TypeError(f"AlarmSpec.{name} must be a number, got {getattr(self, name)!r}")
        if not (np.isfinite(self.raise_) and np.isfinite(self.clear)) or self.raise_ == self.clear:
            raise ValueError(f"AlarmSpec needs finite, distinct thresholds, got {self}")
        if not self.min_duration_s >= 0:
            raise ValueError(f"AlarmSpec.min_duration_s must be >= 0, got {self.min_duration_s}")

    def limits(self) -> AlarmLimits:
        return AlarmLimits(float(self.raise_), float(self.clear), round(self.min_duration_s * 1e9))


class AlarmLimits(NamedTuple):
    """An :class:`AlarmSpec` as the kernels take it (scalars: free to pass per sample)."""

    raise_: float
    clear: float
    min_ns: int


class AlarmEvent(NamedTuple):
    t_ns: int
    alarm: str
    kind: str  # "raise" or "clear"
    value: float


Step = tuple[int, int]


class AlarmState(NamedTuple):
    active: NDArray[np.uint8]
    pending_ns: NDArray[np.int64]


@njit(cache=True, nogil=True)
def alarm_step(t_ns: int, v: float, lim: AlarmLimits, active: int, pending_ns: int) -> Step:
    """One alarm's next (active, pending_ns); ``pending_ns < 0``: no condition is being timed.

    Scalars in and out: a step that took the state arrays cost four atomic reference count
    operations per call, more than its own arithmetic."""
    raise_, clear, min_ns = lim
    if np.isnan(v):
        return active, -1
    high = raise_ > clear
    if active == 0:
        cond = v >= raise_ if high else v <= raise_
    else:
        cond = v <= clear if high else v >= clear
    if not cond:
        return active, -1
    if pending_ns < 0:
        pending_ns = t_ns
    if t_ns - pending_ns >= min_ns:
        return 1 - active, -1
    return active, pending_ns


@njit(cache=True, nogil=True)
def _alarm_kernel(
    t_ns: NDArray[np.int64], v: NDArray[np.float64], lim: AlarmLimits, s: AlarmState
) -> NDArray[np.uint8]:
    out = np.empty(t_ns.shape[0], np.uint8)
    active, pending_ns = s
    a = int(active[0])
    p = pending_ns[0]
    for i in range(t_ns.shape[0]):
        a, p = alarm_step(t_ns[i], v[i], lim, a, p)
        out[i] = a
    active[0] = a
    pending_ns[0] = p
    return out


def alarm_init(n_alarms: int = 1) -> AlarmState:
    return AlarmState(np.zeros(n_alarms, np.uint8), np.full(n_alarms, -1, np.int64))


def events_from_bits(
    names: tuple[str, ...],
    t_ns: NDArray[np.int64],
    bits: NDArray[np.uint8],
    values: NDArray[np.float64],
    prev_bits: int,
    rows: tuple[int, ...] | None = None,
) -> list[AlarmEvent]:
    """Turn per-sample alarm bitmasks (bit k = ``names[k]``) into raise/clear events.

    ``values[k, i]`` (``values[rows[k], i]`` when given: a kernel's whole output, read only at
    the events) is the monitored value of alarm k at sample i; ``prev_bits`` is the mask
    before the block, so an alarm active across a block boundary gives no duplicate event.
    """
    if bits.shape[0] == 0:
        return []
    prev = np.empty_like(bits)
    prev[0] = prev_bits
    prev[1:] = bits[:-1]
    changed = np.flatnonzero(bits != prev)
    row = rows if rows is not None else tuple(range(len(names)))
    events: list[AlarmEvent] = []
    for i in changed:
        now = int(bits[i])
        diff = now ^ int(prev[i])
        for k, name in enumerate(names):
            if diff >> k & 1:
                kind = "raise" if now >> k & 1 else "clear"
                events.append(AlarmEvent(int(t_ns[i]), name, kind, float(values[row[k], i])))
    return events


def hysteresis_alarm(
    name: str,
    t_ns: NDArray[np.int64],
    value: NDArray[np.float64],
    spec: AlarmSpec,
    state: AlarmState,
) -> tuple[NDArray[np.uint8], list[AlarmEvent]]:
    """One alarm over a block; ``state`` (from :func:`alarm_init`) is updated in place."""
    t_ns = np.ascontiguousarray(t_ns, dtype=np.int64)
    value = np.ascontiguousarray(value, dtype=np.float64)
    if t_ns.shape != value.shape:
        raise ValueError(f"t_ns and value differ in shape: {t_ns.shape} vs {value.shape}")
    prev = int(state.active[0])
    out = _alarm_kernel(t_ns, value, spec.limits(), state)
    return out, events_from_bits((name,), t_ns, out, value[None, :], prev)
