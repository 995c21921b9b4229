"""Samples, batches and columnar blocks: the drivers' output contract (DESIGN "Data model").

A driver hands the pipeline one `Batch` per device poll: every channel of that device, each a
`Sample(t_ns, value, quality)`. A reading that could not be taken is a BAD sample with NaN,
never a missing key, so downstream always knows why a value is absent. `BlockBuilder` turns a
stream of batches into per-channel columnar arrays for paths that must not hold Python objects.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

import numpy as np
import numpy.typing as npt


class Quality(IntEnum):
    """uint8 quality codes; the worst of several inputs is their `max`."""

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2


class Sample(NamedTuple):
    t_ns: int
    value: float
    quality: int


class Batch(NamedTuple):
    """All channels of one device from one poll (or one densitometer sentence)."""

    device: str
    samples: dict[str, Sample]


def bad_batch(device: str, channels: Iterable[str], t_ns: int) -> Batch:
    """What a failed read yields: every channel BAD with NaN at the time of the attempt."""
    return Batch(device, {ch: Sample(t_ns, math.nan, Quality.BAD) for ch in channels})


class SampleBlock(NamedTuple):
    """Columnar samples of one channel, the one block type from the hub to the recording, the
    processor and the sinks: t_ns int64, value float64, quality uint8 (a tuple, so `t, v, q =`
    unpacks it)."""

    t_ns: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]


#: channel -> its block; what a tick, a replay chunk or a recording read hands on
Blocks = dict[str, SampleBlock]


@dataclass
class BlockBuilder:
    """Accumulates batches per channel, then emits columnar blocks and starts over."""

    _cols: dict[str, tuple[list[int], list[float], list[int]]] = field(default_factory=dict)

    def add(self, batch: Batch) -> None:
        for ch, s in batch.samples.items():
            col = self._cols.get(ch)
            if col is None:
                col = self._cols[ch] = ([], [], [])
            col[0].append(s.t_ns)
            col[1].append(s.value)
            col[2].append(s.quality)

    def take(self) -> Blocks:
        out = {
            ch: SampleBlock(
                np.asarray(t, dtype=np.int64),
                np.asarray(v, dtype=np.float64),
                np.asarray(q, dtype=np.uint8),
            )
            for ch, (t, v, q) in self._cols.items()
        }
        self._cols = {}
        return out
