"""Line-protocol encoder: types, escaping, missing values; checked against influxdb-client."""

from __future__ import annotations

import numpy as np
import pytest
from influxdb_client import Point, WritePrecision

from chikyu_daq.lineproto import LineProtocolError, encode_block, encode_channels


def test_types_and_missing_values() -> None:
    t = np.array([1, 2, 3], dtype=np.int64)
    out = encode_block(
        "m",
        {"vessel": "c", "empty": ""},
        t,
        {
            "f": np.array([1.5, np.nan, np.inf]),
            "i": np.array([-3, 0, 2**62], dtype=np.int64),
            "q": np.array([0, 1, 2], dtype=np.uint8),
            "b": np.array([True, False, True]),
        },
    )
    assert out.decode().splitlines() == [
        "m,vessel=c f=1.5,i=-3i,q=0i,b=true 1",
        "m,vessel=c i=0i,q=1i,b=false 2",
        f"m,vessel=c i={2**62}i,q=2i,b=true 3",
    ]


def test_lines_without_fields_are_skipped() -> None:
    t = np.arange(4, dtype=np.int64)
    out = encode_block("m", {}, t, {"a": np.array([np.nan, 1.0, np.nan, np.nan])})
    assert out == b"m a=1 1\n"
    assert encode_block("m", {}, t[:0], {"a": np.array([])}) == b""


@pytest.mark.parametrize(
    "tag",
    ["a,b", "a b", "a=b", 'q"uote', "back\\slash", "深海 ü", "x,y=z w"],
)
def test_escaping_matches_influxdb_client(tag: str) -> None:
    s = 'say "hi" \\ there, ok=1'
    ours = encode_block(
        "me as,ure", {"t k": tag}, np.array([5]), {"f=k,x": np.array([s], dtype=object)}
    )
    point = Point("me as,ure").tag("t k", tag).field("f=k,x", s).time(5, WritePrecision.NS)
    if "\\" not in tag:  # influxdb-client doubles backslashes, which InfluxDB 1.x keeps doubled
        assert ours.decode() == point.to_line_protocol() + "\n"
    assert ours.count(b"\n") == 1


@pytest.mark.parametrize(
    "bad", ["new\nline", "ends\\", "escaped\\,comma", "escaped\\ space", "cr\r"]
)
def test_unrepresentable_tags_are_refused(bad: str) -> None:
    with pytest.raises(LineProtocolError, match="tag value"):
        encode_block("m", {"k": bad}, np.array([1]), {"v": np.array([1.0])})


def test_newline_in_string_field_is_refused() -> None:
    with pytest.raises(LineProtocolError, match="newline"):
        encode_block("m", {}, np.array([1]), {"s": np.array(["a\nb"], dtype=object)})


def test_float_round_trip_precision() -> None:
    rng = np.random.default_rng(1)
    v = rng.standard_normal(1000) * 10.0 ** rng.integers(-300, 300, 1000)
    out = encode_block("m", {}, np.arange(1000), {"v": v})
    parsed = [float(line.split(b" ")[1][2:]) for line in out.splitlines()]
    assert np.array_equal(np.array(parsed), v)


def test_channels_sharing_timestamps_share_lines() -> None:
    t = np.array([10, 20], dtype=np.int64)
    q = np.zeros(2, np.uint8)
    out = encode_channels(
        "ft201",
        {"vessel": "c"},
        {"a": (t, np.array([1.0, 2.0]), q), "b": (t, np.array([3.0, 4.0]), q),
         "c": (t[:1], np.array([5.0]), q[:1])},
    )  # fmt: skip
    assert out.decode().splitlines() == [
        "ft201,vessel=c a=1,a_q=0i,b=3,b_q=0i 10",
        "ft201,vessel=c a=2,a_q=0i,b=4,b_q=0i 20",
        "ft201,vessel=c c=5,c_q=0i 10",
    ]
