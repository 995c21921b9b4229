"""Fault vocabulary and the faults active at a time: what the emulators act on.

The plant applies value-level faults itself (stuck, drift, NAMUR current, empty pipe,
status bits) to the readings it exposes; link-level faults (dropout, timeout, Modbus
exception, disconnect, garbled frames) are only flagged here, and the emulators act on them
(no answer, exception reply, closed socket, corrupted sentence). ``hil synth`` applies both
to the recording, as a correct driver would have recorded them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hil.devices import resolve_target
from hil.scenario import FaultEvent, FaultKind

__all__ = [
    "LINK_FAULTS",
    "ActiveFault",
    "FaultKind",
    "fault_flags",
]

LINK_FAULTS = frozenset(
    {
        FaultKind.DROPOUT,
        FaultKind.TIMEOUT,
        FaultKind.MODBUS_EXCEPTION,
        FaultKind.DISCONNECT,
        FaultKind.GARBLED,
    }
)


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

    @classmethod
    def from_event(cls, ev: FaultEvent) -> ActiveFault:
        devices, channel = resolve_target(ev.target)
        end = None if ev.duration_s is None else ev.at_s + ev.duration_s
        return cls(ev.target, ev.fault, ev.at_s, end, devices, channel, dict(ev.params))

    def active(self, t_s: float) -> bool:
        return self.start_s <= t_s and (self.end_s is None or t_s < self.end_s)

    def param(self, name: str, default: float) -> float:
        return float(self.params.get(name, default))


def fault_flags(faults: list[ActiveFault], t_s: float) -> dict[str, set[str]]:
    """``{target: {kind, ...}}`` of the faults active at ``t_s`` (targets as scheduled)."""
    flags: dict[str, set[str]] = {}
    for f in faults:
        if f.active(t_s):
            flags.setdefault(f.target, set()).add(f.kind.value)
    return flags
