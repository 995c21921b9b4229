"""Alarm states and operator commands over MQTT (its own connection beside the live feed).

Topics under the prefix, JSON, QoS 1:

    alarms/state/<NAME>      retained: the alarm's lifecycle state (republished on reconnect)
    alarms/kpi               retained: EEMUA 191 KPIs
    cmd/alarms/<action>      input: ack, shelve, unshelve, list; `{"alarm", "operator",
                             "reason", ["duration_s" | "one_shot"], ["id"]}`
    cmd/alarms/reply         output: `{"accepted": bool, "reason"?, "id"?, ...}` per command
    cmd/reference/<what>     input: action `<what>_reference` (`seawater`: the seawater reference
                             on command, `chikyu_daq.interfaces.commands`); replies on
                             cmd/reference/reply. A payload that is not a JSON object reaches
                             the command as `{"action", UNREADABLE: why}`, so that the command
                             counts and logs it with its other rejections

A second client id (`<client_id>-alarms`) keeps this apart from the publisher of live values,
so neither waits for the other. Reconnects with jittered backoff forever; the newest state per
alarm is kept and sent when the broker is back, so retained states are never stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable
from typing import Any

import aiomqtt

from chikyu_daq.config.model import Mqtt
from chikyu_daq.sinks.assay import json_depth_exceeds
from chikyu_daq.sinks.mqtt import client_for

log = logging.getLogger(__name__)

Command = Callable[[Any], dict[str, Any]]
#: The key under which a command topic other than the alarms' gets why its payload was unread.
UNREADABLE = "unreadable"
#: A command is a flat JSON object of a few short strings: anything larger or deeper is refused
#: unread (a deeply nested payload would exhaust the parser's recursion).
MAX_PAYLOAD_BYTES = 4096
MAX_DEPTH = 4


def _json(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), default=str).encode()


class AlarmMqttLink:
    def __init__(self, cfg: Mqtt, prefix: str, vessel: str, command: Command) -> None:
        self.cfg = cfg
        self.prefix = prefix.rstrip("/")
        self.client_id = cfg.client_id.format(vessel=vessel) + "-alarms"
        self.command = command
        self._retained: dict[str, bytes] = {}
        self._dirty: set[str] = set()
        self._replies: list[tuple[str, bytes]] = []
        self._wake = asyncio.Event()
        self.connected = False
        self.commands = 0
        self.last_error = ""

    def topic(self, suffix: str) -> str:
        return f"{self.prefix}/{suffix}"

    def set_state(self, name: str, status: dict[str, Any]) -> None:
        self._set_retained(f"alarms/state/{name}", _json(status))

    def set_kpis(self, kpis: dict[str, Any]) -> None:
        self._set_retained("alarms/kpi", _json(kpis))

    def _set_retained(self, suffix: str, payload: bytes) -> None:
        topic = self.topic(suffix)
        if self._retained.get(topic) == payload:
            return
        self._retained[topic] = payload
        self._dirty.add(topic)
        self._wake.set()

    def _client(self) -> aiomqtt.Client:
        return client_for(self.cfg, self.client_id)

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                async with self._client() as client:
                    self.connected = True
                    backoff = 0.5
                    self._dirty = set(self._retained)
                    await client.subscribe(self.topic("cmd/alarms/+"), qos=1)
                    await client.subscribe(self.topic("cmd/reference/+"), qos=1)
                    sender = asyncio.create_task(self._send(client))
                    try:
                        await self._receive(client)
                    finally:
                        sender.cancel()
                        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                            await sender
            except Exception as exc:  # never ends: the pipeline treats a finished task as fatal
                self.connected = False
                self.last_error = str(exc)
                delay = random.uniform(backoff / 2, backoff)
                if isinstance(exc, aiomqtt.MqttError):
                    log.warning("mqtt alarms: %s; reconnecting in %.1f s", exc, delay)
                else:
                    log.exception("mqtt alarms link failed; reconnecting in %.1f s", delay)
                backoff = min(backoff * 2, 30.0)
                await asyncio.sleep(delay)

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            self._wake.clear()
            while self._replies:
                await client.publish(*self._replies[0], qos=1)
                self._replies.pop(0)
            for topic in sorted(self._dirty):
                payload = self._retained[topic]
                await client.publish(topic, payload, qos=1, retain=True)
                if self._retained[topic] is payload:
                    self._dirty.discard(topic)
            await self._wake.wait()

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            family, action = str(message.topic).rsplit("/", 2)[-2:]
            if action == "reply":
                continue
            if family != "alarms":
                action = f"{action}_{family}"
            self.commands += 1
            raw = message.payload
            payload = bytes(raw) if isinstance(raw, bytes | bytearray) else str(raw or "").encode()
            doc, why = read_command(payload)
            if family == "alarms" and why is not None and doc is None:
                reply: dict[str, Any] = {"accepted": False, "reason": why}
            else:
                if family != "alarms" and why is not None:  # its own command counts it
                    doc = {UNREADABLE: why}
                if isinstance(doc, dict):
                    doc = {**doc, "action": action}
                reply = self.command(doc)
            self._replies.append((self.topic(f"cmd/{family}/reply"), _json(reply)))
            self._wake.set()


def read_command(payload: bytes) -> tuple[Any, str | None]:
    """The payload's JSON and None if it is an object; else what could be read (None if
    nothing) and why it is not a command."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None, f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}"
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8: {exc.reason} at byte {exc.start}"
    if json_depth_exceeds(text, MAX_DEPTH):
        return None, f"JSON nested deeper than {MAX_DEPTH}"
    try:
        doc = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, an integer of more than 4300 digits
        return None, f"not JSON: {exc}"
    if not isinstance(doc, dict):
        return doc, f"expected a JSON object, got {type(doc).__name__}"
    return doc, None
