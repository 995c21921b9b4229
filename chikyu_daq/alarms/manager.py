"""The live alarm manager: the lifecycle book, fed by the pipeline, commanded by operators.

    manager = AlarmManager(cfg, data_dir, sinks)
    manager.on_events(events, processor_active, now_ns)   # each result block
    manager.tick(now_ns)                                 # once a second
    reply = manager.command({"action": "ack", "alarm": "SLUGGING", "operator": "sato"})

Every transition goes, in this order, to the KPIs, the state file (atomic write, so acks and
shelves survive a restart and a SIGHUP reload), and the sinks: the recording's events, an
`alarm_state` line for InfluxDB, the retained MQTT state. A sink that fails is logged and
counted; the transition is kept.

After a restart the processor starts with every alarm clear, so an alarm the state file says
is active is kept active (with its acknowledgement) until the processor raises it again, or
cleared if it has not within `restart_grace_s` of processed time.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chikyu_daq.alarms.kpi import AlarmKpis
from chikyu_daq.alarms.policy import alarm_names, new_book, out_of_service, suppressions
from chikyu_daq.alarms.states import AlarmBook, Rejected, Transition
from chikyu_daq.config.model import Config
from chikyu_daq.store.durable import fsync_dir
from dsp.alarms import AlarmEvent

log = logging.getLogger(__name__)

STATE_VERSION = 1
ACTIONS = ("list", "ack", "shelve", "unshelve")
#: Keys each command may carry (and must, where marked True).
COMMAND_KEYS: dict[str, dict[str, bool]] = {
    "list": {},
    "ack": {"alarm": True, "operator": True, "reason": False},
    "shelve": {
        "alarm": True,
        "operator": True,
        "reason": True,
        "duration_s": False,
        "one_shot": False,
    },
    "unshelve": {"alarm": True, "operator": True, "reason": True},
}
_TEXT = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")


@dataclass
class Sinks:
    """Where transitions go besides the state file; each may be absent."""

    record: Callable[[Transition], None] | None = None
    influx: Callable[[Transition], None] | None = None
    mqtt: Callable[[Transition, dict[str, Any]], None] | None = None


def _restart_grace_s(cfg: Config) -> float:
    longest = max((a.min_duration_s for a in cfg.alarms.values()), default=300.0)
    return 2 * max(longest, 60.0) + 10.0


class AlarmManager:
    def __init__(self, cfg: Config, data_dir: Path, sinks: Sinks, now_ns: int) -> None:
        self.cfg = cfg
        self.am = cfg.alarm_management
        self.path = data_dir / self.am.state_file
        self.sinks = sinks
        self.names = alarm_names(cfg)
        self.book: AlarmBook
        self.book, _ = new_book(cfg, now_ns)
        self.kpi = AlarmKpis(now_ns)
        self.unconfirmed: dict[str, int | None] = {}
        self.grace_ns = round(_restart_grace_s(cfg) * 1e9)
        self.transitions = 0
        self.sink_errors = 0
        self.commands_accepted = 0
        self.commands_rejected = 0
        #: Newest (value, quality) per channel, for suppression rules; set by the owner.
        self.latest: Callable[[], Mapping[str, tuple[float, int]]] | None = None
        self._load()
        # the config may have changed what is out of service since the state was saved
        first = [
            tr
            for n, reason in out_of_service(self.am, self.names).items()
            for tr in self.book.set_out_of_service(n, reason, now_ns)
        ]
        self._emit(first)

    # -- state file -------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            if doc.get("version") != STATE_VERSION:
                raise ValueError(f"version {doc.get('version')!r}, expected {STATE_VERSION}")
            self.book.load_json(doc["alarms"])
            self.kpi = AlarmKpis.from_json(doc["kpis"])
        except FileNotFoundError:
            return
        except (ValueError, KeyError, TypeError) as exc:
            bad = self.path.with_name(self.path.name + ".bad")
            log.error(
                "alarm state %s unreadable (%s); starting fresh, kept as %s", self.path, exc, bad
            )
            os.replace(self.path, bad)
            return
        self.unconfirmed = {n: None for n, st in self.book.alarms.items() if st.active}
        log.info(
            "alarm state restored from %s: %d alarms, %d active",
            self.path,
            len(self.book.alarms),
            len(self.unconfirmed),
        )

    def _save(self) -> None:
        doc = {"version": STATE_VERSION, "alarms": self.book.to_json(), "kpis": self.kpi.to_json()}
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)

    # -- transitions ------------------------------------------------------------------------
    def _emit(self, transitions: list[Transition]) -> None:
        if not transitions:
            return
        for tr in transitions:
            self.kpi.add(tr)
        self.transitions += len(transitions)
        try:
            self._save()
        except OSError as exc:
            self.sink_errors += 1
            log.error("alarm state file %s not written: %s", self.path, exc)
        for tr in transitions:
            log.info(
                "alarm %s: %s -> %s (%s%s)",
                tr.name,
                tr.from_state,
                tr.to_state,
                tr.cause,
                f" by {tr.operator}" if tr.operator and tr.operator != "system" else "",
            )
            status = self.book.get(tr.name).to_dict()
            record, influx, mqtt = self.sinks.record, self.sinks.influx, self.sinks.mqtt
            if record is not None:
                self._deliver(lambda r=record, t=tr: r(t), tr)  # type: ignore[misc]
            if influx is not None:
                self._deliver(lambda i=influx, t=tr: i(t), tr)  # type: ignore[misc]
            if mqtt is not None:
                self._deliver(lambda m=mqtt, t=tr, s=status: m(t, s), tr)  # type: ignore[misc]

    def _deliver(self, send: Callable[[], None], tr: Transition) -> None:
        try:
            send()
        except Exception:
            self.sink_errors += 1
            log.exception("alarm transition of %s not delivered to a sink", tr.name)

    def on_events(self, events: list[AlarmEvent], active: list[str], now_ns: int) -> None:
        """The processor's raise/clear events and its active set after them."""
        out: list[Transition] = []
        out += self._design(now_ns)
        for ev in events:
            v = float(ev.value)
            value = v if v == v else None
            if ev.kind == "raise":
                out += self.book.raise_(ev.alarm, int(ev.t_ns), value)
            else:
                out += self.book.clear(ev.alarm, int(ev.t_ns), value)
        t_last = int(events[-1].t_ns) if events else now_ns
        out += self.book.sync_active(active, t_last)
        out += self._confirm(set(active), now_ns)
        self._emit(out)

    def _confirm(self, active: set[str], now_ns: int) -> list[Transition]:
        """Restored active alarms the processor has not raised again within the grace."""
        out: list[Transition] = []
        for name, deadline in list(self.unconfirmed.items()):
            if name in active or not self.book.get(name).active:
                del self.unconfirmed[name]
            elif deadline is None:
                self.unconfirmed[name] = now_ns + self.grace_ns
            elif now_ns >= deadline:
                del self.unconfirmed[name]
                log.info("alarm %s not raised again after restart: cleared", name)
                out += self.book.clear(name, now_ns)
        return out

    def _design(self, now_ns: int) -> list[Transition]:
        if self.am.suppress or self.am.maintenance:
            latest = self.latest() if self.latest is not None else {}
            wanted = suppressions(self.am, self.names, latest, now_ns)
        else:  # no rules (any more, after a reload): nothing stays suppressed
            wanted = dict.fromkeys(self.names)
        out: list[Transition] = []
        for name, reason in wanted.items():
            out += self.book.set_suppressed(name, reason, now_ns)
        return out

    def tick(self, now_ns: int) -> None:
        """Once a second: shelves that expired, suppression conditions that changed."""
        self._emit(self.book.expire(now_ns) + self._design(now_ns))

    # -- operator commands ------------------------------------------------------------------
    def command(self, doc: Any, now_ns: int) -> dict[str, Any]:
        """Apply one command; the reply says `accepted` and, if not, the reason."""
        reply: dict[str, Any] = {"accepted": False}
        if isinstance(doc, dict):
            for k in ("id", "action", "alarm"):
                if k in doc:
                    reply[k] = doc[k]
        try:
            out = self._command(doc, now_ns)
        except Rejected as exc:
            self.commands_rejected += 1
            reply["reason"] = str(exc)
            log.warning("alarm command rejected: %s", exc)
            return reply
        self.commands_accepted += 1
        reply["accepted"] = True
        reply.update(out)
        return reply

    def _command(self, doc: Any, now_ns: int) -> dict[str, Any]:
        if not isinstance(doc, dict):
            raise Rejected("expected a JSON object")
        action = doc.get("action")
        if action not in COMMAND_KEYS:
            raise Rejected(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
        keys = COMMAND_KEYS[action]
        extra = set(doc) - set(keys) - {"action", "id"}
        if extra:
            raise Rejected(f"unknown key(s) for {action}: {', '.join(sorted(extra))}")
        for k, required in keys.items():
            if required and k not in doc:
                raise Rejected(f"{action} needs {k}")
        for k in ("alarm", "operator", "reason"):
            if k in doc and not (isinstance(doc[k], str) and _TEXT.match(doc[k])):
                raise Rejected(f"{k} must be 1-200 printable characters")
        if action == "list":
            return {"alarms": self.list(), "kpis": self.kpis(now_ns)}
        name, op, why = doc["alarm"], doc["operator"], doc.get("reason", "")
        if action == "ack":
            out = self.book.ack(name, now_ns, op, why)
        elif action == "unshelve":
            out = self.book.unshelve(name, now_ns, op, why)
        else:
            dur = doc.get("duration_s")
            one_shot = doc.get("one_shot", False)
            if dur is not None and (isinstance(dur, bool) or not isinstance(dur, int | float)):
                raise Rejected("duration_s must be a number of seconds")
            if not isinstance(one_shot, bool):
                raise Rejected("one_shot must be true or false")
            out = self.book.shelve(
                name,
                now_ns,
                op,
                why,
                duration_s=None if dur is None else float(dur),
                one_shot=one_shot,
            )
        self._emit(out)
        return {"state": self.book.get(name).to_dict()}

    # -- views ------------------------------------------------------------------------------
    def list(self) -> list[dict[str, Any]]:
        return [st.to_dict() for _, st in sorted(self.book.alarms.items())]

    def kpis(self, now_ns: int) -> dict[str, Any]:
        k = self.kpi.snapshot(now_ns)
        states = [st.state for st in self.book.alarms.values()]
        k["n_active"] = sum(st.active for st in self.book.alarms.values())
        k["n_unacked"] = sum(s in ("active_unacked", "cleared_unacked") for s in states)
        k["n_shelved"] = states.count("shelved")
        k["n_suppressed"] = states.count("suppressed")
        k["n_out_of_service"] = states.count("out_of_service")
        return k

    def stats(self, now_ns: int) -> dict[str, Any]:
        return {
            **self.kpis(now_ns),
            "transitions": self.transitions,
            "commands_accepted": self.commands_accepted,
            "commands_rejected": self.commands_rejected,
            "sink_errors": self.sink_errors,
        }
