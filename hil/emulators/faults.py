"""Fault injection vocabulary, shared by every emulator so tests and the plant speak one language.

Faults are per device and persist until cleared. Each kind takes its parameters as keywords;
an unknown kind or parameter is a `ValueError` naming it, so a scenario typo fails loudly.
"""

from __future__ import annotations

from typing import Any

#: kind -> parameters it accepts (with defaults).
FAULT_KINDS: dict[str, dict[str, Any]] = {
    "exception": {"code": 4},  # Modbus exception reply with this code
    "no_reply": {},  # silence (Modbus) / stream stops (densitometer)
    "late_reply": {"delay_s": 0.5},  # reply, but after the master gave up
    "disconnect": {"down_s": 0.0},  # drop connections now; refuse new ones for down_s
    "garbled": {},  # bytes corrupted on the wire
    "truncated": {},  # frame cut short
    "bad_checksum": {},  # CRC / NMEA checksum wrong
    "frozen_counter": {},  # sample counter stops moving
    "namur_fail": {"channel": "", "ma": 3.5},  # loop current forced (wire break, short)
    "status_bits": {"field": "status", "bits": 0},  # bits ORed into a status field
    "seq_skip": {"n": 1},  # densitometer: sequence jumps by n once
    # hostile value on the wire: engineering value (NaN, inf, absurd) or, for the
    # densitometer, the field's literal text ("inf", "1e308", "-5")
    "override": {"field": "", "value": 0.0},
}


def check_fault(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
    allowed = FAULT_KINDS[kind]
    extra = set(params) - set(allowed)
    if extra:
        raise ValueError(f"fault {kind!r} takes {sorted(allowed)}, not {sorted(extra)}")
    return {**allowed, **params}


class FaultSet:
    """Active faults of one device."""

    def __init__(self) -> None:
        self.active: dict[str, dict[str, Any]] = {}

    def set(self, kind: str, **params: Any) -> None:
        self.active[kind] = check_fault(kind, params)

    def clear(self, kind: str | None = None) -> None:
        if kind is None:
            self.active.clear()
        else:
            self.active.pop(kind, None)

    def get(self, kind: str) -> dict[str, Any] | None:
        return self.active.get(kind)

    def __contains__(self, kind: str) -> bool:
        return kind in self.active
