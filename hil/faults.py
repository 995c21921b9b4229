"""The fault vocabulary of the rig, defined once: scenario fault kinds, what a target can
suffer, the faults scheduled in a run, and the wire faults the emulators act out.

A leaf: it imports nothing from ``hil``, so the scenario loader, the device catalogue, the
plant and the emulators all read the same types. The plant applies value-level faults
itself (stuck, drift, NAMUR current, empty pipe, status bits) to the readings it exposes;
link-level faults (:data:`LINK_FAULTS`) are only flagged, and the emulators act them out as
:data:`WIRE_FAULTS` (no answer, exception reply, closed socket, corrupted sentence).
``hil synth`` applies both to the recording, as a correct driver would have recorded them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "EMULATOR_FAULT",
    "LINK_FAULTS",
    "WIRE_FAULTS",
    "ActiveFault",
    "FaultKind",
    "FaultSet",
    "Target",
    "check_fault",
    "check_wire_fault",
    "fault_flags",
]


class FaultKind(StrEnum):
    """The one vocabulary of injectable faults (DESIGN "HIL"), shared by plant and emulators.

    stuck: value frozen at onset (subsea: sample counter stops too). drift: bias ramping to
    ``total`` over ``ramp_s``. dropout: the unit never answers. timeout: a request goes
    unanswered with ``probability``. modbus_exception: the unit answers exception ``code``.
    disconnect: the endpoint (``gateway``, ``subsea_bus``, ``dt201``) drops its connections.
    namur_fail: a 4-20 mA loop sits at ``ma`` (default 3.5 mA). garbled: a densitometer
    sentence is corrupted with ``probability``. empty_pipe: flowmeter/densitometer report an
    empty pipe. status_bits: ``mask`` is OR-ed into the device's status word.
    """

    STUCK = "stuck"
    DRIFT = "drift"
    DROPOUT = "dropout"
    TIMEOUT = "timeout"
    MODBUS_EXCEPTION = "modbus_exception"
    DISCONNECT = "disconnect"
    NAMUR_FAIL = "namur_fail"
    GARBLED = "garbled"
    EMPTY_PIPE = "empty_pipe"
    STATUS_BITS = "status_bits"


#: wire fault kind -> the parameters it accepts (with defaults); what an emulator acts out
WIRE_FAULTS: dict[str, dict[str, Any]] = {
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

#: link-level scenario faults -> the wire fault an emulator acts out for them
EMULATOR_FAULT: dict[FaultKind, str] = {
    FaultKind.DROPOUT: "no_reply",
    FaultKind.TIMEOUT: "late_reply",
    FaultKind.MODBUS_EXCEPTION: "exception",
    FaultKind.DISCONNECT: "disconnect",
    FaultKind.GARBLED: "garbled",
}
LINK_FAULTS = frozenset(EMULATOR_FAULT)


def check_wire_fault(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` completed with the kind's defaults; an unknown kind or parameter is a
    ValueError naming it, so a test or scenario typo fails loudly."""
    if kind not in WIRE_FAULTS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(WIRE_FAULTS)}")
    allowed = WIRE_FAULTS[kind]
    extra = set(params) - set(allowed)
    if extra:
        raise ValueError(f"fault {kind!r} takes {sorted(allowed)}, not {sorted(extra)}")
    return {**allowed, **params}


class FaultSet:
    """Active wire faults of one emulated device; they persist until cleared."""

    def __init__(self) -> None:
        self.active: dict[str, dict[str, Any]] = {}

    def set(self, kind: str, **params: Any) -> None:
        self.active[kind] = check_wire_fault(kind, params)

    def clear(self, kind: str | None = None) -> None:
        if kind is None:
            self.active.clear()
        else:
            self.active.pop(kind, None)

    def get(self, kind: str) -> dict[str, Any] | None:
        return self.active.get(kind)

    def __contains__(self, kind: str) -> bool:
        return kind in self.active


class Target(NamedTuple):
    """A fault target as the device catalogue resolves it (``hil.devices.resolve_target``)."""

    name: str
    devices: tuple[str, ...]
    #: the channel when the target names one channel
    channel: str | None
    #: the target is an endpoint (gateway, subsea_bus, dt201)
    endpoint: bool
    #: every device behind it is polled over Modbus
    modbus: bool
    #: its (first) device has a status word
    has_status: bool


def check_fault(kind: FaultKind, target: Target) -> None:
    """Raise ValueError when ``kind`` cannot happen on ``target``."""
    devices, channel = target.devices, target.channel
    if kind is FaultKind.NAMUR_FAIL and (devices != ("ai20",) or channel is None):
        raise ValueError("namur_fail needs an AI-20 channel target such as 'ai20.pt201'")
    if kind is FaultKind.GARBLED and devices != ("dt201",):
        raise ValueError("garbled frames happen only on the densitometer stream 'dt201'")
    if kind is FaultKind.EMPTY_PIPE and (
        channel is not None or devices[0] not in ("ft101", "ft201", "dt201")
    ):
        raise ValueError("empty_pipe needs a device target: ft101, ft201 or dt201")
    if kind is FaultKind.DISCONNECT and not target.endpoint:
        raise ValueError("disconnect needs an endpoint target: gateway, subsea_bus, dt201")
    if kind in (FaultKind.TIMEOUT, FaultKind.MODBUS_EXCEPTION) and not target.modbus:
        raise ValueError(f"{kind.value} needs Modbus devices, not {target.name!r}")
    if kind is FaultKind.DRIFT and channel is None:
        raise ValueError("drift needs a channel target such as 'dt201.density'")
    if kind is FaultKind.STATUS_BITS and (channel is not None or not target.has_status):
        raise ValueError("status_bits needs a device with a status word")


@dataclass(frozen=True)
class ActiveFault:
    """One scheduled fault: where, what, when (simulation seconds, end None = open)."""

    target: str
    kind: FaultKind
    start_s: float
    end_s: float | None
    devices: tuple[str, ...]
    channel: str | None
    params: dict[str, float] = field(default_factory=dict)

    def active(self, t_s: float) -> bool:
        return self.start_s <= t_s and (self.end_s is None or t_s < self.end_s)

    def window(self, t: np.ndarray) -> np.ndarray:
        """Mask of the times in ``t`` (simulation seconds) when the fault is on."""
        w = t >= self.start_s
        if self.end_s is not None:
            w &= t < self.end_s
        return w

    def param(self, name: str, default: float) -> float:
        return float(self.params.get(name, default))


def fault_flags(faults: list[ActiveFault], t_s: float) -> dict[str, set[str]]:
    """``{target: {kind, ...}}`` of the faults active at ``t_s`` (targets as scheduled)."""
    flags: dict[str, set[str]] = {}
    for f in faults:
        if f.active(t_s):
            flags.setdefault(f.target, set()).add(f.kind.value)
    return flags
