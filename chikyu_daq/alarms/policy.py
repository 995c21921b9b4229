"""What the config says about alarms: names, priorities, out of service, suppression by design.

Pure functions of the config (and, for suppression, of the newest channel values), so the live
manager and a replay apply the same rules.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from chikyu_daq.alarms.states import AlarmBook, PriorityOf, Transition
from chikyu_daq.config.params import alarm_names, base_name
from chikyu_daq.store.events import AlarmEdge
from dsp.quality import GOOD

if TYPE_CHECKING:  # config runs these checks at load: no runtime import back
    from chikyu_daq.config.model import AlarmManagement, Config, SuppressWhen


def priority_of(am: AlarmManagement) -> PriorityOf:
    def lookup(name: str) -> str:
        p = am.priorities
        return p.get(name) or p.get(base_name(name)) or am.default_priority

    return lookup


def _matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def out_of_service(am: AlarmManagement, names: list[str]) -> dict[str, str | None]:
    return {
        n: ("out of service (config)" if _matches(n, am.out_of_service) else None) for n in names
    }


def _holds(cond: SuppressWhen, latest: Mapping[str, tuple[float, int]]) -> bool:
    got = latest.get(cond.channel)
    if got is None or got[1] != GOOD:
        return False  # unknown data never hides an alarm
    v = got[0]
    if cond.below is not None:
        return v < cond.below
    if cond.above is not None:
        return v > cond.above
    return v == cond.equals


def suppressions(
    am: AlarmManagement,
    names: list[str],
    latest: Mapping[str, tuple[float, int]],
    now_ns: int,
) -> dict[str, str | None]:
    """Alarm → the reason it is suppressed by design now, or None."""
    out: dict[str, str | None] = dict.fromkeys(names)
    for rule in am.suppress:
        if all(_holds(c, latest) for c in rule.when):
            for n in names:
                if out[n] is None and _matches(n, rule.alarms):
                    out[n] = rule.reason
    for m in am.maintenance:
        if m.start.timestamp() * 1e9 <= now_ns < m.end.timestamp() * 1e9:
            for n in names:
                if out[n] is None and n.startswith(f"SENSOR_FAULT({m.device}."):
                    out[n] = f"{m.reason} ({m.device})"
    return out


def new_book(cfg: Config, t_ns: int) -> tuple[AlarmBook, list[Transition]]:
    """A book with every known alarm and the configured out-of-service set applied."""
    am = cfg.alarm_management
    book = AlarmBook(priority_of(am), am.max_shelve_s)
    names = alarm_names(cfg)
    out: list[Transition] = []
    for n in names:
        book.get(n)
    for n, reason in out_of_service(am, names).items():
        out += book.set_out_of_service(n, reason, t_ns)
    return book, out


def replay_kpis(
    cfg: Config, alarm_events: Iterable[AlarmEdge], start_ns: int, end_ns: int
) -> dict[str, Any]:
    """EEMUA KPIs of a replay: its raise/clear events through the lifecycle (no operator)."""
    from chikyu_daq.alarms.kpi import AlarmKpis

    book, first = new_book(cfg, start_ns)
    kpi = AlarmKpis(start_ns)
    for tr in first:
        kpi.add(tr)
    for ev in alarm_events:
        step = book.raise_ if ev.kind == "raise" else book.clear
        for tr in step(ev.alarm, ev.t_ns, ev.value):
            kpi.add(tr)
    return kpi.snapshot(end_ns)
