"""The records of a run's `events.jsonl`, defined once: one frozen dataclass per event type.

Writers hand these to `RunRecorder.write_event` (live) or `encode` them (replay), readers get
them from `Run.records()` or `decode`: the live daemon, a replay and a report see the same
shapes. `type` is the discriminator on disk:

    alarm         a raise or clear edge of the DSP's alarm bits       `AlarmEdge`
    alarm_state   one transition of an alarm's ISA-18.2 lifecycle     `Transition`
    assay         a lab result the estimator took                     `AssayEvent`
    clock_step    the wall clock jumped                               `ClockStep`
    clock_rebase  the processor re-based its timeline on such a jump  `ClockRebase`
    reload        a SIGHUP reload closed one run and opened the next  `Reload`
    seawater_reference  an operator commanded a seawater reference    `SeawaterReference`

`decode` is tolerant: recordings written before these types (an alarm edge with only `name`,
an assay marked `kind: "assay"` without `type`) still read, and a line of a type it does not
know comes back as `OtherEvent` with its JSON object, never an error.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self, cast

if TYPE_CHECKING:
    from dsp.alarms import AlarmEvent

__all__ = [
    "ALARM_STATE",
    "AlarmEdge",
    "AssayEvent",
    "ClockRebase",
    "ClockStep",
    "Event",
    "OtherEvent",
    "Reload",
    "SeawaterReference",
    "Transition",
    "decode",
    "encode",
    "iso",
]

ALARM_STATE = "alarm_state"


def iso(t_ns: int) -> str:
    """UTC ISO 8601 with milliseconds, the `t` readers see beside `t_ns`."""
    return (
        datetime.fromtimestamp(t_ns / 1e9, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


@dataclass(frozen=True)
class AlarmEdge:
    """The DSP raised or cleared an alarm (`dsp.alarms.AlarmEvent` as recorded)."""

    t_ns: int
    alarm: str
    kind: Literal["raise", "clear"]
    value: float | None = None

    @classmethod
    def of(cls, ev: AlarmEvent) -> AlarmEdge:
        """The record of the DSP's edge; a non-finite value is recorded as none."""
        return cls(int(ev.t_ns), ev.alarm, ev.kind, _finite(float(ev.value)))  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        # `name` repeats `alarm`: recordings, replays and the MQTT `alarms/<NAME>` payload have
        # always carried both and their readers may use either; `decode` reads either.
        return {
            "type": "alarm",
            "name": self.alarm,
            "alarm": self.alarm,
            "kind": self.kind,
            "t_ns": self.t_ns,
            "t": iso(self.t_ns),
            "value": _finite(self.value),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AlarmEdge:
        kind = d["kind"]
        if kind not in ("raise", "clear"):
            raise ValueError(f"alarm edge kind {kind!r}")
        value = d.get("value")
        return cls(
            int(d["t_ns"]),
            str(d.get("alarm", d.get("name"))),
            kind,
            None if value is None else float(value),
        )


class _Record:
    """What the records below share: `type` on disk, and (when `SPARSE`) unset optional fields
    left out of the line rather than written as null."""

    TYPE: ClassVar[str]
    SPARSE: ClassVar[bool] = False

    def to_json(self) -> dict[str, Any]:
        items = asdict(cast(Any, self)).items()
        return {"type": self.TYPE, **{k: v for k, v in items if v is not None or not self.SPARSE}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Self:
        return cls(**{f.name: d[f.name] for f in fields(cast(Any, cls)) if f.name in d})


@dataclass(frozen=True)
class Transition(_Record):
    """One change of one alarm's lifecycle (`chikyu_daq.alarms.states` makes them); the same
    record goes to the recording, MQTT and InfluxDB."""

    TYPE: ClassVar[str] = ALARM_STATE

    t_ns: int
    name: str
    cause: str
    from_state: str
    to_state: str
    priority: str
    active: bool
    acked: bool
    shelved: bool
    operator: str = ""
    reason: str = ""
    value: float | None = None
    shelved_until_ns: int | None = None


@dataclass(frozen=True)
class AssayEvent(_Record):
    """A lab assay the estimator took, stamped at its sampling time; the optional fields are
    what the lab sent (MQTT) and are absent for synthetic runs. `applied_ns`: the first grid
    point the live daemon computed knowing it (later than `t_ns` when it arrived late), so that
    a replay applies it there too; absent (older recordings, synthetic runs): by `t_ns`."""

    TYPE: ClassVar[str] = "assay"
    SPARSE: ClassVar[bool] = True

    t_ns: int
    rey_ppm: float
    u_rey_ppm: float
    sample_id: str | None = None
    sampled_at: str | None = None
    dy_ppm: float | None = None
    tb_ppm: float | None = None
    applied_ns: int | None = None


@dataclass(frozen=True)
class ClockStep(_Record):
    """The wall clock stepped by `step_s` (seen by the clock-step watch)."""

    TYPE: ClassVar[str] = "clock_step"

    t_ns: int
    step_s: float


@dataclass(frozen=True)
class ClockRebase(_Record):
    """The processor re-based its internal timeline: `channel` ("*" for all) showed a step of
    `step_s` at `t_ns`; results from `from_ns` on are offset by `offset_s`."""

    TYPE: ClassVar[str] = "clock_rebase"

    t_ns: int
    channel: str
    step_s: float
    from_ns: int
    offset_s: float


@dataclass(frozen=True)
class Reload(_Record):
    """A config reload: `closing run` in the old run, `previous_run` in the new one."""

    TYPE: ClassVar[str] = "reload"
    SPARSE: ClassVar[bool] = True

    t_ns: int
    status: str | None = None
    previous_run: str | None = None
    processor_kept: bool | None = None


@dataclass(frozen=True)
class SeawaterReference(_Record):
    """An operator commanded a seawater reference: the densitometer sees seawater for
    `duration_s` from `t_ns` (the first grid point the processor had not computed yet, so a
    replay reading this record applies it to the same points as the live daemon did)."""

    TYPE: ClassVar[str] = "seawater_reference"

    t_ns: int
    duration_s: float
    operator: str
    reason: str

    @property
    def end_ns(self) -> int:
        return self.t_ns + round(self.duration_s * 1e9)


@dataclass(frozen=True)
class OtherEvent:
    """A line of a type this version does not know (or an unreadable known one): kept as is."""

    doc: dict[str, Any]

    @property
    def t_ns(self) -> int | None:
        t = self.doc.get("t_ns")
        return int(t) if isinstance(t, int | float) else None

    def to_json(self) -> dict[str, Any]:
        return dict(self.doc)


Event = (
    AlarmEdge
    | Transition
    | AssayEvent
    | ClockStep
    | ClockRebase
    | Reload
    | SeawaterReference
    | OtherEvent
)

#: `type` on disk -> its record (the one table the decoder reads)
_TYPES: dict[str, Any] = {
    "alarm": AlarmEdge,
    **{
        c.TYPE: c
        for c in (Transition, AssayEvent, ClockStep, ClockRebase, Reload, SeawaterReference)
    },
}


def encode(ev: Event) -> dict[str, Any]:
    """The JSON object of one record (what one line of `events.jsonl` holds)."""
    return ev.to_json()


def decode(doc: dict[str, Any]) -> Event:
    """The record of one `events.jsonl` object; old shapes read, unknown ones kept as is."""
    typ = doc.get("type")
    if typ is None and doc.get("kind") == "assay":  # lab assays before `type` was written
        typ = "assay"
    cls = _TYPES.get(typ) if isinstance(typ, str) else None
    if cls is None:
        return OtherEvent(doc)
    try:
        rec: Event = cls.from_json(doc)
    except (KeyError, TypeError, ValueError):
        return OtherEvent(doc)
    return rec
