"""Lab assays posted by the ship's lab to `<prefix>/lab/assay` (ICD "Lab assays").

`parse_assay(payload)` returns a frozen `Assay` or raises `AssayError` whose message is the
reason, ready for the log line and the rejection counter. A message is rejected when it is not
UTF-8 JSON, has unknown or missing keys, a naive or non-ISO `sampled_at`, `rey_ppm <= 0`,
`u_rey_ppm < 0`, negative element grades or a non-finite number. A rejected assay is never
applied; the caller counts it and carries on.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = ["Assay", "AssayError", "parse_assay"]


class AssayError(ValueError):
    """A lab message that must not be applied; the message says why."""


class Assay(BaseModel):
    """One lab result: REY grade on a dry-solids basis, ppm, with its standard uncertainty."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    sample_id: Annotated[str, Field(min_length=1, max_length=64)]
    sampled_at: datetime
    rey_ppm: Annotated[float, Field(gt=0.0)]
    u_rey_ppm: Annotated[float, Field(ge=0.0)]
    dy_ppm: Annotated[float | None, Field(ge=0.0)] = None
    tb_ppm: Annotated[float | None, Field(ge=0.0)] = None

    @field_validator("sampled_at", mode="before")
    @classmethod
    def _iso_string(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("must be an ISO 8601 string with a UTC offset")
        return value

    @field_validator("sampled_at")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("must carry a timezone (e.g. 2026-02-01T03:12:00Z)")
        return value.astimezone(UTC)

    @field_validator("rey_ppm", "u_rey_ppm", "dy_ppm", "tb_ppm")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be finite")
        return value

    @property
    def sampled_at_ns(self) -> int:
        """`sampled_at` as UTC nanoseconds (the project's time base)."""
        delta = self.sampled_at - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000

    def to_event(self) -> dict[str, Any]:
        """The recorder's `events.jsonl` form."""
        doc = self.model_dump(mode="json")
        return {"kind": "assay", "t_ns": self.sampled_at_ns, **doc}


def parse_assay(payload: bytes | str) -> Assay:
    """Validate one MQTT payload; raises `AssayError` with the reason."""
    try:
        text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
        doc = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise AssayError(f"not UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise AssayError(f"expected a JSON object, got {type(doc).__name__}")
    try:
        return Assay.model_validate(doc)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: "
            f"{'unknown key' if e['type'] == 'extra_forbidden' else e['msg']}"
            for e in exc.errors()
        )
        raise AssayError(reasons) from None
