"""Codec against independent encodings (struct.pack by hand), all types and word orders."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.codec import (
    counts_to_ma,
    decode_raw,
    encode_raw,
    ma_to_counts,
    ma_to_eng,
    namur_quality,
)
from drivers.sample import Quality


def words(b: bytes) -> list[int]:
    return [int.from_bytes(b[i : i + 2], "big") for i in range(0, len(b), 2)]


def reorder(be: bytes, order: str) -> list[int]:
    """Independent statement of the ICD letters: bytes A B C D ... in wire order."""
    regs = [be[i : i + 2] for i in range(0, len(be), 2)]
    if order in ("CDAB", "DCBA"):
        regs = regs[::-1]
    if order in ("BADC", "DCBA"):
        regs = [r[::-1] for r in regs]
    return words(b"".join(regs))


def test_word_orders_32bit_by_letter() -> None:
    # 0x11223344 laid out per the ICD's letters, written out by hand
    assert encode_raw(0x11223344, "uint32", "ABCD") == [0x1122, 0x3344]
    assert encode_raw(0x11223344, "uint32", "CDAB") == [0x3344, 0x1122]
    assert encode_raw(0x11223344, "uint32", "BADC") == [0x2211, 0x4433]
    assert encode_raw(0x11223344, "uint32", "DCBA") == [0x4433, 0x2211]
    for order, regs in {
        "ABCD": [0x1122, 0x3344],
        "CDAB": [0x3344, 0x1122],
        "BADC": [0x2211, 0x4433],
        "DCBA": [0x4433, 0x2211],
    }.items():
        assert decode_raw(regs, "uint32", order) == 0x11223344


@pytest.mark.parametrize("order", ["ABCD", "CDAB", "BADC", "DCBA"])
@pytest.mark.parametrize(
    ("dtype", "code", "value"),
    [
        ("int16", ">h", -1234),
        ("uint16", ">H", 54321),
        ("int32", ">i", -123456789),
        ("uint32", ">I", 3_000_000_000),
        ("int64", ">q", -(2**40) - 7),
        ("uint64", ">Q", 2**63 + 11),
        ("float32", ">f", 315.25),
        ("float64", ">d", 123456.789),
    ],
)
def test_decode_matches_struct(order: str, dtype: str, code: str, value: float) -> None:
    regs = reorder(struct.pack(code, value), order)
    assert decode_raw(regs, dtype, order) == pytest.approx(value, rel=1e-7)
    assert encode_raw(value, dtype, order) == regs


def test_icd_examples() -> None:
    # pump shaft_power float32 ABCD, run_hours uint32 CDAB scale 0.1 (ICD table)
    assert encode_raw(315.25, "float32", "ABCD") == [0x439D, 0xA000]
    assert encode_raw(123456, "uint32", "CDAB") == [0xE240, 0x0001]
    assert decode_raw([0xFFFF], "int16") == -1


@given(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from(["ABCD", "CDAB", "BADC", "DCBA"]),
)
def test_float64_round_trip(x: float, order: str) -> None:
    assert decode_raw(encode_raw(x, "float64", order), "float64", order) == x


def test_integer_encode_clips() -> None:
    assert encode_raw(70000, "uint16") == [0xFFFF]
    assert encode_raw(-5, "uint16") == [0]
    assert encode_raw(40000, "int16") == [0x7FFF]


#: NAMUR NE 43 bands, by the quality each loop current should get (edges on both sides).
NAMUR_BANDS = {
    Quality.BAD: (3.0, 3.6, 21.0, 22.0),
    Quality.UNCERTAIN: (3.7, 3.8, 3.95, 20.3, 20.5, 20.8),
    Quality.GOOD: (4.0, 12.0, 20.0),
}


@pytest.mark.parametrize(
    ("ma", "quality"), [(ma, q) for q, currents in NAMUR_BANDS.items() for ma in currents]
)
def test_namur_bands(ma: float, quality: Quality) -> None:
    assert namur_quality(ma) is quality


def test_analog_scaling_and_clamp() -> None:
    assert counts_to_ma(0) == 4.0
    assert counts_to_ma(27648) == 20.0
    assert counts_to_ma(-6912) == 0.0  # unwired input, ICD AI-20 spare
    assert ma_to_counts(12.0) == 13824
    assert ma_to_eng(12.0, 0.0, 250.0) == (125.0, Quality.GOOD)
    assert ma_to_eng(20.4, 0.0, 250.0) == (250.0, Quality.UNCERTAIN)  # clamped
    assert ma_to_eng(3.9, 0.0, 25.0) == (0.0, Quality.UNCERTAIN)
    v, q = ma_to_eng(2.0, 0.0, 25.0)
    assert math.isnan(v) and q is Quality.BAD
