"""Densitometer sentences: checksum, resync after noise (hypothesis), gaps and status quality."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.sample import Quality
from drivers.sentence import Sentence, SentenceDecoder, SentenceParser
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
