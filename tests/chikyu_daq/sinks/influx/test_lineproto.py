"""Line-protocol encoder: types, escaping, missing values; checked against influxdb-client."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from influxdb_client import Point, WritePrecision

from chikyu_daq.sinks.influx import lineproto
from chikyu_daq.sinks.influx.lineproto import (
    EncodeStats,
    LineProtocolError,
    RawEncoder,
    encode_block,
    encode_channels,
    encode_point,
)


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


# -- a reference parser (InfluxDB 1.x rules, as measured against influxd 1.6.7) -------------------
def _take(s: str, i: int, stops: str, unescape: str) -> tuple[str, int]:
    """Read up to an unescaped stop character; `\\c` becomes `c` only for c in `unescape`."""
    out = []
    while i < len(s) and s[i] not in stops:
        if s[i] == "\\" and i + 1 < len(s) and s[i + 1] in unescape:
            out.append(s[i + 1])
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out), i


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, object], int]:
    """One line → (measurement, tags, fields, t_ns); raises on anything malformed."""
    assert not line.startswith("#"), "a comment line"
    meas, i = _take(line, 0, ", ", ', "')
    tags: dict[str, str] = {}
    while line[i] == ",":
        k, i = _take(line, i + 1, "=", ",= ")
        assert line[i] == "="
        v, i = _take(line, i + 1, ", ", ",= ")
        assert k and v
        tags[k] = v
    assert line[i] == " "
    fields: dict[str, object] = {}
    while True:
        k, i = _take(line, i + 1, "=", ',= "')
        assert line[i] == "=" and k
        i += 1
        if line[i] == '"':
            out, i = [], i + 1
            while line[i] != '"':
                if line[i] == "\\" and line[i + 1] in '\\"':
                    i += 1
                out.append(line[i])
                i += 1
            fields[k], i = "".join(out), i + 1
        else:
            j = i
            while line[j] not in ", ":
                j += 1
            raw, i = line[i:j], j
            if raw.endswith("i"):
                fields[k] = int(raw[:-1])
            elif raw in ("true", "false"):
                fields[k] = raw == "true"
            else:
                value = float(raw)
                assert math.isfinite(value), f"non-finite field {k}={raw}"
                fields[k] = value
        if line[i] == " ":
            break
        assert line[i] == ","
    return meas, tags, fields, int(line[i + 1 :])


def test_reference_parser_reads_influxdb_examples() -> None:
    line = r'm\,e\ a\"s,t\ k=v\=1 f\"k=1.5,s="a\\b\"c",i=-2i,b=true 17'
    assert parse_line(line) == ("m,e a\"s", {"t k": "v=1"}, {'f"k': 1.5, "s": 'a\\b"c', "i": -2,
                                                             "b": True}, 17)  # fmt: skip


# every character line protocol treats specially, often, among arbitrary others
CHAR = st.sampled_from(list(',= \\"#i\n')) | st.characters(codec="utf-8", exclude_categories=["Cs"])
NAME = st.text(CHAR, min_size=1, max_size=12)
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=150, deadline=None)
@given(
    meas=NAME,
    tags=st.dictionaries(NAME, st.text(CHAR, max_size=8), max_size=3),
    keys=st.lists(NAME, min_size=1, max_size=4, unique=True),
    data=st.data(),
)
def test_encoded_lines_parse_back_to_the_same_values(
    meas: str, tags: dict[str, str], keys: list[str], data: st.DataObject
) -> None:
    """Whatever the names and values: either a clear refusal, or lines that parse back exactly."""
    n = data.draw(st.integers(1, 4))
    t = np.array(data.draw(st.lists(st.integers(0, 2**62), min_size=n, max_size=n)), np.int64)
    kinds = data.draw(st.lists(st.sampled_from("fFiqbs"), min_size=len(keys), max_size=len(keys)))
    fields: dict[str, np.ndarray | pa.Array] = {}
    for key, kind in zip(keys, kinds, strict=True):
        if kind in "fF":  # NumPy and Arrow floats, non-finite included
            v = data.draw(st.lists(FLOATS, min_size=n, max_size=n))
            fields[key] = np.array(v) if kind == "f" else pa.array(v, pa.float64())
        elif kind in "iq":
            lo, hi = (-(2**63), 2**63 - 1) if kind == "i" else (0, 255)
            v = data.draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))
            fields[key] = np.array(v, np.int64 if kind == "i" else np.uint8)
        elif kind == "b":
            fields[key] = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
        else:
            text = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=8)
            fields[key] = np.array(data.draw(st.lists(text, min_size=n, max_size=n)), object)
    stats = EncodeStats()
    try:
        out = encode_block(meas, tags, t, fields, stats)
    except LineProtocolError:
        event("refused")
        return  # refused with a reason: fine, as long as nothing unparseable is written
    event("encoded")
    expected = []
    nonfinite = 0
    for row in range(n):
        want: dict[str, object] = {}
        for key, col in fields.items():
            v = col[row].as_py() if isinstance(col, pa.Array) else col[row]
            v = v.item() if isinstance(v, np.generic) else v
            if isinstance(v, float) and not math.isfinite(v):
                nonfinite += 1
                continue
            want[key] = v
        if want:
            expected.append((meas, {k: v for k, v in tags.items() if v}, want, int(t[row])))
    assert out.endswith(b"\n") or out == b""
    assert [parse_line(line) for line in out.decode().split("\n")[:-1]] == expected
    assert stats.nonfinite_skipped == nonfinite
    assert stats.empty_lines == n - len(expected)


@pytest.mark.parametrize("values", [np.array([np.inf, 1.0]), pa.array([float("nan"), 1.0])])
def test_non_finite_floats_never_reach_the_line(values: np.ndarray | pa.Array) -> None:
    stats = EncodeStats()
    out = encode_block("m", {}, np.array([1, 2]), {"x": values, "y": np.array([3.0, 4.0])}, stats)
    assert out == b"m y=3 1\nm x=1,y=4 2\n"
    assert stats.nonfinite_skipped == 1


@pytest.mark.parametrize(
    ("measurement", "tags", "key"),
    [("#comment", {}, "f"), ('q\\"m', {}, "f"), ("m", {}, 'k\\"ey'), ("m", {'t\\"k': "v"}, "f")],
)
def test_names_influxdb_would_read_differently_are_refused(
    measurement: str, tags: dict[str, str], key: str
) -> None:
    with pytest.raises(LineProtocolError):
        encode_block(measurement, tags, np.array([1]), {key: np.array([1.0])})


# -- the live path's raw encoder: the same bytes as encode_channels, device by device ----------
def _raw_reference(
    tags: dict[str, str],
    blocks: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    stats: EncodeStats,
) -> bytes:
    """What `Outputs.write_raw` spooled before `RawEncoder`: regroup by device, encode each."""
    per_device: dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for ch, arrays in blocks.items():
        dev, _, name = ch.partition(".")
        per_device.setdefault(dev, {})[name] = arrays
    return b"".join(encode_channels(d, tags, c, stats) for d, c in per_device.items())


_FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 1e-7, 1e21, 123456789012345680.0, 5e-324, 330.25]),
)


@st.composite
def _ticks(draw: st.DrawFn) -> list[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """A few ticks over one channel set: shared and private timestamps, odd names, NaN/inf."""
    devices = draw(
        st.lists(
            st.sampled_from(["p101a", "ft 201", "a,b", "x=y"]), min_size=1, max_size=3, unique=True
        )
    )
    names = st.sampled_from(["a", "a_q", "a_q_q", "b c", "x,y", "k=v", "speed"])
    chans = [
        f"{d}.{n}"
        for d in devices
        for n in draw(st.lists(names, min_size=1, max_size=4, unique=True))
    ]
    chans = draw(st.permutations(chans))
    ticks = []
    for _ in range(draw(st.integers(1, 3))):
        stamps = st.sets(st.sampled_from([0, 1, 2**62, -(2**62)]), max_size=3)  # near-misses
        shared = np.array(sorted(draw(stamps)), np.int64)
        tick = {}
        for ch in chans:
            t = shared if draw(st.booleans()) else np.array(sorted(draw(stamps)), np.int64)
            v = np.array(draw(st.lists(_FLOATS, min_size=len(t), max_size=len(t))), np.float64)
            q = np.array(
                draw(st.lists(st.integers(0, 2), min_size=len(t), max_size=len(t))), np.uint8
            )
            tick[ch] = (t.copy(), v, q)
        ticks.append(tick)
    return ticks


@settings(max_examples=150, deadline=None)
@given(_ticks())
def test_raw_encoder_writes_the_bytes_encode_channels_writes(
    ticks: list[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]],
) -> None:
    tags = {"vessel": "chikyu", "run": "r 1"}
    enc = RawEncoder(tags)
    for tick in ticks:  # one encoder over several ticks: its caches must not leak between them
        ours, theirs = EncodeStats(), EncodeStats()
        try:
            expected = _raw_reference(tags, tick, theirs)
        except LineProtocolError:
            with pytest.raises(LineProtocolError):
                enc.encode(tick, ours)
            continue
        assert enc.encode(tick, ours) == expected
        assert ours == theirs


def test_raw_encoder_on_other_dtypes_matches_too() -> None:
    """float32 values, int64 quality: outside the fast path, same bytes."""
    t = np.array([10, 20], np.int64)
    blocks = {
        "d.a": (t, np.array([1.5, np.nan], np.float32), np.array([0, 2], np.int64)),
        "d.b": (t, np.array([2.0, 3.0]), np.array([1, 1], np.uint64)),
    }
    ours, theirs = EncodeStats(), EncodeStats()
    assert RawEncoder({"run": "r"}).encode(blocks, ours) == _raw_reference(
        {"run": "r"}, blocks, theirs
    )
    assert ours == theirs and ours.nonfinite_skipped == 1


def test_raw_encoder_mixing_exact_and_other_dtypes_in_one_tick_matches() -> None:
    """Channels on the exact-dtype shortcut beside channels that need the general check
    (float32 values, int16 and int64 quality, a non-contiguous view) share one tick's lines."""
    t = np.array([10, 20, 30], np.int64)
    wide = np.array([[1.0, 9.0], [np.inf, 9.0], [3.0, 9.0]])
    blocks = {
        "d.a": (t, np.array([1.5, np.nan, 2.5]), np.array([0, 2, 1], np.uint8)),
        "d.b": (t.copy(), np.array([2.0, 3.0, 4.0], np.float32), np.array([1, 1, 0], np.int16)),
        "d.c": (t, wide[:, 0], np.array([0, 0, 7], np.int64)),
        "e.x": (t[:2], np.array([5.0, 6.0]), np.array([0, 0], np.uint8)),
    }
    ours, theirs = EncodeStats(), EncodeStats()
    assert RawEncoder({"run": "r"}).encode(blocks, ours) == _raw_reference(
        {"run": "r"}, blocks, theirs
    )
    assert ours == theirs and ours.nonfinite_skipped == 2


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["a", "b c", "x,y", "k=v", "mqtt_connected", "z"]), _FLOATS, max_size=5
    ),
    st.integers(-(2**62), 2**62),
)
def test_encode_point_writes_the_bytes_encode_block_writes(
    fields: dict[str, float], t_ns: int
) -> None:
    """The health point: one line of float fields, as `encode_block` writes it for one row."""
    tags = {"vessel": "chikyu", "run": "r,1"}
    ours, theirs = EncodeStats(), EncodeStats()
    cols = {k: np.array([v]) for k, v in fields.items()}
    expected = encode_block("daq", tags, np.array([t_ns], np.int64), cols, theirs)
    assert encode_point("daq", tags, t_ns, fields, ours) == expected
    assert ours == theirs


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(["f8", "f4", "i8", "i4", "u1", "u2"]), min_size=1, max_size=6),
    st.integers(1, lineproto.SMALL_BLOCK),
    st.data(),
)
def test_small_blocks_write_the_bytes_of_the_arrow_path(
    dtypes: list[str], n: int, data: st.DataObject
) -> None:
    """A live tick's few points take the Python join (`SMALL_BLOCK`); the bytes and the counts
    are those of the pyarrow path that every bigger block takes."""
    t = np.array(data.draw(st.lists(st.integers(0, 2**62), min_size=n, max_size=n)), np.int64)
    fields: dict[str, np.ndarray] = {}
    for k, dt in enumerate(dtypes):
        if dt[0] == "f":
            vals = st.floats(allow_nan=True, allow_infinity=True, width=32 if dt == "f4" else 64)
        else:
            info = np.iinfo(np.dtype(dt))
            vals = st.integers(int(info.min), int(info.max))
        col = data.draw(st.lists(vals, min_size=n, max_size=n))
        fields[f"k {k},x=" if k % 2 else f"f{k}"] = np.array(col, np.dtype(dt))
    tags = {"vessel": "chikyu", "run": "r 1", "empty": ""}
    fast, slow = EncodeStats(), EncodeStats()
    ours = encode_block("yield", tags, t, fields, fast)
    small = lineproto.SMALL_BLOCK
    lineproto.SMALL_BLOCK = 0
    try:
        theirs = encode_block("yield", tags, t, fields, slow)
    finally:
        lineproto.SMALL_BLOCK = small
    assert ours == theirs
    assert fast == slow
