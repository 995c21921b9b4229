"""Alarm-system health as EEMUA 191 measures it, computed from lifecycle transitions only.

    kpi = AlarmKpis(start_ns)
    for tr in transitions: kpi.add(tr)        # live, or replayed, or read from events.jsonl
    kpi.snapshot(now_ns)

Because the input is the `Transition` stream (`chikyu_daq.store.events`), the live daemon, a
replay and a report get the same numbers from the same events. Definitions:

- an *annunciated* alarm is a `raise` that reached the operator (`to_state` active_unacked);
  raises while shelved, suppressed or out of service are not annunciated;
- `alarms_per_10min`: annunciated alarms over the number of 10-minute periods (aligned to UTC)
  from the start to now, inclusive; `peak_per_10min` the most in one period;
  `flood_periods` the periods with at least `FLOOD_N` (10);
- `chattering`: alarms with at least `CHATTER_N` (3) raises (annunciated or not) within any
  `CHATTER_S` (60 s);
- `stale`: alarms whose process condition has been active without a break for more than
  `STALE_S` (24 h) at `now`;
- `top10`: the ten alarms annunciated most often (ties by name);
- `shelved_s`: seconds each alarm spent shelved, including a shelve still open at `now`.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chikyu_daq.alarms.states import UNACK
from chikyu_daq.store.events import Event, Transition

PERIOD_NS = 600 * 1_000_000_000
FLOOD_N = 10
CHATTER_N = 3
CHATTER_S = 60.0
STALE_S = 24 * 3600.0


@dataclass
class AlarmKpis:
    start_ns: int
    periods: Counter[int] = field(default_factory=Counter)
    annunciated: Counter[str] = field(default_factory=Counter)
    raises: dict[str, deque[int]] = field(default_factory=dict)
    chattering: set[str] = field(default_factory=set)
    active_since: dict[str, int] = field(default_factory=dict)
    shelved_since: dict[str, int] = field(default_factory=dict)
    shelved_ns: Counter[str] = field(default_factory=Counter)

    def add(self, tr: Transition) -> None:
        if tr.cause == "raise":
            if tr.to_state == UNACK:
                self.annunciated[tr.name] += 1
                self.periods[tr.t_ns // PERIOD_NS] += 1
            window = self.raises.setdefault(tr.name, deque())
            window.append(tr.t_ns)
            while tr.t_ns - window[0] >= CHATTER_S * 1e9:
                window.popleft()
            if len(window) >= CHATTER_N:
                self.chattering.add(tr.name)
        if tr.active:
            self.active_since.setdefault(tr.name, tr.t_ns)
        else:
            self.active_since.pop(tr.name, None)
        if tr.shelved:
            self.shelved_since.setdefault(tr.name, tr.t_ns)
        elif tr.name in self.shelved_since:
            self.shelved_ns[tr.name] += tr.t_ns - self.shelved_since.pop(tr.name)

    def snapshot(self, now_ns: int) -> dict[str, Any]:
        n_periods = max(1, now_ns // PERIOD_NS - self.start_ns // PERIOD_NS + 1)
        total = sum(self.annunciated.values())
        shelved = Counter(self.shelved_ns)
        for name, since in self.shelved_since.items():
            shelved[name] += max(0, now_ns - since)
        stale = sorted(n for n, t in self.active_since.items() if now_ns - t > STALE_S * 1e9)
        top = sorted(self.annunciated.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        return {
            "annunciated": total,
            "periods": n_periods,
            "alarms_per_10min": total / n_periods,
            "peak_per_10min": max(self.periods.values(), default=0),
            "current_10min": self.periods.get(now_ns // PERIOD_NS, 0),
            "flood_periods": sum(1 for c in self.periods.values() if c >= FLOOD_N),
            "chattering": sorted(self.chattering),
            "n_chattering": len(self.chattering),
            "stale": stale,
            "n_stale": len(stale),
            "top10": [[name, n] for name, n in top],
            "shelved_s": {n: ns / 1e9 for n, ns in sorted(shelved.items()) if ns > 0},
        }

    # -- persistence (the live daemon keeps its KPIs across restarts) ------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "start_ns": self.start_ns,
            "periods": {str(k): v for k, v in self.periods.items()},
            "annunciated": dict(self.annunciated),
            "raises": {k: list(v) for k, v in self.raises.items()},
            "chattering": sorted(self.chattering),
            "active_since": self.active_since,
            "shelved_since": self.shelved_since,
            "shelved_ns": dict(self.shelved_ns),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AlarmKpis:
        return cls(
            start_ns=int(d["start_ns"]),
            periods=Counter({int(k): int(v) for k, v in d["periods"].items()}),
            annunciated=Counter(d["annunciated"]),
            raises={k: deque(v) for k, v in d["raises"].items()},
            chattering=set(d["chattering"]),
            active_since=dict(d["active_since"]),
            shelved_since=dict(d["shelved_since"]),
            shelved_ns=Counter(d["shelved_ns"]),
        )


def kpi_line(k: dict[str, Any]) -> str:
    """One line for a report: the headline EEMUA 191 numbers."""
    top = ", ".join(f"{n} {c}" for n, c in k["top10"][:3]) or "none"
    return (
        f"EEMUA 191: {k['alarms_per_10min']:.2f} alarms/10 min (peak {k['peak_per_10min']}), "
        f"floods {k['flood_periods']}, chattering {k['n_chattering']}, stale {k['n_stale']}; "
        f"most frequent: {top}"
    )


def kpis_from_events(events: Iterable[Event], start_ns: int, now_ns: int) -> dict[str, Any]:
    """KPIs of recorded `alarm_state` events (e.g. a run's `records()`)."""
    kpi = AlarmKpis(start_ns)
    for ev in events:
        if isinstance(ev, Transition):
            kpi.add(ev)
    return kpi.snapshot(now_ns)
