"""The live pipeline: drivers → hub → worker (recorder, processor, spool) → MQTT.

    pipeline = Pipeline(cfg, data_dir=Path("data"))
    task = asyncio.create_task(pipeline.run())
    await pipeline.started.wait()     # every device tried once, kernels warm
    pipeline.request_stop()           # SIGTERM: stop polling, flush DSP, close segments, drain
    await task

Queues and their policies (DESIGN "Pipeline"), all counted in `stats()`:
- drivers → hub: bounded; a full hub makes drivers wait (raw samples are never dropped), counted
  as `backpressure_waits`.
- hub → worker: the collector hands everything that arrived since the last tick to one worker
  thread, which writes the raw recording first, then runs the DSP and spools InfluxDB lines; it
  never runs twice at once, so a slow tick only makes the next one bigger.
- worker → MQTT: the publisher's own bounded queue; live values coalesce to the newest, alarm
  events never drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chikyu_daq.config import Config
from chikyu_daq.interfaces.facade import Interfaces
from chikyu_daq.outputs import Outputs, alarm_event_dict
from chikyu_daq.processor import Processed, Processor
from drivers.acquisition import Acquisition
from drivers.sample import Batch, BlockBuilder, Sample

log = logging.getLogger(__name__)

HUB_SIZE = 20_000
TICK_S = 0.05
HEALTH_S = 1.0
#: How long to wait for every device's first attempt before READY anyway.
FIRST_POLL_TIMEOUT_S = 5.0


@dataclass
class LiveView:
    """What a dashboard shows: newest sample per channel, newest results, active alarms."""

    latest: dict[str, Sample] = field(default_factory=dict)
    results: dict[str, float] = field(default_factory=dict)
    results_t_ns: int = 0
    active_alarms: list[str] = field(default_factory=list)
    health: dict[str, Any] = field(default_factory=dict)


class Pipeline:
    def __init__(
        self,
        cfg: Config,
        *,
        data_dir: Path,
        buses: Mapping[str, Any] | None = None,
        processor: Processor | None = None,
        run_id: str | None = None,
        on_processed: Callable[[Processed], None] | None = None,
        influx_enabled: bool | None = None,
        mqtt_enabled: bool | None = None,
    ) -> None:
        self.cfg = cfg
        self.data_dir = data_dir
        self.buses = dict(buses) if buses is not None else dict(cfg.buses)
        self.processor = processor if processor is not None else Processor(cfg)
        self.view = LiveView()
        self.started = asyncio.Event()
        self._stop = asyncio.Event()
        self._hub: asyncio.Queue[Batch] = asyncio.Queue(HUB_SIZE)
        self._builder = BlockBuilder()
        self._assays: list[tuple[int, float, float, dict[str, Any]]] = []
        self._on_processed = on_processed
        self._tasks: list[asyncio.Task[Any]] = []
        self.outputs = Outputs(
            cfg,
            data_dir=data_dir,
            run_id=run_id,
            on_assay=self._on_assay,
            influx_enabled=influx_enabled,
            mqtt_enabled=mqtt_enabled,
        )
        self.acquisition = Acquisition(
            self.buses, cfg.maps, cfg.sentences, cfg.devices, self._hub, clock=time.time_ns
        )
        self.ticks = 0
        self.worker_busy_s = 0.0
        self.last_processed_ns = 0
        self.interfaces = Interfaces(cfg, data_dir=data_dir, pipeline=self)

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self) -> None:
        """Run until `request_stop()`; then shut down in order and return."""
        await self.outputs.start()
        await self.interfaces.start()
        spawn = asyncio.create_task
        self._tasks = [
            spawn(self.acquisition.run(), name="acquisition"),
            spawn(self._collector(), name="collector"),
            spawn(self._health(), name="health"),
            *self.outputs.tasks(),
            *self.interfaces.tasks(),
        ]
        try:
            await self._wait_first_polls()
            self.started.set()
            stop = spawn(self._stop.wait())
            done, _ = await asyncio.wait([stop, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not stop and t.exception() is not None:
                    log.error("task %s failed: %r", t.get_name(), t.exception())
            stop.cancel()
        finally:
            await self._shutdown()

    def request_stop(self) -> None:
        self._stop.set()

    def tasks_alive(self) -> bool:
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    async def _wait_first_polls(self) -> None:
        deadline = time.monotonic() + FIRST_POLL_TIMEOUT_S
        devices = set(self.cfg.devices)
        while time.monotonic() < deadline:
            st = self.acquisition.stats()["devices"]
            tried = {d for d, s in st.items() if s["polls_ok"] + s["polls_failed"] > 0}
            if devices <= tried:
                return
            await asyncio.sleep(0.05)
        log.warning("some devices not tried within %.0f s; starting anyway", FIRST_POLL_TIMEOUT_S)

    async def _shutdown(self) -> None:
        """Stop polling, process what arrived, flush the DSP, close segments, drain the spool."""
        await self.acquisition.aclose()
        for t in self._tasks:
            if t.get_name() in {"collector", "health"}:
                t.cancel()
        for t in self._tasks:
            if t.get_name() in {"collector", "health", "acquisition"}:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        blocks = self._drain()
        processed = await asyncio.to_thread(self._work, blocks, True)
        self._publish(processed)
        await self.interfaces.aclose()
        await self.outputs.aclose()

    # -- the hub ----------------------------------------------------------------------------
    def _drain(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        while True:
            try:
                batch = self._hub.get_nowait()
            except asyncio.QueueEmpty:
                break
            self._builder.add(batch)
            self.view.latest.update(batch.samples)
        return {ch: (b.t_ns, b.value, b.quality) for ch, b in self._builder.take().items()}

    async def _collector(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            blocks = self._drain()
            t0 = time.perf_counter()
            processed = await asyncio.to_thread(self._work, blocks, False)
            self.worker_busy_s += time.perf_counter() - t0
            self.ticks += 1
            self._publish(processed)

    def inject_assay(
        self, sampled_at_ns: int, rey_ppm: float, u_rey_ppm: float, sample_id: str
    ) -> None:
        """A lab result from elsewhere than MQTT (the HIL lab, a test): same path as MQTT's."""
        self.outputs.assays_applied += 1
        record = {
            "sample_id": sample_id,
            "rey_ppm": rey_ppm,
            "u_rey_ppm": u_rey_ppm,
            "sampled_at_ns": sampled_at_ns,
        }
        self._on_assay(sampled_at_ns, rey_ppm, u_rey_ppm, record)

    def _on_assay(
        self, sampled_at_ns: int, rey_ppm: float, u_rey_ppm: float, record: dict[str, Any]
    ) -> None:
        self._assays.append((sampled_at_ns, rey_ppm, u_rey_ppm, record))

    # -- the worker thread ------------------------------------------------------------------
    def _work(
        self, blocks: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], final: bool
    ) -> Processed | None:
        """Raw to the recorder first (never dropped), then DSP, then results everywhere."""
        out = self.outputs
        if blocks:
            out.write_raw(blocks)
            self.processor.feed_blocks(blocks)
        assays, self._assays = self._assays, []
        for t_ns, rey, u, record in assays:
            self.processor.add_assay(t_ns, rey, u)
            out.write_event({"type": "assay", "t_ns": t_ns, **record})
        processed = self.processor.flush() if final else self.processor.advance()
        if processed is not None and len(processed):
            out.write_results(processed, self.processor.publish_ns)
            self.last_processed_ns = int(processed.t_ns[-1])
        return processed

    def _publish(self, processed: Processed | None) -> None:
        if processed is None or not len(processed):
            return
        if self._on_processed is not None:
            self._on_processed(processed)
        self.interfaces.on_processed(processed)
        idx = processed.at_period(self.processor.publish_ns)
        for i in idx[-1:]:
            row = {k: float(v[i]) for k, v in processed.columns.items()}
            self.view.results = row
            self.view.results_t_ns = int(processed.t_ns[i])
        for i in idx:
            self.outputs.publish_row(int(processed.t_ns[i]), processed.columns, int(i))
        if processed.events:
            active = self.processor.active_alarms()
            self.view.active_alarms = active
            for ev in processed.events:
                log.warning("alarm %s %s at value %.4g", ev.alarm, ev.kind, ev.value)
                self.outputs.publish_alarm(alarm_event_dict(ev), active)

    # -- health -----------------------------------------------------------------------------
    async def _health(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_S)
            h = self.stats()
            self.view.health = h
            self.outputs.publish_health(time.time_ns(), h)

    def stats(self) -> dict[str, Any]:
        acq = self.acquisition.stats()
        lag = (
            (time.time_ns() - self.last_processed_ns) / 1e9 if self.last_processed_ns else math.nan
        )
        return {
            "hub_depth": self._hub.qsize(),
            "backpressure_waits": acq["backpressure_waits"],
            "batches": acq["batches"],
            "late_samples": self.processor.late_samples,
            "grid_points": self.processor.points_done,
            "processing_lag_s": lag,
            "worker_busy_s": self.worker_busy_s,
            "devices": acq["devices"],
            "buses": acq["buses"],
            "outputs": self.outputs.stats(),
            **self.interfaces.stats(),
        }

    def status_line(self) -> str:
        """systemd STATUS: one line an operator reads in `systemctl status`."""
        acq = self.acquisition.stats()["devices"]
        ok = sum(1 for s in acq.values() if s["state"] == "ok")
        r = self.view.results
        rey = r.get("cum_rey_kg", math.nan)
        return (
            f"{ok}/{len(acq)} devices ok, REY {r.get('rey_kg_h', math.nan):.2f} kg/h, "
            f"cum {rey:.1f} kg, alarms {len(self.view.active_alarms)}"
        )
