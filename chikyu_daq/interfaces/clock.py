"""Clock health: how the host's time is disciplined, and steps of the wall clock.

Samples are stamped with the host's wall clock, so its discipline is part of data quality.
`read_discipline()` asks chrony (`chronyc -c tracking`) when it is installed, else the kernel
(`adjtimex(2)` with no changes, through ctypes: the NTP state any daemon leaves there).
`StepDetector` compares the wall clock with the monotonic clock: when their difference moves
by more than `step_bound_s` between two checks, the wall clock was stepped (by an operator,
chrony's makestep, a VM resume), and that is an event.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

STA_UNSYNC = 0x0040
TIME_ERROR = 5
#: adjtimex return value -> clock state name.
CLOCK_STATES = {0: "ok", 1: "ins", 2: "del", 3: "oop", 4: "wait", 5: "error"}
#: chronyc -c tracking columns we keep (0-based CSV index -> key).
CHRONY_COLUMNS = {
    1: "reference",
    2: "stratum",
    4: "offset_s",
    6: "rms_offset_s",
    7: "freq_ppm",
    10: "root_delay_s",
    11: "root_dispersion_s",
    13: "leap_status",
}


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """`struct timex` (Linux, <sys/timex.h>); ctypes lays out the padding as the C compiler."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


@functools.cache
def _libc() -> ctypes.CDLL:
    """Found once: `find_library` runs `ldconfig -p` in a child process every time it is asked
    (every `discipline_check_s` for the daemon's life)."""
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def read_adjtimex() -> dict[str, Any]:
    """The kernel's NTP state (read-only: `modes = 0` changes nothing)."""
    tx = _Timex()
    state = _libc().adjtimex(ctypes.byref(tx))
    if state < 0:
        raise OSError(ctypes.get_errno(), "adjtimex failed")
    return {
        "source": "adjtimex",
        "synced": bool(state != TIME_ERROR and not tx.status & STA_UNSYNC),
        "state": CLOCK_STATES.get(state, str(state)),
        "maxerror_s": tx.maxerror / 1e6,  # microseconds
        "esterror_s": tx.esterror / 1e6,
        "offset_s": tx.offset / (1e9 if tx.status & 0x2000 else 1e6),  # STA_NANO
        "freq_ppm": tx.freq / 65536.0,
        "tai_offset_s": tx.tai,
    }


def parse_chrony_tracking(csv_line: str) -> dict[str, Any]:
    """One line of `chronyc -c tracking` → the fields we publish."""
    cols = csv_line.strip().split(",")
    if len(cols) < 14:
        raise ValueError(f"chronyc tracking: expected 14 columns, got {len(cols)}")
    out: dict[str, Any] = {"source": "chrony"}
    for i, key in CHRONY_COLUMNS.items():
        v = cols[i]
        out[key] = v if key in ("reference", "leap_status") else float(v)
    out["synced"] = out["leap_status"] != "Not synchronised" and out["stratum"] < 16
    return out


def read_discipline(timeout_s: float = 2.0) -> dict[str, Any]:
    """chrony's view when chronyc answers, else the kernel's."""
    chronyc = shutil.which("chronyc")
    if chronyc:
        try:
            p = subprocess.run(
                [chronyc, "-c", "tracking"], capture_output=True, text=True, timeout=timeout_s
            )
            if p.returncode == 0 and p.stdout.strip():
                return parse_chrony_tracking(p.stdout.splitlines()[0])
        except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
            log.debug("chronyc tracking unavailable: %s", exc)
    return read_adjtimex()


@dataclass
class ClockStep:
    t_ns: int
    step_s: float


class StepDetector:
    """Wall-clock steps seen as jumps of (wall − monotonic) between two checks."""

    def __init__(
        self,
        bound_s: float,
        wall: Callable[[], int] = time.time_ns,
        mono: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.bound_ns = round(bound_s * 1e9)
        self.wall = wall
        self.mono = mono
        self._base = wall() - mono()
        self.steps = 0
        self.last_step_s = 0.0

    def check(self) -> ClockStep | None:
        w = self.wall()
        base = w - self.mono()
        delta = base - self._base
        self._base = base
        if abs(delta) <= self.bound_ns:
            return None
        self.steps += 1
        self.last_step_s = delta / 1e9
        return ClockStep(w, delta / 1e9)
