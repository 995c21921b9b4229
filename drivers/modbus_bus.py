"""One owner per Modbus bus: a single task polls every device of a gateway or serial line.

Each device keeps its own deadline grid (`next_due += period`), so rates do not drift; a poll
that ends past the next deadline counts the skipped slots as missed instead of queueing them.
A unit that fails is marked BAD (one NaN sample per channel) and retried after an exponential
backoff of its own, while the other units keep their grid. A lost link is re-established with
exponential backoff, forever; while it is down each device yields a BAD batch per attempt.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from operator import attrgetter

from drivers.bus_owner import BusOwner, Wiring
from drivers.errors import BadReply, DeviceError, ExceptionReply, LinkDown, NoResponse
from drivers.modbus_transport import ModbusBus, ModbusTransport
from drivers.regmap import DevicePlan
from drivers.sample import bad_batch
from drivers.spec import Device
from drivers.stats import DeviceStats


@dataclass
class _Slot:
    plan: DevicePlan
    device: Device
    stats: DeviceStats
    next_due: float = 0.0
    backoff_s: float = 0.0
    #: `device.workarounds.pause_between_requests_s`, read once (devices are immutable)
    pause_s: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.pause_s = self.device.workarounds.pause_between_requests_s


_due = attrgetter("next_due")


async def pause(s: float) -> None:
    """At least `s` seconds: uvloop's timers count whole milliseconds from a cached clock, so
    its `sleep(0.003)` can end after 2 ms, and a device's pause is a minimum it needs."""
    end = time.monotonic() + s
    await asyncio.sleep(s)
    while (left := end - time.monotonic()) > 0:
        await asyncio.sleep(left)


class ModbusBusOwner(BusOwner):
    def __init__(
        self, wiring: Wiring, bus: ModbusBus, devices: list[tuple[DevicePlan, Device, DeviceStats]]
    ) -> None:
        super().__init__(wiring, bus)
        self.bus = bus
        self.slots = [_Slot(p, d, s) for p, d, s in devices]
        self.transport: ModbusTransport | None = None
        #: Silent polls in a row, all units together, before the link itself is presumed dead.
        self.max_silent = max(3, 2 * len(self.slots))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                self.transport = ModbusTransport(self.bus)
                if await self.transport.connect():
                    self.stats.connected = True
                    self.stats.connects += 1
                    self.link_works()
                    wait_s = max(
                        (s.device.workarounds.pause_after_connect_s for s in self.slots), default=0
                    )
                    if wait_s:
                        await pause(wait_s)
                    try:
                        await self._poll_forever(loop)
                    except LinkDown:
                        self.stats.link_errors += 1
                    except Exception as err:  # never let one surprise end the bus task
                        self.stats.link_errors += 1
                        self.stats.last_error = f"{type(err).__name__}: {err}"
                else:
                    self.stats.connect_failures += 1
                self.stats.connected = False
                self.transport.close()
                t = self.clock_ns()
                for s in self.slots:
                    s.stats.state = "link_down"
                    await self.emit(bad_batch(s.plan.device_id, s.plan.channels, t))
                await self.before_reconnect()
        finally:
            self.stats.connected = False
            if self.transport is not None:
                self.transport.close()

    async def _poll_forever(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for s in self.slots:
            s.next_due, s.backoff_s = now, 0.0
        silent = 0
        me = asyncio.current_task()
        slots = self.slots
        only = slots[0] if len(slots) == 1 else None
        while True:
            if me is not None and me.cancelling():
                # Python 3.11's wait_for (inside pymodbus) can swallow a cancel that races a reply
                raise asyncio.CancelledError
            slot = only if only is not None else min(slots, key=_due)
            wait = slot.next_due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            ok, no_answer = await self._poll(slot)
            now = loop.time()
            period = slot.plan.period_s
            if ok:
                silent = 0
                slot.backoff_s = 0.0
                nd = slot.next_due + period
                if nd <= now:
                    missed = int((now - nd) // period) + 1
                    slot.stats.missed_deadlines += missed
                    nd += missed * period
                slot.next_due = nd
            else:
                silent = silent + 1 if no_answer else 0
                if silent >= self.max_silent:
                    raise LinkDown(f"{self.bus_id}: {silent} silent polls in a row")
                d = slot.device
                slot.backoff_s = min(max(2 * slot.backoff_s, d.backoff_min_s), d.backoff_max_s)
                slot.stats.backoffs += 1
                slot.stats.state = "backoff"
                slot.next_due = now + slot.backoff_s

    async def _poll(self, slot: _Slot) -> tuple[bool, bool]:
        """Read every request of one device; (succeeded, failed by silence)."""
        transport = self.transport
        assert transport is not None
        plan, st, clock = slot.plan, slot.stats, self.clock_ns
        read, unit, pause_s = transport.read, plan.unit, slot.pause_s
        replies: list[list[int]] = []
        times: list[int] = []
        t0 = 0  # set before every read, so before anything below can raise
        try:
            for i, preq in enumerate(plan.requests):
                if pause_s and i:
                    await pause(pause_s)
                t0 = clock()
                regs = await read(unit, preq.request)
                t1 = clock()
                ms = (t1 - t0) / 1e6  # DeviceStats.latency, inline
                st.latency_n += 1
                st.latency_sum_ms += ms
                st.latency_last_ms = ms
                if ms > st.latency_max_ms:
                    st.latency_max_ms = ms
                replies.append(regs)
                times.append((t0 + t1) // 2)
        except LinkDown:
            st.polls_failed += 1
            await self.emit(bad_batch(plan.device_id, plan.channels, t0))
            raise
        except DeviceError as err:
            st.polls_failed += 1
            if isinstance(err, NoResponse):
                st.timeouts += 1
            elif isinstance(err, ExceptionReply):
                st.exceptions += 1
                st.last_exception_code = err.code
            elif isinstance(err, BadReply):
                st.bad_replies += 1
            await self.emit(bad_batch(plan.device_id, plan.channels, (t0 + clock()) // 2))
            return False, isinstance(err, NoResponse)
        st.polls_ok += 1
        st.state = "ok"
        batch = plan.decode(replies, times)
        st.frozen_counter = plan.frozen
        await self.emit(batch)
        return True, False
