"""Plausibility screen: a decoded number that cannot be a measurement becomes a BAD sample.

Every value a driver decodes passes here before it leaves the driver. NaN and ±inf always
fail (`non_finite`); a field with an engineering `range` in its map also fails beyond that
span widened by `RANGE_MARGIN` of it on each side (`out_of_range`: an instrument reads a little
past its span, never 30 orders of magnitude). A failed value leaves as BAD with NaN (the data
model's "no reading"), is counted per field and reason, and is logged at the 1st, 10th, 100th...
occurrence, so a stuck fault cannot flood the log.
"""

from __future__ import annotations

import logging
import math
import sys

log = logging.getLogger(__name__)

#: Share of a field's span a reading may lie outside it and still be a reading.
RANGE_MARGIN = 0.1
NON_FINITE = "non_finite"
OUT_OF_RANGE = "out_of_range"

_MAX = sys.float_info.max
#: Bounds of a field without a range: `lo <= v <= hi` is False exactly for NaN and ±inf.
FINITE: tuple[float, float] = (-_MAX, _MAX)


def bounds(span: tuple[float, float] | None) -> tuple[float, float]:
    """(lo, hi) a value must lie in (inclusive); only finiteness without a span."""
    if span is None:
        return FINITE
    lo, hi = min(span), max(span)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return FINITE
    m = (hi - lo) * RANGE_MARGIN
    return max(lo - m, -_MAX), min(hi + m, _MAX)


def reason(value: float) -> str:
    """Why a value outside its bounds failed."""
    return OUT_OF_RANGE if math.isfinite(value) else NON_FINITE


def as_bits(value: float) -> int:
    """Integer view of a status/rule field; a non-finite one reads as every bit set (fail safe)."""
    return int(value) if -_MAX <= value <= _MAX else -1


class Rejections:
    """Counts of rejected values of one device: field -> reason -> n (shared with its stats)."""

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self.counts: dict[str, dict[str, int]] = {}

    def add(self, field: str, value: float) -> None:
        why = reason(value)
        per = self.counts.setdefault(field, {})
        n = per[why] = per.get(why, 0) + 1
        if str(n).rstrip("0") == "1":  # 1, 10, 100, ...
            log.warning("%s.%s: %r is BAD (%s), %d so far", self.device_id, field, value, why, n)
