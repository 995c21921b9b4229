"""Estimators over numpy arrays: alignment, filters, E1/E2/E3, yield, uncertainty, stability.

Pure arrays in, arrays out; imports nothing from the other packages. Kernels are
``@njit(cache=True, nogil=True)`` with explicit state (plain arrays), so a caller may run them
in a worker thread and split a recording into blocks of any size.
"""

from __future__ import annotations

import numpy as np

from .alarms import AlarmEvent, AlarmSpec, AlarmState, alarm_init, hysteresis_alarm
from .align import AlignState, align, align_init
from .chain import (
    OUTPUT_FIELDS,
    QUALITY_FIELDS,
    ROLES,
    Block,
    ChainResult,
    ChainState,
    init_state,
    process_block,
)
from .filters import hampel, hampel_init, meanvar_init, rolling_mean_var
from .params import ALARM_NAMES, ChainParams
from .quality import BAD, GOOD, UNCERTAIN
from .spectrum import osc_init, oscillation


def warmup() -> None:
    """Compile (or load from cache) every kernel on tiny inputs; call once before READY."""
    p = ChainParams(osc_n_fft=64, max_transit_s=10.0, compare_window_s=2.0)
    n = 4
    t = np.arange(n, dtype=np.int64) * 100_000_000
    vals = {r: np.ones(n) for r in ROLES}
    qual = {r: np.zeros(n, np.uint8) for r in ROLES}
    process_block(p, init_state(p), Block(t, vals, qual))
    align(align_init(), t, np.ones(n), np.zeros(n, np.uint8), t, stale_ns=10**9)
    hysteresis_alarm("WARMUP", t, np.ones(n), AlarmSpec(2.0, 1.0, 0.0), alarm_init())
    x = np.ones(n)
    hampel(x, hampel_init(3))
    rolling_mean_var(x, meanvar_init(3))
    oscillation(x, osc_init(64), dt_grid_s=0.1, decim=2, hop=1)


__all__ = [
    "ALARM_NAMES",
    "BAD",
    "GOOD",
    "OUTPUT_FIELDS",
    "QUALITY_FIELDS",
    "ROLES",
    "UNCERTAIN",
    "AlarmEvent",
    "AlarmSpec",
    "AlarmState",
    "AlignState",
    "Block",
    "ChainParams",
    "ChainResult",
    "ChainState",
    "alarm_init",
    "align",
    "align_init",
    "hampel",
    "hampel_init",
    "hysteresis_alarm",
    "init_state",
    "meanvar_init",
    "osc_init",
    "oscillation",
    "process_block",
    "rolling_mean_var",
    "warmup",
]
