"""NMEA-style sentence stream: bytes in, checked sentences out, nothing ever fatal.

`SentenceParser.feed` frames with one compiled pattern: a candidate is `$`, at most
`MAX_SENTENCE_BYTES` bytes without another `$` or a line feed, then `\n`. Everything between
candidates is dropped in bulk (each `$` in it counted in `bad_frames`, its bytes in
`noise_bytes`); at most one unfinished candidate is kept between calls. Work is linear in the
bytes fed, whatever they are, so hostile line noise cannot stall the event loop. A candidate
whose checksum is not two uppercase hex digits (ICD) matching the XOR is a bad frame.
`SentenceDecoder` applies a `SentenceMap`: field formats, bit channels, status-bit quality,
sequence gaps and the plausibility screen (`drivers.validity`). Unknown sentence types are
ignored (counted), as the ICD requires.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from operator import xor

from drivers.sample import Batch, Quality, Sample
from drivers.spec import SentenceMap
from drivers.validity import FINITE, Rejections, as_bits, bounds

#: Longest line from `$` to `\n` inclusive (an ICD sentence is under 50; NMEA allows 82).
MAX_SENTENCE_BYTES = 160
#: A candidate line: `$`, a body without `$` or LF (group 1, CR included), LF.
_CANDIDATE = re.compile(rb"\$([^$\n]{0,%d})\n" % (MAX_SENTENCE_BYTES - 2))
_UPPER_HEX = frozenset(b"0123456789ABCDEF")


def nmea_checksum(body: bytes) -> int:
    """XOR of every byte between `$` and `*`."""
    return reduce(xor, body, 0)


def frame_sentence(body: str) -> bytes:
    """`body` without `$`/`*`: the on-wire line, checksum and CR LF included."""
    raw = body.encode("ascii")
    return b"$" + raw + b"*" + f"{nmea_checksum(raw):02X}".encode() + b"\r\n"


@dataclass(frozen=True, slots=True)
class Sentence:
    tag: str
    fields: tuple[str, ...]


class SentenceParser:
    """Incremental framer; state is at most one unfinished candidate (`pending` bytes).

    Every byte fed ends up in exactly one of: a candidate line (`framed_bytes`, whether its
    checksum held or not), `noise_bytes`, or the pending tail.
    """

    def __init__(self) -> None:
        self._tail = b""
        self.sentences = 0
        self.bad_frames = 0
        self.noise_bytes = 0
        self.framed_bytes = 0

    @property
    def pending(self) -> int:
        return len(self._tail)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Sentence]:
        buf = self._tail + bytes(data)
        out: list[Sentence] = []
        pos = 0
        check = self._check
        for m in _CANDIDATE.finditer(buf):
            start, end = m.span()
            if start > pos:
                self._drop(buf, pos, start)
            pos = end
            self.framed_bytes += end - start
            s = check(m.group(1))
            if s is None:
                self.bad_frames += 1
            else:
                self.sentences += 1
                out.append(s)
        # keep the last `$` if it may still become a candidate; drop everything else
        last = buf.rfind(b"$", pos)
        if last >= 0 and len(buf) - last < MAX_SENTENCE_BYTES and buf.find(b"\n", last) < 0:
            self._drop(buf, pos, last)
            self._tail = buf[last:]
        else:
            self._drop(buf, pos, len(buf))
            self._tail = b""
        return out

    def _drop(self, buf: bytes, start: int, end: int) -> None:
        if end > start:
            self.noise_bytes += end - start
            self.bad_frames += buf.count(b"$", start, end)

    @staticmethod
    def _check(body: bytes) -> Sentence | None:
        """`body` between `$` and LF: checksum, ASCII, tag; None if any fails."""
        if body.endswith(b"\r"):
            body = body[:-1]
        star = len(body) - 3
        if star < 1 or body[star] != 0x2A or not _UPPER_HEX.issuperset(body[star + 1 :]):
            return None  # `*` and two uppercase hex digits end every sentence (ICD)
        payload = body[:star]
        if int(body[star + 1 :], 16) != nmea_checksum(payload):
            return None
        try:
            text = payload.decode("ascii")
        except UnicodeDecodeError:
            return None
        tag, *fields = text.split(",")
        return Sentence(tag, tuple(fields))


_QUALITY = {"uncertain": Quality.UNCERTAIN, "bad": Quality.BAD}

#: What a field's text must look like per format, and its number. Floats may spell inf/nan:
#: such a sentence is well formed, its value is screened out as BAD (`non_finite`), not lost.
_FORMATS: dict[str, tuple[re.Pattern[str], Callable[[str], float]]] = {
    "int": (re.compile(r"[+-]?[0-9]{1,18}"), lambda t: float(int(t))),
    "hex": (re.compile(r"[0-9A-Fa-f]{1,16}"), lambda t: float(int(t, 16))),
    "float": (
        re.compile(
            r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)",
            re.IGNORECASE,
        ),
        float,
    ),
}

#: Most sentences that can plausibly be lost between two received ones (8 min at 2 Hz; a
#: silence reconnects long before). A larger jump is a resync: counted, not lost sentences.
MAX_SEQ_GAP = 1000

_NAN = math.nan
_MAXF = FINITE[1]


@dataclass(frozen=True, slots=True)
class _FieldSpec:
    name: str
    position: int
    pattern: re.Pattern[str]
    number: Callable[[str], float]
    lo: float
    hi: float
    bits: tuple[tuple[int, str], ...]


class SentenceDecoder:
    """Decodes one device's sentences of `smap.tag` into batches; counts gaps and bad fields."""

    def __init__(self, device_id: str, smap: SentenceMap) -> None:
        self.device_id = device_id
        self.tag = smap.tag
        self.fields = tuple(sorted(smap.fields, key=lambda f: f.position))
        self.seq_field = smap.sequence_field
        self.modulo = smap.sequence_modulo
        self.max_gap = max(1, min(MAX_SEQ_GAP, self.modulo // 2))
        names = {f.name for f in self.fields}
        for r in smap.quality_rules:
            for n in (r.source, *r.applies_to):
                if n not in names:  # checked here too: decode must never meet a KeyError
                    raise ValueError(f"{device_id}: quality rule names unknown field {n!r}")
        self.rules = tuple(
            (r.source, r.mask, _QUALITY[r.quality], tuple(r.applies_to)) for r in smap.quality_rules
        )
        self.channels = tuple(
            ch
            for f in self.fields
            for ch in (f"{device_id}.{f.name}", *(f"{device_id}.{b}" for b in f.bits.values()))
        )
        specs = []
        for f in self.fields:
            pattern, number = _FORMATS[f.format]
            # a sequence number outside 0..modulo-1 is no sequence number
            lo, hi = (
                (0.0, float(self.modulo - 1))
                if f.name == self.seq_field and f.range is None
                else bounds(f.range)
            )
            bits = tuple((bit, f"{device_id}.{b}") for bit, b in sorted(f.bits.items()))
            specs.append(_FieldSpec(f.name, f.position, pattern, number, lo, hi, bits))
        self._specs = tuple(specs)
        self._last_seq: int | None = None
        #: an implausible sequence number seen last, waiting for a second to confirm it
        self._jump: int | None = None
        self.seq_gaps = 0
        self.lost_sentences = 0
        self.seq_resyncs = 0
        self.bad_frames = 0
        self.ignored = 0
        self.rejections = Rejections(device_id)

    def reset_sequence(self) -> None:
        """After a reconnect the next sequence number is unknown, not a gap."""
        self._last_seq = None
        self._jump = None

    def _sequence(self, seq: int) -> None:
        """Gaps up to `max_gap` are lost sentences; a larger jump is a stray or a restart.

        A jump is counted in `seq_resyncs` and adopted only when the next number follows it
        (the device restarted its count); if the next follows the old count, it was a stray.
        """
        last, mod = self._last_seq, self.modulo
        if last is None:
            self._last_seq = seq
            return
        step = (seq - last) % mod
        if step <= self.max_gap:
            if step != 1:
                self.seq_gaps += 1
                self.lost_sentences += step - 1 if step else 0
            self._last_seq, self._jump = seq, None
            return
        jump = self._jump
        if jump is not None and 1 <= (seq - jump) % mod <= self.max_gap:
            self.lost_sentences += (seq - jump) % mod - 1
            self._last_seq, self._jump = seq, None
            return
        self.seq_resyncs += 1
        self._jump = seq

    def decode(self, s: Sentence, t_ns: int) -> Batch | None:
        """One batch per sentence of our tag; None (counted) for others and malformed ones."""
        if s.tag != self.tag:
            self.ignored += 1
            return None
        raw: dict[str, float] = {}
        fields = s.fields
        try:
            for f in self._specs:
                text = fields[f.position]
                if f.pattern.fullmatch(text) is None:
                    raise ValueError(text)
                raw[f.name] = f.number(text)
        except (IndexError, ValueError, OverflowError):
            self.bad_frames += 1
            return None
        rejected: set[str] = set()
        for f in self._specs:
            v = raw[f.name]
            if not f.lo <= v <= f.hi:
                self.rejections.add(f.name, v)
                rejected.add(f.name)
        if self.seq_field is not None and self.seq_field in raw and self.seq_field not in rejected:
            self._sequence(int(raw[self.seq_field]))
        quality = {name: Quality.BAD if name in rejected else Quality.GOOD for name in raw}
        for source, mask, q, targets in self.rules:
            if as_bits(raw.get(source, 0.0)) & mask:
                for tgt in targets:
                    quality[tgt] = max(quality[tgt], q)
        out: dict[str, Sample] = {}
        dev = self.device_id
        for f in self._specs:
            v, q = raw[f.name], quality[f.name]
            if f.name in rejected:
                v = _NAN
            out[f"{dev}.{f.name}"] = Sample(t_ns, v, q)
            if f.bits:
                if -_MAXF <= v <= _MAXF:
                    iv = int(v)
                    for bit, bch in f.bits:
                        out[bch] = Sample(t_ns, float((iv >> bit) & 1), q)
                else:
                    for _, bch in f.bits:
                        out[bch] = Sample(t_ns, _NAN, Quality.BAD)
        return Batch(dev, out)
