"""Test helpers: run coroutines with a bound, collect batches, wait on conditions (no sleeps)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Collection, Coroutine
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from chikyu_daq.config.model import Config, load_config
from drivers.acquisition import Acquisition
from drivers.endpoints import override_buses
from drivers.eventloop import run
from drivers.sample import Batch, Sample
from hil.emulators import Rig

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]


@cache
def reference_cfg() -> Config:
    return load_config(REPO / "config" / "reference.toml")


def arun(coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
    """asyncio.run with a hard bound, so a hung transport fails the test instead of CI; on the
    daemon's event loop (`drivers.eventloop`: uvloop, or $CHIKYU_DAQ_LOOP)."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout_s)

    return run(bounded())


class Collector:
    """An async sink that remembers every batch and wakes waiters on each one."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.cond = asyncio.Condition()

    async def __call__(self, batch: Batch) -> None:
        async with self.cond:
            self.batches.append(batch)
            self.cond.notify_all()

    def samples(self, channel: str) -> list[Sample]:
        return [b.samples[channel] for b in self.batches if channel in b.samples]

    def latest(self) -> dict[str, Sample]:
        out: dict[str, Sample] = {}
        for b in self.batches:
            out.update(b.samples)
        return out

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
        async with self.cond:
            await asyncio.wait_for(self.cond.wait_for(predicate), timeout_s)


@contextlib.asynccontextmanager
async def acquiring(
    cfg: Any, endpoints: dict[str, str], sink: Any, **kwargs: Any
) -> AsyncIterator[Acquisition]:
    """Acquisition against re-pointed buses, running in a task for the block's duration."""
    acq = Acquisition(
        override_buses(cfg.buses, endpoints), cfg.maps, cfg.sentences, cfg.devices, sink, **kwargs
    )
    task = asyncio.create_task(acq.run())
    try:
        yield acq
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def rig_acquiring(
    cfg: Config, sink: Any, *, only: Collection[str] | None = None, **rig_kwargs: Any
) -> AsyncIterator[tuple[Rig, Acquisition]]:
    """`cfg`'s emulators on loopback (`Rig(cfg, **rig_kwargs)`) and an acquisition polling
    them (the devices in `only`, or all), both stopped at the end of the block."""
    async with (
        Rig(cfg, **rig_kwargs) as rig,
        acquiring(cfg, rig.endpoints, sink, only=only) as acq,
    ):
        yield rig, acq
