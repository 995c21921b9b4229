"""Degrade, never die: the supervisor's restart policy on real asyncio tasks, and the live
pipeline (real emulators on loopback, real recorder) surviving processing faults injected
through a processor subclass, with raw samples kept and nothing fed twice."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chikyu_daq.config.model import Config
from chikyu_daq.live.pipeline import Pipeline
from chikyu_daq.live.processor import Processed, Processor, warm_up
from chikyu_daq.store.reader import open_run
from chikyu_daq.supervise import FatalError, Faults, Supervisor
from drivers.endpoints import override_buses
from hil.emulators import Rig
from tests.drivers.helpers import arun, reference_cfg
from tests.servers import until


def test_failing_task_is_restarted_with_doubling_backoff_and_counted() -> None:
    starts: list[float] = []

    async def flaky() -> None:
        starts.append(time.monotonic())
        if len(starts) <= 4:
            raise RuntimeError(f"boom {len(starts)}")
        await asyncio.Event().wait()

    async def main() -> None:
        sup = Supervisor(backoff_min_s=0.05, backoff_max_s=0.3, healthy_s=60.0)
        sup.start("flaky", flaky)
        await until(lambda: len(starts) == 5 and sup.states["flaky"].up, 10)
        st = sup.stats()["flaky"]
        assert (st["failures"], st["restarts"], st["up"]) == (4, 4, True)
        assert st["last_error"] == "RuntimeError: boom 4"
        gaps = np.diff(starts)
        # doubling, capped at 0.3; uvloop's timers count whole ms from a cached clock (1 ms slack)
        assert (gaps >= np.array([0.05, 0.1, 0.2, 0.3]) - 1e-3).all(), gaps
        assert sup.alive() and sup.crash_looping() == ["flaky"]
        assert "flaky recovering after 4 failures (RuntimeError: boom 4)" in sup.summary()
        sup.stop()
        sup.cancel()
        await sup.join()
        assert len(starts) == 5  # nothing restarts once stopping

    arun(main())


def test_backoff_resets_after_a_healthy_run() -> None:
    starts: list[float] = []

    async def task() -> None:
        starts.append(time.monotonic())
        if len(starts) == 5:
            await asyncio.sleep(0.3)  # a healthy run (healthy_s = 0.2)
        if len(starts) <= 5:
            raise RuntimeError("boom")
        await asyncio.Event().wait()

    async def main() -> None:
        sup = Supervisor(backoff_min_s=0.05, backoff_max_s=10.0, healthy_s=0.2)
        sup.start("t", task)
        await until(lambda: len(starts) == 6, 10)
        # after four quick failures the next wait would be 0.8 s; the healthy run reset it
        assert starts[5] - starts[4] - 0.3 < 0.6, np.diff(starts)
        assert sup.states["t"].consecutive_failures == 1
        await until(lambda: sup.summary() == "", 5)  # settled once up for healthy_s
        sup.stop()
        sup.cancel()
        await sup.join()

    arun(main())


def test_fatal_error_ends_supervision_and_stop_prevents_restart() -> None:
    async def fatal() -> None:
        raise FatalError("data dir gone for good")

    async def quits() -> None:
        return

    async def main() -> None:
        sup = Supervisor(backoff_min_s=0.01)
        t = sup.start("fatal", fatal)
        with pytest.raises(FatalError):
            await t
        assert not sup.alive()
        sup2 = Supervisor(backoff_min_s=0.01)
        sup2.stop()
        t2 = sup2.start("quits", quits)
        await t2
        assert sup2.states["quits"].failures == 0

    arun(main())


def test_faults_are_counted_and_logged_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    faults = Faults(log_every_s=3600.0)
    with caplog.at_level(logging.ERROR, logger="chikyu_daq.supervise"):
        for i in range(100):
            try:
                raise ValueError(f"bad {i}")
            except ValueError as exc:
                faults.record("feed", exc, "skipped")
    assert faults.stats() == {"feed": {"count": 100, "last_error": "ValueError: bad 99"}}
    assert len(caplog.records) == 1 and caplog.records[0].exc_info is not None


@pytest.fixture
def cfg() -> Config:
    """The reference installation, its kernels compiled (the pipelines below start warm)."""
    cfg = reference_cfg()
    warm_up(cfg)
    return cfg


@contextlib.asynccontextmanager
async def on_the_rig(
    cfg: Config,
    data_dir: Path,
    *,
    stall_s: float | None = None,
    kind: type[Pipeline] = Pipeline,
    processor: Processor | None = None,
) -> AsyncIterator[tuple[Pipeline, asyncio.Task[None]]]:
    """A pipeline (no InfluxDB, no MQTT) running against the emulated rig; stopped and awaited
    on exit, whatever the test found."""
    async with Rig(cfg, densitometer_period_s=0.1) as rig:
        buses = override_buses(cfg.buses, rig.endpoints)
        p = kind(cfg, data_dir=data_dir, buses=buses, processor=processor,
                 influx_enabled=False, mqtt_enabled=False)  # fmt: skip
        if stall_s is not None:
            p.stall_s = stall_s
        task = asyncio.create_task(p.run())
        try:
            yield p, task
        finally:
            p.request_stop()
            await task


class FaultyProcessor(Processor):
    """The real processor, failing once in `feed_blocks` and once in `advance`."""

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.failed_blocks: dict[str, np.ndarray] | None = None
        self.advance_failed = False
        self.fed: dict[str, int] = {}

    def feed_blocks(self, blocks: dict[str, Any]) -> None:
        if self.failed_blocks is None and self.points_done > 5:
            self.failed_blocks = {ch: b[0].copy() for ch, b in blocks.items()}
            raise ValueError("injected processing fault")
        for ch, b in blocks.items():
            self.fed[ch] = self.fed.get(ch, 0) + len(b[0])
        super().feed_blocks(blocks)

    def advance(
        self, until_ns: int | None = None, *, whole_periods: bool = False
    ) -> Processed | None:
        if self.failed_blocks is not None and not self.advance_failed:
            self.advance_failed = True
            raise ArithmeticError("injected advance fault")
        return super().advance(until_ns, whole_periods=whole_periods)


@pytest.mark.slow
def test_pipeline_survives_processing_faults_and_keeps_raw(cfg: Config, tmp_path: Path) -> None:
    """On the old code the first exception ends the collector, and with it the pipeline."""
    proc = FaultyProcessor(cfg)

    async def main() -> Pipeline:
        async with on_the_rig(cfg, tmp_path, processor=proc) as (p, task):
            await until(lambda: proc.advance_failed or task.done(), 30)
            points = proc.points_done
            await until(lambda: proc.points_done >= points + 20 or task.done(), 20)
            assert not task.done(), "the pipeline ended after a processing fault"
            assert p.healthy()
            assert "faults: feed 1, advance 1" in p.status_line()
        return p

    p = arun(main(), 90)
    assert proc.failed_blocks is not None
    stats = p.stats()
    assert stats["faults"]["feed"] == {
        "count": 1,
        "last_error": "ValueError: injected processing fault",
    }
    assert stats["faults"]["advance"]["count"] == 1
    assert stats["samples_unprocessed"] == sum(len(t) for t in proc.failed_blocks.values())
    assert all(t["failures"] == 0 for t in stats["tasks"].values())
    raw = open_run(p.outputs.recorder.path).raw()  # type: ignore[union-attr]
    for ch, t_failed in proc.failed_blocks.items():
        # the failing tick's samples are in the recording, and were never fed again
        assert np.isin(t_failed, raw[ch][0]).all(), ch
        assert proc.fed.get(ch, 0) == len(raw[ch][0]) - len(t_failed), ch


class StuckProcessor(Processor):
    """The real processor, whose `advance` hangs (a worker stuck in I/O) until released."""

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.stuck = threading.Event()
        self.release = threading.Event()

    def advance(
        self, until_ns: int | None = None, *, whole_periods: bool = False
    ) -> Processed | None:
        if self.points_done > 5 and not self.release.is_set():
            self.stuck.set()
            self.release.wait(30)
        return super().advance(until_ns, whole_periods=whole_periods)


@pytest.mark.slow
def test_a_stuck_worker_makes_the_pipeline_unhealthy_until_it_moves(
    cfg: Config, tmp_path: Path
) -> None:
    """The watchdog is fed from `healthy()`: a worker that stops completing ticks stops it."""
    proc = StuckProcessor(cfg)

    async def main() -> None:
        async with on_the_rig(cfg, tmp_path, stall_s=1.0, processor=proc) as (p, task):
            try:
                await until(lambda: proc.stuck.is_set() or task.done(), 30)
                await until(lambda: not p.healthy(), 5)
                ticks = p.ticks
                proc.release.set()
                await until(lambda: p.ticks > ticks + 5, 10)
                assert p.healthy()
            finally:
                proc.release.set()  # before the stop, which waits for the worker

    arun(main(), 90)


class BrokenHub(Pipeline):
    """A collector that fails on every tick, outside the per-step guards."""

    def _drain(self) -> dict[str, Any]:
        raise RuntimeError("hub broken")


@pytest.mark.slow
def test_a_crash_looping_collector_shows_in_status_and_stops_the_watchdog(
    cfg: Config, tmp_path: Path
) -> None:

    async def main() -> None:
        async with on_the_rig(cfg, tmp_path, stall_s=2.0, kind=BrokenHub) as (p, task):
            await until(lambda: p.stats()["tasks"].get("collector", {}).get("failures", 0) >= 3, 20)
            assert not task.done()  # restarted, not dead
            await until(lambda: not p.healthy(), 5)  # restarts are not progress
            assert "DEGRADED: collector" in p.status_line()
            assert "RuntimeError: hub broken" in p.status_line()
            assert p.stats()["tasks"]["collector"]["restarts"] >= 2
        assert p.faults.stats()["final_tick"]["count"] == 1  # and the stop was clean

    arun(main(), 90)
