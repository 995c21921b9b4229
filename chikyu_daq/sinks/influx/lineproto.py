"""InfluxDB line protocol, encoded a block at a time (no Python object per point).

`encode_block` turns columnar arrays into line-protocol bytes with pyarrow compute kernels; field
types follow the array dtypes (float64 → float, signed/unsigned integers → `i`, bool → boolean,
str/object → string). Timestamps are UTC nanoseconds. Missing values (NaN, ±inf, None) are left
out of their line, and a line left with no field is skipped, because InfluxDB rejects empty lines.
Line protocol has no NaN or infinity (InfluxDB rejects the whole batch), so no non-finite float
is ever written, whether it comes as a NumPy or an Arrow array; pass an `EncodeStats` to count
the values left out (`nonfinite_skipped`) and the lines dropped for having none (`empty_lines`).

Escaping (InfluxDB 1.x and 2.x parsers): measurement names escape `,` and space (and may not
begin with `#`, which makes the line a comment); tag keys, tag values and field keys escape `,`,
`=` and space; string field values escape `\\` and `"`.
Backslashes elsewhere are written as they are (the parsers keep a backslash that escapes nothing).
Newlines anywhere, a backslash at the end of a name or tag value, and a backslash directly before
a character that must be escaped (or before `"` in a measurement or key, which InfluxDB 1.x
unescapes there) cannot round-trip, so they raise `LineProtocolError` (a `ValueError`) naming
the value. Empty tag values are dropped (line protocol has no empty tag).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from drivers.sample import SampleBlock

__all__ = [
    "EncodeStats",
    "LineProtocolError",
    "RawEncoder",
    "encode_block",
    "encode_channels",
    "encode_point",
    "escape_key",
    "escape_measurement",
    "escape_tag_value",
]


class LineProtocolError(ValueError):
    """A name or value that line protocol cannot carry exactly."""


@dataclass
class EncodeStats:
    """What the encoder left out, for health: a value or a whole line that cannot be written."""

    nonfinite_skipped: int = 0
    empty_lines: int = 0


_KEY_SPECIAL = (",", "=", " ")
_MEAS_SPECIAL = (",", " ")


def _check_name(value: str, special: tuple[str, ...], what: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, got {type(value).__name__}: {value!r}")
    if "\n" in value or "\r" in value:
        raise LineProtocolError(f"{what} contains a newline: {value!r}")
    if value.endswith("\\"):
        raise LineProtocolError(f"{what} ends with a backslash: {value!r}")
    for ch in special:
        if "\\" + ch in value:
            raise LineProtocolError(f"{what} has a backslash before {ch!r}: {value!r}")


def _escape(value: str, special: tuple[str, ...]) -> str:
    for ch in special:
        value = value.replace(ch, "\\" + ch)
    return value


def escape_measurement(name: str) -> str:
    """Escape a measurement name (commas and spaces)."""
    _check_name(name, (*_MEAS_SPECIAL, '"'), "measurement")
    if not name:
        raise LineProtocolError("measurement name is empty")
    if name.startswith("#"):
        raise LineProtocolError(f"measurement begins with '#' (a comment line): {name!r}")
    return _escape(name, _MEAS_SPECIAL)


def escape_key(key: str) -> str:
    """Escape a tag key or field key (commas, equals signs, spaces)."""
    _check_name(key, (*_KEY_SPECIAL, '"'), "key")
    if not key:
        raise LineProtocolError("tag or field key is empty")
    return _escape(key, _KEY_SPECIAL)


def escape_tag_value(value: str) -> str:
    """Escape a tag value (commas, equals signs, spaces)."""
    _check_name(value, _KEY_SPECIAL, "tag value")
    return _escape(value, _KEY_SPECIAL)


def series_prefix(measurement: str, tags: Mapping[str, str]) -> str:
    """`measurement,tag=value,...` with tags sorted by key (InfluxDB's canonical order)."""
    parts = [escape_measurement(measurement)]
    for key in sorted(tags):
        value = tags[key]
        if value == "":
            continue
        parts.append(f"{escape_key(key)}={escape_tag_value(value)}")
    return ",".join(parts)


def _field_strings(
    key: str, values: np.ndarray | pa.Array, stats: EncodeStats | None = None
) -> pa.Array:
    """`key=value` strings for one field; null where the value is missing or not finite."""
    arr = values if isinstance(values, pa.Array) else None
    if arr is None:
        a = np.asarray(values)
        kind = a.dtype.kind
        if kind == "f":
            finite = np.isfinite(a)
            arr = pa.array(a.astype(np.float64, copy=False), mask=~finite)
            if stats is not None:
                stats.nonfinite_skipped += int(a.size - np.count_nonzero(finite))
        elif kind in "iu":
            if kind == "u" and a.dtype.itemsize == 8 and a.size and int(a.max()) > 2**63 - 1:
                raise LineProtocolError(f"field {key!r}: unsigned value above int64 range")
            arr = pa.array(a.astype(np.int64, copy=False))
        elif kind == "b":
            arr = pa.array(a)
        elif kind in "OUS":
            arr = pa.array(a, type=pa.string(), from_pandas=True)
        else:
            raise TypeError(f"field {key!r}: unsupported dtype {a.dtype}")
    elif pa.types.is_floating(arr.type):
        finite_arr = pc.is_finite(arr)  # null stays null
        if stats is not None:
            stats.nonfinite_skipped += int(pc.sum(pc.invert(finite_arr)).as_py() or 0)
        arr = pc.if_else(finite_arr, arr, pa.scalar(None, arr.type))
    t = arr.type
    prefix = pa.scalar(escape_key(key) + "=")
    if pa.types.is_floating(t):
        s = pc.cast(arr, pa.string())
        return pc.binary_join_element_wise(prefix, s, "")
    if pa.types.is_integer(t):
        s = pc.cast(pc.cast(arr, pa.int64()), pa.string())
        return pc.binary_join_element_wise(prefix, s, pa.scalar("i"), "")
    if pa.types.is_boolean(t):
        return pc.binary_join_element_wise(prefix, pc.cast(arr, pa.string()), "")
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        s = pc.cast(arr, pa.string())
        if pc.any(pc.match_substring_regex(s, r"[\r\n]")).as_py():
            bad = pc.filter(s, pc.match_substring_regex(s, r"[\r\n]"))[0].as_py()
            raise LineProtocolError(f"string field {key!r} contains a newline: {bad!r}")
        s = pc.replace_substring(s, "\\", "\\\\")
        s = pc.replace_substring(s, '"', '\\"')
        return pc.binary_join_element_wise(prefix, pa.scalar('"'), s, pa.scalar('"'), "")
    raise TypeError(f"field {key!r}: unsupported arrow type {t}")


def _to_bytes(lines: pa.Array) -> bytes:
    """The concatenated UTF-8 of a string array, straight from its data buffer."""
    if len(lines) == 0:
        return b""
    lines = lines.combine_chunks() if isinstance(lines, pa.ChunkedArray) else lines
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset :]
    start, end = int(offsets[0]), int(offsets[len(lines)])
    return lines.buffers()[2].to_pybytes()[start:end]


def encode_block(
    measurement: str,
    tags: Mapping[str, str],
    t_ns: np.ndarray,
    fields: Mapping[str, np.ndarray | pa.Array],
    stats: EncodeStats | None = None,
) -> bytes:
    """Line protocol for `len(t_ns)` points of one series, `\\n`-terminated lines.

    `fields` maps field key to an array as long as `t_ns`; its dtype picks the field type.
    Points whose every field is missing produce no line.
    """
    t = np.asarray(t_ns)
    if t.dtype.kind not in "iu":
        raise TypeError(f"t_ns must be an integer array (ns), got {t.dtype}")
    n = len(t)
    if not fields or n == 0:
        return b""
    for key, values in fields.items():
        if len(values) != n:
            raise ValueError(f"field {key!r} has {len(values)} values, t_ns has {n}")
    if n <= SMALL_BLOCK and all(_numeric(v) for v in fields.values()):
        return _encode_small(measurement, tags, t, fields, stats)
    parts = [_field_strings(key, values, stats) for key, values in fields.items()]
    # Each present field becomes "k=v," and a missing one "": pyarrow 26's null_handling="skip"
    # drops whole rows, so the separator is carried by the parts and the last one cut off.
    comma = pa.scalar(",")
    padded = [pc.fill_null(pc.binary_join_element_wise(p, comma, ""), "") for p in parts]
    joined = padded[0] if len(padded) == 1 else pc.binary_join_element_wise(*padded, "")
    keep = pc.not_equal(pc.binary_length(joined), 0)
    joined = pc.utf8_slice_codeunits(joined, 0, -1)
    ts = pc.cast(pa.array(t.astype(np.int64, copy=False)), pa.string())
    head = pa.scalar(series_prefix(measurement, tags) + " ")
    lines = pc.binary_join_element_wise(head, joined, pa.scalar(" "), ts, pa.scalar("\n"), "")
    if not pc.all(keep).as_py():
        lines = pc.filter(lines, keep)
        if stats is not None:
            stats.empty_lines += n - len(lines)
    return _to_bytes(lines)


#: Up to this many points, `encode_block` joins the lines in Python around one float-to-text
#: cast (a live tick's second of results: ~50 fields, one point) instead of a dozen pyarrow
#: calls per field; the bytes are the same (tests compare both paths).
SMALL_BLOCK = 16


def _numeric(values: Any) -> bool:
    """A NumPy float, signed or small unsigned integer column: what `_encode_small` takes."""
    if not isinstance(values, np.ndarray) or values.ndim != 1:
        return False
    kind = values.dtype.kind
    return kind in "fi" or (kind == "u" and values.dtype.itemsize < 8)


def _encode_small(
    measurement: str,
    tags: Mapping[str, str],
    t: np.ndarray,
    fields: Mapping[str, np.ndarray],
    stats: EncodeStats | None,
) -> bytes:
    """`encode_block`'s bytes for a few points of NumPy numeric fields."""
    floats = [k for k, v in fields.items() if v.dtype.kind == "f"]
    text: dict[str, list[str | None]] = {}
    if floats:
        flat = np.concatenate([fields[k] for k in floats]).astype(np.float64, copy=False)
        finite = np.isfinite(flat)
        if stats is not None:
            stats.nonfinite_skipped += int(flat.size - np.count_nonzero(finite))
        cast = pc.cast(pa.array(flat, mask=~finite), pa.string()).to_pylist()
        n = len(t)
        text = {k: cast[i * n : (i + 1) * n] for i, k in enumerate(floats)}
    cols: list[list[str | None]] = []
    for key, values in fields.items():
        kv = _key_eq(key)
        if key in text:
            cols.append([None if s is None else kv + s for s in text[key]])
        else:
            cols.append([f"{kv}{x}i" for x in values.astype(np.int64, copy=False).tolist()])
    head = _series_head(measurement, tuple(sorted(tags.items())))
    out = []
    for i, ts in enumerate(t.astype(np.int64, copy=False).tolist()):
        body = ",".join([s for c in cols if (s := c[i]) is not None])
        if body:
            out.append(f"{head}{body} {ts}\n")
        elif stats is not None:
            stats.empty_lines += 1
    return "".join(out).encode()


def encode_channels(
    measurement: str,
    tags: Mapping[str, str],
    channels: Mapping[str, SampleBlock],
    stats: EncodeStats | None = None,
) -> bytes:
    """Raw samples of one device: field `<name>` = value and `<name>_q` = quality (integer).

    Channels that share one timestamp array (polled together) share lines; the others get their
    own lines, which InfluxDB merges by series and timestamp.
    """
    groups: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
    for name, (t, v, q) in channels.items():
        for gt, gfields in groups:
            if len(gt) == len(t) and np.array_equal(gt, t):
                gfields[name] = v
                gfields[name + "_q"] = q
                break
        else:
            groups.append((np.asarray(t), {name: v, name + "_q": q}))
    return b"".join(encode_block(measurement, tags, gt, gf, stats) for gt, gf in groups)


class RawEncoder:
    """One tick of raw samples (`"device.channel"` → `(t_ns, value, quality)`) as line protocol.

    The same bytes as `encode_channels` device by device (devices and channels in the order
    given; channels of a device with equal timestamps share lines), at a fraction of the cost
    for the live path's small blocks (a few samples per channel, 20 ticks a second): the split
    of each channel id and every escaped key and series prefix are computed once per channel
    and kept; channels are grouped by the bytes of their timestamps; one float-to-text cast
    (pyarrow's, as `encode_block`) serves the whole tick and the lines are joined once.
    Blocks of other dtypes (not int64 time, float value, integer quality) take `encode_channels`.
    """

    def __init__(self, tags: Mapping[str, str]) -> None:
        self.tags = dict(tags)
        self._prefix: dict[str, str] = {}  # device -> "measurement,tags "
        self._keys: dict[str, tuple[str, str, str]] = {}  # channel id -> (device, "k=", "k_q=")
        self._names: dict[str, set[str]] = {}  # device -> field keys seen
        #: devices where one channel's value key is another's quality key (`a_q` beside `a`):
        #: `encode_channels` merges those fields, so such a device's ticks take that path
        self._clash: set[str] = set()

    def _key(self, ch: str) -> tuple[str, str, str]:
        dev, _, name = ch.partition(".")
        key = (dev, escape_key(name) + "=", escape_key(name + "_q") + "=")
        if dev not in self._prefix:
            self._prefix[dev] = series_prefix(dev, self.tags) + " "
        names = self._names.setdefault(dev, set())
        if name in names or name + "_q" in names:
            self._clash.add(dev)
        names.update((name, name + "_q"))
        self._keys[ch] = key
        return key

    def encode(self, blocks: Mapping[str, SampleBlock], stats: EncodeStats | None = None) -> bytes:
        keys = self._keys
        clash = self._clash
        # device -> timestamp bytes -> (t, [(value key, quality key, start in values), ...])
        devices: dict[str, dict[bytes, tuple[np.ndarray, list[tuple[str, str, int]]]]] = {}
        values: list[np.ndarray] = []
        quality: list[np.ndarray] = []
        start = 0
        for ch, (t, v, q) in blocks.items():
            # exact dtype singletons first: the live path's arrays, without `_plain`'s checks
            if not (
                type(t) is _NDARRAY
                and type(v) is _NDARRAY
                and type(q) is _NDARRAY
                and t.dtype is _INT64
                and v.dtype is _FLOAT64
                and q.dtype is _UINT8
                and t.ndim == 1
                and v.shape == t.shape == q.shape
            ) and not _plain(t, v, q):
                return self._fallback(blocks, stats)
            dev, kv, kq = keys.get(ch) or self._key(ch)
            if dev in clash:
                return self._fallback(blocks, stats)
            groups = devices.get(dev)
            if groups is None:
                groups = devices[dev] = {}
            group = groups.get(tb := t.tobytes())
            if group is None:
                group = groups[tb] = (t, [])
            group[1].append((kv, kq, start))
            values.append(v)
            quality.append(q)
            start += len(v)
        if not values:
            return b""
        flat = np.concatenate(values).astype(np.float64, copy=False)
        finite = np.isfinite(flat)
        if stats is not None:
            stats.nonfinite_skipped += int(flat.size - np.count_nonzero(finite))
        text = pc.cast(pa.array(flat, mask=~finite), pa.string()).to_pylist()
        qs = np.concatenate(quality).astype(np.int64, copy=False).tolist()  # one conversion
        out: list[str] = []
        for dev, groups in devices.items():
            prefix = self._prefix[dev]
            for t, chans in groups.values():
                for i, ts in enumerate(t.tolist()):
                    parts = []
                    for kv, kq, j in chans:
                        s = text[j + i]
                        if s is not None:
                            parts.append(kv + s)
                        parts.append(f"{kq}{qs[j + i]}i")
                    out.append(f"{prefix}{','.join(parts)} {ts}\n")
        return "".join(out).encode()

    def _fallback(self, blocks: Mapping[str, SampleBlock], stats: EncodeStats | None) -> bytes:
        per_device: dict[str, dict[str, SampleBlock]] = {}
        for ch, arrays in blocks.items():
            dev, _, name = ch.partition(".")
            per_device.setdefault(dev, {})[name] = arrays
        return b"".join(
            encode_channels(d, self.tags, chans, stats) for d, chans in per_device.items()
        )


_NDARRAY = np.ndarray
_INT64, _FLOAT64, _UINT8 = np.dtype(np.int64), np.dtype(np.float64), np.dtype(np.uint8)


def _plain(t: Any, v: Any, q: Any) -> bool:
    """The live path's dtypes, equal lengths: what `RawEncoder`'s fast path handles."""
    return (
        isinstance(t, np.ndarray)
        and isinstance(v, np.ndarray)
        and isinstance(q, np.ndarray)
        and t.dtype == np.int64
        and v.dtype.kind == "f"
        and (q.dtype.kind == "i" or (q.dtype.kind == "u" and q.dtype.itemsize < 8))
        and t.ndim == v.ndim == q.ndim == 1
        and len(t) == len(v) == len(q)
    )


@functools.lru_cache(maxsize=4096)
def _key_eq(key: str) -> str:
    return escape_key(key) + "="


@functools.lru_cache(maxsize=256)
def _series_head(measurement: str, tags: tuple[tuple[str, str], ...]) -> str:
    return series_prefix(measurement, dict(tags)) + " "


def encode_point(
    measurement: str,
    tags: Mapping[str, str],
    t_ns: int,
    fields: Mapping[str, float],
    stats: EncodeStats | None = None,
) -> bytes:
    """One line of float fields (the `daq` health point): the bytes `encode_block` writes for
    one point of float64 fields, with one float-to-text cast for the whole line and the keys
    and series prefix escaped once per process."""
    if not fields:
        return b""
    values = np.fromiter(fields.values(), np.float64, len(fields))
    finite = np.isfinite(values)
    if stats is not None:
        stats.nonfinite_skipped += int(values.size - np.count_nonzero(finite))
    if not finite.any():
        if stats is not None:
            stats.empty_lines += 1
        return b""
    text = pc.cast(pa.array(values, mask=~finite), pa.string()).to_pylist()
    body = ",".join(_key_eq(k) + s for k, s in zip(fields, text, strict=True) if s is not None)
    head = _series_head(measurement, tuple(sorted(tags.items())))
    return f"{head}{body} {int(t_ns)}\n".encode()
