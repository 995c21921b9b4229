"""Lab assay validation (ICD "Lab assays")."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from chikyu_daq.config.model import LabAssays
from chikyu_daq.sinks.assay import REASONS, Assay, AssayError, AssayGate, DuplicateAssay
from chikyu_daq.sinks.assay import parse_assay as _parse_assay
from chikyu_daq.store.events import decode, encode

T_EXAMPLE_NS = 1_769_915_520_000_000_000  # 2026-02-01T03:12:00Z, the ICD example's sampled_at
NOW_NS = T_EXAMPLE_NS + 3_600 * 10**9  # "now" for these tests: an hour after the sample


def parse_assay(payload: bytes | str) -> Assay:
    return _parse_assay(payload, now_ns=NOW_NS)


GOOD = {
    "sample_id": "MTS-26-0142",
    "sampled_at": "2026-02-01T03:12:00Z",
    "rey_ppm": 2150.0,
    "u_rey_ppm": 120.0,
    "dy_ppm": 78.0,
    "tb_ppm": 12.5,
}


def test_icd_example_is_accepted() -> None:
    a = parse_assay(json.dumps(GOOD).encode())
    assert a.rey_ppm == 2150.0 and a.tb_ppm == 12.5
    assert a.sampled_at_ns == T_EXAMPLE_NS
    ev = a.to_event()  # recorded at its sampling time, and read back the same
    assert ev.t_ns == T_EXAMPLE_NS and ev.sample_id == GOOD["sample_id"]
    assert decode(json.loads(json.dumps(encode(ev)))) == ev


def test_offsets_are_converted_to_utc() -> None:
    a = parse_assay(json.dumps({**GOOD, "sampled_at": "2026-02-01T12:12:00+09:00"}))
    assert a.sampled_at_ns == T_EXAMPLE_NS


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"rey_ppm": 0}, "rey_ppm"),
        ({"u_rey_ppm": -1.0}, "u_rey_ppm"),
        ({"dy_ppm": -2.0}, "dy_ppm"),
        ({"sampled_at": "2026-02-01T03:12:00"}, "timezone"),
        ({"sampled_at": 1769915520}, "ISO"),
        ({"sample_id": ""}, "sample_id"),
        ({"colour": "grey"}, "unknown key"),
        ({"rey_ppm": "lots"}, "rey_ppm"),
    ],
)
def test_invalid_fields_give_the_reason(change: dict[str, object], reason: str) -> None:
    with pytest.raises(AssayError, match=reason):
        parse_assay(json.dumps({**GOOD, **change}))


@pytest.mark.parametrize("payload", [b"\xff\xfe", b"{", b"[]", b'"x"', b"NaN"])
def test_non_objects_are_rejected(payload: bytes) -> None:
    with pytest.raises(AssayError):
        parse_assay(payload)


def test_missing_key_and_nan() -> None:
    doc = {k: v for k, v in GOOD.items() if k != "rey_ppm"}
    with pytest.raises(AssayError, match="rey_ppm"):
        parse_assay(json.dumps(doc))
    with pytest.raises(AssayError, match="rey_ppm"):
        parse_assay(json.dumps({**GOOD, "rey_ppm": float("nan")}))


# -- hostile input: every case of issue 10 and a few more ------------------------------------
def _doc(**change: object) -> str:
    return json.dumps({**GOOD, **change})


HOUR_NS = 3_600 * 10**9


@pytest.mark.parametrize(
    ("payload", "reason", "says"),
    [
        (b"[" * 100_000, "size", "100000 bytes"),
        ("[" * 3_000, "depth", "nested deeper"),  # fits the size bound, would still recurse
        ('{"a": [[[1]]]}', "depth", "nested deeper"),
        (b"\xff" + b"{}", "encoding", "UTF-8"),
        (b"1" * 5_000, "size", "exceeds"),
        (_doc()[:-1] + ', "dy_ppm": 1' + "0" * 3_900 + "}", "schema", "dy_ppm"),  # 1e3900
        ("[1, 2]", "json", "JSON object"),
        (_doc(rey_ppm=1e6), "range", "rey_ppm 1e+06 outside"),
        (_doc(rey_ppm=1e308), "range", "rey_ppm 1e+308 outside"),
        (_doc(rey_ppm=0.5), "range", "outside"),
        (_doc(rey_ppm=True), "schema", "rey_ppm"),
        (_doc(rey_ppm="2150"), "schema", "rey_ppm"),
        (_doc(rey_ppm=float("inf")), "schema", "rey_ppm"),
        (_doc(u_rey_ppm=0), "schema", "u_rey_ppm"),
        (_doc(u_rey_ppm=-1.0), "schema", "u_rey_ppm"),
        (_doc(u_rey_ppm=2150.0), "range", "u_rey_ppm"),
        (_doc(dy_ppm=3000.0), "range", "dy_ppm"),
        (_doc(sampled_at="9999-12-31T23:59:59Z"), "window", "in the future"),
        (_doc(sampled_at="9999-12-31T23:59:59-01:00"), "schema", "sampled_at"),
        (_doc(sampled_at="0001-01-01T00:00:00+01:00"), "schema", "sampled_at"),
        (_doc(sampled_at="2100-01-01T00:00:00Z"), "window", "in the future"),
        (_doc(sampled_at="2026-02-01T04:20:00Z"), "window", "in the future"),  # now + 8 min
        (_doc(sampled_at="2025-12-01T00:00:00Z"), "window", "too old"),
        (_doc(sampled_at="2026-02-01T03:12:00" + " " * 60 + "Z"), "schema", "ISO"),
        (_doc(sample_id="a\nb"), "schema", "sample_id"),
        (_doc(sample_id="x" * 65), "schema", "sample_id"),
    ],
)
def test_hostile_assays_are_rejected_with_their_reason(
    payload: bytes | str, reason: str, says: str
) -> None:
    with pytest.raises(AssayError, match=re.escape(says)) as info:
        parse_assay(payload)
    assert info.value.reason == reason


def test_limits_come_from_the_config() -> None:
    limits = LabAssays(rey_ppm_min=100.0, rey_ppm_max=3_000.0, max_future_s=0.0, max_age_days=1.0)
    assert _parse_assay(_doc(rey_ppm=2_999.0), limits, now_ns=T_EXAMPLE_NS).rey_ppm == 2_999.0
    for bad in (_doc(rey_ppm=3_001.0), _doc(rey_ppm=99.0, u_rey_ppm=1.0)):
        with pytest.raises(AssayError, match=r"outside 100\.\.3000"):
            _parse_assay(bad, limits, now_ns=T_EXAMPLE_NS)
    with pytest.raises(AssayError, match="in the future"):
        _parse_assay(_doc(), limits, now_ns=T_EXAMPLE_NS - 1)
    with pytest.raises(AssayError, match="too old"):
        _parse_assay(_doc(), limits, now_ns=T_EXAMPLE_NS + 25 * HOUR_NS)


def test_gate_rejects_duplicate_sample_ids_with_bounded_memory() -> None:
    gate = AssayGate(LabAssays(dedupe_ids=16))
    first = gate.check(_doc(sample_id="S-0"), now_ns=NOW_NS)
    with pytest.raises(DuplicateAssay, match="S-0") as info:
        gate.check(_doc(sample_id="S-0", rey_ppm=3000.0), now_ns=NOW_NS)  # a changed re-post too
    assert info.value.reason == "duplicate" and first.rey_ppm == 2150.0
    for i in range(1, 1_000):
        gate.check(_doc(sample_id=f"S-{i}"), now_ns=NOW_NS)
    assert len(gate) == 16  # the oldest ids are forgotten, memory stays bounded
    with pytest.raises(DuplicateAssay):
        gate.check(_doc(sample_id="S-999"), now_ns=NOW_NS)
    assert gate.check(_doc(sample_id="S-0"), now_ns=NOW_NS).sample_id == "S-0"  # forgotten


def test_a_rejected_assay_is_not_remembered() -> None:
    gate = AssayGate()
    with pytest.raises(AssayError, match="outside"):
        gate.check(_doc(rey_ppm=1e6), now_ns=NOW_NS)
    assert gate.check(_doc(), now_ns=NOW_NS).rey_ppm == 2150.0  # its id is still free


# -- fuzzing: nothing but AssayError ever leaves, and what passes is within the limits --------
JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
JSON = st.recursive(
    JSON_LEAF,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c),
    max_leaves=12,
)
NEAR_NOW = st.integers(-31 * 86_400, 120).map(
    lambda s: datetime.fromtimestamp(NOW_NS / 1e9 + s, UTC).isoformat()
)
STAMP = NEAR_NOW | st.datetimes(timezones=st.timezones()).map(datetime.isoformat) | st.text()
GRADE = st.floats(0.0, 60_000.0) | st.floats() | st.integers(-5, 10**7) | JSON_LEAF
FIELD = {
    "sample_id": st.text(max_size=70),
    "sampled_at": STAMP,
    "rey_ppm": GRADE,
    "u_rey_ppm": GRADE,
}
EXTRA = {"dy_ppm": GRADE, "tb_ppm": GRADE, "extra": JSON}
ASSAY_LIKE = st.fixed_dictionaries(FIELD, optional=EXTRA) | st.fixed_dictionaries(
    {}, optional={**FIELD, **EXTRA}
)
PLAUSIBLE = st.fixed_dictionaries(
    {
        "sample_id": st.from_regex(r"[A-Z]{3}-[0-9]{2}-[0-9]{4}", fullmatch=True),
        "sampled_at": NEAR_NOW,
        "rey_ppm": st.floats(0.5, 60_000.0),
        "u_rey_ppm": st.floats(0.0, 3_000.0),
    },
    optional={"dy_ppm": st.floats(0.0, 3_000.0), "tb_ppm": st.floats(0.0, 500.0)},
)
MUTANT = st.tuples(PLAUSIBLE, st.sampled_from([*FIELD, *EXTRA]), JSON).map(
    lambda t: {**t[0], t[1]: t[2]}
)
LIMITS = LabAssays()


def _within_limits(a: Assay, now_ns: int) -> bool:
    return (
        LIMITS.rey_ppm_min <= a.rey_ppm <= LIMITS.rey_ppm_max
        and 0 < a.u_rey_ppm < a.rey_ppm
        and all(v is None or 0 <= v <= a.rey_ppm for v in (a.dy_ppm, a.tb_ppm))
        and now_ns - LIMITS.max_age_days * 86_400e9
        <= a.sampled_at_ns
        <= now_ns + LIMITS.max_future_s * 1e9
        and a.sampled_at.utcoffset() is not None
    )


@settings(max_examples=300, deadline=None)
@given(doc=PLAUSIBLE | MUTANT | ASSAY_LIKE | JSON)
def test_fuzz_validator_raises_only_assay_error(doc: object) -> None:
    try:
        a = _parse_assay(json.dumps(doc), now_ns=NOW_NS)
    except AssayError as exc:
        assert exc.reason in REASONS and str(exc)
        event(f"rejected: {exc.reason}")
        return
    event("accepted")
    assert _within_limits(a, NOW_NS)


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_fuzz_raw_bytes_raise_only_assay_error(payload: bytes) -> None:
    try:
        a = _parse_assay(payload, now_ns=NOW_NS)
    except AssayError as exc:
        assert exc.reason in REASONS
        return
    assert _within_limits(a, NOW_NS)  # pragma: no cover - random bytes are never a valid assay


@settings(max_examples=100, deadline=None)
@given(
    rey=st.floats(1.0, 50_000.0),
    rel_u=st.floats(0.001, 0.999),
    ahead_s=st.integers(-int(LIMITS.max_age_days * 86_400), int(LIMITS.max_future_s)),
)
def test_fuzz_plausible_assays_are_accepted(rey: float, rel_u: float, ahead_s: int) -> None:
    """The limits do not reject what a lab really posts (no over-rejection)."""
    when = datetime.fromtimestamp(NOW_NS / 1e9 + ahead_s, UTC).isoformat()
    doc = _doc(rey_ppm=rey, u_rey_ppm=rey * rel_u, dy_ppm=rey * 0.036, tb_ppm=rey * 0.006,
               sampled_at=when)  # fmt: skip
    a = _parse_assay(doc, now_ns=NOW_NS)
    assert a.rey_ppm == rey and _within_limits(a, NOW_NS)
