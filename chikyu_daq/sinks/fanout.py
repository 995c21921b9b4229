"""Every output of one run behind one facade: recorder, InfluxDB spool, MQTT publisher.

The pipeline's worker thread calls the `write_*` methods (files only, never the network); the
event loop calls the `publish_*` methods (non-blocking hand-offs to the MQTT task). Which fields
go to which InfluxDB measurement and MQTT topic, and with which JSON type, is the field table's
(`dsp.fields`): quality codes as integers, every value as a float, non-finite as null.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from chikyu_daq.config.model import Config
from chikyu_daq.sinks.assay import Assay
from chikyu_daq.store.events import AlarmEdge, AssayEvent, Event, encode, iso
from drivers.sample import SampleBlock
from dsp.fields import FIELD_BY_NAME, STABILITY_FIELDS, YIELD_FIELDS

if TYPE_CHECKING:  # a type only: the sinks sit below the processor and pipeline
    from chikyu_daq.live.processor import Processed

log = logging.getLogger(__name__)

AssayCallback = Callable[[AssayEvent], None]

#: The uploader is woken when this much line protocol is waiting, or when it was last woken
#: this long ago; in between its own idle poll (0.5 s) picks the lines up, and keeping up it
#: sends at most once a second (`Uploader.min_interval_s`). Waking it on every 20 Hz tick cost
#: a spool read, a gzip and an HTTP request per tick for a few kB each; the lines are in the
#: spool either way, so this only bounds how fresh InfluxDB is (about 1 s).
NOTIFY_BYTES = 256 * 1024
NOTIFY_S = 1.0


def _json_value(name: str, v: Any) -> float | int | None:
    """One output value typed from the field table: codes as int, values as float, no NaN."""
    f = float(v)
    if not math.isfinite(f):
        return None
    return int(f) if FIELD_BY_NAME[name].dtype == "uint8" else f


def _row(
    t_ns: int, columns: Mapping[str, np.ndarray], i: int, names: tuple[str, ...]
) -> dict[str, Any]:
    row: dict[str, Any] = {"t": iso(t_ns), "t_ns": t_ns}
    for k in names:
        if k in columns:
            row[k] = _json_value(k, columns[k][i])
    return row


def flatten(prefix: str, d: Mapping[str, Any], out: dict[str, float]) -> dict[str, float]:
    """Numeric leaves of a nested stats dict as `a_b_c` keys (the `daq` measurement's fields)."""
    for k, v in d.items():
        key = f"{prefix}_{k}" if prefix else str(k)
        kind = type(v)
        if kind is int or kind is float:  # most leaves: no ABC check (once a second, ~300)
            out[key] = float(v)
        elif kind is str:
            continue
        elif isinstance(v, Mapping):
            flatten(key, v, out)
        elif isinstance(v, int | float):  # bool included: a state as 0/1
            out[key] = float(v)
    return out


class Outputs:
    def __init__(
        self,
        cfg: Config,
        *,
        data_dir: Path,
        run_id: str | None = None,
        on_assay: AssayCallback | None = None,
        influx_enabled: bool | None = None,
        mqtt_enabled: bool | None = None,
        manifest_extra: Mapping[str, Any] | None = None,
    ) -> None:
        from chikyu_daq.store.writer import Recorder

        self.cfg = cfg
        self.data_dir = data_dir
        self.recorder: Recorder | None = None
        if cfg.recorder.enabled:
            manifest = {"config": cfg.model_dump(mode="json"), **(manifest_extra or {})}
            self.recorder = Recorder(
                data_dir / "runs",
                run_id=run_id,
                manifest=manifest,
                segment_s=cfg.recorder.segment_s,
                flush_s=cfg.recorder.flush_s,
            )
        self.run_id = self.recorder.run_id if self.recorder else (run_id or "norec")
        self.tags = {"vessel": cfg.site.vessel, "run": self.run_id}
        self.influx: Any = None
        if influx_enabled if influx_enabled is not None else cfg.outputs.influx.enabled:
            from chikyu_daq.sinks.influx.lineproto import EncodeStats, RawEncoder
            from chikyu_daq.sinks.influx.sink import InfluxSink

            self.influx = InfluxSink.from_config(cfg.outputs.influx, data_dir / "spool")
            self.encoded = EncodeStats()
            self._raw = RawEncoder(self.tags)
        self.mqtt: Any = None
        if mqtt_enabled if mqtt_enabled is not None else cfg.outputs.mqtt.enabled:
            from chikyu_daq.sinks.mqtt import MqttPublisher

            self.mqtt = MqttPublisher(cfg.outputs.mqtt, cfg.mqtt_prefix, on_assay=self._assay)
        self._on_assay = on_assay
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsent = 0  # bytes spooled since the uploader was last woken
        self._notified = 0.0  # time.monotonic() of that
        self.assays_applied = 0

    def _assay(self, assay: Assay) -> None:
        self.assays_applied += 1
        if self._on_assay is not None:
            self._on_assay(assay.to_event())

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.mqtt is not None:
            self.mqtt.set_status({"state": "online", "run": self.run_id, "t": iso(time.time_ns())})

    def tasks(self) -> list[asyncio.Task[Any]]:
        tasks = []
        if self.influx is not None:
            tasks.append(asyncio.create_task(self.influx.run(), name="influx"))
        if self.mqtt is not None:
            tasks.append(asyncio.create_task(self.mqtt.run(), name="mqtt"))
        return tasks

    # -- worker thread ----------------------------------------------------------------------
    def write_raw(self, blocks: Mapping[str, SampleBlock]) -> None:
        if self.recorder is not None:
            self.recorder.write_raw(blocks, copy=False)  # a tick's own arrays (pipeline)
        if self.influx is not None:
            self._spool(self._raw.encode(blocks, self.encoded))

    def write_results(self, processed: Processed, publish_ns: int) -> None:
        if self.recorder is not None:
            self.recorder.write_results(processed.t_ns, processed.columns)
            for ev in processed.events:
                self.recorder.write_event(AlarmEdge.of(ev))
        if self.influx is not None:
            from chikyu_daq.sinks.influx.lineproto import encode_block

            idx = processed.at_period(publish_ns)
            if not idx.size and not processed.events:
                return  # most 50 ms ticks hold no whole second
            t = processed.t_ns[idx]
            body = [
                encode_block(
                    m, self.tags, t, {k: processed.columns[k][idx] for k in names}, self.encoded
                )
                for m, names in (("yield", YIELD_FIELDS), ("stability", STABILITY_FIELDS))
                if idx.size
            ]
            for ev in processed.events:
                tags = {**self.tags, "alarm": ev.alarm}
                body.append(
                    encode_block(
                        "alarm",
                        tags,
                        np.array([ev.t_ns], np.int64),
                        {
                            "active": np.array([int(ev.kind == "raise")], np.int64),
                            "value": np.array([ev.value], np.float64),
                        },
                    )
                )
            self._spool(b"".join(body))

    def write_event(self, event: Event) -> None:
        if self.recorder is not None:
            self.recorder.write_event(event)

    def _spool(self, body: bytes, *, on_loop: bool = False) -> None:
        """Spool lines and wake the uploader when due (`NOTIFY_BYTES`, `NOTIFY_S`): from the
        worker thread, or from the event loop itself (`on_loop`: the health point)."""
        if not body:
            return
        self.influx.spool.append(body, sync=not on_loop)  # the loop never waits on an fsync
        self._unsent += len(body)
        now = time.monotonic()
        if self._loop is not None and (
            self._unsent >= NOTIFY_BYTES or now - self._notified >= NOTIFY_S
        ):
            self._unsent, self._notified = 0, now
            if on_loop:
                self.influx.uploader.notify()
            else:
                self._loop.call_soon_threadsafe(self.influx.uploader.notify)

    # -- event loop -------------------------------------------------------------------------
    def publish_row(self, t_ns: int, columns: Mapping[str, np.ndarray], i: int) -> None:
        if self.mqtt is None:
            return
        self.mqtt.publish_yield(_row(t_ns, columns, i, YIELD_FIELDS))
        self.mqtt.publish_stability(_row(t_ns, columns, i, STABILITY_FIELDS))

    def publish_alarm(self, edge: AlarmEdge, active: list[str]) -> None:
        if self.mqtt is not None:
            self.mqtt.publish_alarm(encode(edge))
            self.mqtt.set_active_alarms(active)

    def publish_health(self, t_ns: int, health: Mapping[str, Any]) -> None:
        fields = flatten("", health, {})
        if self.influx is not None and fields:
            from chikyu_daq.sinks.influx.lineproto import encode_point

            # woken like the worker's lines: a wake of its own each second was an upload (an
            # HTTP request and a cursor fsync) of its own each second
            body = encode_point("daq", self.tags, t_ns, dict(sorted(fields.items())))
            self._spool(body, on_loop=True)
        if self.mqtt is not None:
            status = {"state": "online", "run": self.run_id, "t": iso(t_ns), "health": health}
            self.mqtt.set_status(status)  # non-finite numbers become null there

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"assays_applied": self.assays_applied}
        if self.influx is not None:
            out["influx"] = {**self.influx.stats(), "lineproto": vars(self.encoded).copy()}
        if self.mqtt is not None:
            out["mqtt"] = self.mqtt.stats()
        if self.recorder is not None:
            out["recorder"] = self.recorder.stats()
        return out

    async def aclose(self, timeout_s: float = 10.0) -> None:
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.close)
        if self.influx is not None:
            await self.influx.aclose(timeout_s)
        if self.mqtt is not None:
            await self.mqtt.aclose()
