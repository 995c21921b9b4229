"""One object the pipeline holds for every interface to the ship's other systems.

The pipeline's hooks are five calls: `start()` once its outputs are up, `tasks()` beside its
own, `on_processed()` after each result block (alarm events and the processor's active set),
`stats()` merged into its health, `aclose()` at shutdown. The alarm manager always runs (with
its control socket in the data directory); Prometheus, OPC UA and the MQTT command link follow
their config sections. A failing interface logs and degrades; it never stops acquisition.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from chikyu_daq.alarms.manager import AlarmManager, Sinks
from chikyu_daq.alarms.states import Transition
from chikyu_daq.config.model import Config
from chikyu_daq.interfaces.commands import ACTION as REFERENCE_ACTION
from chikyu_daq.interfaces.commands import ReferenceCommands
from chikyu_daq.store.events import ClockStep

if TYPE_CHECKING:
    from chikyu_daq.live.pipeline import Pipeline
    from chikyu_daq.live.processor import Processed

log = logging.getLogger(__name__)

TICK_S = 1.0


class Interfaces:
    def __init__(self, cfg: Config, *, data_dir: Path, pipeline: Pipeline) -> None:
        self.cfg = cfg
        self.data_dir = data_dir
        self.pipeline = pipeline
        self.prometheus: Any = None
        if cfg.outputs.prometheus.enabled:
            from chikyu_daq.interfaces.prometheus import PrometheusExporter

            self.prometheus = PrometheusExporter(
                cfg.outputs.prometheus, pipeline.stats, vessel=cfg.site.vessel
            )
        self.alarm_link: Any = None
        if pipeline.outputs.mqtt is not None:
            from chikyu_daq.alarms.mqtt_link import AlarmMqttLink

            self.alarm_link = AlarmMqttLink(
                cfg.outputs.mqtt, cfg.mqtt_prefix, cfg.site.vessel, self.command
            )
        sinks = Sinks(
            record=pipeline.outputs.write_event,
            influx=self._influx if pipeline.outputs.influx is not None else None,
            mqtt=self._mqtt_state if self.alarm_link is not None else None,
        )
        self.alarms = AlarmManager(cfg, data_dir, sinks, time.time_ns())
        self.alarms.latest = self._latest
        self.references = ReferenceCommands(lambda ref: pipeline.processor.add_reference(ref))
        self.control: Any = None
        self.clock: dict[str, Any] = {}
        self.steps: Any = None
        if cfg.clock.enabled:
            from chikyu_daq.interfaces.clock import StepDetector

            self.steps = StepDetector(cfg.clock.step_bound_s, wall=pipeline.clock)
        self.opcua: Any = None
        if cfg.outputs.opcua.enabled:
            from chikyu_daq.interfaces.opcua import OpcUaServer

            channels = pipeline.acquisition.channels
            self.opcua = OpcUaServer(
                cfg.outputs.opcua,
                pipeline.view,
                self.alarms.book,
                channels,
                command=lambda doc: self.alarms.command(doc, time.time_ns()),
            )

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        from chikyu_daq.alarms.control import ControlServer

        if self.prometheus is not None:
            self.prometheus.start(asyncio.get_running_loop())
        am = self.cfg.alarm_management
        self.control = ControlServer(self.data_dir / am.control_socket, self.command)
        await self.control.start()
        if self.opcua is not None:
            try:
                await self.opcua.start()
            except Exception:  # e.g. port taken, bad certificate: degrade, keep acquiring
                log.exception("OPC UA server not started")
                self.opcua = None
        if self.alarm_link is not None:
            for name, st in self.alarms.book.alarms.items():
                self.alarm_link.set_state(name, st.to_dict())

    def runners(self) -> list[tuple[str, Callable[[], Awaitable[Any]]]]:
        """Long-running coroutines (never return while the pipeline runs), for its supervisor."""
        out: list[tuple[str, Callable[[], Awaitable[Any]]]] = [("alarm-tick", self._tick)]
        if self.alarm_link is not None:
            out.append(("alarm-mqtt", self.alarm_link.run))
        if self.opcua is not None:
            out.append(("opcua", self.opcua.run))
        return out

    async def aclose(self) -> None:
        if self.control is not None:
            await self.control.aclose()
        if self.prometheus is not None:
            await asyncio.to_thread(self.prometheus.close)
        if self.opcua is not None:
            await self.opcua.aclose()

    # -- alarms -----------------------------------------------------------------------------
    def on_processed(self, processed: Processed) -> None:
        """Alarm raise/clear events of one result block, on the event loop."""
        try:
            active = self.pipeline.processor.active_alarms()
            self.alarms.on_events(processed.events, active, time.time_ns())
        except Exception:  # the collector task must survive a bug in the alarm layer
            log.exception("alarm lifecycle update failed; raw and results are unaffected")

    def command(self, doc: Any) -> dict[str, Any]:
        """An operator command from the control socket or MQTT: to the estimators (the
        seawater reference) or the alarm manager."""
        try:
            if isinstance(doc, dict) and doc.get("action") == REFERENCE_ACTION:
                return self.references.command(doc, time.time_ns())
            return self.alarms.command(doc, time.time_ns())
        except Exception:  # a bug must cost one command, never the link or the daemon
            log.exception("alarm command failed: %r", doc)
            return {"accepted": False, "reason": "internal error (logged)"}

    async def _tick(self) -> None:
        last_discipline = -math.inf
        while True:
            await asyncio.sleep(TICK_S)
            now = time.time_ns()
            try:
                self.alarms.tick(now)
                if self.alarm_link is not None:
                    self.alarm_link.set_kpis(self.alarms.kpis(now))
                if self.steps is not None:
                    self._check_step()
                    if time.monotonic() - last_discipline >= self.cfg.clock.discipline_check_s:
                        last_discipline = time.monotonic()
                        await self._read_discipline()
            except Exception:  # a bug here must not end the pipeline's task set
                log.exception("interfaces tick failed")

    def _check_step(self) -> None:
        step = self.steps.check()
        if step is not None:
            log.warning("wall clock stepped by %+.3f s", step.step_s)
            self.pipeline.outputs.write_event(ClockStep(step.t_ns, step.step_s))

    async def _read_discipline(self) -> None:
        from chikyu_daq.interfaces.clock import read_discipline

        try:
            self.clock = await asyncio.to_thread(read_discipline)
        except OSError as exc:
            self.clock = {"source": "none", "error": str(exc)}

    def _latest(self) -> Mapping[str, tuple[float, int]]:
        return {ch: (s.value, s.quality) for ch, s in self.pipeline.view.latest.items()}

    def _mqtt_state(self, tr: Transition, status: dict[str, Any]) -> None:
        self.alarm_link.set_state(tr.name, {**status, "t_ns": tr.t_ns, "cause": tr.cause})

    def _influx(self, tr: Transition) -> None:
        from chikyu_daq.sinks.influx.lineproto import encode_block

        out = self.pipeline.outputs
        tags = {**out.tags, "alarm": tr.name, "priority": tr.priority}
        fields = {
            "state": np.array([tr.to_state], object),
            "cause": np.array([tr.cause], object),
            "active": np.array([int(tr.active)], np.int64),
            "acked": np.array([int(tr.acked)], np.int64),
            "shelved": np.array([int(tr.shelved)], np.int64),
            "operator": np.array([tr.operator or None], object),
            "reason": np.array([tr.reason or None], object),
        }
        out.influx.spool.append(encode_block("alarm_state", tags, np.array([tr.t_ns]), fields))
        out.influx.uploader.notify()

    def stats(self) -> dict[str, Any]:
        try:
            k = self.alarms.stats(time.time_ns())
        except Exception:  # health publishing must survive a bug in the alarm layer
            log.exception("alarm KPIs unavailable")
            k = {}
        out: dict[str, Any] = {
            "alarms": {key: v for key, v in k.items() if not isinstance(v, list | dict)},
            "reference_commands": self.references.stats(),
        }
        if self.steps is not None:
            out["clock"] = {**self.clock, "steps": self.steps.steps}
        return out
