"""Fault vocabulary and the faults active at a time: what the emulators act on.

The plant applies value-level faults itself (stuck, drift, NAMUR current, empty pipe,
status bits) to the readings it exposes; link-level faults (dropout, timeout, Modbus
exception, disconnect, garbled frames) are only flagged here, and the emulators act on them
(no answer, exception reply, closed socket, corrupted sentence). ``hil synth`` applies both
to the recording, as a correct driver would have recorded them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hil.plant.channels import DEVICES, ENDPOINTS, resolve_target
from hil.scenario import FaultEvent, FaultKind

__all__ = [
    "LINK_FAULTS",
    "ActiveFault",
    "FaultKind",
    "check_fault",
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
_MODBUS_DEVICES = frozenset(d for d, s in DEVICES.items() if s.endpoint != "dt201")


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


def check_fault(target: str, kind: FaultKind) -> None:
    """Raise ValueError when ``kind`` cannot happen on ``target``."""
    devices, channel = resolve_target(target)
    if kind is FaultKind.NAMUR_FAIL and (devices != ("ai20",) or channel is None):
        raise ValueError("namur_fail needs an AI-20 channel target such as 'ai20.pt201'")
    if kind is FaultKind.GARBLED and devices != ("dt201",):
        raise ValueError("garbled frames happen only on the densitometer stream 'dt201'")
    if kind is FaultKind.EMPTY_PIPE and (
        channel is not None or devices[0] not in ("ft101", "ft201", "dt201")
    ):
        raise ValueError("empty_pipe needs a device target: ft101, ft201 or dt201")
    if kind is FaultKind.DISCONNECT and target not in ENDPOINTS:
        raise ValueError(f"disconnect needs an endpoint target: {', '.join(ENDPOINTS)}")
    if kind in (FaultKind.TIMEOUT, FaultKind.MODBUS_EXCEPTION) and not set(devices).issubset(
        _MODBUS_DEVICES
    ):
        raise ValueError(f"{kind.value} needs Modbus devices, not {target!r}")
    if kind is FaultKind.DRIFT and channel is None:
        raise ValueError("drift needs a channel target such as 'dt201.density'")
    if kind is FaultKind.STATUS_BITS and (
        channel is not None or DEVICES[devices[0]].status is None
    ):
        raise ValueError("status_bits needs a device with a status word")


def fault_flags(faults: list[ActiveFault], t_s: float) -> dict[str, set[str]]:
    """``{target: {kind, ...}}`` of the faults active at ``t_s`` (targets as scheduled)."""
    flags: dict[str, set[str]] = {}
    for f in faults:
        if f.active(t_s):
            flags.setdefault(f.target, set()).add(f.kind.value)
    return flags
