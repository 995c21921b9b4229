"""Lab assay validation (ICD "Lab assays")."""

from __future__ import annotations

import json

import pytest

from chikyu_daq.assay import AssayError, parse_assay

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
    assert a.sampled_at_ns == 1_769_915_520_000_000_000
    assert a.to_event()["kind"] == "assay"


def test_offsets_are_converted_to_utc() -> None:
    a = parse_assay(json.dumps({**GOOD, "sampled_at": "2026-02-01T12:12:00+09:00"}))
    assert a.sampled_at_ns == 1_769_915_520_000_000_000


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
