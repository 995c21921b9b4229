"""NMEA-style sentence stream: bytes in, checked sentences out, nothing ever fatal.

`SentenceParser.feed` resynchronises on every `$`, so line noise, a truncated line or a wrong
checksum costs that sentence only (counted in `bad_frames`). `SentenceDecoder` applies a
`SentenceMap`: field formats, bit channels, status-bit quality and sequence gaps. Unknown
sentence types are ignored (counted), as the ICD requires.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.sample import Batch, Quality, Sample
from drivers.spec import SentenceMap

MAX_SENTENCE_BYTES = 160


def nmea_checksum(body: bytes) -> int:
    """XOR of every byte between `$` and `*`."""
    cs = 0
    for b in body:
        cs ^= b
    return cs


def frame_sentence(body: str) -> bytes:
    """`body` without `$`/`*`: the on-wire line, checksum and CR LF included."""
    raw = body.encode("ascii")
    return b"$" + raw + b"*" + f"{nmea_checksum(raw):02X}".encode() + b"\r\n"


@dataclass(frozen=True, slots=True)
class Sentence:
    tag: str
    fields: tuple[str, ...]


class SentenceParser:
    """Incremental framer; state is the unfinished tail of the stream."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.sentences = 0
        self.bad_frames = 0
        self.noise_bytes = 0

    def feed(self, data: bytes) -> list[Sentence]:
        buf = self._buf
        buf += data
        out: list[Sentence] = []
        while True:
            start = buf.find(b"$")
            if start < 0:
                self.noise_bytes += len(buf)
                buf.clear()
                break
            if start:
                self.noise_bytes += start
                del buf[:start]
            nxt = buf.find(b"$", 1)
            eol = buf.find(b"\n")
            if nxt >= 0 and (eol < 0 or nxt < eol):
                self.bad_frames += 1  # a new sentence began before this one ended
                del buf[:nxt]
                continue
            if eol < 0:
                if len(buf) > MAX_SENTENCE_BYTES:
                    self.bad_frames += 1
                    del buf[:1]
                    continue
                break
            line = bytes(buf[1:eol]).rstrip(b"\r")
            del buf[: eol + 1]
            s = self._check(line)
            if s is None:
                self.bad_frames += 1
            else:
                self.sentences += 1
                out.append(s)
        return out

    @staticmethod
    def _check(line: bytes) -> Sentence | None:
        star = line.rfind(b"*")
        if star < 0 or len(line) - star != 3:
            return None
        try:
            cs = int(line[star + 1 :], 16)
            text = line[:star].decode("ascii")
        except (ValueError, UnicodeDecodeError):
            return None
        if cs != nmea_checksum(line[:star]) or not text:
            return None
        tag, *fields = text.split(",")
        return Sentence(tag, tuple(fields))


_QUALITY = {"uncertain": Quality.UNCERTAIN, "bad": Quality.BAD}


class SentenceDecoder:
    """Decodes one device's sentences of `smap.tag` into batches; counts gaps and bad fields."""

    def __init__(self, device_id: str, smap: SentenceMap) -> None:
        self.device_id = device_id
        self.tag = smap.tag
        self.fields = tuple(sorted(smap.fields, key=lambda f: f.position))
        self.seq_field = smap.sequence_field
        self.modulo = smap.sequence_modulo
        self.rules = tuple(
            (r.source, r.mask, _QUALITY[r.quality], tuple(r.applies_to)) for r in smap.quality_rules
        )
        self.channels = tuple(
            ch
            for f in self.fields
            for ch in (f"{device_id}.{f.name}", *(f"{device_id}.{b}" for b in f.bits.values()))
        )
        self._last_seq: int | None = None
        self.seq_gaps = 0
        self.lost_sentences = 0
        self.bad_frames = 0
        self.ignored = 0

    def reset_sequence(self) -> None:
        """After a reconnect the next sequence number is unknown, not a gap."""
        self._last_seq = None

    def decode(self, s: Sentence, t_ns: int) -> Batch | None:
        if s.tag != self.tag:
            self.ignored += 1
            return None
        raw: dict[str, float] = {}
        try:
            for f in self.fields:
                text = s.fields[f.position]
                if f.format == "int":
                    raw[f.name] = float(int(text))
                elif f.format == "hex":
                    raw[f.name] = float(int(text, 16))
                else:
                    raw[f.name] = float(text)
        except (IndexError, ValueError):
            self.bad_frames += 1
            return None
        if self.seq_field is not None and self.seq_field in raw:
            seq = int(raw[self.seq_field])
            if self._last_seq is not None:
                step = (seq - self._last_seq) % self.modulo
                if step != 1:
                    self.seq_gaps += 1
                    self.lost_sentences += step - 1 if step else 0
            self._last_seq = seq
        quality = {name: Quality.GOOD for name in raw}
        for source, mask, q, targets in self.rules:
            if int(raw.get(source, 0)) & mask:
                for tgt in targets:
                    quality[tgt] = max(quality[tgt], q)
        out: dict[str, Sample] = {}
        dev = self.device_id
        for f in self.fields:
            v, q = raw[f.name], quality[f.name]
            out[f"{dev}.{f.name}"] = Sample(t_ns, v, q)
            for bit, bname in f.bits.items():
                out[f"{dev}.{bname}"] = Sample(t_ns, float((int(v) >> bit) & 1), q)
        return Batch(dev, out)
