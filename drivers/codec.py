"""Register codec: Modbus words <-> numbers, for every type and word order of the ICD.

pymodbus swaps whole registers only; byte-swapped orders (BADC, DCBA) need this codec, and the
HIL emulators encode with the same tables in reverse so config stays the single source of truth.
Word orders generalise to 64 bits as Telegraf does: ABCD = big endian, CDAB = registers
reversed, BADC = bytes swapped in each register, DCBA = both (fully little endian).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence

from drivers.sample import Quality

#: struct code and register count per data type.
TYPE_CODES: dict[str, tuple[str, int]] = {
    "int16": ("h", 1),
    "uint16": ("H", 1),
    "int32": ("i", 2),
    "uint32": ("I", 2),
    "int64": ("q", 4),
    "uint64": ("Q", 4),
    "float32": ("f", 2),
    "float64": ("d", 4),
}

#: (reverse register order, swap bytes within each register) per word order.
WORD_ORDERS: dict[str, tuple[bool, bool]] = {
    "ABCD": (False, False),
    "CDAB": (True, False),
    "BADC": (False, True),
    "DCBA": (True, True),
}

RawDecoder = Callable[[Sequence[int], int], float]

#: Largest finite float32.
_F32_MAX = 3.4028234663852886e38


def _check(dtype: str, word_order: str) -> tuple[str, int, bool, bool]:
    if dtype not in TYPE_CODES:
        raise ValueError(f"unknown data type {dtype!r}")
    if word_order not in WORD_ORDERS:
        raise ValueError(f"unknown word order {word_order!r}")
    code, n = TYPE_CODES[dtype]
    reverse, swap = WORD_ORDERS[word_order]
    return code, n, reverse, swap


def raw_decoder(dtype: str, word_order: str = "ABCD") -> RawDecoder:
    """Bind once at start-up: `(registers, offset) -> raw number` for one field."""
    code, n, reverse, swap = _check(dtype, word_order)
    words = struct.Struct(("<" if swap else ">") + "H" * n)
    value = struct.Struct(">" + code)
    if n == 1 and not swap:
        if code == "H":
            return lambda regs, off: float(regs[off])
        return lambda regs, off: float(regs[off] - 0x10000 if regs[off] & 0x8000 else regs[off])
    if reverse:

        def dec_rev(regs: Sequence[int], off: int) -> float:
            return float(value.unpack(words.pack(*reversed(regs[off : off + n])))[0])

        return dec_rev

    def dec(regs: Sequence[int], off: int) -> float:
        return float(value.unpack(words.pack(*regs[off : off + n]))[0])

    return dec


def encode_raw(raw: float | int, dtype: str, word_order: str = "ABCD") -> list[int]:
    """Inverse of `raw_decoder`: integer types are rounded and clipped to their range."""
    code, n, reverse, swap = _check(dtype, word_order)
    num: float | int = raw
    if code not in "fd":
        bits = 16 * n
        lo, hi = (
            (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if code.islower() else (0, (1 << bits) - 1)
        )
        num = 0 if math.isnan(raw) else lo if raw <= lo else hi if raw >= hi else round(raw)
    elif code == "f" and math.isfinite(raw) and abs(raw) > _F32_MAX:
        num = math.copysign(math.inf, raw)  # what a float32 conversion makes of it
    regs = list(struct.unpack(("<" if swap else ">") + "H" * n, struct.pack(">" + code, num)))
    return regs[::-1] if reverse else regs


def decode_raw(regs: Sequence[int], dtype: str, word_order: str = "ABCD") -> float:
    return raw_decoder(dtype, word_order)(regs, 0)


# --- 4-20 mA with NAMUR NE43 -----------------------------------------------------------------

NAMUR_FAIL_LOW_MA = 3.6
NAMUR_FAIL_HIGH_MA = 21.0
NAMUR_VALID_LOW_MA = 3.8
NAMUR_VALID_HIGH_MA = 20.5


def counts_to_ma(counts: float, counts_4ma: int = 0, counts_20ma: int = 27648) -> float:
    return 4.0 + 16.0 * (counts - counts_4ma) / (counts_20ma - counts_4ma)


def ma_to_counts(ma: float, counts_4ma: int = 0, counts_20ma: int = 27648) -> int:
    return round(counts_4ma + (ma - 4.0) / 16.0 * (counts_20ma - counts_4ma))


def namur_quality(ma: float) -> Quality:
    """NE43: failure bands are BAD, outside 4-20 but not failed is UNCERTAIN."""
    if ma <= NAMUR_FAIL_LOW_MA or ma >= NAMUR_FAIL_HIGH_MA or math.isnan(ma):
        return Quality.BAD
    if 4.0 <= ma <= 20.0:
        return Quality.GOOD
    return Quality.UNCERTAIN


def ma_to_eng(ma: float, eng_min: float, eng_max: float) -> tuple[float, Quality]:
    """Engineering value and quality; failure currents give NaN (no measurement at all)."""
    q = namur_quality(ma)
    if q is Quality.BAD:
        return math.nan, q
    clamped = min(max(ma, 4.0), 20.0)
    return eng_min + (clamped - 4.0) / 16.0 * (eng_max - eng_min), q


def eng_to_ma(value: float, eng_min: float, eng_max: float) -> float:
    return 4.0 + 16.0 * (value - eng_min) / (eng_max - eng_min)
