"""Quality codes: the one definition above the drivers (see docs/CONVENTIONS.md).

uint8 per sample; the worst of several inputs is their ``max``. ``drivers`` may not import
``dsp`` (the two layers are independent), so ``drivers.sample.Quality`` repeats these three
numbers and ``tests/dsp/test_quality.py`` holds the two equal, member for member. Everything
above both layers (the processor, alarms, the plant) imports them from here. The kernels use
the plain ints: numba freezes them as constants.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class Quality(IntEnum):
    GOOD = 0
    UNCERTAIN = 1
    BAD = 2


GOOD: Final = int(Quality.GOOD)
UNCERTAIN: Final = int(Quality.UNCERTAIN)
BAD: Final = int(Quality.BAD)

__all__ = ["BAD", "GOOD", "UNCERTAIN", "Quality"]
