"""`chikyu-daq run`: the shipboard daemon under systemd (`Type=notify`).

READY once acquisition runs (every device tried once) and recording has begun; a cold kernel
compile (15-30 s) is not waited for: the kernels warm in a helper process (`KernelWarmup`),
STATUS and the health record say "kernels warming up" until the log says "kernels ready in
X s", and the processor then catches up on every sample recorded meanwhile, losing nothing.
(READY after the warm-up would lose the first half minute of acquisition of every cold start
and needed TimeoutStartSec in minutes.) WATCHDOG from the main loop only
while the pipeline is healthy (`Pipeline.healthy()`: its supervised tasks run and the worker
completes ticks; a stuck core stops the pings and systemd restarts us); STATUS with a one-line
summary that names faults and tasks in a restart loop. A task that fails is restarted by the
pipeline's supervisor; the process exits non-zero only for what a restart cannot fix: a
pipeline that cannot be built (an endpoint naming no bus...) or a fatal task error.

SIGTERM/SIGINT: stop polling, flush the DSP, close segments, drain the spool within
`STOP_BOUND_S`, close the outputs (MQTT: retained `offline`), exit 0. SIGHUP: load and validate
the file again; an invalid config is rejected with the reason and the running one carries on;
a valid one restarts acquisition and outputs (a new run directory), keeping the processor, and
so the cumulative totals, when the processing sections did not change.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chikyu_daq.config.model import Config, ConfigError, load_config
from chikyu_daq.live.pipeline import KernelWarmup, Pipeline
from chikyu_daq.live.processor import Processor
from chikyu_daq.live.sdnotify import Notifier, watchdog_interval_s
from chikyu_daq.store.events import Reload
from chikyu_daq.supervise import describe
from drivers.eventloop import loop_kind

log = logging.getLogger("chikyu_daq.live.daemon")

STOP_BOUND_S = 20.0
#: After a cancelled shutdown: how long the outputs get to close.
CLOSE_BOUND_S = 5.0
STATUS_S = 5.0
PROCESSING_SECTIONS = (
    "processing",
    "roles",
    "physics",
    "uncertainty",
    "grade",
    "stability",
    "alarms",
)


def _same_processing(a: Config, b: Config) -> bool:
    da, db = a.model_dump(), b.model_dump()
    return all(da[s] == db[s] for s in PROCESSING_SECTIONS)


class Daemon:
    def __init__(
        self,
        config_path: Path,
        cfg: Config,
        *,
        data_dir: Path | None = None,
        endpoints: Mapping[str, str] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.config_path = config_path
        self.cfg = cfg
        self.data_dir = data_dir or Path(cfg.site.data_dir)
        self.endpoints = dict(endpoints or {})
        self.notifier = notifier or Notifier()
        self._events: asyncio.Queue[str] = asyncio.Queue()
        self.pipeline: Pipeline | None = None
        self._task: asyncio.Task[None] | None = None
        # published in the health stats (`daq` fields reloads_applied, reloads_rejected)
        self.reloads = {"applied": 0, "rejected": 0}

    def _buses(self, cfg: Config) -> dict[str, Any]:
        if not self.endpoints:
            return dict(cfg.buses)
        from drivers.endpoints import override_buses

        return override_buses(cfg.buses, self.endpoints)

    async def _start(self, cfg: Config, processor: Processor | None) -> None:
        self.pipeline = Pipeline(
            cfg,
            data_dir=self.data_dir,
            buses=self._buses(cfg),
            processor=processor,
            reloads=self.reloads,
        )
        self._task = asyncio.create_task(self.pipeline.run(), name="pipeline")
        started = asyncio.create_task(self.pipeline.started.wait())
        await asyncio.wait([started, self._task], return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if self._task.done():
            self._task.result()  # raise what killed it
            fatal = self.pipeline.fatal
            raise RuntimeError(
                f"pipeline ended during start-up: {describe(fatal) if fatal else '?'}"
            )

    async def _stop_pipeline(self) -> None:
        if self.pipeline is None or self._task is None:
            return
        self.pipeline.request_stop()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_BOUND_S)
        except TimeoutError:
            log.error("shutdown took longer than %.0f s; cancelling", STOP_BOUND_S)
            self._task.cancel()  # the pipeline still closes its outputs (MQTT `offline`)
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, CLOSE_BOUND_S)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig, name in (
            (signal.SIGTERM, "stop"),
            (signal.SIGINT, "stop"),
            (signal.SIGHUP, "reload"),
        ):
            loop.add_signal_handler(sig, self._events.put_nowait, name)
        warmup = KernelWarmup(self.cfg).start()
        try:
            return await self._serve()
        finally:
            await warmup.aclose()

    async def _serve(self) -> int:
        if not await self._start_or_log(self.cfg, None):
            return 1
        assert self.pipeline is not None
        log.info(
            "running: run %s, data in %s, %s event loop",
            self.pipeline.outputs.run_id,
            self.data_dir,
            loop_kind(asyncio.get_running_loop()),
        )
        self.notifier.ready(self.pipeline.status_line())
        ticker = asyncio.create_task(self._keepalive())
        try:
            while True:
                ev: asyncio.Task[Any] = asyncio.create_task(self._events.get())
                assert self._task is not None
                await asyncio.wait([ev, self._task], return_when=asyncio.FIRST_COMPLETED)
                if not ev.done():
                    ev.cancel()
                    fatal = self.pipeline.fatal if self.pipeline else None
                    log.error("pipeline ended: %s", describe(fatal) if fatal else "unexpectedly")
                    return 1
                if ev.result() == "stop":
                    break
                if not await self._reload():
                    return 1
        finally:
            ticker.cancel()
            self.notifier.stopping()
            await self._stop_pipeline()
            log.info("stopped")
        return 0

    async def _start_or_log(self, cfg: Config, processor: Processor | None) -> bool:
        """Build and start the pipeline; False if it cannot (logged in one line when the cause
        is the installation: a bus the endpoints name, a data directory, ...)."""
        try:
            await self._start(cfg, processor)
        except (OSError, KeyError, ValueError) as err:  # the installation, not the code
            log.error("cannot start: %s (data dir %s)", describe(err), self.data_dir)
            return False
        except Exception:
            log.exception("cannot start")
            return False
        return True

    async def _reload(self) -> bool:
        """False when the new pipeline could not be started (the old one is already stopped)."""
        try:
            new = await asyncio.to_thread(load_config, self.config_path)
        except ConfigError as err:
            self.reloads["rejected"] += 1
            for issue in err.issues:
                log.error("reload rejected, keeping the running config: %s", issue.format(err.file))
            self.notifier.status(f"reload rejected ({len(err.issues)} errors); old config running")
            return True
        self.notifier.reloading()
        keep = (
            self.pipeline.processor if self.pipeline and _same_processing(self.cfg, new) else None
        )
        old_run = self.pipeline.outputs.run_id if self.pipeline else None
        if self.pipeline is not None:
            self.pipeline.outputs.write_event(Reload(time.time_ns(), status="closing run"))
        await self._stop_pipeline()
        self.cfg = new
        if not await self._start_or_log(new, keep):
            return False
        assert self.pipeline is not None
        self.pipeline.outputs.write_event(
            Reload(time.time_ns(), previous_run=old_run, processor_kept=keep is not None)
        )
        self.reloads["applied"] += 1
        log.info(
            "config reloaded: run %s (processor %s)",
            self.pipeline.outputs.run_id,
            "kept" if keep else "restarted",
        )
        self.notifier.ready(self.pipeline.status_line())
        return True

    async def _keepalive(self) -> None:
        interval = watchdog_interval_s()
        period = min(interval, STATUS_S) if interval else STATUS_S
        n = 0
        was_healthy = True
        while True:
            await asyncio.sleep(period)
            p = self.pipeline
            if p is None:
                continue
            healthy = p.healthy()
            if healthy != was_healthy:
                log.log(
                    logging.INFO if healthy else logging.ERROR,
                    "pipeline %s; watchdog pings %s",
                    "healthy again" if healthy else "not healthy",
                    "resumed" if healthy else "stopped (systemd restarts us)",
                )
                was_healthy = healthy
            if interval and healthy:
                self.notifier.watchdog()
            n += 1
            if n * period >= STATUS_S or not interval:
                n = 0
                self.notifier.status(p.status_line())


def run_daemon(
    config_path: Path,
    *,
    data_dir: Path | None = None,
    endpoints: Mapping[str, str] | None = None,
    loop: str | None = None,
) -> int:
    """Exit status of the daemon; `loop` names the event loop (`drivers.eventloop`: default
    uvloop where installed, $CHIKYU_DAQ_LOOP or `asyncio` for the stock one)."""
    from chikyu_daq.config.model import load_or_exit
    from chikyu_daq.live.logs import setup_logging
    from drivers.eventloop import LoopChoiceError, loop_factory

    setup_logging()
    faulthandler.enable()  # a native crash leaves a traceback in the journal
    try:
        factory = loop_factory(loop)
    except LoopChoiceError as err:
        log.error("cannot start: %s", err)
        return 2
    cfg = load_or_exit(config_path)
    daemon = Daemon(config_path, cfg, data_dir=data_dir, endpoints=endpoints)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(daemon.run())
