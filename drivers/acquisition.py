"""Acquisition: every configured device, one task per bus, batches out to the pipeline's sink.

    acq = Acquisition(cfg.buses, cfg.maps, cfg.sentences, cfg.devices, queue_or_async_fn)
    task = asyncio.create_task(acq.run())   # until cancelled
    acq.stats()                             # counters for the daemon's own health channel
    await acq.aclose()

Maps are compiled once here (a bad map raises `ValueError` before any I/O). The sink is either
`async def sink(batch)` or a bounded `asyncio.Queue`; a full queue is waited on (raw samples are
never dropped) and each wait is counted in `backpressure_waits`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

from drivers.bus_owner import Wiring
from drivers.modbus_bus import ModbusBusOwner
from drivers.regmap import DevicePlan, compile_device
from drivers.sample import Batch
from drivers.sentence import SentenceDecoder
from drivers.spec import AsciiStreamBus, Device, RegisterMap, SentenceMap
from drivers.stats import AcquisitionStats, BusStats, DeviceStats
from drivers.stream_bus import StreamBusOwner

Sink = Callable[[Batch], Awaitable[None]] | asyncio.Queue[Batch]


class Acquisition:
    def __init__(
        self,
        buses: Mapping[str, Any],
        maps: Mapping[str, RegisterMap],
        sentences: Mapping[str, SentenceMap],
        devices: Mapping[str, Device],
        sink: Sink,
        *,
        clock: Callable[[], int] = time.time_ns,
        only: Collection[str] | None = None,
    ) -> None:
        self.clock = clock
        self._sink = sink
        self._stats = AcquisitionStats()
        self.plans: dict[str, DevicePlan] = {}
        self.decoders: dict[str, SentenceDecoder] = {}
        #: channel id -> unit string, for display
        self.units: dict[str, str] = {}
        self._owners: list[ModbusBusOwner | StreamBusOwner] = []
        self._tasks: list[asyncio.Task[None]] = []
        unknown = set(only or ()) - set(devices)
        if unknown:
            raise ValueError(f"unknown device(s) {sorted(unknown)}")
        per_bus: dict[str, list[str]] = {}
        for dev_id, dev in devices.items():
            if only is None or dev_id in only:
                per_bus.setdefault(dev.bus, []).append(dev_id)
        for bus_id, dev_ids in per_bus.items():
            bus = buses[bus_id]
            bstats = self._stats.buses[bus_id] = BusStats()
            wiring = Wiring(bus_id, self._emit, bstats, clock)
            if isinstance(bus, AsciiStreamBus):
                if len(dev_ids) != 1:
                    raise ValueError(f"bus {bus_id!r}: a stream carries exactly one device")
                dev_id = dev_ids[0]
                smap = sentences[devices[dev_id].map]
                dec = self.decoders[dev_id] = SentenceDecoder(dev_id, smap)
                for sf in smap.fields:
                    self.units[f"{dev_id}.{sf.name}"] = sf.unit
                dstats = self._stats.devices[dev_id] = DeviceStats()
                dstats.bad_values = dec.rejections.counts
                self._owners.append(StreamBusOwner(wiring, bus, dec, dstats))
                continue
            members = []
            for dev_id in dev_ids:
                dev = devices[dev_id]
                regmap = maps[dev.map]
                plan = self.plans[dev_id] = compile_device(dev_id, dev, regmap)
                for f in regmap.fields:
                    self.units[f"{dev_id}.{f.name}"] = f.unit
                dstats = self._stats.devices.setdefault(dev_id, DeviceStats())
                dstats.bad_values = plan.rejections.counts
                members.append((plan, dev, dstats))
            self._owners.append(ModbusBusOwner(wiring, bus, members))

    @property
    def channels(self) -> list[str]:
        out: list[str] = []
        for plan in self.plans.values():
            out.extend(plan.channels)
        for dec in self.decoders.values():
            out.extend(dec.channels)
        return out

    async def _emit(self, batch: Batch) -> None:
        self._stats.count(batch)
        sink = self._sink
        if isinstance(sink, asyncio.Queue):
            if sink.full():
                self._stats.backpressure_waits += 1
            await sink.put(batch)
        else:
            await sink(batch)

    async def run(self) -> None:
        """Poll until cancelled; one task per bus, a crash in one is raised after all stop."""
        if self._tasks:
            raise RuntimeError("Acquisition.run() is already running")
        self._tasks = [asyncio.create_task(o.run(), name=f"bus {o.bus_id}") for o in self._owners]
        try:
            await asyncio.gather(*self._tasks)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    def stats(self) -> dict[str, Any]:
        return self._stats.snapshot()
