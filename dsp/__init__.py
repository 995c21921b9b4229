"""Estimators over numpy arrays: alignment, filters, E1/E2/E3, yield, uncertainty, stability.

Processor usage::

    params = ChainParams(...)            # site physics, uncertainties, windows, alarm specs
    state = init_state(params)
    per channel: value, quality, align_state = align(align_state, t, v, q, grid, stale_ns=...)
    result, state = process_block(params, state, Block(grid, {role: value}, {role: quality}))
    result["rey_kg_h"], result.quality("q_yield"), result.events  # AlarmEvent(t_ns, alarm, ...)

SENSOR_FAULT(channel) stays with the processor: :func:`hysteresis_alarm` is the same kernel.

Pure arrays in, arrays out; imports nothing from the other packages. Kernels are
``@njit(cache=True, nogil=True)`` with explicit state (plain arrays), so a caller may run them
in a worker thread and split a recording into blocks of any size.
"""

from __future__ import annotations

import dataclasses

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


def warmup(params: ChainParams) -> None:
    """Compile (or load from cache) the kernels a processor uses: chain, align, alarm.

    Call once before READY: about 0.2 s from a warm numba cache, about 10 s cold. The
    standalone filter and spectrum kernels (tests, notebooks) compile on first use. Runs
    ``params`` with small windows (the compiled code depends on types, not values).
    """
    p = dataclasses.replace(params, osc_n_fft=64, max_transit_s=10.0, compare_window_s=2.0)
    n = 4
    t = np.arange(n, dtype=np.int64) * 100_000_000
    vals = {r: np.ones(n) for r in ROLES}
    qual = {r: np.zeros(n, np.uint8) for r in ROLES}
    process_block(p, init_state(p), Block(t, vals, qual))
    align(align_init(), t, np.ones(n), np.zeros(n, np.uint8), t, stale_ns=10**9)
    hysteresis_alarm("WARMUP", t, np.ones(n), AlarmSpec(2.0, 1.0, 0.0), alarm_init())


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
