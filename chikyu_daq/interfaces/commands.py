"""Operator commands to the estimators (not to alarms): the seawater reference on command.

    reply = ReferenceCommands(submit).command(
        {"action": "seawater_reference", "operator": "sato", "reason": "intake closed",
         "duration_s": 120}, now_ns)

The operator says the densitometer sees seawater now, for `duration_s` (DESIGN "Estimators",
seawater reference). A valid command becomes a `SeawaterReference` record handed to the
processor (`submit`), which applies it from its next grid point and records it as applied, so
replay reproduces it; the kernel learns the offset over the window or refuses it with a reason
(published as `ref_cmd_state`). It reaches the daemon like the alarm commands do: the control
socket (`chikyu-daq seawater-reference`) or MQTT `<prefix>/cmd/reference/seawater`, replies on
`<prefix>/cmd/reference/reply`. A bad command is counted by reason, logged and dropped, never
applied and never fatal: a payload that is not a JSON object ("json": the MQTT link hands its
reason over as `UNREADABLE`), a wrong or missing key ("schema"), a duration out of range ("range").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from chikyu_daq.alarms.manager import _TEXT
from chikyu_daq.alarms.mqtt_link import UNREADABLE
from chikyu_daq.store.events import SeawaterReference
from dsp.params import REF_MAX_S, REF_MIN_S

log = logging.getLogger(__name__)

ACTION = "seawater_reference"  # MQTT: cmd/reference/seawater (`chikyu_daq.alarms.mqtt_link`)
#: Keys the command may carry (True: required).
KEYS = {"operator": True, "reason": True, "duration_s": True, "id": False, "action": True}


class CommandError(ValueError):
    """A command that must not be applied; `reason` is its class for the counters."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def parse_reference(doc: Any, now_ns: int) -> SeawaterReference:
    """The record of one valid command, stamped `now_ns`; else `CommandError` saying why."""
    if not isinstance(doc, dict):
        raise CommandError("json", "expected a JSON object")
    if UNREADABLE in doc:
        raise CommandError("json", str(doc[UNREADABLE]))
    extra = sorted(set(doc) - set(KEYS))
    if extra:
        raise CommandError("schema", f"unknown key(s): {', '.join(map(str, extra))}")
    missing = [k for k, required in KEYS.items() if required and k not in doc]
    if missing:
        raise CommandError("schema", f"{ACTION} needs {', '.join(missing)}")
    for k in ("operator", "reason"):
        if not (isinstance(doc[k], str) and _TEXT.match(doc[k])):
            raise CommandError("schema", f"{k} must be 1-200 printable characters")
    dur = doc["duration_s"]
    if isinstance(dur, bool) or not isinstance(dur, int | float) or not math.isfinite(dur):
        raise CommandError("schema", "duration_s must be a number of seconds")
    if not REF_MIN_S <= dur <= REF_MAX_S:
        raise CommandError("range", f"duration_s must be {REF_MIN_S:g}..{REF_MAX_S:g} s")
    return SeawaterReference(now_ns, float(dur), doc["operator"], doc["reason"])


class ReferenceCommands:
    """Validates commands, hands the good ones to `submit`, counts the bad ones by reason."""

    def __init__(self, submit: Callable[[SeawaterReference], None]) -> None:
        self.submit = submit
        self.accepted = 0
        self.rejected: dict[str, int] = {}

    def command(self, doc: Any, now_ns: int) -> dict[str, Any]:
        reply: dict[str, Any] = {"accepted": False, "action": ACTION}
        if isinstance(doc, dict) and "id" in doc:
            reply["id"] = doc["id"]
        try:
            ref = parse_reference(doc, now_ns)
        except CommandError as exc:
            self.rejected[exc.reason] = self.rejected.get(exc.reason, 0) + 1
            log.warning("%s command rejected: %s", ACTION, exc)
            reply["reason"] = str(exc)
            return reply
        self.submit(ref)
        self.accepted += 1
        log.warning(
            "seawater reference commanded by %s for %.0f s: %s",
            ref.operator,
            ref.duration_s,
            ref.reason,
        )
        reply.update(accepted=True, t_ns=ref.t_ns, duration_s=ref.duration_s)
        return reply

    def stats(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "rejected": dict(self.rejected)}
