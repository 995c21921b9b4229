"""One set of quality codes: drivers (which may not import dsp) repeats dsp's exactly."""

from __future__ import annotations

from drivers.sample import Quality as DriverQuality
from dsp.quality import BAD, GOOD, UNCERTAIN, Quality


def test_drivers_quality_is_dsp_quality() -> None:
    assert [(q.name, q.value) for q in DriverQuality] == [(q.name, q.value) for q in Quality]


def test_kernel_ints_are_the_enum() -> None:
    assert (GOOD, UNCERTAIN, BAD) == (Quality.GOOD, Quality.UNCERTAIN, Quality.BAD)
    assert all(type(x) is int for x in (GOOD, UNCERTAIN, BAD))  # numba freezes plain ints
