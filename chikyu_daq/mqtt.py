"""MQTT live feed and lab-assay input, with aiomqtt, that never blocks the pipeline.

Topics under the prefix (`chikyu/<vessel>`), JSON payloads, QoS 1:

    status           retained; `{"state": "online", ...}`; last will `{"state": "offline"}`
    yield            live, 1 Hz, coalesced to the newest value
    stability        live, 1 Hz, coalesced to the newest value
    alarms/<NAME>    alarm events, queued in order, never dropped
    alarms/active    retained list of active alarms (newest set wins)
    lab/assay        input: validated (`chikyu_daq.assay`), bad ones counted and logged

The `publish_*`/`set_*` methods only store and wake the publisher task; call them from the
event loop thread. `run()` connects, publishes the retained state, (re)subscribes to
`lab/assay` and sends; on any `aiomqtt.MqttError` it reconnects with jittered backoff forever
(subscriptions do not survive a reconnect, so each connection subscribes again). An event
leaves its queue only after the broker acknowledged it (QoS 1), so a broker outage delays
alarms but loses none. `aclose()` publishes a final retained `offline` status and disconnects
cleanly (a clean disconnect suppresses the will, hence the explicit status); if it cannot
within its timeout, the caller cancels the `run()` task.

Errors: connection trouble never leaves `run()`; it shows in `stats()` (`connected`,
`connects`, `last_error`) and a WARNING log line. Secrets are read at connect time, never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import aiomqtt

from chikyu_daq.assay import Assay, AssayError, parse_assay
from chikyu_daq.config import Mqtt, resolve_secret

__all__ = ["MqttPublisher"]

log = logging.getLogger(__name__)

OFFLINE = {"state": "offline"}


def _json(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), default=str, allow_nan=False).encode()


def _clean(doc: Mapping[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: non-finite floats become null."""
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            out[k] = None
        else:
            out[k] = v
    return out


class MqttPublisher:
    """Publishes live values, alarms and status; receives lab assays. One per process."""

    def __init__(
        self,
        cfg: Mqtt,
        prefix: str,
        *,
        on_assay: Callable[[Assay], None] | None = None,
        client_id: str | None = None,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ) -> None:
        self.cfg = cfg
        self.prefix = prefix.rstrip("/")
        self.on_assay = on_assay
        vessel = self.prefix.rsplit("/", 1)[-1]
        self.client_id = client_id or cfg.client_id.format(vessel=vessel)
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self._live: dict[str, bytes] = {}
        self._retained: dict[str, bytes] = {}
        self._events: deque[tuple[str, bytes]] = deque()
        self._status: dict[str, Any] = {"state": "online"}
        self._dirty: set[str] = set()  # retained topics not yet published on this connection
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._closing = False
        self._running = False
        self._closed = asyncio.Event()
        self.connected = False
        self.subscribed = False
        self.connects = 0
        self.published = 0
        self.live_coalesced = 0
        self.assays_accepted = 0
        self.assays_rejected = 0
        self.events_high_water = 0
        self.last_error = ""

    def topic(self, suffix: str) -> str:
        return f"{self.prefix}/{suffix}"

    # -- non-blocking API for the pipeline ----------------------------------------------------
    def publish_yield(self, values: Mapping[str, Any]) -> None:
        self._set_live("yield", values)

    def publish_stability(self, values: Mapping[str, Any]) -> None:
        self._set_live("stability", values)

    def _set_live(self, suffix: str, values: Mapping[str, Any]) -> None:
        topic = self.topic(suffix)
        if topic in self._live:
            self.live_coalesced += 1
        self._live[topic] = _json(_clean(values))
        self._wake.set()

    def publish_alarm(self, event: Mapping[str, Any]) -> None:
        """Queue an alarm event (needs `name`) for `alarms/<name>`; never dropped."""
        name = str(event["name"])
        self._events.append((self.topic(f"alarms/{name}"), _json(_clean(event))))
        if len(self._events) > self.cfg.queue_size:
            log.warning("mqtt: %d events waiting for the broker", len(self._events))
        self.events_high_water = max(self.events_high_water, len(self._events))
        self._wake.set()

    def set_active_alarms(self, active: list[Any]) -> None:
        self._set_retained("alarms/active", _json(active))

    def set_status(self, status: Mapping[str, Any]) -> None:
        """Retained status; `state` is forced to `online` while running."""
        self._status = {**_clean(status), "state": "online"}
        self._set_retained("status", _json(self._status))

    def _set_retained(self, suffix: str, payload: bytes) -> None:
        topic = self.topic(suffix)
        self._retained[topic] = payload
        self._dirty.add(topic)
        self._wake.set()

    def stats(self) -> dict[str, Any]:
        return {
            "mqtt_connected": self.connected,
            "mqtt_subscribed": self.subscribed,
            "mqtt_connects": self.connects,
            "mqtt_published": self.published,
            "mqtt_live_coalesced": self.live_coalesced,
            "mqtt_events_pending": len(self._events),
            "mqtt_events_high_water": self.events_high_water,
            "assays_accepted": self.assays_accepted,
            "assays_rejected": self.assays_rejected,
            "mqtt_last_error": self.last_error,
        }

    # -- connection loop ----------------------------------------------------------------------
    def _client(self) -> aiomqtt.Client:
        password = resolve_secret(self.cfg.password_env, self.cfg.password_file)
        tls = ssl.create_default_context(cafile=self.cfg.ca_file) if self.cfg.tls else None
        return aiomqtt.Client(
            self.cfg.host,
            self.cfg.port,
            username=self.cfg.username or None,
            password=password if self.cfg.username else None,
            identifier=self.client_id,
            will=aiomqtt.Will(self.topic("status"), _json(OFFLINE), qos=1, retain=True),
            clean_session=False,  # the broker keeps assays posted while we reconnect
            keepalive=self.cfg.keepalive_s,
            timeout=10.0,
            tls_context=tls,
        )

    async def run(self) -> None:
        """Connect, publish, receive; reconnect with backoff forever, until `aclose()`."""
        backoff = self.backoff_min_s
        self._retained.setdefault(self.topic("status"), _json(self._status))
        self._running = True
        try:
            while not self._closing:
                try:
                    async with self._client() as client:
                        self.connected = True
                        self.connects += 1
                        backoff = self.backoff_min_s
                        self._dirty = set(self._retained)  # a restarted broker forgot them
                        log.info("mqtt connected to %s:%d", self.cfg.host, self.cfg.port)
                        await client.subscribe(self.topic("lab/assay"), qos=1)
                        self.subscribed = True
                        await self._serve(client)
                        return  # closing: the context manager disconnects cleanly
                except aiomqtt.MqttError as exc:
                    self.connected = self.subscribed = False
                    self.last_error = str(exc)
                    if self._closing:
                        return
                    delay = random.uniform(backoff / 2, backoff)
                    log.warning("mqtt: %s; reconnecting in %.1f s", exc, delay)
                    backoff = min(backoff * 2, self.backoff_max_s)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), delay)
        finally:
            self.connected = self.subscribed = False
            self._running = False
            self._closed.set()

    async def _serve(self, client: aiomqtt.Client) -> None:
        receiver = asyncio.create_task(self._receive(client))
        sender = asyncio.create_task(self._send(client))
        try:
            done, _ = await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (receiver, sender):
                task.cancel()
            await asyncio.gather(receiver, sender, return_exceptions=True)
        for task in done:
            exc = task.exception()
            if exc is not None:
                raise exc

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            self._wake.clear()
            for topic in list(self._dirty):
                payload = self._retained[topic]
                await client.publish(topic, payload, qos=1, retain=True)
                if self._retained[topic] is payload:
                    self._dirty.discard(topic)
                self.published += 1
            while self._events:
                topic, payload = self._events[0]
                await client.publish(topic, payload, qos=1)
                self._events.popleft()
                self.published += 1
            for topic in list(self._live):
                payload = self._live.pop(topic)
                await client.publish(topic, payload, qos=1)
                self.published += 1
            if self._closing and not (self._events or self._live or self._dirty):
                await client.publish(
                    self.topic("status"), _json({**self._status, **OFFLINE}), qos=1, retain=True
                )
                return
            await self._wake.wait()

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                payload = str(payload or "").encode()
            try:
                assay = parse_assay(bytes(payload))
            except AssayError as exc:
                self.assays_rejected += 1
                log.warning("lab assay rejected on %s: %s", message.topic, exc)
                continue
            self.assays_accepted += 1
            log.info("lab assay %s accepted: %.0f ppm REY", assay.sample_id, assay.rey_ppm)
            if self.on_assay is not None:
                try:
                    self.on_assay(assay)
                except Exception:
                    log.exception("on_assay callback failed for %s", assay.sample_id)

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Flush queued messages, publish the final `offline` status, disconnect."""
        self._closing = True
        self._stop.set()
        self._wake.set()
        if not self._running:
            return
        try:
            await asyncio.wait_for(self._closed.wait(), timeout_s)
        except TimeoutError:
            log.warning("mqtt: could not flush within %.1f s; cancel run()", timeout_s)
