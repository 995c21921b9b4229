"""The ship's lab, one definition for the live HIL session and ``hil synth``.

The plant's parameters say how it works (``lab_interval_s``, ``lab_delay_s``,
``lab_error_rel``): a deck sample every interval, assayed with that relative standard error and
reported ``lab_delay_s`` after sampling. A recording keeps when the DAQ could first have applied
each result (``applied_ns``: the first grid point at or after it arrived), so that a replay
applies it there, as the live daemon would have, never from its sampling time.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["LabAssay", "applied_ns"]


class LabAssay(NamedTuple):
    """One lab result, as a recording keeps it (the fields of the store's ``AssayEvent``)."""

    t_ns: int  # sampled on deck
    rey_ppm: float
    u_rey_ppm: float  # standard uncertainty reported with it
    applied_ns: int  # first DAQ grid point that knows it


def applied_ns(sample_ns: int, delay_s: float, grid_hz: float) -> int:
    """First grid point at or after the result arrives; the grid is whole multiples of the
    processor's step (``round(1e9 / grid_hz)`` ns), as the DAQ's processor lays it."""
    step = round(1e9 / grid_hz)
    due = int(sample_ns) + round(delay_s * 1e9)
    return -(-due // step) * step
