"""One clock shared by the plant and the emulators.

``hil serve`` runs on :class:`RealClock` (wall time since start); ``hil synth`` and fast
tests run on :class:`SimClock`, advanced explicitly and never waiting. Both also give the
UTC timestamp (int64 ns) that a sample taken now would carry, so emulators and recordings
agree on time whichever clock drives them.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "RealClock", "SimClock"]


@runtime_checkable
class Clock(Protocol):
    """Simulation seconds since the run started, and the matching UTC nanoseconds."""

    def now_s(self) -> float: ...

    def now_ns(self) -> int: ...


class RealClock:
    """Wall time: simulation time is monotonic seconds since construction."""

    def __init__(self) -> None:
        self._t0_mono = time.monotonic()
        self.start_ns = time.time_ns()

    def now_s(self) -> float:
        return time.monotonic() - self._t0_mono

    def now_ns(self) -> int:
        return self.start_ns + round(self.now_s() * 1e9)


class SimClock:
    """Explicitly advanced time, as fast as the caller goes; starts at ``start_ns`` UTC."""

    def __init__(self, start_ns: int = 0, t_s: float = 0.0) -> None:
        if t_s < 0:
            raise ValueError(f"t_s must be >= 0, got {t_s}")
        self.start_ns = int(start_ns)
        self._t_s = float(t_s)

    def now_s(self) -> float:
        return self._t_s

    def now_ns(self) -> int:
        return self.start_ns + round(self._t_s * 1e9)

    def advance(self, dt_s: float) -> float:
        """Move time forward by ``dt_s`` (>= 0); returns the new time."""
        if dt_s < 0:
            raise ValueError(f"time cannot run backwards: dt_s = {dt_s}")
        self._t_s += dt_s
        return self._t_s

    def set(self, t_s: float) -> None:
        """Jump to ``t_s`` (not earlier than now)."""
        if t_s < self._t_s:
            raise ValueError(f"time cannot run backwards: {t_s} < {self._t_s}")
        self._t_s = float(t_s)
