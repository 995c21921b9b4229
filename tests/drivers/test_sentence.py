"""Densitometer sentences: checksum, resync after noise (hypothesis), gaps and status quality."""

from __future__ import annotations

import functools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.sample import Quality
from drivers.sentence import (
    MAX_SENTENCE_BYTES,
    Sentence,
    SentenceDecoder,
    SentenceParser,
    nmea_checksum,
)
from drivers.spec import SentenceMap
from tests.drivers.helpers import reference_cfg


def line(body: str) -> bytes:
    cs = functools.reduce(lambda a, b: a ^ b, body.encode(), 0)
    return f"${body}*{cs:02X}\r\n".encode()


ICD_EXAMPLE = "PDNS,1742,1098.37,18.4,52113,0000"


def test_icd_example_checksum() -> None:
    raw = line(ICD_EXAMPLE)
    p = SentenceParser()
    assert p.feed(raw) == [Sentence("PDNS", ("1742", "1098.37", "18.4", "52113", "0000"))]
    # a single flipped digit is a checksum error: dropped, counted, stream goes on
    assert p.feed(raw.replace(b"1098", b"1099") + raw) == [
        Sentence("PDNS", ("1742", "1098.37", "18.4", "52113", "0000"))
    ]
    assert p.bad_frames == 1


def test_byte_by_byte_truncated_and_overlong() -> None:
    p = SentenceParser()
    out = []
    stream = (
        line(ICD_EXAMPLE)[:20]
        + line("PDNSD,87.5,1325,3600")
        + b"$"
        + b"X" * 500
        + line(ICD_EXAMPLE)
    )
    for b in stream:
        out.extend(p.feed(bytes([b])))
    assert [s.tag for s in out] == ["PDNSD", "PDNS"]
    assert p.bad_frames >= 2


valid_bodies = st.builds(
    lambda seq, d, t, c, s: f"PDNS,{seq},{d:.2f},{t:.1f},{c},{s:04X}",
    st.integers(0, 65535),
    st.floats(900, 2000),
    st.floats(-5, 60),
    st.integers(0, 10**6),
    st.integers(0, 0xFFFF),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.binary(max_size=80), valid_bodies), min_size=1, max_size=20),
    st.binary(max_size=40),
    st.integers(1, 64),
)
def test_noise_between_sentences_never_loses_valid_ones(
    items: list[tuple[bytes, str]], tail: bytes, chunk: int
) -> None:
    stream = b"".join(noise + line(body) for noise, body in items) + tail
    p = SentenceParser()
    got: list[Sentence] = []
    for i in range(0, len(stream), chunk):
        got.extend(p.feed(stream[i : i + chunk]))
    want = [Sentence(b.split(",")[0], tuple(b.split(",")[1:])) for _, b in items]
    # noise could by chance spell a valid sentence; every real one must still be there, in order
    it = iter(got)
    assert all(any(g == w for g in it) for w in want)
    assert len(got) - len(want) <= sum(n.count(b"$") for n, _ in items)


def decoder() -> SentenceDecoder:
    return SentenceDecoder("dt201", reference_cfg().sentences["pdns"])


def test_decode_values_bits_quality() -> None:
    d = decoder()
    (s,) = SentenceParser().feed(line(ICD_EXAMPLE))
    b = d.decode(s, 42)
    assert b is not None
    assert b.samples["dt201.density"] == (42, 1098.37, Quality.GOOD)
    assert b.samples["dt201.count_rate"].value == 52113
    for status, q in [
        ("0001", Quality.UNCERTAIN),
        ("0008", Quality.UNCERTAIN),
        ("0004", Quality.BAD),
        ("0010", Quality.BAD),
        ("0013", Quality.BAD),
    ]:
        b = d.decode(Sentence("PDNS", ("1", "1050.00", "18.4", "5", status)), 1)
        assert b is not None and b.samples["dt201.density"].quality == q, status
    assert b.samples["dt201.hold"].value == 1.0 and b.samples["dt201.low_count_rate"].value == 1.0


def test_sequence_gaps_wrap_and_ignored_types() -> None:
    d = decoder()

    def s(seq: int) -> Sentence:
        return Sentence("PDNS", (str(seq), "1050.00", "18.4", "5", "0000"))

    for seq in (65534, 65535, 0, 1, 4, 5):
        d.decode(s(seq), 0)
    assert (d.seq_gaps, d.lost_sentences) == (1, 2)
    assert d.decode(Sentence("PDNSD", ("87.5", "1325", "60")), 0) is None
    assert d.decode(Sentence("PDNS", ("9", "abc", "18.4", "5", "0000")), 0) is None
    assert (d.ignored, d.bad_frames) == (1, 1)


@pytest.mark.parametrize("junk", [b"\x00\xff\xfe", b"$$$$", b"*\r\n", b"$PDNS,1*ZZ\r\n", b"\n\n\n"])
def test_junk_alone_is_harmless(junk: bytes) -> None:
    p = SentenceParser()
    assert p.feed(junk * 10) == []
    assert p.feed(line(ICD_EXAMPLE)) != []


# --- hostile input (issue 10 item 8) ----------------------------------------------------------


def test_checksum_must_be_two_uppercase_hex_digits() -> None:
    """The ICD's checksum is 2 uppercase hex digits; `int(x, 16)` alone took lowercase too."""
    body = next(
        b
        for status in range(0x10000)
        if not f"{nmea_checksum((b := f'PDNS,1,1050.00,18.4,5,{status:04X}').encode()):02X}"[
            1
        ].isdigit()
    )
    cs = f"{nmea_checksum(body.encode()):02X}"
    p = SentenceParser()
    for wrong in (cs.lower(), cs[0] + cs[1].lower()):
        assert p.feed(f"${body}*{wrong}\r\n".encode()) == [], wrong
    assert p.feed(f"${body}* {cs}\r\n".encode()) == []  # 3 characters after `*`
    assert (p.sentences, p.bad_frames) == (0, 3)
    assert len(p.feed(f"${body}*{cs}\r\n".encode())) == 1


def s_seq(seq: int) -> Sentence:
    return Sentence("PDNS", (str(seq), "1050.00", "18.4", "5", "0000"))


def test_stray_sentence_is_a_resync_not_65535_lost() -> None:
    d = decoder()
    for seq in (1740, 1741, 1742, 1739, 1743, 1744):  # 1739: a stray old sentence
        assert d.decode(s_seq(seq), 0) is not None
    assert (d.lost_sentences, d.seq_gaps, d.seq_resyncs) == (0, 0, 1)


def test_device_restart_is_one_resync() -> None:
    d = decoder()
    for seq in (30000, 30001, 0, 1, 2, 4):  # restarted at 0; then one real loss (3)
        d.decode(s_seq(seq), 0)
    assert (d.lost_sentences, d.seq_gaps, d.seq_resyncs) == (1, 1, 1)


@pytest.mark.parametrize(
    "fields",
    [
        ("1", "1050.00", "18.4", "5", "F" * 150),  # hex beyond float range: OverflowError before
        ("1", "1050.00", "18.4", "9" * 400, "0000"),
        ("1", "1_050.5", "18.4", "5", "0000"),  # Python-only number syntax
        ("1", " 1050.00", "18.4", "5", "0000"),
        ("1", "1050.00", "18.4", "5", "0x10"),
        ("1", "", "18.4", "5", "0000"),
    ],
)
def test_malformed_fields_are_bad_frames(fields: tuple[str, ...]) -> None:
    d = decoder()
    assert d.decode(Sentence("PDNS", fields), 0) is None
    assert d.bad_frames == 1


@pytest.mark.parametrize(
    ("density", "reason"),
    [
        ("inf", "non_finite"),
        ("NaN", "non_finite"),
        ("1e30", "out_of_range"),
        ("-5", "out_of_range"),
    ],
)
def test_absurd_density_is_bad_with_reason(density: str, reason: str) -> None:
    d = decoder()
    b = d.decode(Sentence("PDNS", ("1", density, "18.4", "5", "0000")), 7)
    assert b is not None
    assert math.isnan(b.samples["dt201.density"].value)
    assert b.samples["dt201.density"].quality == Quality.BAD
    assert b.samples["dt201.temperature"] == (7, 18.4, Quality.GOOD)
    assert d.rejections.counts == {"density": {reason: 1}}


def test_sequence_number_out_of_its_range_is_bad_and_ignored() -> None:
    d = decoder()
    for seq in (10, 11, 70000, -3, 12):
        b = d.decode(s_seq(seq), 0)
        assert b is not None
        assert (b.samples["dt201.seq"].quality == Quality.BAD) == (seq not in (10, 11, 12))
    assert (d.lost_sentences, d.seq_gaps, d.seq_resyncs) == (0, 0, 0)


# --- property-based fuzzing of parser and decoder ----------------------------------------------

#: Field texts an adversary (or a broken instrument) might send.
HOSTILE_TEXTS = [
    *("inf", "-inf", "+inf", "Infinity", "nan", "-nan", "NaN", "1e30", "1e308", "1e999"),
    *("-5", "-0", "0x10", "1_000", "1e-400", ".", "FFFF", "", " 1", "F" * 40, "9" * 40),
]
hostile_text = st.one_of(
    st.sampled_from(HOSTILE_TEXTS),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.text(alphabet="0123456789abcdefABCDEF.+-eE ,*$", max_size=12),
)
hostile_body = st.builds(
    lambda tag, fields: ",".join([tag, *fields]),
    st.sampled_from(["PDNS", "PDNS", "PDNS", "PDNSD", "GPZDA", ""]),
    st.lists(hostile_text, max_size=7),
)
#: Well-formed PDNS sentences, one field replaced by hostile text (the decoder's real input).
pdns_hostile = st.builds(
    lambda body, i, text: ",".join(f if k != i else text for k, f in enumerate(body.split(","))),
    valid_bodies,
    st.integers(1, 5),
    hostile_text,
)
piece = st.one_of(
    pdns_hostile.map(lambda b: line(b.replace("$", "").replace("*", "").replace("\n", ""))),
    hostile_body.map(lambda b: line(b.replace("$", "").replace("*", "").replace("\n", ""))),
    valid_bodies.map(line),
    hostile_body.map(lambda b: line(b)[:-4].lower() + b"\r\n"),  # lowercase checksum
    st.binary(max_size=64),
    st.integers(1, 400).map(lambda n: b"$" * n),
    st.integers(1, 400).map(lambda n: b"$PDNS," + b"7" * n + b"\r\n"),
)


@settings(max_examples=200, deadline=2000)
@given(st.lists(piece, max_size=30), st.integers(1, 300))
def test_fuzz_parser_and_decoder(pieces: list[bytes], chunk: int) -> None:
    """Never raises, never a GOOD non-finite or out-of-span value, bounded state, counts add up."""
    stream = b"".join(pieces)
    p, d = SentenceParser(), decoder()
    lo = {  # the reference map's spans with the 10 % margin, typed in
        f.name: (a - 0.1 * (b - a), b + 0.1 * (b - a))
        for f in reference_cfg().sentences["pdns"].fields
        for a, b in [getattr(f, "range", None) or (-math.inf, math.inf)]
    }
    decoded = 0
    for i in range(0, len(stream), chunk):
        for s in p.feed(stream[i : i + chunk]):
            b = d.decode(s, i)
            if b is None:
                continue
            decoded += 1
            for ch, smp in b.samples.items():
                assert smp.quality in (Quality.GOOD, Quality.UNCERTAIN, Quality.BAD)
                if smp.quality != Quality.BAD:
                    assert math.isfinite(smp.value), (ch, smp)
                    name = ch.split(".", 1)[1]
                    if name in lo:
                        assert lo[name][0] <= smp.value <= lo[name][1], (ch, smp)
        assert p.pending <= MAX_SENTENCE_BYTES
        assert p.noise_bytes + p.framed_bytes + p.pending == min(i + chunk, len(stream))
    assert p.sentences == decoded + d.ignored + d.bad_frames
    whole = SentenceParser()  # how the stream was cut changes nothing
    assert len(whole.feed(stream)) == p.sentences
    assert (whole.bad_frames, whole.noise_bytes, whole.pending) == (
        p.bad_frames,
        p.noise_bytes,
        p.pending,
    )
    assert p.bad_frames <= stream.count(b"$")
    assert 0 <= d.lost_sentences <= (d.max_gap - 1) * max(decoded - 1, 0)
    assert d.seq_resyncs <= decoded


@settings(max_examples=200, deadline=2000)
@given(
    st.integers(0, 65535),
    st.integers(2, 40),
    st.lists(
        st.tuples(st.integers(0, 39), st.integers(1001, 64535)),
        max_size=5,
        unique_by=lambda t: t[0],
    ),
)
def test_fuzz_strays_never_count_as_lost(start: int, n: int, strays: list[tuple[int, int]]) -> None:
    """A stream +1 per sentence with strays far from it (> max gap away): nothing lost."""
    d = decoder()
    at = {pos: off for pos, off in strays if 0 < pos < n - 1}
    at = {pos: off for pos, off in at.items() if pos - 1 not in at}  # strays do not come in pairs
    for k in range(n):
        d.decode(s_seq((start + k) % 65536), 0)
        if k in at:
            d.decode(s_seq((start + k + at[k]) % 65536), 0)
    assert (d.lost_sentences, d.seq_gaps, d.seq_resyncs) == (0, 0, len(at))


def test_rule_naming_unknown_field_fails_at_start() -> None:
    data = reference_cfg().sentences["pdns"].model_dump()
    data["quality_rules"][0]["applies_to"] = ["nope"]
    with pytest.raises(ValueError, match="nope"):
        SentenceDecoder("dt201", SentenceMap.model_validate(data))
