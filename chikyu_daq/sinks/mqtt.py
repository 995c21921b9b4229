"""MQTT live feed and lab-assay input, with aiomqtt, that never blocks the pipeline.

Topics under the prefix (`chikyu/<vessel>`), JSON payloads, QoS 1:

    status           retained; `{"state": "online", ...}`; last will `{"state": "offline"}`
    yield            live, 1 Hz, coalesced to the newest value
    stability        live, 1 Hz, coalesced to the newest value
    alarms/<NAME>    alarm events, queued in order, never dropped
    alarms/active    retained list of active alarms (newest set wins)
    lab/assay        input: validated (`chikyu_daq.sinks.assay`), bad ones counted and logged

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
No message can end the task: each one is handled inside its own `try`; a rejected assay is
counted by reason (`assays_rejected_reasons`) and logged with its reason, at most one line per
reason every `LOG_EVERY_S` (the suppressed ones are counted in the next line). An unexpected
error inside a connection is logged with its traceback, counted (`mqtt_task_errors`) and
handled like a lost connection: reconnect with backoff.

Status: the will is `{"state": "offline"}`, retained; the broker publishes it when the
connection dies without a DISCONNECT (killed process, lost network). A clean disconnect
suppresses the will, so every clean way out publishes `offline` retained itself first:
`aclose()`, and a cancelled `run()` (best effort, `OFFLINE_TIMEOUT_S`).

Retained assays are accepted, once: after a restart the retained last result restores the grade
at once instead of falling back to the default until the lab posts again. `AssayGate` remembers
accepted sample ids, so the retained copy that every (re)subscription delivers again is not
applied twice; those repeats are counted (`assays_retained_repeats`), not logged as rejections.
A retained message that fails validation (say `sampled_at` in year 9999) is rejected on every
delivery like any other, never applied, so it cannot poison restarts; the lab clears it with an
empty retained message (an empty message is counted as `assays_cleared`, not as a rejection).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import aiomqtt
import numpy as np

from chikyu_daq.config.model import Mqtt, resolve_secret
from chikyu_daq.sinks.assay import Assay, AssayError, AssayGate, DuplicateAssay

__all__ = ["MqttPublisher"]

log = logging.getLogger(__name__)

OFFLINE = {"state": "offline"}
LOG_EVERY_S = 10.0  # at most one rejection line per reason this often
OFFLINE_TIMEOUT_S = 2.0  # how long a cancelled run() tries to publish `offline`


def _json(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), default=str, allow_nan=False).encode()


#: Leaves `_clean` passes through as they are (the health record's counters and names): tested
#: by exact type first, as the `Mapping` check is an ABC's and costs ~3x a leaf's other checks.
_PLAIN = frozenset({int, str, bool, type(None)})


def _clean(doc: Any) -> Any:
    """JSON has no NaN: non-finite floats become null, at any depth; numpy scalars plain."""
    kind = type(doc)
    if kind is float:
        return doc if math.isfinite(doc) else None
    if kind in _PLAIN:
        return doc
    if kind is dict or isinstance(doc, Mapping):
        return {str(k): _clean(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [_clean(v) for v in doc]
    if isinstance(doc, np.generic):
        doc = doc.item()
    if isinstance(doc, float) and not math.isfinite(doc):
        return None
    return doc


class LogThrottle:
    """At most one line per key every `every_s`; the lines held back are counted for the next."""

    def __init__(self, every_s: float = LOG_EVERY_S) -> None:
        self.every_s = every_s
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def admit(self, key: str) -> int | None:
        """None: hold this line back; else log it, with this many held back since the last."""
        now = time.monotonic()
        if now < self._next.get(key, -math.inf):
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._next[key] = now + self.every_s
        return self._held.pop(key, 0)


def client_for(cfg: Mqtt, identifier: str, **options: Any) -> aiomqtt.Client:
    """One way to reach the broker (credentials from env or file, TLS, keepalive) for every
    connection the daemon opens; `options` add what differs (will, session)."""
    password = resolve_secret(cfg.password_env, cfg.password_file)
    tls = ssl.create_default_context(cafile=cfg.ca_file) if cfg.tls else None
    return aiomqtt.Client(
        cfg.host,
        cfg.port,
        username=cfg.username or None,
        password=password if cfg.username else None,
        identifier=identifier,
        keepalive=cfg.keepalive_s,
        timeout=10.0,
        tls_context=tls,
        **options,
    )


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
        log_every_s: float = LOG_EVERY_S,
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
        self.assays = AssayGate(cfg.assays)
        self.assays_accepted = 0
        self.assays_rejected = 0
        self.assays_rejected_reasons: dict[str, int] = {}
        self.assays_retained_repeats = 0
        self.assays_cleared = 0
        self.message_errors = 0
        self.task_errors = 0
        self._throttle = LogThrottle(log_every_s)
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
            "assays_rejected_reasons": dict(self.assays_rejected_reasons),
            "assays_retained_repeats": self.assays_retained_repeats,
            "assays_cleared": self.assays_cleared,
            "mqtt_message_errors": self.message_errors,
            "mqtt_task_errors": self.task_errors,
            "mqtt_last_error": self.last_error,
        }

    # -- connection loop ----------------------------------------------------------------------
    def _client(self) -> aiomqtt.Client:
        return client_for(
            self.cfg,
            self.client_id,
            will=aiomqtt.Will(self.topic("status"), _json(OFFLINE), qos=1, retain=True),
            clean_session=False,  # the broker keeps assays posted while we reconnect
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
                        try:
                            await client.subscribe(self.topic("lab/assay"), qos=1)
                            self.subscribed = True
                            await self._serve(client)
                        except asyncio.CancelledError:
                            await self._publish_offline(client)
                            raise
                        return  # closing: the context manager disconnects cleanly
                except aiomqtt.MqttError as exc:
                    self.last_error = str(exc)
                except Exception as exc:  # a bug must not end the feed: log, count, reconnect
                    self.task_errors += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("mqtt: unexpected error")
                self.connected = self.subscribed = False
                if self._closing:
                    return
                delay = random.uniform(backoff / 2, backoff)
                log.warning("mqtt: %s; reconnecting in %.1f s", self.last_error, delay)
                backoff = min(backoff * 2, self.backoff_max_s)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
        finally:
            self.connected = self.subscribed = False
            self._running = False
            self._closed.set()

    async def _publish_offline(self, client: aiomqtt.Client) -> None:
        """Best effort on the way out: the clean disconnect that follows suppresses the will."""
        payload = _json({**self._status, **OFFLINE})
        try:
            await asyncio.wait_for(
                client.publish(self.topic("status"), payload, qos=1, retain=True),
                OFFLINE_TIMEOUT_S,
            )
        except (TimeoutError, aiomqtt.MqttError) as exc:
            log.warning("mqtt: could not publish offline status: %s", exc)

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
            try:
                self._on_message(message)
            except Exception:  # whatever a message does, the next one is still read
                self.message_errors += 1
                if self._throttle.admit("error") is not None:
                    log.exception("mqtt: message on %s could not be handled", message.topic)

    def _on_message(self, message: aiomqtt.Message) -> None:
        payload = message.payload
        if not isinstance(payload, bytes | bytearray):
            payload = str(payload if payload is not None else "").encode()
        if not payload:  # the lab clearing a retained assay: nothing to apply, nothing wrong
            self.assays_cleared += 1
            return
        try:
            assay = self.assays.check(bytes(payload))
        except DuplicateAssay as exc:
            if message.retain:  # the retained copy again after a (re)subscribe
                self.assays_retained_repeats += 1
                log.debug("lab assay %s: retained copy seen again", exc.sample_id)
                return
            self._reject(exc, message)
            return
        except AssayError as exc:
            self._reject(exc, message)
            return
        self.assays_accepted += 1
        log.info(
            "lab assay %s%s accepted: %.0f ppm REY sampled %s",
            assay.sample_id,
            " (retained)" if message.retain else "",
            assay.rey_ppm,
            assay.sampled_at.isoformat(),
        )
        if self.on_assay is not None:
            try:
                self.on_assay(assay)
            except Exception:
                self.message_errors += 1
                log.exception("on_assay callback failed for %s", assay.sample_id)

    def _reject(self, exc: AssayError, message: aiomqtt.Message) -> None:
        self.assays_rejected += 1
        reasons = self.assays_rejected_reasons
        reasons[exc.reason] = reasons.get(exc.reason, 0) + 1
        held = self._throttle.admit(exc.reason)
        if held is not None:
            more = f" ({held} more {exc.reason} rejections not logged)" if held else ""
            log.warning("lab assay rejected (%s) on %s: %s%s", exc.reason, message.topic, exc, more)

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
