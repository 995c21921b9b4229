"""What every bus owner shares: its identity, where batches go, its stats and clock, and the
doubling delay before it re-opens a lost link (forever; reset once the link works)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from drivers.sample import Batch
from drivers.stats import BusStats

#: Where an owner hands its batches (the acquisition's queue).
Emit = Callable[[Batch], Awaitable[None]]


class _Reconnects(Protocol):
    @property
    def reconnect_min_s(self) -> float: ...
    @property
    def reconnect_max_s(self) -> float: ...


@dataclass(frozen=True)
class Wiring:
    """What the acquisition hands every owner: its bus' name, where batches go, its stats, and
    the clock that stamps samples."""

    bus_id: str
    emit: Emit
    stats: BusStats
    clock_ns: Callable[[], int]


class BusOwner:
    """Base of the Modbus and stream bus owners (one task per bus)."""

    def __init__(self, wiring: Wiring, bus: _Reconnects) -> None:
        self.bus_id = wiring.bus_id
        self.emit = wiring.emit
        self.stats = wiring.stats
        self.clock_ns = wiring.clock_ns
        self.reconnect_delay_s = bus.reconnect_min_s
        self._delays = (bus.reconnect_min_s, bus.reconnect_max_s)

    def link_works(self) -> None:
        """The next loss waits the shortest delay again."""
        self.reconnect_delay_s = self._delays[0]

    async def before_reconnect(self) -> None:
        """Wait the current delay, then double it up to the bus's maximum."""
        await asyncio.sleep(self.reconnect_delay_s)
        self.reconnect_delay_s = min(self.reconnect_delay_s * 2, self._delays[1])
