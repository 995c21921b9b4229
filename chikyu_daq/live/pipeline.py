"""The live pipeline: drivers → hub → worker (recorder, processor, spool) → MQTT.

    pipeline = Pipeline(cfg, data_dir=Path("data"))
    task = asyncio.create_task(pipeline.run())
    await pipeline.started.wait()     # every device tried once (kernels maybe still warming)
    pipeline.request_stop()           # SIGTERM: stop polling, flush DSP, close segments, drain
    await task

Queues and their policies (DESIGN "Pipeline"), all counted in `stats()`:
- drivers → hub: bounded; a full hub makes drivers wait (raw samples are never dropped), counted
  as `backpressure_waits`.
- hub → worker: the collector hands everything that arrived since the last tick to one worker
  thread, which writes the raw recording first, then runs the DSP and spools InfluxDB lines; it
  never runs twice at once, so a slow tick only makes the next one bigger. A tick that can only
  record (nothing due to feed or compute, no assay; InfluxDB off) buffers its samples into the
  recorder on the loop instead: a thread hand-off is two wake-ups, ~0.1 ms of CPU on a VM,
  for ~0.1 ms of work (4 of the ~5 ticks a second at reference rates).
- worker → MQTT: the publisher's own bounded queue; live values coalesce to the newest, alarm
  events never drop.

Raw samples reach the recorder and the spool on every tick; the processor is fed what arrived
since it was last fed only on a tick where a publish period may be computed (the wall clock is
past the period's end plus `lateness_s`: no sample stamped before that can complete it), that
brings a lab assay (fed first, as before), or after `FEED_MAX_S`. It computes nothing in
between, so what it computes and when are the same, and its per-channel cost is paid about once
a second instead of on every tick (the processor is chunk-invariant: replay feeds it whole
chunks of the recording).

Kernels warm in the background (`KernelWarmup`): acquisition and recording start at once; until
the DSP kernels are loaded the worker records and feeds the processor but computes nothing, then
the processor catches up on everything it was fed (it is clocked by the samples: nothing is late).

Degrade, never die (`chikyu_daq.supervise`): acquisition, collector, health and the sinks run
under a `Supervisor` (restart with backoff, counted in `stats()["tasks"]`). Inside a tick each
step is guarded on its own and a failing one is counted in `stats()["faults"]` and skipped:
the raw write comes first, so a processing error never loses raw samples; blocks that the
processor refused are not fed again (a second feed would count them twice), they stay in the
recording and the spool and are counted as `samples_unprocessed`; a failing `advance` is
retried by the next tick; a failing sink write loses only that sink's copy of the tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from chikyu_daq.config.model import Config
from chikyu_daq.interfaces.clock import StepDetector
from chikyu_daq.interfaces.facade import Interfaces
from chikyu_daq.live.processor import Processed, Processor, warm_up
from chikyu_daq.sinks.fanout import Outputs
from chikyu_daq.store.events import AlarmEdge, AssayEvent
from chikyu_daq.supervise import Faults, Supervisor
from drivers.acquisition import Acquisition
from drivers.sample import Batch, BlockBuilder, Blocks, Sample, SampleBlock

log = logging.getLogger(__name__)

HUB_SIZE = 20_000
#: Raw samples reach the recorder and the spool at least this often. The recorder makes them
#: durable every `recorder.flush_s` (0.5 s) on its own thread: 0.2 + 0.5 s keeps "everything
#: older than 1 s readable after kill -9". Every tick is a hand-off to the worker thread (the
#: processor is fed only on ticks that may compute: module docstring).
TICK_S = 0.2
#: A publish period can be computed once samples `lateness_s` past its end are in: the collector
#: ticks then, plus this for their way to the hub, so the 1 Hz outputs leave at once ...
ARRIVAL_MARGIN_S = 0.005
#: ... and, until that period is computed, again this often (the fastest device polls at 50 Hz),
#: for at most `CHASE_S` (a silent installation falls back to `TICK_S`).
RETRY_S = 0.01
CHASE_S = 0.3
#: The processor is fed on the ticks that can compute a publish period (module docstring), and
#: at least this often whatever the clock says (a stepped clock makes "due" meaningless).
FEED_MAX_S = 1.0
HEALTH_S = 1.0
#: How long to wait for every device's first attempt before READY anyway.
FIRST_POLL_TIMEOUT_S = 5.0
#: The collector restarts sooner than the sinks: while it is down the hub fills up.
COLLECTOR_BACKOFF_MAX_S = 5.0
#: A worker tick that has not completed for this long means the core is stuck.
STALL_S = 15.0
#: How long the collector may take to finish its tick at shutdown before it is cancelled.
COLLECTOR_STOP_S = 10.0
#: At shutdown, how long the daemon waits for kernels still warming before the final DSP flush
#: (within its stop bound; the raw recording is complete either way, replay computes the rest).
FINAL_WARMUP_WAIT_S = 10.0
_WARMUP_CODE = (
    "import sys\n"
    "from chikyu_daq.config.model import Config\n"
    "from chikyu_daq.live.processor import warm_up\n"
    "warm_up(Config.model_validate_json(sys.stdin.buffer.read()))\n"
)


def freeze_heap() -> int:
    """Collect once, then move every surviving object out of the cyclic collector's reach.

    After start-up the heap holds a few hundred thousand long-lived objects (numba's compiled
    kernels, pyarrow, pydantic models) that a full collection would walk every couple of minutes:
    an ~90 ms stall of the event loop each time, a latency spike on every output. Frozen, they
    are never walked again; what the steady state allocates is collected as before."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class KernelWarmup:
    """The DSP kernels compiled in a helper process while acquisition and recording run.

    A cold numba compile takes 15-30 s. The helper fills the numba cache (no GIL taken from
    acquisition, no LLVM running in a thread of ours when the interpreter exits); the worker
    thread then loads the kernels from the cache (~0.5 s) at its next tick. The kernels are
    process-wide, so is this: `start()` makes it `KernelWarmup.current` for every pipeline
    built afterwards (a reload keeps it). Without one, kernels are assumed warm already.
    """

    current: KernelWarmup | None = None

    def __init__(self, cfg: Config, *, stop_wait_s: float = FINAL_WARMUP_WAIT_S) -> None:
        self.cfg = cfg
        self.stop_wait_s = stop_wait_s
        self.t0 = time.monotonic()
        self.compiled = asyncio.Event()  # the helper ended (ok or not): loading may begin
        self.ready = False
        self.ready_s = math.nan
        self.helper_failed = ""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> KernelWarmup:
        self._task = asyncio.create_task(self._compile(), name="kernel-warmup")
        KernelWarmup.current = self
        log.info("kernels warming up in a helper process; acquisition and recording start now")
        return self

    async def _compile(self) -> None:
        root = str(Path(__file__).resolve().parents[2])  # where chikyu_daq and dsp live
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _WARMUP_CODE,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
            try:
                _, err = await proc.communicate(self.cfg.model_dump_json().encode())
            except asyncio.CancelledError:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                raise
            if proc.returncode != 0:
                tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
                self.helper_failed = f"rc {proc.returncode}: {tail[0]}"
        except OSError as exc:
            self.helper_failed = str(exc)
        if self.helper_failed:
            log.error(
                "kernel warm-up helper failed (%s); compiling in the worker", self.helper_failed
            )
        self.compiled.set()

    def load(self) -> bool:
        """From the worker thread: True once the kernels are loaded in this process."""
        if self.ready:
            return True
        if not self.compiled.is_set():
            return False
        warm_up(self.cfg)
        self.ready_s = time.monotonic() - self.t0
        self.ready = True
        frozen = freeze_heap()
        log.info(
            "kernels ready in %.1f s; processing catches up (%d start-up objects out of the "
            "collector's reach)",
            self.ready_s,
            frozen,
        )
        return True

    async def wait(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.compiled.wait(), timeout_s)

    async def aclose(self) -> None:
        """Stop the helper if it still runs (the process is ending)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if KernelWarmup.current is self:
            KernelWarmup.current = None

    def status(self) -> dict[str, Any]:
        if self.ready:
            return {"state": "ready", "ready_s": round(self.ready_s, 2)}
        return {"state": "warming up", "since_s": round(time.monotonic() - self.t0, 1)}


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
        reloads: Mapping[str, int] | None = None,
        on_processed: Callable[[Processed], None] | None = None,
        influx_enabled: bool | None = None,
        mqtt_enabled: bool | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.cfg = cfg
        self.clock = clock  # the wall clock that stamps samples (a test may step it)
        # (wall − monotonic) checked every tick: a forward jump of the stamps is a clock step
        # only if the clock itself jumped (a stalled loop delays every poll alike)
        self._clock_watch = StepDetector(cfg.clock.step_bound_s, wall=clock)
        self.data_dir = data_dir
        self.buses = dict(buses) if buses is not None else dict(cfg.buses)
        self.processor = processor if processor is not None else Processor(cfg)
        self.view = LiveView()
        self.started = asyncio.Event()
        self._stop = asyncio.Event()
        self._hub: asyncio.Queue[Batch] = asyncio.Queue(HUB_SIZE)
        self._builder = BlockBuilder()
        self._assays: list[AssayEvent] = []
        self._on_processed = on_processed
        self.supervisor = Supervisor()
        self.faults = Faults(logger=log)
        self._collecting = True
        self._working = False  # a worker thread is running `_work`
        self._last_tick = time.monotonic()
        self.stall_s = STALL_S
        self.fatal: BaseException | None = None
        self.outputs = Outputs(
            cfg,
            data_dir=data_dir,
            run_id=run_id,
            on_assay=self._on_assay,
            influx_enabled=influx_enabled,
            mqtt_enabled=mqtt_enabled,
        )
        self.acquisition = Acquisition(
            self.buses, cfg.maps, cfg.sentences, cfg.devices, self._hub, clock=clock
        )
        self.ticks = 0
        self.worker_busy_s = 0.0
        self.reloads = reloads  # the daemon's reload counts: they outlive this pipeline
        self.last_processed_ns = 0
        self.samples_unprocessed = 0
        #: Blocks recorded but not fed to the processor yet, and when it was last fed
        self._unfed: list[Blocks] = []
        self._fed_at = time.monotonic()
        #: The processor computed all it could from what it was fed (no feed, clock step or
        #: failed advance since its last advance): a tick that feeds nothing computes nothing.
        self._settled = False
        #: Ticks that only record run on the loop, without a worker hand-off (module
        #: docstring); with InfluxDB on, the spool's line encoding stays off the loop.
        self._light_ticks = self.outputs.influx is None
        self.interfaces = Interfaces(cfg, data_dir=data_dir, pipeline=self)
        #: Kernels still warming: record and feed, compute once they are loaded.
        self.warmup = KernelWarmup.current

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self) -> None:
        """Run until `request_stop()` (or a fatal task error); then shut down in order."""
        await self.outputs.start()
        await self.interfaces.start()
        self._last_tick = time.monotonic()  # not reset by restarts: a crash loop is a stall
        sup = self.supervisor
        sup.start("acquisition", self.acquisition.run)
        sup.start("collector", self._collector, backoff_max_s=COLLECTOR_BACKOFF_MAX_S)
        sup.start("health", self._health)
        for name, sink in (("influx", self.outputs.influx), ("mqtt", self.outputs.mqtt)):
            if sink is not None:
                sup.start(name, sink.run)
        for name, factory in self.interfaces.runners():
            sup.start(name, factory)
        try:
            await self._wait_first_polls()
            self.started.set()
            stop = asyncio.create_task(self._stop.wait())
            tasks = list(sup.tasks.values())
            done, _ = await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            for t in done:
                if t is not stop and not t.cancelled() and t.exception() is not None:
                    self.fatal = t.exception()
                    log.critical("pipeline stopping: task %s failed: %r", t.get_name(), self.fatal)
        finally:
            await self._shutdown()

    def request_stop(self) -> None:
        self._stop.set()

    def healthy(self) -> bool:
        """For the watchdog: every supervisor runs and the worker keeps completing ticks.

        A sink or the acquisition in a restart loop is degraded, not dead: it shows in
        `stats()` and STATUS while recording goes on, and restarting the process would lose
        acquisition time without fixing it. A stuck or endlessly failing collector is dead.
        """
        return self.supervisor.alive() and time.monotonic() - self._last_tick < self.stall_s

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
        """Stop polling, process what arrived, flush the DSP, close segments, drain the spool.

        The outputs are closed whatever fails before (MQTT then publishes `offline`)."""
        sup = self.supervisor
        sup.stop()
        try:
            await self.acquisition.aclose()
            self._collecting = False  # the collector finishes its tick: one worker at a time
            sup.cancel(["health"])
            try:
                await asyncio.wait_for(sup.join(["collector"]), COLLECTOR_STOP_S)
            except TimeoutError:
                log.error("collector still busy after %.0f s; cancelling", COLLECTOR_STOP_S)
                sup.cancel(["collector"])
            await sup.join(["acquisition", "collector", "health"])
            if self._working:  # never two workers on one processor
                log.error(
                    "worker stuck: final tick skipped (samples still in the hub not recorded)"
                )
            else:
                w = self.warmup
                if w is not None and not w.ready:
                    await w.wait(w.stop_wait_s)
                try:
                    await self._tick(final=True)
                except Exception as exc:
                    self.faults.record("final_tick", exc, "final DSP flush skipped")
        finally:
            try:
                try:
                    await self.interfaces.aclose()
                except Exception as exc:
                    self.faults.record("interfaces_close", exc, "interfaces not closed cleanly")
                await self.outputs.aclose()
            finally:
                sup.cancel()
                await sup.join()

    # -- the hub ----------------------------------------------------------------------------
    def _drain(self) -> Blocks:
        while True:
            try:
                batch = self._hub.get_nowait()
            except asyncio.QueueEmpty:
                break
            self._builder.add(batch)
            self.view.latest.update(batch.samples)
        return self._builder.take()

    async def _collector(self) -> None:
        while self._collecting:
            await asyncio.sleep(self._next_tick_s())
            await self._tick(final=False)

    def _due_ns(self) -> int:
        """Wall time from which the next publish period can be computed (0: nothing computed
        yet, so any time)."""
        done = self.last_processed_ns
        if not done:
            return 0
        proc = self.processor
        return (done // proc.publish_ns + 1) * proc.publish_ns + proc.lateness_ns

    def _next_tick_s(self) -> float:
        """Seconds to the next tick: when the next publish period can be computed, else
        `TICK_S` (always within [RETRY_S, TICK_S], whatever a stepped clock says)."""
        due = self._due_ns()
        if not due:  # nothing computed yet (kernels warming, start-up)
            return TICK_S
        wait = (due - self.clock()) / 1e9 + ARRIVAL_MARGIN_S
        if wait > 0:
            return max(min(wait, TICK_S), RETRY_S)
        return RETRY_S if -wait < CHASE_S else TICK_S

    async def _tick(self, *, final: bool) -> None:
        blocks = self._drain()
        t0 = time.perf_counter()
        if not final and self._record_only():
            self._record(blocks)  # buffering only: cheaper here than a thread's two wake-ups
            processed = None
        else:
            self._working = True  # cleared by the thread itself: a cancelled await leaves it
            processed = await asyncio.to_thread(self._work_and_clear, blocks, final)
        self.worker_busy_s += time.perf_counter() - t0
        self.ticks += 1
        self._last_tick = time.monotonic()
        try:
            self._publish(processed)
        except Exception as exc:  # the view or active alarms: nothing else of the tick is lost
            self.faults.record("publish", exc, "this tick's live view not updated")

    def inject_assay(
        self, sampled_at_ns: int, rey_ppm: float, u_rey_ppm: float, sample_id: str
    ) -> None:
        """A lab result from elsewhere than MQTT (the HIL lab, a test): same path as MQTT's."""
        self.outputs.assays_applied += 1
        self._on_assay(AssayEvent(sampled_at_ns, rey_ppm, u_rey_ppm, sample_id))

    def _on_assay(self, assay: AssayEvent) -> None:
        self._assays.append(assay)

    def _record_only(self) -> bool:
        """This tick would only record: nothing to feed, no assay, the processor settled and its
        kernels loaded, and no worker still running (a cancelled tick's thread)."""
        w = self.warmup
        return (
            self._light_ticks
            and self._settled
            and not self._working
            and not self._assays
            and (w is None or w.ready)
            and not self._feed_due()
        )

    # -- the worker thread ------------------------------------------------------------------
    def _work_and_clear(self, blocks: Blocks, final: bool) -> Processed | None:
        try:
            return self._work(blocks, final)
        finally:
            self._working = False

    def _work(self, blocks: Blocks, final: bool) -> Processed | None:
        """Raw to the recorder first (never dropped), then DSP, then results everywhere.

        Every step is guarded on its own (module docstring): a failure is counted and skipped.
        """
        out, proc, faults = self.outputs, self.processor, self.faults
        self._record(blocks)
        assays, self._assays = self._assays, []
        # an assay is read in the clock epoch of the samples fed before it: feed them first
        if self._unfed and (final or assays or self._feed_due()):
            fed = _merge(self._unfed)
            self._unfed = []
            self._fed_at = time.monotonic()
            self._settled = False
            try:
                proc.feed_blocks(fed)
            except Exception as exc:
                n = sum(len(b[0]) for b in fed.values())
                self.samples_unprocessed += n
                faults.record("feed", exc, f"up to {n} samples not processed (raw kept)")
        if assays:
            self._settled = False
        for assay in assays:
            try:
                applied = proc.add_assay(assay.t_ns, assay.rey_ppm, assay.u_rey_ppm)
            except Exception as exc:
                faults.record("assay", exc, f"assay {assay.sample_id!r} dropped")
                continue
            try:
                out.write_event(replace(assay, applied_ns=applied))  # a replay applies it there
            except Exception as exc:
                faults.record("write_event", exc, "assay applied but not recorded")
        w = self.warmup
        if w is not None and not w.load():
            if final:
                log.warning("kernels not warm at shutdown: samples recorded, not processed")
            return None  # recorded and fed: computed once the kernels are loaded
        try:
            # The DSP runs once per publish period, on the first tick that can compute the
            # whole second: the 1 Hz outputs leave as early as before, the kernels' per-call
            # cost is paid once a second instead of 20 times, and chunk-invariant kernels
            # give the same numbers (points after the second wait for the next one).
            processed = proc.flush() if final else proc.advance(whole_periods=True)
        except Exception as exc:
            faults.record("advance", exc, "no results this tick (the next tick retries)")
            return None
        self._settled = not final
        if processed is not None and len(processed):
            self.last_processed_ns = int(processed.t_ns[-1])
            try:
                out.write_results(processed, proc.publish_ns)
                for note in processed.notes:  # a clock re-base
                    out.write_event(note)
            except Exception as exc:
                faults.record("write_results", exc, "this tick's results not recorded/spooled")
        return processed

    def _record(self, blocks: Blocks) -> None:
        """A tick's raw samples to the recorder (and spool) and the unfed list; a forward clock
        step announced to the processor. On the worker thread, or the loop (`_record_only`)."""
        if not blocks:
            return
        try:
            self.outputs.write_raw(blocks)
        except Exception as exc:
            self.faults.record("write_raw", exc, "raw samples of this tick not recorded/spooled")
        step = self._clock_watch.check()
        if step is not None and step.step_s > 0:
            self.processor.expect_forward_step(step.t_ns)
            self._settled = False
        self._unfed.append(blocks)

    def _feed_due(self) -> bool:
        """The processor may complete a publish period now (or was not fed for `FEED_MAX_S`)."""
        return self.clock() >= self._due_ns() or time.monotonic() - self._fed_at >= FEED_MAX_S

    def _publish(self, processed: Processed | None) -> None:
        """Live values and alarms to the dashboards; each piece guarded on its own, so one
        value that cannot be published costs that value, never the tick's alarms."""
        if processed is None or not len(processed):
            return
        if self._on_processed is not None:
            try:
                self._on_processed(processed)
            except Exception as exc:
                self.faults.record("on_processed", exc, "callback skipped for this tick")
        try:
            self.interfaces.on_processed(processed)
        except Exception as exc:
            self.faults.record("interfaces", exc, "alarm lifecycle skipped for this tick")
        idx = processed.at_period(self.processor.publish_ns)
        for i in idx[-1:]:
            row = {k: float(v[i]) for k, v in processed.columns.items()}
            self.view.results = row
            self.view.results_t_ns = int(processed.t_ns[i])
        for i in idx:
            try:
                self.outputs.publish_row(int(processed.t_ns[i]), processed.columns, int(i))
            except Exception as exc:
                self.faults.record("publish_row", exc, "one second of live values not published")
        if processed.events:
            active = self.processor.active_alarms()
            self.view.active_alarms = active
            for ev in processed.events:
                log.warning("alarm %s %s at value %.4g", ev.alarm, ev.kind, ev.value)
                try:
                    self.outputs.publish_alarm(AlarmEdge.of(ev), active)
                except Exception as exc:
                    self.faults.record("publish_alarm", exc, f"alarm {ev.alarm} not published")

    # -- health -----------------------------------------------------------------------------
    async def _health(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_S)
            h = self.stats()
            self.view.health = h
            try:
                self.outputs.publish_health(time.time_ns(), h)
            except Exception as exc:
                self.faults.record("publish_health", exc, "health not published this second")

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
            "clock_rebases": self.processor.clock_rebases,
            "grid_points": self.processor.points_done,
            "processing_lag_s": lag,
            "worker_busy_s": self.worker_busy_s,
            "ticks": self.ticks,
            **({"reloads": dict(self.reloads)} if self.reloads is not None else {}),
            "samples_unprocessed": self.samples_unprocessed,
            "tasks": self.supervisor.stats(),
            "faults": self.faults.stats(),
            "devices": acq["devices"],
            "buses": acq["buses"],
            "outputs": self.outputs.stats(),
            "kernels": self.warmup.status() if self.warmup is not None else {"state": "ready"},
            **self.interfaces.stats(),
        }

    def status_line(self) -> str:
        """systemd STATUS: one line an operator reads in `systemctl status`."""
        acq = self.acquisition.stats()["devices"]
        ok = sum(1 for s in acq.values() if s["state"] == "ok")
        r = self.view.results
        rey = r.get("cum_rey_kg", math.nan)
        line = (
            f"{ok}/{len(acq)} devices ok, REY {r.get('rey_kg_h', math.nan):.2f} kg/h, "
            f"cum {rey:.1f} kg, alarms {len(self.view.active_alarms)}"
        )
        if self.faults.total():
            line += " | faults: " + ", ".join(
                f"{k} {v.count}" for k, v in self.faults.steps.items()
            )
        w = self.warmup
        if w is not None and not w.ready:
            line = f"kernels warming up ({w.status()['since_s']:.0f} s), recording | {line}"
        degraded = self.supervisor.summary()
        return f"{line} | DEGRADED: {degraded}" if degraded else line


def _merge(ticks: list[Blocks]) -> Blocks:
    """Several ticks' blocks as one, each channel's samples in arrival order."""
    if len(ticks) == 1:
        return ticks[0]
    parts: dict[str, list[SampleBlock]] = {}
    for blocks in ticks:
        for ch, block in blocks.items():
            parts.setdefault(ch, []).append(block)
    return {
        ch: b[0] if len(b) == 1 else SampleBlock(*(np.concatenate(c) for c in zip(*b, strict=True)))
        for ch, b in parts.items()
    }
