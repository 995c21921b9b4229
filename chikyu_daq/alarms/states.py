"""The alarm lifecycle (ISA-18.2 / IEC 62682; OPC UA Part 9 shelving) as a pure state machine.

    book = AlarmBook(priority_of, max_shelve_s=8 * 3600)
    transitions = book.raise_("SLUGGING", t_ns)          # from the processor's raise/clear
    transitions = book.ack("SLUGGING", t_ns, "sato", "seen, reducing injection")

No I/O and no clock: every method takes the time and returns the `Transition`s it caused, which
the caller records, publishes and feeds to the KPIs (`chikyu_daq.alarms.kpi`), live and in
replay alike. Operator commands that make no sense raise `Rejected` with the reason.

Each alarm has a process condition (`active`, from raise/clear) and an acknowledgement
(`acked`), which give the four annunciated states:

    normal           not active, acknowledged
    active_unacked   raised, nobody has acknowledged it yet
    active_acked     raised and acknowledged
    cleared_unacked  returned to normal before anyone acknowledged it (ISA-18.2 RTNUN)

Three overlays take an alarm out of the operator's list, in this precedence: out of service
(config), suppressed by design (a configured process condition), shelved (an operator, with a
reason, for at most `max_shelve_s`; one-shot shelving also ends when the alarm clears). While an
overlay holds, raise and clear still update `active` but nothing needs acknowledging; when it
ends, an alarm that is still active is annunciated again as `active_unacked`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from chikyu_daq.store.events import Transition  # the recorded form of a transition

NORMAL = "normal"
UNACK = "active_unacked"
ACKED = "active_acked"
RTNUN = "cleared_unacked"
SHELVED = "shelved"
SUPPRESSED = "suppressed"
OUT_OF_SERVICE = "out_of_service"
STATES = (NORMAL, UNACK, ACKED, RTNUN, SHELVED, SUPPRESSED, OUT_OF_SERVICE)

#: Causes of a transition (the `cause` field of the recorded event).
CAUSES = (
    "raise",
    "clear",
    "ack",
    "shelve",
    "unshelve",
    "shelve_expired",
    "suppress",
    "unsuppress",
    "out_of_service",
    "in_service",
)


class Rejected(Exception):
    """An operator command that cannot apply; `str()` is the reason the operator sees."""


@dataclass
class Shelve:
    operator: str
    reason: str
    since_ns: int
    until_ns: int
    one_shot: bool


@dataclass
class AlarmStatus:
    name: str
    priority: str
    active: bool = False
    acked: bool = True
    active_since_ns: int | None = None
    shelve: Shelve | None = None
    suppressed: str | None = None  # the reason, while suppressed by design
    out_of_service: str | None = None  # the reason, while out of service
    last_change_ns: int = 0

    @property
    def state(self) -> str:
        if self.out_of_service is not None:
            return OUT_OF_SERVICE
        if self.suppressed is not None:
            return SUPPRESSED
        if self.shelve is not None:
            return SHELVED
        if self.active:
            return ACKED if self.acked else UNACK
        return NORMAL if self.acked else RTNUN

    @property
    def hidden(self) -> bool:
        return self.state in (SHELVED, SUPPRESSED, OUT_OF_SERVICE)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["state"] = self.state
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlarmStatus:
        d = {k: v for k, v in d.items() if k != "state"}
        if d.get("shelve") is not None:
            d["shelve"] = Shelve(**d["shelve"])
        return cls(**d)


PriorityOf = Callable[[str], str]


@dataclass
class AlarmBook:
    """Every alarm's lifecycle state; alarms appear on first mention."""

    priority_of: PriorityOf
    max_shelve_s: float
    alarms: dict[str, AlarmStatus] = field(default_factory=dict)

    def get(self, name: str) -> AlarmStatus:
        st = self.alarms.get(name)
        if st is None:
            st = self.alarms[name] = AlarmStatus(name, self.priority_of(name))
        return st

    def _apply(
        self,
        name: str,
        t_ns: int,
        cause: str,
        change: Callable[[AlarmStatus], None],
        *,
        operator: str = "",
        reason: str = "",
        value: float | None = None,
    ) -> list[Transition]:
        st = self.get(name)
        before = replace(st)
        was_hidden = st.hidden
        change(st)
        out: list[Transition] = []
        if was_hidden and not st.hidden and st.active:
            st.acked = False  # back in the operator's list while still active: annunciate
        if st.hidden and st.active and not before.active:
            st.acked = True  # raised while hidden: nothing for the operator to acknowledge
        if asdict(st) == asdict(before) and cause not in ("raise", "clear"):
            return out
        st.last_change_ns = t_ns
        shelve = st.shelve
        out.append(
            Transition(
                t_ns,
                name,
                cause,
                before.state,
                st.state,
                st.priority,
                st.active,
                st.acked,
                shelve is not None,
                operator,
                reason,
                value,
                shelve.until_ns if shelve else None,
            )
        )
        if cause == "clear" and shelve is not None and shelve.one_shot:
            out += self._apply(
                name, t_ns, "unshelve", _unshelve, operator="system", reason="one-shot: cleared"
            )
        return out

    # -- process events ---------------------------------------------------------------------
    def raise_(self, name: str, t_ns: int, value: float | None = None) -> list[Transition]:
        st = self.get(name)
        if st.active:
            return []  # already active (e.g. re-raised after a restart): keep its ack

        def go(s: AlarmStatus) -> None:
            s.active, s.acked, s.active_since_ns = True, False, t_ns

        return self._apply(name, t_ns, "raise", go, value=value)

    def clear(self, name: str, t_ns: int, value: float | None = None) -> list[Transition]:
        if not self.get(name).active:
            return []

        def go(s: AlarmStatus) -> None:
            s.active, s.active_since_ns = False, None
            if s.hidden:
                s.acked = True

        return self._apply(name, t_ns, "clear", go, value=value)

    # -- operator commands ------------------------------------------------------------------
    def ack(self, name: str, t_ns: int, operator: str, reason: str = "") -> list[Transition]:
        st = self._known(name)
        if st.hidden:
            raise Rejected(f"{name} is {st.state}: nothing to acknowledge")
        if st.acked:
            raise Rejected(f"{name} is {st.state}: already acknowledged")

        def go(s: AlarmStatus) -> None:
            s.acked = True

        return self._apply(name, t_ns, "ack", go, operator=operator, reason=reason)

    def shelve(
        self,
        name: str,
        t_ns: int,
        operator: str,
        reason: str,
        *,
        duration_s: float | None = None,
        one_shot: bool = False,
    ) -> list[Transition]:
        st = self._known(name)
        if st.state in (OUT_OF_SERVICE, SUPPRESSED):
            raise Rejected(f"{name} is {st.state}: cannot shelve")
        if st.shelve is not None:
            raise Rejected(f"{name} is already shelved by {st.shelve.operator}")
        if duration_s is None and not one_shot:
            raise Rejected("give duration_s (timed shelving) or one_shot")
        if duration_s is not None and not 0 < duration_s <= self.max_shelve_s:
            raise Rejected(f"duration_s must be in (0, {self.max_shelve_s:g}] (max shelve time)")
        if one_shot and not st.active:
            raise Rejected(f"{name} is not active: one-shot shelving needs an active alarm")
        dur = duration_s if duration_s is not None else self.max_shelve_s
        until = t_ns + round(dur * 1e9)

        def go(s: AlarmStatus) -> None:
            s.shelve = Shelve(operator, reason, t_ns, until, one_shot)
            s.acked = True

        return self._apply(name, t_ns, "shelve", go, operator=operator, reason=reason)

    def unshelve(self, name: str, t_ns: int, operator: str, reason: str) -> list[Transition]:
        st = self._known(name)
        if st.shelve is None:
            raise Rejected(f"{name} is not shelved")
        return self._apply(name, t_ns, "unshelve", _unshelve, operator=operator, reason=reason)

    def _known(self, name: str) -> AlarmStatus:
        if name not in self.alarms:
            raise Rejected(f"unknown alarm {name!r}")
        return self.alarms[name]

    # -- time and configuration -------------------------------------------------------------
    def expire(self, t_ns: int) -> list[Transition]:
        """Shelves past their time return (cause `shelve_expired`)."""
        out: list[Transition] = []
        for name, st in sorted(self.alarms.items()):
            if st.shelve is not None and t_ns >= st.shelve.until_ns:
                out += self._apply(
                    name, t_ns, "shelve_expired", _unshelve, operator="system", reason="expired"
                )
        return out

    def set_suppressed(self, name: str, reason: str | None, t_ns: int) -> list[Transition]:
        return self._set_by_design(name, "suppressed", reason, t_ns, ("suppress", "unsuppress"))

    def set_out_of_service(self, name: str, reason: str | None, t_ns: int) -> list[Transition]:
        causes = ("out_of_service", "in_service")
        return self._set_by_design(name, "out_of_service", reason, t_ns, causes)

    def _set_by_design(
        self,
        name: str,
        attr: Literal["suppressed", "out_of_service"],
        reason: str | None,
        t_ns: int,
        causes: tuple[str, str],
    ) -> list[Transition]:
        """Set (a reason) or clear (None) a condition the system imposes; the cause is
        causes[0] when set, causes[1] when cleared, and an unchanged reason is no transition."""
        if getattr(self.get(name), attr) == reason:
            return []

        def go(s: AlarmStatus) -> None:
            setattr(s, attr, reason)

        cause = causes[0] if reason is not None else causes[1]
        return self._apply(name, t_ns, cause, go, operator="system", reason=reason or "")

    def sync_active(self, active: Iterable[str], t_ns: int) -> list[Transition]:
        """Align with the processor's active set: raise the ones it has that we do not."""
        out: list[Transition] = []
        for name in active:
            out += self.raise_(name, t_ns)
        return out

    # -- persistence ------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {name: st.to_dict() for name, st in sorted(self.alarms.items())}

    def load_json(self, doc: dict[str, Any]) -> None:
        for name, d in doc.items():
            st = AlarmStatus.from_dict(d)
            st.priority = self.priority_of(name)  # config wins over the stored priority
            self.alarms[name] = st


def _unshelve(s: AlarmStatus) -> None:
    s.shelve = None
